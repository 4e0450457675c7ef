//! Anonymous pipes for the command's standard handles and the
//! pseudoconsole. `CreatePipe` makes both ends inheritable or neither;
//! only the command's end may be, so that the runner's end (which it reads
//! or writes) is never handed to the command, where holding it open would
//! keep the runner from seeing the end of the output.

use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle, RawHandle};

use windows_sys::Win32::Foundation::{SetHandleInformation, HANDLE, HANDLE_FLAG_INHERIT};
use windows_sys::Win32::Security::SECURITY_ATTRIBUTES;
use windows_sys::Win32::System::Pipes::CreatePipe;

use super::last_error;

/// The two ends of a pipe.
#[derive(Debug)]
pub struct Pipe {
    pub read: OwnedHandle,
    pub write: OwnedHandle,
}

/// Which end the command gets (inheritable); the other end stays the
/// runner's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildEnd {
    /// The command reads (its standard input).
    Read,
    /// The command writes (its standard output or error).
    Write,
    /// Neither is inherited: the pseudoconsole duplicates the ends it is
    /// given itself.
    Neither,
}

/// A new pipe with `child`'s end inheritable.
pub fn create(child: ChildEnd) -> io::Result<Pipe> {
    let attrs = SECURITY_ATTRIBUTES {
        nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
        lpSecurityDescriptor: std::ptr::null_mut(),
        bInheritHandle: i32::from(child != ChildEnd::Neither),
    };
    let mut read: HANDLE = std::ptr::null_mut();
    let mut write: HANDLE = std::ptr::null_mut();
    // SAFETY: `attrs` and both out-parameters are live for the call; 0
    // asks for the default buffer size.
    if unsafe { CreatePipe(&mut read, &mut write, &attrs, 0) } == 0 {
        return Err(last_error());
    }
    // SAFETY: both handles are new and owned by nothing else; from here
    // on they are closed on every path.
    let pipe = unsafe {
        Pipe {
            read: OwnedHandle::from_raw_handle(read as RawHandle),
            write: OwnedHandle::from_raw_handle(write as RawHandle),
        }
    };
    let runner_end = match child {
        ChildEnd::Read => Some(&pipe.write),
        ChildEnd::Write => Some(&pipe.read),
        ChildEnd::Neither => None,
    };
    if let Some(end) = runner_end {
        // SAFETY: `end` is a live handle owned by `pipe`.
        let ok =
            unsafe { SetHandleInformation(end.as_raw_handle() as HANDLE, HANDLE_FLAG_INHERIT, 0) };
        if ok == 0 {
            return Err(last_error());
        }
    }
    Ok(pipe)
}
