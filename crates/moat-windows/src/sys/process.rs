//! Starting the command: `CreateProcessAsUserW` with the restricted token,
//! suspended, so that it is in the kill-on-close job before it runs a
//! single instruction; only its three standard handles are inherited (a
//! handle-list attribute), whatever else moat has open. With a
//! pseudoconsole instead, nothing is inherited: the console's attribute
//! gives the command its standard handles.

use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle, RawHandle};
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{HANDLE, WAIT_OBJECT_0, WAIT_TIMEOUT};
use windows_sys::Win32::System::Console::HPCON;
use windows_sys::Win32::System::Threading::{
    CreateProcessAsUserW, DeleteProcThreadAttributeList, GetExitCodeProcess,
    InitializeProcThreadAttributeList, ResumeThread, TerminateProcess, UpdateProcThreadAttribute,
    WaitForSingleObject, CREATE_SUSPENDED, CREATE_UNICODE_ENVIRONMENT,
    EXTENDED_STARTUPINFO_PRESENT, INFINITE, LPPROC_THREAD_ATTRIBUTE_LIST, PROCESS_INFORMATION,
    PROC_THREAD_ATTRIBUTE_HANDLE_LIST, PROC_THREAD_ATTRIBUTE_PSEUDOCONSOLE, STARTF_USESTDHANDLES,
    STARTUPINFOEXW,
};

use super::{job, last_error, wide};

/// What to start.
#[derive(Debug)]
pub struct Launch<'a> {
    /// From `crate::cmdline::join`.
    pub command_line: &'a str,
    /// From `crate::envblock::build`.
    pub environment: &'a [u16],
    pub cwd: &'a str,
    /// `winsta0\default`, or the name of a private desktop.
    pub desktop: &'a str,
    pub stdio: Stdio,
}

/// Where the command's standard handles come from.
#[derive(Debug, Clone, Copy)]
pub enum Stdio {
    /// stdin, stdout, stderr: inheritable handles, the only ones
    /// inherited.
    Handles([RawHandle; 3]),
    /// A pseudoconsole (`super::conpty`), which the command attaches to.
    PseudoConsole(HPCON),
}

/// A started command.
#[derive(Debug)]
pub struct Started {
    pub process: OwnedHandle,
    pub pid: u32,
}

/// Starts `launch` under `token`, inside `job`.
pub fn start(
    token: &OwnedHandle,
    job_handle: &OwnedHandle,
    launch: &Launch<'_>,
) -> io::Result<Started> {
    let mut size = 0usize;
    // SAFETY: a size query with a null list, as documented.
    unsafe { InitializeProcThreadAttributeList(std::ptr::null_mut(), 1, 0, &mut size) };
    let mut list_buf = vec![0u64; (size + 7) / 8];
    let list = list_buf.as_mut_ptr() as LPPROC_THREAD_ATTRIBUTE_LIST;
    // SAFETY: `list_buf` is live and at least `size` bytes.
    if unsafe { InitializeProcThreadAttributeList(list, 1, 0, &mut size) } == 0 {
        return Err(last_error());
    }
    let handles: [HANDLE; 3] = match launch.stdio {
        Stdio::Handles(h) => [h[0] as HANDLE, h[1] as HANDLE, h[2] as HANDLE],
        Stdio::PseudoConsole(_) => [std::ptr::null_mut(); 3],
    };
    let result = (|| {
        let ok = match launch.stdio {
            // SAFETY: `handles` outlives the list's use in
            // CreateProcessAsUserW below; the size is the array's.
            Stdio::Handles(_) => unsafe {
                UpdateProcThreadAttribute(
                    list,
                    0,
                    PROC_THREAD_ATTRIBUTE_HANDLE_LIST as usize,
                    handles.as_ptr() as *const core::ffi::c_void,
                    std::mem::size_of_val(&handles),
                    std::ptr::null_mut(),
                    std::ptr::null(),
                )
            },
            // SAFETY: this attribute takes the HPCON itself as its value
            // (not a pointer to it), as documented for
            // PROC_THREAD_ATTRIBUTE_PSEUDOCONSOLE; the console is open for
            // the whole call (the caller holds it).
            Stdio::PseudoConsole(console) => unsafe {
                UpdateProcThreadAttribute(
                    list,
                    0,
                    PROC_THREAD_ATTRIBUTE_PSEUDOCONSOLE as usize,
                    console as *const core::ffi::c_void,
                    std::mem::size_of::<HPCON>(),
                    std::ptr::null_mut(),
                    std::ptr::null(),
                )
            },
        };
        if ok == 0 {
            return Err(last_error());
        }
        let inherit = matches!(launch.stdio, Stdio::Handles(_));
        // SAFETY: plain data; all-zero is a valid value.
        let mut si: STARTUPINFOEXW = unsafe { std::mem::zeroed() };
        si.StartupInfo.cb = std::mem::size_of::<STARTUPINFOEXW>() as u32;
        if inherit {
            si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
            si.StartupInfo.hStdInput = handles[0];
            si.StartupInfo.hStdOutput = handles[1];
            si.StartupInfo.hStdError = handles[2];
        }
        let mut desktop = wide(launch.desktop);
        si.StartupInfo.lpDesktop = desktop.as_mut_ptr();
        si.lpAttributeList = list;
        let mut cmd = wide(launch.command_line);
        let cwd = wide(launch.cwd);
        // SAFETY: plain data; all-zero is a valid value.
        let mut pi: PROCESS_INFORMATION = unsafe { std::mem::zeroed() };
        // SAFETY: every pointer refers to a live, NUL-terminated buffer
        // (`cmd` is mutable as the API requires; the environment block ends
        // with two NULs, from envblock::build); `si` and `pi` are live.
        let ok = unsafe {
            CreateProcessAsUserW(
                token.as_raw_handle() as HANDLE,
                std::ptr::null(),
                cmd.as_mut_ptr(),
                std::ptr::null(),
                std::ptr::null(),
                i32::from(inherit),
                EXTENDED_STARTUPINFO_PRESENT | CREATE_UNICODE_ENVIRONMENT | CREATE_SUSPENDED,
                launch.environment.as_ptr() as *const core::ffi::c_void,
                cwd.as_ptr(),
                &si.StartupInfo,
                &mut pi,
            )
        };
        if ok == 0 {
            return Err(last_error());
        }
        // SAFETY: both handles are new and owned by nothing else.
        let (process, thread) = unsafe {
            (
                OwnedHandle::from_raw_handle(pi.hProcess as RawHandle),
                OwnedHandle::from_raw_handle(pi.hThread as RawHandle),
            )
        };
        if let Err(e) = job::assign(job_handle, &process) {
            // It is not in the job, so ending the job would miss it: end
            // the process itself rather than leave it suspended.
            // SAFETY: `process` is live; CreateProcessAsUserW's handle has
            // PROCESS_TERMINATE.
            unsafe { TerminateProcess(process.as_raw_handle() as HANDLE, 1) };
            return Err(e);
        }
        // SAFETY: `thread` is the suspended main thread, live here.
        if unsafe { ResumeThread(thread.as_raw_handle() as HANDLE) } == u32::MAX {
            return Err(last_error());
        }
        Ok(Started {
            process,
            pid: pi.dwProcessId,
        })
    })();
    // SAFETY: the list was initialised above and is no longer used.
    unsafe { DeleteProcThreadAttributeList(list) };
    result
}

/// Waits for `process` to end; its exit code.
pub fn wait(process: &OwnedHandle) -> io::Result<u32> {
    // SAFETY: the handle is live for the call.
    if unsafe { WaitForSingleObject(process.as_raw_handle() as HANDLE, INFINITE) } != WAIT_OBJECT_0
    {
        return Err(last_error());
    }
    exit_code(process)
}

/// The longest single wait: one below INFINITE, which would wait for good.
const LONGEST_WAIT: u32 = INFINITE - 1;

/// Waits at most `timeout` for `process` to end: its exit code, or `None`
/// when it still runs. A timeout longer than one wait can take (about 49
/// days) is waited out in several.
pub fn wait_for(process: &OwnedHandle, timeout: Duration) -> io::Result<Option<u32>> {
    // A timeout past what the clock holds is no timeout.
    let deadline = Instant::now().checked_add(timeout);
    loop {
        let left = match deadline {
            Some(deadline) => deadline.saturating_duration_since(Instant::now()),
            None => Duration::from_millis(u64::from(LONGEST_WAIT)),
        };
        // Rounded up, so that the wait never ends before the deadline.
        let ms = u32::try_from((left.as_nanos() + 999_999) / 1_000_000)
            .unwrap_or(LONGEST_WAIT)
            .min(LONGEST_WAIT);
        // SAFETY: the handle is live for the call.
        match unsafe { WaitForSingleObject(process.as_raw_handle() as HANDLE, ms) } {
            WAIT_OBJECT_0 => return exit_code(process).map(Some),
            WAIT_TIMEOUT => {
                if deadline.map_or(false, |d| Instant::now() >= d) {
                    return Ok(None);
                }
            }
            _ => return Err(last_error()),
        }
    }
}

/// The exit code of `process`, which has ended.
fn exit_code(process: &OwnedHandle) -> io::Result<u32> {
    let mut code = 0u32;
    // SAFETY: the handle is live; `code` is a live out-parameter.
    if unsafe { GetExitCodeProcess(process.as_raw_handle() as HANDLE, &mut code) } == 0 {
        return Err(last_error());
    }
    Ok(code)
}
