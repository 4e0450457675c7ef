//! The named pipes between moat and its runner (the helper started as the
//! sandbox account): created by moat with a DACL that admits only that
//! account, refusing remote clients, one instance each, and checked after
//! the connection for the process at the other end. The runner's side
//! opens them as a client and checks the server in turn.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::windows::fs::OpenOptionsExt;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle, RawHandle};

use windows_sys::Win32::Foundation::{HANDLE, INVALID_HANDLE_VALUE};
use windows_sys::Win32::Storage::FileSystem::{
    FILE_FLAG_FIRST_PIPE_INSTANCE, PIPE_ACCESS_DUPLEX, SECURITY_IDENTIFICATION,
};
use windows_sys::Win32::System::Pipes::{
    ConnectNamedPipe, CreateNamedPipeW, GetNamedPipeClientProcessId, GetNamedPipeServerProcessId,
    PIPE_REJECT_REMOTE_CLIENTS, PIPE_TYPE_BYTE, PIPE_WAIT,
};

use super::descriptor::Descriptor;
use super::{last_error, wide};
use crate::sddl;
use crate::sid::Sid;

/// ERROR_PIPE_CONNECTED: the client connected before ConnectNamedPipe.
const PIPE_CONNECTED: i32 = 535;

/// A new pipe `\\.\pipe\<name>` only `client` may open.
pub fn create(name: &str, client: &Sid) -> io::Result<OwnedHandle> {
    let descriptor = Descriptor::from_sddl(&sddl::pipe_dacl(client))?;
    let attrs = descriptor.attributes();
    let path = wide(&format!(r"\\.\pipe\{}", name));
    // SAFETY: `path` is NUL-terminated and `attrs` (with the descriptor it
    // points to) is live for the call.
    let raw = unsafe {
        CreateNamedPipeW(
            path.as_ptr(),
            PIPE_ACCESS_DUPLEX | FILE_FLAG_FIRST_PIPE_INSTANCE,
            PIPE_TYPE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
            1,
            64 * 1024,
            64 * 1024,
            0,
            &attrs,
        )
    };
    // The pipe keeps its own copy of the security.
    drop(descriptor);
    if raw == INVALID_HANDLE_VALUE {
        return Err(last_error());
    }
    // SAFETY: `raw` is a new handle nothing else owns.
    Ok(unsafe { OwnedHandle::from_raw_handle(raw as RawHandle) })
}

/// Waits for the client and returns its process id, which the caller
/// compares with the runner it started.
pub fn accept(pipe: &OwnedHandle) -> io::Result<u32> {
    let h = pipe.as_raw_handle() as HANDLE;
    // SAFETY: a live pipe handle; no overlapped I/O.
    if unsafe { ConnectNamedPipe(h, std::ptr::null_mut()) } == 0 {
        let e = last_error();
        if e.raw_os_error() != Some(PIPE_CONNECTED) {
            return Err(e);
        }
    }
    let mut pid = 0u32;
    // SAFETY: a live, connected pipe handle; `pid` is a live out-parameter.
    if unsafe { GetNamedPipeClientProcessId(h, &mut pid) } == 0 {
        return Err(last_error());
    }
    Ok(pid)
}

/// Which way a client end carries bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The client reads what the server writes.
    Read,
    /// The client writes what the server reads.
    Write,
}

/// Opens `\\.\pipe\<name>` as a client (the runner's side), one way only.
///
/// The identification-level quality of service lets the server learn who
/// the client is but not act as it: moat has no business impersonating
/// the sandbox account, and a pipe of the same name set up by someone else
/// gains nothing from the runner connecting to it before the server check
/// ([`server_process_id`]) refuses it.
pub fn connect(name: &str, direction: Direction) -> io::Result<File> {
    OpenOptions::new()
        .read(direction == Direction::Read)
        .write(direction == Direction::Write)
        .security_qos_flags(SECURITY_IDENTIFICATION)
        .open(crate::runner_args::pipe_path(name))
}

/// The process id of the server end of a client pipe.
pub fn server_process_id(pipe: &File) -> io::Result<u32> {
    let mut pid = 0u32;
    // SAFETY: `pipe` owns a live pipe handle for the call; `pid` is a live
    // out-parameter.
    if unsafe { GetNamedPipeServerProcessId(pipe.as_raw_handle() as HANDLE, &mut pid) } == 0 {
        return Err(last_error());
    }
    Ok(pid)
}
