//! A job object that kills every process in it when its last handle
//! closes: moat holds the only handle, so nothing the command starts can
//! outlive moat (the anchor's unelevated tier had no job object).

use std::io;
use std::os::windows::io::{FromRawHandle, OwnedHandle, RawHandle};

use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JobObjectExtendedLimitInformation,
    SetInformationJobObject, TerminateJobObject, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
    JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
};

use super::last_error;

/// A new, unnamed job object with kill-on-close.
pub fn kill_on_close() -> io::Result<OwnedHandle> {
    // SAFETY: both pointers may be null (default security, no name); the
    // result is a new handle or null.
    let raw = unsafe { CreateJobObjectW(std::ptr::null(), std::ptr::null()) };
    if raw.is_null() {
        return Err(last_error());
    }
    // SAFETY: `raw` is a new handle that nothing else owns.
    let job = unsafe { OwnedHandle::from_raw_handle(raw as RawHandle) };
    // SAFETY: the structure is plain data; all-zero is a valid value.
    let mut info: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = unsafe { std::mem::zeroed() };
    info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
    // SAFETY: `info` is a live structure of the size passed, read only.
    let ok = unsafe {
        SetInformationJobObject(
            handle(&job),
            JobObjectExtendedLimitInformation,
            &info as *const JOBOBJECT_EXTENDED_LIMIT_INFORMATION as *const core::ffi::c_void,
            std::mem::size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
        )
    };
    if ok == 0 {
        return Err(last_error());
    }
    Ok(job)
}

fn handle(h: &OwnedHandle) -> HANDLE {
    use std::os::windows::io::AsRawHandle;
    h.as_raw_handle() as HANDLE
}

/// Puts `process` (started suspended) into `job`.
pub fn assign(job: &OwnedHandle, process: &OwnedHandle) -> io::Result<()> {
    // SAFETY: both handles are live for the call.
    if unsafe { AssignProcessToJobObject(handle(job), handle(process)) } == 0 {
        return Err(last_error());
    }
    Ok(())
}

/// Ends every process of `job` with `code`.
pub fn terminate(job: &OwnedHandle, code: u32) -> io::Result<()> {
    // SAFETY: the handle is live for the call.
    if unsafe { TerminateJobObject(handle(job), code) } == 0 {
        return Err(last_error());
    }
    Ok(())
}
