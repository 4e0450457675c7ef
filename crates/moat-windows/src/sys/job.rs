//! A job object that kills every process in it when its last handle
//! closes: moat holds the only handle, so nothing the command starts can
//! outlive moat (the anchor's unelevated tier had no job object). The
//! policy's limits go on the same job ([`apply_limits`], from
//! `crate::limits::settings`).

use std::io;
use std::os::windows::io::{FromRawHandle, OwnedHandle, RawHandle};

use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JobObjectCpuRateControlInformation,
    JobObjectExtendedLimitInformation, SetInformationJobObject, TerminateJobObject,
    JOBOBJECT_CPU_RATE_CONTROL_INFORMATION, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
    JOB_OBJECT_CPU_RATE_CONTROL_ENABLE, JOB_OBJECT_CPU_RATE_CONTROL_HARD_CAP,
    JOB_OBJECT_LIMIT_ACTIVE_PROCESS, JOB_OBJECT_LIMIT_JOB_MEMORY,
    JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
};
use windows_sys::Win32::System::Threading::{GetActiveProcessorCount, ALL_PROCESSOR_GROUPS};

use super::last_error;
use crate::limits::JobSettings;

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
    set_extended_limits(&job, &JobSettings::default())?;
    Ok(job)
}

/// Sets the job's extended limits: kill-on-close always, and the memory
/// and process limits of `settings` when it has them. Setting the
/// structure replaces every limit it holds, so kill-on-close is part of
/// every call.
fn set_extended_limits(job: &OwnedHandle, settings: &JobSettings) -> io::Result<()> {
    // SAFETY: the structure is plain data; all-zero is a valid value.
    let mut info: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = unsafe { std::mem::zeroed() };
    let mut flags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
    if let Some(bytes) = settings.job_memory {
        info.JobMemoryLimit = usize::try_from(bytes).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a memory limit of {bytes} bytes is more than this system can address"),
            )
        })?;
        flags |= JOB_OBJECT_LIMIT_JOB_MEMORY;
    }
    if let Some(count) = settings.active_processes {
        info.BasicLimitInformation.ActiveProcessLimit = count;
        flags |= JOB_OBJECT_LIMIT_ACTIVE_PROCESS;
    }
    info.BasicLimitInformation.LimitFlags = flags;
    // SAFETY: `info` is a live structure of the size passed, read only;
    // the job handle is live for the call.
    let ok = unsafe {
        SetInformationJobObject(
            handle(job),
            JobObjectExtendedLimitInformation,
            &info as *const JOBOBJECT_EXTENDED_LIMIT_INFORMATION as *const core::ffi::c_void,
            std::mem::size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
        )
    };
    if ok == 0 {
        return Err(last_error());
    }
    Ok(())
}

/// Puts `settings` on `job` (made by [`kill_on_close`], before any process
/// in it resumes): the memory and process limits with kill-on-close kept,
/// and the CPU rate as a hard cap. The timeout is the waiter's to enforce.
/// Nothing is set for settings without limits.
pub fn apply_limits(job: &OwnedHandle, settings: &JobSettings) -> io::Result<()> {
    if settings.job_memory.is_some() || settings.active_processes.is_some() {
        set_extended_limits(job, settings)?;
    }
    if let Some(rate) = settings.cpu_rate {
        // SAFETY: the structure is plain data; all-zero is a valid value.
        let mut info: JOBOBJECT_CPU_RATE_CONTROL_INFORMATION = unsafe { std::mem::zeroed() };
        info.ControlFlags =
            JOB_OBJECT_CPU_RATE_CONTROL_ENABLE | JOB_OBJECT_CPU_RATE_CONTROL_HARD_CAP;
        // Writing a union field of plain data needs no unsafe; reading
        // would.
        info.Anonymous.CpuRate = rate;
        // SAFETY: `info` is a live structure of the size passed, read
        // only; the job handle is live for the call.
        let ok = unsafe {
            SetInformationJobObject(
                handle(job),
                JobObjectCpuRateControlInformation,
                &info as *const JOBOBJECT_CPU_RATE_CONTROL_INFORMATION as *const core::ffi::c_void,
                std::mem::size_of::<JOBOBJECT_CPU_RATE_CONTROL_INFORMATION>() as u32,
            )
        };
        if ok == 0 {
            return Err(last_error());
        }
    }
    Ok(())
}

/// The machine's processors, in all processor groups: what a job's CPU
/// rate is a share of. 0 (the call failed) is left for
/// `crate::limits::settings` to refuse.
pub fn processor_count() -> u32 {
    // SAFETY: takes a group number, no pointer.
    unsafe { GetActiveProcessorCount(ALL_PROCESSOR_GROUPS) }
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
