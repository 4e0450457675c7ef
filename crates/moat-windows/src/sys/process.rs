//! Starting the command: `CreateProcessAsUserW` with the restricted token,
//! suspended, so that it is in the kill-on-close job before it runs a
//! single instruction; only its three standard handles are inherited (a
//! handle-list attribute), whatever else moat has open.

use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle, RawHandle};

use windows_sys::Win32::Foundation::{HANDLE, WAIT_OBJECT_0};
use windows_sys::Win32::System::Threading::{
    CreateProcessAsUserW, DeleteProcThreadAttributeList, GetExitCodeProcess,
    InitializeProcThreadAttributeList, ResumeThread, UpdateProcThreadAttribute,
    WaitForSingleObject, CREATE_SUSPENDED, CREATE_UNICODE_ENVIRONMENT,
    EXTENDED_STARTUPINFO_PRESENT, INFINITE, LPPROC_THREAD_ATTRIBUTE_LIST, PROCESS_INFORMATION,
    PROC_THREAD_ATTRIBUTE_HANDLE_LIST, STARTF_USESTDHANDLES, STARTUPINFOEXW,
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
    /// stdin, stdout, stderr: inheritable handles.
    pub stdio: [RawHandle; 3],
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
    let handles: [HANDLE; 3] = [
        launch.stdio[0] as HANDLE,
        launch.stdio[1] as HANDLE,
        launch.stdio[2] as HANDLE,
    ];
    let result = (|| {
        // SAFETY: `handles` outlives the list's use in CreateProcessAsUserW
        // below; the size is the array's.
        let ok = unsafe {
            UpdateProcThreadAttribute(
                list,
                0,
                PROC_THREAD_ATTRIBUTE_HANDLE_LIST as usize,
                handles.as_ptr() as *const core::ffi::c_void,
                std::mem::size_of_val(&handles),
                std::ptr::null_mut(),
                std::ptr::null(),
            )
        };
        if ok == 0 {
            return Err(last_error());
        }
        // SAFETY: plain data; all-zero is a valid value.
        let mut si: STARTUPINFOEXW = unsafe { std::mem::zeroed() };
        si.StartupInfo.cb = std::mem::size_of::<STARTUPINFOEXW>() as u32;
        si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
        si.StartupInfo.hStdInput = handles[0];
        si.StartupInfo.hStdOutput = handles[1];
        si.StartupInfo.hStdError = handles[2];
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
                1,
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
            let _ = job::terminate(job_handle, 1);
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
    let mut code = 0u32;
    // SAFETY: the handle is live; `code` is a live out-parameter.
    if unsafe { GetExitCodeProcess(process.as_raw_handle() as HANDLE, &mut code) } == 0 {
        return Err(last_error());
    }
    Ok(code)
}
