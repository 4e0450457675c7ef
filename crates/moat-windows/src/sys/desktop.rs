//! A private desktop for the command, so it cannot read or send input to
//! the person's windows (window messages do not cross desktops).

use std::io;

use windows_sys::Win32::System::StationsAndDesktops::{CloseDesktop, CreateDesktopW, HDESK};

use super::{last_error, wide};

/// Every right the command's processes need on their own desktop.
const DESKTOP_ALL: u32 = 0x01ff | 0x000f_0000;

/// An open desktop, closed on drop.
#[derive(Debug)]
pub struct Desktop {
    handle: HDESK,
    /// `winsta0\<name>`, for STARTUPINFO's lpDesktop.
    pub path: String,
}

impl Drop for Desktop {
    fn drop(&mut self) {
        // SAFETY: `handle` came from CreateDesktopW and is closed once.
        unsafe { CloseDesktop(self.handle) };
    }
}

/// Creates the desktop `name` on the interactive window station.
pub fn create(name: &str) -> io::Result<Desktop> {
    let n = wide(name);
    // SAFETY: `n` is NUL-terminated; the device and mode must be null.
    let handle = unsafe {
        CreateDesktopW(
            n.as_ptr(),
            std::ptr::null(),
            std::ptr::null(),
            0,
            DESKTOP_ALL,
            std::ptr::null(),
        )
    };
    if handle.is_null() {
        return Err(last_error());
    }
    Ok(Desktop {
        handle,
        path: format!(r"winsta0\{}", name),
    })
}
