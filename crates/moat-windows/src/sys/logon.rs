//! Starting the runner as a sandbox account: `CreateProcessWithLogonW`
//! (the Secondary Logon service) with the account's password, its profile
//! loaded (git and most tools want a home), no window, and the runner's
//! command line from `crate::runner_args`.
//!
//! Optionally the runner starts suspended and goes into a job of moat's
//! before it runs, so that it cannot outlive moat even if it never reads
//! its pipe; moat's side decides. What a failure means is
//! `crate::logon::LogonError`'s business.

use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle, RawHandle};

use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::System::Threading::{
    CreateProcessWithLogonW, ResumeThread, CREATE_NO_WINDOW, CREATE_SUSPENDED,
    CREATE_UNICODE_ENVIRONMENT, LOGON_WITH_PROFILE, PROCESS_INFORMATION, STARTUPINFOW,
};

use super::{job, last_error, wide};
use crate::logon::{LogonError, Step};

/// The password type is the crate's one (`crate::logon::Password`),
/// zeroed when dropped.
pub use crate::logon::Password;

/// What to start.
#[derive(Debug)]
pub struct RunnerLaunch<'a> {
    /// A local account (the domain is `.`).
    pub account: &'a str,
    pub password: &'a Password,
    /// The runner program, an absolute path.
    pub program: &'a str,
    /// From `crate::runner_args::RunnerArgs::command_line`.
    pub command_line: &'a str,
    /// From `crate::runner_args::working_directory`.
    pub cwd: &'a str,
}

/// A started runner.
#[derive(Debug)]
pub struct Runner {
    pub process: OwnedHandle,
    pub pid: u32,
}

/// Starts the runner as `launch.account`; with `job`, suspended until it
/// is in that job.
pub fn start(
    launch: &RunnerLaunch<'_>,
    job_handle: Option<&OwnedHandle>,
) -> Result<Runner, LogonError> {
    let failed = |step: Step, err: std::io::Error| LogonError {
        account: launch.account.to_string(),
        step,
        code: err.raw_os_error().map_or(0, |c| c as u32),
    };
    let user = wide(launch.account);
    let domain = wide(".");
    let program = wide(launch.program);
    let mut cmd = wide(launch.command_line);
    let cwd = wide(launch.cwd);
    // SAFETY: plain data; all-zero is a valid value.
    let mut si: STARTUPINFOW = unsafe { std::mem::zeroed() };
    si.cb = std::mem::size_of::<STARTUPINFOW>() as u32;
    // lpDesktop stays null: the runner gets moat's desktop, which the call
    // opens to the account (the runner passes it on to the command).
    let mut flags = CREATE_NO_WINDOW | CREATE_UNICODE_ENVIRONMENT;
    if job_handle.is_some() {
        flags |= CREATE_SUSPENDED;
    }
    // SAFETY: plain data; all-zero is a valid value.
    let mut pi: PROCESS_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: every string is NUL-terminated and live for the call (`cmd`
    // mutable, as the API requires); a null environment asks for the
    // account's own, built from its profile; `si` and `pi` are live.
    let ok = unsafe {
        CreateProcessWithLogonW(
            user.as_ptr(),
            domain.as_ptr(),
            launch.password.as_ptr(),
            LOGON_WITH_PROFILE,
            program.as_ptr(),
            cmd.as_mut_ptr(),
            flags,
            std::ptr::null(),
            cwd.as_ptr(),
            &si,
            &mut pi,
        )
    };
    if ok == 0 {
        return Err(failed(Step::Logon, last_error()));
    }
    // SAFETY: both handles are new and owned by nothing else.
    let (process, thread) = unsafe {
        (
            OwnedHandle::from_raw_handle(pi.hProcess as RawHandle),
            OwnedHandle::from_raw_handle(pi.hThread as RawHandle),
        )
    };
    if let Some(job_handle) = job_handle {
        if let Err(err) = job::assign(job_handle, &process) {
            // Not in the job and never resumed: end it rather than leave
            // a suspended process of the sandbox account behind.
            kill(&process);
            return Err(failed(Step::Job, err));
        }
        // SAFETY: `thread` is the runner's suspended main thread.
        if unsafe { ResumeThread(thread.as_raw_handle() as HANDLE) } == u32::MAX {
            let err = last_error();
            kill(&process);
            return Err(failed(Step::Resume, err));
        }
    }
    Ok(Runner {
        process,
        pid: pi.dwProcessId,
    })
}

fn kill(process: &OwnedHandle) {
    use windows_sys::Win32::System::Threading::TerminateProcess;
    // SAFETY: the handle is live; CreateProcessWithLogonW's process handle
    // has PROCESS_TERMINATE.
    unsafe { TerminateProcess(process.as_raw_handle() as HANDLE, 1) };
}
