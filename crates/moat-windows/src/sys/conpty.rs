//! A pseudoconsole for `--pty`: the command gets a console of its own,
//! fed and read through two pipes moat relays.

use std::io;
use std::os::windows::io::{AsRawHandle, OwnedHandle};

use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::System::Console::{
    ClosePseudoConsole, CreatePseudoConsole, ResizePseudoConsole, COORD, HPCON,
};

/// An open pseudoconsole, closed on drop.
#[derive(Debug)]
pub struct PseudoConsole {
    pub handle: HPCON,
}

impl Drop for PseudoConsole {
    fn drop(&mut self) {
        // SAFETY: `handle` came from CreatePseudoConsole and is closed once.
        unsafe { ClosePseudoConsole(self.handle) };
    }
}

fn coord(cols: u16, rows: u16) -> COORD {
    COORD {
        X: cols.min(i16::MAX as u16) as i16,
        Y: rows.min(i16::MAX as u16) as i16,
    }
}

/// A pseudoconsole of `cols` x `rows` reading `input` and writing `output`
/// (the console's ends of two pipes).
pub fn create(
    cols: u16,
    rows: u16,
    input: &OwnedHandle,
    output: &OwnedHandle,
) -> io::Result<PseudoConsole> {
    let size = coord(cols, rows);
    let mut handle: HPCON = 0;
    // SAFETY: both handles are live pipe ends; `handle` is a live
    // out-parameter.
    let hr = unsafe {
        CreatePseudoConsole(
            size,
            input.as_raw_handle() as HANDLE,
            output.as_raw_handle() as HANDLE,
            0,
            &mut handle,
        )
    };
    if hr < 0 {
        return Err(io::Error::from_raw_os_error(hr & 0xffff));
    }
    Ok(PseudoConsole { handle })
}

/// Gives `console` a new size (the terminal it is drawn on was resized);
/// the command sees a window-size change.
pub fn resize(console: &PseudoConsole, cols: u16, rows: u16) -> io::Result<()> {
    // SAFETY: `console.handle` came from CreatePseudoConsole and is open
    // until `console` drops, which borrowing it here prevents.
    let hr = unsafe { ResizePseudoConsole(console.handle, coord(cols, rows)) };
    if hr < 0 {
        return Err(io::Error::from_raw_os_error(hr & 0xffff));
    }
    Ok(())
}
