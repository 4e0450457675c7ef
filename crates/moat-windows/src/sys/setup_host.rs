//! The real [`SetupHost`]: `crate::setup_run` carried out on Windows.
//!
//! Accounts and the group through NetAPI (`sys::accounts` plus the flag
//! and information calls here), passwords with DPAPI (`sys::dpapi`), the
//! firewall through `powershell.exe` (`crate::setup_plan`'s scripts, run
//! encoded), profiles with `DeleteProfileW` and a logon with profile
//! (`sys::logon`), directories' owner and DACL from SDDL. Type-checked for
//! `x86_64-pc-windows-gnu`; it has not run on Windows.

use std::io;
use std::os::windows::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use windows_sys::Win32::Foundation::{CloseHandle, LocalFree, BOOL, HANDLE, HLOCAL};
use windows_sys::Win32::NetworkManagement::NetManagement::{
    NetApiBufferFree, NetLocalGroupGetInfo, NetUserGetInfo, NetUserGetLocalGroups,
    LOCALGROUP_INFO_1, LOCALGROUP_USERS_INFO_0, MAX_PREFERRED_LENGTH, UF_ACCOUNTDISABLE,
    UF_DONT_EXPIRE_PASSWD, UF_LOCKOUT, USER_INFO_1008, USER_INFO_4,
};
use windows_sys::Win32::Security::Authorization::{
    ConvertSecurityDescriptorToStringSecurityDescriptorW, GetNamedSecurityInfoW,
    SetNamedSecurityInfoW, SDDL_REVISION_1, SE_FILE_OBJECT,
};
use windows_sys::Win32::Security::{
    CheckTokenMembership, GetLengthSid, GetTokenInformation, LogonUserW, SidTypeAlias, SidTypeUser,
    TokenElevation, TokenUser, DACL_SECURITY_INFORMATION, LOGON32_LOGON_NETWORK,
    LOGON32_PROVIDER_DEFAULT, OWNER_SECURITY_INFORMATION, PROTECTED_DACL_SECURITY_INFORMATION,
    PSECURITY_DESCRIPTOR, PSID, TOKEN_ELEVATION, TOKEN_QUERY, TOKEN_USER,
};
use windows_sys::Win32::Storage::FileSystem::CreateDirectoryW;
use windows_sys::Win32::System::Diagnostics::ToolHelp::{
    CreateToolhelp32Snapshot, Process32FirstW, Process32NextW, PROCESSENTRY32W, TH32CS_SNAPPROCESS,
};
use windows_sys::Win32::System::Registry::{
    RegGetValueW, HKEY_LOCAL_MACHINE, RRF_RT_REG_DWORD, RRF_RT_REG_EXPAND_SZ, RRF_RT_REG_SZ,
};
use windows_sys::Win32::System::SystemInformation::GetSystemDirectoryW;
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, GetExitCodeProcess, OpenProcess, OpenProcessToken, TerminateProcess,
    WaitForSingleObject, CREATE_NO_WINDOW, PROCESS_QUERY_LIMITED_INFORMATION, PROCESS_TERMINATE,
};
use windows_sys::Win32::UI::Shell::DeleteProfileW;

use super::accounts::net;
use super::descriptor::Descriptor;
use super::logon::{self, Password, RunnerLaunch};
use super::{
    accounts, acl, dpapi, from_wide, last_error, random_bytes, read_if_present, replace_file, wide,
    SidBuf,
};
use crate::apply;
use crate::errors;
use crate::record::Record;
use crate::setup_plan::{
    self, Account, Group, Profile, Secret, SecretsDir, State, OFFLINE, ONLINE, USER_LIST_KEY,
};
use crate::setup_run::{SetupHost, RUNNER_EXE};
use crate::sid::{self, Sid};

const PROFILE_LIST: &str = r"SOFTWARE\Microsoft\Windows NT\CurrentVersion\ProfileList";

/// How long the logon that makes a profile may take.
const PROFILE_WAIT: Duration = Duration::from_secs(120);

/// Win32 and NERR codes that mean "already gone".
const NOT_FOUND: [i32; 5] = [2, 3, 1332, 2220, 2221];
const NO_SUCH_ALIAS: i32 = 1376;
const MEMBER_IN_ALIAS: i32 = 1378;

fn code(err: &io::Error) -> u32 {
    err.raw_os_error().map_or(0, |c| c as u32)
}

/// `what` failed: the explanation of its Win32 error when known.
fn failed(what: &str, err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(c) => errors::describe(what, c as u32),
        None => format!("{} failed: {}", what, err),
    }
}

fn gone(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::NotFound
        || err
            .raw_os_error()
            .map_or(false, |c| NOT_FOUND.contains(&c) || c == NO_SUCH_ALIAS)
}

/// The SID at `psid`.
///
/// # Safety
/// `psid` is null or points to a valid SID.
unsafe fn sid_at(psid: PSID) -> Option<Sid> {
    if psid.is_null() {
        return None;
    }
    let len = GetLengthSid(psid) as usize;
    let bytes = std::slice::from_raw_parts(psid as *const u8, len);
    Sid::from_bytes(bytes).ok()
}

/// A handle closed when dropped.
struct Owned(HANDLE);

impl Drop for Owned {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the handle was opened by this module and is closed once.
            unsafe { CloseHandle(self.0) };
        }
    }
}

/// A NetAPI buffer freed when dropped.
struct NetBuf(*mut u8);

impl Drop for NetBuf {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the buffer came from a NetAPI call and is freed once.
            unsafe { NetApiBufferFree(self.0 as *const core::ffi::c_void) };
        }
    }
}

/// What NetUserGetInfo level 4 says about a local user.
struct UserInfo {
    comment: String,
    flags: u32,
    password_expired: bool,
    sid: Option<Sid>,
}

fn user_info(name: &str) -> io::Result<UserInfo> {
    let n = wide(name);
    let mut buf = NetBuf(std::ptr::null_mut());
    // SAFETY: `n` is NUL-terminated; `buf.0` receives a NetAPI buffer.
    net(unsafe { NetUserGetInfo(std::ptr::null(), n.as_ptr(), 4, &mut buf.0) })?;
    // SAFETY: on success the buffer holds one USER_INFO_4, whose strings
    // and SID live in the same buffer, which `buf` keeps until the end.
    unsafe {
        let info = &*(buf.0 as *const USER_INFO_4);
        Ok(UserInfo {
            comment: from_wide(info.usri4_comment),
            flags: info.usri4_flags,
            password_expired: info.usri4_password_expired != 0,
            sid: sid_at(info.usri4_user_sid),
        })
    }
}

fn group_comment(name: &str) -> io::Result<String> {
    let n = wide(name);
    let mut buf = NetBuf(std::ptr::null_mut());
    // SAFETY: as in `user_info`.
    net(unsafe { NetLocalGroupGetInfo(std::ptr::null(), n.as_ptr(), 1, &mut buf.0) })?;
    // SAFETY: on success the buffer holds one LOCALGROUP_INFO_1.
    Ok(unsafe { from_wide((*(buf.0 as *const LOCALGROUP_INFO_1)).lgrpi1_comment) })
}

fn local_groups(name: &str) -> io::Result<Vec<String>> {
    let n = wide(name);
    let mut buf = NetBuf(std::ptr::null_mut());
    let mut read = 0u32;
    let mut total = 0u32;
    // SAFETY: `n` is NUL-terminated; the out-parameters are live.
    net(unsafe {
        NetUserGetLocalGroups(
            std::ptr::null(),
            n.as_ptr(),
            0,
            0,
            &mut buf.0,
            MAX_PREFERRED_LENGTH,
            &mut read,
            &mut total,
        )
    })?;
    if buf.0.is_null() {
        return Ok(Vec::new());
    }
    // SAFETY: on success the buffer holds `read` LOCALGROUP_USERS_INFO_0.
    let entries = unsafe {
        std::slice::from_raw_parts(buf.0 as *const LOCALGROUP_USERS_INFO_0, read as usize)
    };
    // SAFETY: each name is a NUL-terminated string in the same buffer.
    Ok(entries
        .iter()
        .map(|e| unsafe { from_wide(e.lgrui0_name) })
        .collect())
}

/// Sets and clears account flags, keeping the others.
fn update_flags(name: &str, set: u32, clear: u32) -> io::Result<()> {
    let info = user_info(name)?;
    let new = USER_INFO_1008 {
        usri1008_flags: (info.flags | set) & !clear,
    };
    accounts::set_user_info(name, 1008, &new)
}

fn reg_dword(key: &str, value: &str) -> Option<u32> {
    let k = wide(key);
    let v = wide(value);
    let mut data = 0u32;
    let mut size = 4u32;
    // SAFETY: the strings are NUL-terminated; `data` holds `size` bytes.
    let status = unsafe {
        RegGetValueW(
            HKEY_LOCAL_MACHINE,
            k.as_ptr(),
            v.as_ptr(),
            RRF_RT_REG_DWORD,
            std::ptr::null_mut(),
            &mut data as *mut u32 as *mut core::ffi::c_void,
            &mut size,
        )
    };
    if status == 0 {
        Some(data)
    } else {
        None
    }
}

/// A string value (expanded), `Err` with the status when it is missing.
fn reg_string(key: &str, value: &str) -> Result<String, u32> {
    let k = wide(key);
    let v = wide(value);
    let mut buf = vec![0u16; 1024];
    let mut size = (buf.len() * 2) as u32;
    // SAFETY: the strings are NUL-terminated; `buf` holds `size` bytes.
    let status = unsafe {
        RegGetValueW(
            HKEY_LOCAL_MACHINE,
            k.as_ptr(),
            v.as_ptr(),
            RRF_RT_REG_SZ | RRF_RT_REG_EXPAND_SZ,
            std::ptr::null_mut(),
            buf.as_mut_ptr() as *mut core::ffi::c_void,
            &mut size,
        )
    };
    if status != 0 {
        return Err(status);
    }
    let len = buf.iter().position(|c| *c == 0).unwrap_or(buf.len());
    Ok(String::from_utf16_lossy(&buf[..len]))
}

fn profile_key(sid: &Sid) -> String {
    format!("{}\\{}", PROFILE_LIST, sid)
}

/// A profile whose ProfileList entry points to a folder that is gone is
/// broken (error 1168 at logon).
fn profile_of(sid: &Sid) -> Profile {
    match reg_string(&profile_key(sid), "ProfileImagePath") {
        Ok(path) if Path::new(&path).is_dir() => Profile::Ready,
        Ok(_) => Profile::Broken,
        // The key exists without the value: broken too.
        Err(2) => match reg_string(&profile_key(sid), "Sid") {
            Err(2) => Profile::Missing,
            _ => Profile::Broken,
        },
        Err(_) => Profile::Broken,
    }
}

fn profile_exists(sid: &Sid) -> bool {
    profile_of(sid) != Profile::Missing
}

fn system_dir() -> Result<String, String> {
    let mut buf = vec![0u16; 260];
    // SAFETY: `buf` holds the number of characters passed.
    let len = unsafe { GetSystemDirectoryW(buf.as_mut_ptr(), buf.len() as u32) } as usize;
    if len == 0 || len >= buf.len() {
        return Err(failed("finding the system directory", &last_error()));
    }
    Ok(String::from_utf16_lossy(&buf[..len]))
}

/// Whether `password` is refused for `name` (error 1326): changed by
/// someone else. Other failures (a policy denying network logons, say)
/// say nothing about the password.
fn password_rejected(name: &str, password: &Password) -> bool {
    let user = wide(name);
    let domain = wide(".");
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: the strings are NUL-terminated; `token` is a live
    // out-parameter, closed below on success.
    let ok = unsafe {
        LogonUserW(
            user.as_ptr(),
            domain.as_ptr(),
            password.as_ptr(),
            LOGON32_LOGON_NETWORK,
            LOGON32_PROVIDER_DEFAULT,
            &mut token,
        )
    };
    if ok != 0 {
        drop(Owned(token));
        return false;
    }
    last_error().raw_os_error() == Some(1326)
}

fn read_password(path: &str) -> io::Result<Password> {
    let sealed = std::fs::read(path)?;
    let bytes = dpapi::unprotect(&sealed)?;
    Password::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Sets the owner and protected DACL `sddl` on `path`.
fn set_descriptor(path: &str, sddl: &str) -> io::Result<()> {
    let descriptor = Descriptor::from_sddl(sddl)?;
    let owner = descriptor.owner()?;
    let dacl = descriptor.dacl()?;
    let name = wide(path);
    // SAFETY: `name` is NUL-terminated; the owner and DACL point into
    // `descriptor`, alive for the call.
    let status = unsafe {
        SetNamedSecurityInfoW(
            name.as_ptr(),
            SE_FILE_OBJECT,
            OWNER_SECURITY_INFORMATION
                | DACL_SECURITY_INFORMATION
                | PROTECTED_DACL_SECURITY_INFORMATION,
            owner,
            std::ptr::null_mut(),
            dacl,
            std::ptr::null(),
        )
    };
    drop(descriptor);
    if status == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(status as i32))
    }
}

/// Creates the directory `dir` (its parents as usual) with the owner and
/// protected DACL `sddl` from the start, so that nobody can put anything in
/// it between its creation and its protection. One that exists is left to
/// the caller.
fn create_protected(dir: &str, sddl: &str) -> io::Result<()> {
    if let Some(parent) = Path::new(dir).parent() {
        std::fs::create_dir_all(parent)?;
    }
    let descriptor = Descriptor::from_sddl(sddl)?;
    let attributes = descriptor.attributes();
    let name = wide(dir);
    // SAFETY: `name` is NUL-terminated; `attributes` points to a
    // descriptor that `descriptor` keeps alive for the call.
    let ok = unsafe { CreateDirectoryW(name.as_ptr(), &attributes) };
    if ok != 0 {
        return Ok(());
    }
    let err = last_error();
    // ERROR_ALREADY_EXISTS: the caller checks what it is and protects it.
    if err.raw_os_error() == Some(183) {
        Ok(())
    } else {
        Err(err)
    }
}

/// The owner and the DACL (as SDDL) of `path`.
fn descriptor(path: &str) -> io::Result<(Option<Sid>, String)> {
    let name = wide(path);
    let mut owner: PSID = std::ptr::null_mut();
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: `name` is NUL-terminated; `sd` receives a LocalAlloc'd
    // descriptor (freed below) that `owner` points into.
    let status = unsafe {
        GetNamedSecurityInfoW(
            name.as_ptr(),
            SE_FILE_OBJECT,
            OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION,
            &mut owner,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut sd,
        )
    };
    if status != 0 {
        return Err(io::Error::from_raw_os_error(status as i32));
    }
    let mut text: *mut u16 = std::ptr::null_mut();
    // SAFETY: `sd` is valid; `text` receives a LocalAlloc'd string freed
    // below; `owner` points into `sd`, read before it is freed.
    let result = unsafe {
        let ok = ConvertSecurityDescriptorToStringSecurityDescriptorW(
            sd,
            SDDL_REVISION_1,
            DACL_SECURITY_INFORMATION,
            &mut text,
            std::ptr::null_mut(),
        );
        let result = if ok == 0 {
            Err(last_error())
        } else {
            Ok((sid_at(owner), from_wide(text)))
        };
        LocalFree(text as HLOCAL);
        LocalFree(sd as HLOCAL);
        result
    };
    result
}

/// The machine, for `crate::setup_run`.
#[derive(Debug)]
pub struct Machine {
    /// Where the setup record is (`%ProgramData%\moat\setup-record`).
    pub record_path: String,
    disk: acl::Disk,
}

impl Machine {
    pub fn new(record_path: &str) -> Machine {
        Machine {
            record_path: record_path.to_string(),
            disk: acl::Disk,
        }
    }

    fn account(&self, name: &str, secrets_dir: Option<&str>) -> io::Result<Option<Account>> {
        let info = match user_info(name) {
            Ok(info) => info,
            Err(err) if gone(&err) => return Ok(None),
            Err(err) => return Err(err),
        };
        let groups = local_groups(name)?;
        let mut a = Account {
            name: name.to_string(),
            comment: info.comment,
            disabled: info.flags & UF_ACCOUNTDISABLE != 0,
            locked_out: info.flags & UF_LOCKOUT != 0,
            password_expired: info.password_expired,
            password_never_expires: info.flags & UF_DONT_EXPIRE_PASSWD != 0,
            in_group: groups
                .iter()
                .any(|g| g.eq_ignore_ascii_case(setup_plan::GROUP)),
            profile: info.sid.as_ref().map_or(Profile::Missing, profile_of),
            secret: Secret::Missing,
        };
        if let Some(dir) = secrets_dir {
            let path = setup_plan::secret_path(dir, name);
            if let Ok(password) = read_password(&path) {
                let testable = !a.disabled && !a.locked_out && !a.password_expired;
                // Its own DACL, read back: only what the directory passes
                // down, or it may have been read (unreadable counts too).
                let exposed = descriptor(&path)
                    .map_or(true, |(_, dacl)| setup_plan::secret_file_exposed(&dacl));
                a.secret = if testable && password_rejected(name, &password) {
                    Secret::Rejected
                } else if exposed {
                    Secret::Exposed
                } else {
                    Secret::Stored
                };
            }
        }
        Ok(Some(a))
    }

    fn gather_io(&self, record: Option<&Record>, dirs: &[String]) -> io::Result<State> {
        let mut state = State::default();
        for name in [OFFLINE, ONLINE] {
            if let Some(a) = self.account(name, dirs.first().map(String::as_str))? {
                state.accounts.push(a);
            }
            // A local group by an account's name is someone else's.
            match group_comment(name) {
                Ok(_) => state.other_principals.push(name.to_string()),
                Err(err) if gone(&err) => {}
                Err(err) => return Err(err),
            }
            if reg_dword(USER_LIST_KEY, name) == Some(setup_plan::HIDDEN_VALUE) {
                state.hidden.push(name.to_string());
            }
        }
        match group_comment(setup_plan::GROUP) {
            Ok(comment) => state.group = Some(Group { comment }),
            Err(err) if gone(&err) => {}
            Err(err) => return Err(err),
        }
        match user_info(setup_plan::GROUP) {
            Ok(_) => state.other_principals.push(setup_plan::GROUP.to_string()),
            Err(err) if gone(&err) => {}
            Err(err) => return Err(err),
        }
        if let Some(record) = record {
            for (name, text) in &record.accounts {
                let recorded: Sid = match text.parse() {
                    Ok(s) => s,
                    Err(_) => continue,
                };
                // Gone, or made again with another SID: the recorded SID's
                // profile is an orphan. Any other failure to read the
                // account is an error, not a reason to call it gone.
                let current = match user_info(name) {
                    Ok(info) => info.sid,
                    Err(err) if gone(&err) => None,
                    Err(err) => return Err(err),
                };
                if current != Some(recorded) && profile_exists(&recorded) {
                    state.orphan_profiles.push(recorded);
                }
            }
            if let Some(ledger) = &record.ledger {
                if Path::new(ledger).exists() {
                    state.ledger = Some(ledger.clone());
                }
            }
        }
        for dir in dirs {
            if Path::new(dir).is_dir() {
                let (owner, dacl) = descriptor(dir)?;
                state.secrets_dir = Some(SecretsDir {
                    path: dir.clone(),
                    owner,
                    dacl,
                });
                break;
            }
        }
        Ok(state)
    }
}

/// Whether this process's token is an administrator's: elevated, with the
/// Administrators group enabled. A filtered (UAC) token has the group
/// only for deny, so membership alone is what `IsUserAnAdmin` checks; the
/// elevation type is asked too so that a token elevated without the group
/// is refused with the same message.
pub fn is_elevated() -> io::Result<bool> {
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: the pseudo-handle needs no closing; `token` is a live
    // out-parameter, owned below.
    if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
        return Err(last_error());
    }
    let token = Owned(token);
    let mut elevation = TOKEN_ELEVATION { TokenIsElevated: 0 };
    let mut len = 0u32;
    // SAFETY: `elevation` is as large as the size passed.
    let ok = unsafe {
        GetTokenInformation(
            token.0,
            TokenElevation,
            &mut elevation as *mut TOKEN_ELEVATION as *mut core::ffi::c_void,
            std::mem::size_of::<TOKEN_ELEVATION>() as u32,
            &mut len,
        )
    };
    if ok == 0 {
        return Err(last_error());
    }
    let admins = SidBuf::new(&sid::ADMINISTRATORS);
    let mut member: BOOL = 0;
    // SAFETY: a null token means the calling thread's (or process's)
    // effective token, as documented; the SID buffer is live.
    if unsafe { CheckTokenMembership(std::ptr::null_mut(), admins.psid(), &mut member) } == 0 {
        return Err(last_error());
    }
    Ok(elevation.TokenIsElevated != 0 && member != 0)
}

/// Ends the processes whose token's user is `sid`; how many.
fn end_processes_of(sid: &Sid) -> io::Result<usize> {
    // SAFETY: a snapshot of all processes; the handle is owned below.
    let snap = unsafe { CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0) };
    if snap.is_null() || snap as isize == -1 {
        return Err(last_error());
    }
    let snap = Owned(snap);
    // SAFETY: plain data; all-zero is valid, and the size is set below.
    let mut entry: PROCESSENTRY32W = unsafe { std::mem::zeroed() };
    entry.dwSize = std::mem::size_of::<PROCESSENTRY32W>() as u32;
    let want = sid.to_bytes();
    let mut ended = 0;
    // SAFETY: `entry` is live with its size set.
    let mut more = unsafe { Process32FirstW(snap.0, &mut entry) } != 0;
    while more {
        if process_user_is(entry.th32ProcessID, &want) {
            // SAFETY: a new handle for one process, owned below.
            let process = Owned(unsafe { OpenProcess(PROCESS_TERMINATE, 0, entry.th32ProcessID) });
            // SAFETY: the handle is live (or null, which fails harmlessly).
            if !process.0.is_null() && unsafe { TerminateProcess(process.0, 1) } != 0 {
                ended += 1;
            }
        }
        // SAFETY: as above.
        more = unsafe { Process32NextW(snap.0, &mut entry) } != 0;
    }
    Ok(ended)
}

fn process_user_is(pid: u32, want: &[u8]) -> bool {
    // SAFETY: a new handle for one process, owned below.
    let process = Owned(unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) });
    if process.0.is_null() {
        return false;
    }
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: the process handle is live; `token` is owned below.
    if unsafe { OpenProcessToken(process.0, TOKEN_QUERY, &mut token) } == 0 {
        return false;
    }
    let token = Owned(token);
    // Words: TOKEN_USER holds a pointer and the SID it points to.
    let mut buf = vec![0u64; 64];
    let mut len = 0u32;
    // SAFETY: `buf` is as large as the size passed and aligned for
    // TOKEN_USER.
    let ok = unsafe {
        GetTokenInformation(
            token.0,
            TokenUser,
            buf.as_mut_ptr() as *mut core::ffi::c_void,
            (buf.len() * 8) as u32,
            &mut len,
        )
    };
    if ok == 0 {
        return false;
    }
    // SAFETY: on success `buf` starts with a TOKEN_USER whose SID points
    // into `buf`.
    let user = unsafe { sid_at((*(buf.as_ptr() as *const TOKEN_USER)).User.Sid) };
    user.map_or(false, |s| s.to_bytes() == want)
}

impl SetupHost for Machine {
    fn is_admin(&mut self) -> Result<bool, String> {
        is_elevated().map_err(|e| failed("checking for an administrator's token", &e))
    }

    fn random(&mut self, buf: &mut [u8]) -> Result<(), String> {
        random_bytes(buf)
            .map_err(|status| format!("BCryptGenRandom failed (NTSTATUS {:#x})", status))
    }

    fn read_record(&mut self) -> Result<Option<String>, String> {
        read_if_present(Path::new(&self.record_path))
            .map_err(|err| failed(&format!("reading {}", self.record_path), &err))
    }

    fn write_record(&mut self, text: &str) -> Result<(), String> {
        if let Some(dir) = Path::new(&self.record_path).parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| failed(&format!("creating {}", dir.display()), &e))?;
        }
        replace_file(Path::new(&self.record_path), text.as_bytes())
            .map_err(|e| failed(&format!("writing {}", self.record_path), &e))
    }

    fn delete_record(&mut self) -> Result<(), String> {
        self.remove_file(&self.record_path.clone())
    }

    fn gather(&mut self, record: Option<&Record>, dirs: &[String]) -> Result<State, String> {
        self.gather_io(record, dirs)
            .map_err(|e| failed("reading the accounts, group and secrets", &e))
    }

    fn sid_of(&mut self, name: &str) -> Result<Option<Sid>, String> {
        let want = if name.eq_ignore_ascii_case(setup_plan::GROUP) {
            SidTypeAlias
        } else {
            SidTypeUser
        };
        match accounts::lookup(name) {
            Ok(Some((sid, kind))) if kind == want => Ok(Some(sid)),
            Ok(_) => Ok(None),
            Err(err) => Err(failed(&format!("looking up {}", name), &err)),
        }
    }

    fn powershell(&mut self, script: &str) -> Result<String, String> {
        // By full path: the elevated process's PATH is the person's.
        let exe = format!("{}\\WindowsPowerShell\\v1.0\\powershell.exe", system_dir()?);
        let out = Command::new(&exe)
            .args(setup_plan::powershell_arguments(script))
            .creation_flags(CREATE_NO_WINDOW)
            .output()
            .map_err(|e| failed(&format!("starting {}", exe), &e))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "PowerShell exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    fn create_group(&mut self, name: &str, comment: &str) -> Result<(), String> {
        accounts::create_group(name, comment)
            .map_err(|e| failed(&format!("creating the group {}", name), &e))
    }

    fn create_account(
        &mut self,
        name: &str,
        comment: &str,
        password: &Password,
    ) -> Result<(), String> {
        accounts::create_user(name, password, comment)
            .map_err(|e| failed(&format!("creating the account {}", name), &e))?;
        // NetUserAdd cannot make it disabled; nobody knows its password
        // in the moment between.
        update_flags(name, UF_ACCOUNTDISABLE, 0).map_err(|e| {
            let _ = accounts::delete_user(name);
            failed(&format!("disabling the new account {}", name), &e)
        })
    }

    fn protect_dir(&mut self, dir: &str, sddl: &str) -> Result<(), String> {
        create_protected(dir, sddl).map_err(|e| failed(&format!("creating {}", dir), &e))?;
        // Never through a link: Users may create folders and junctions in
        // %ProgramData%, and one named like moat's directory would turn
        // this into a change of whatever it points to.
        let meta =
            std::fs::symlink_metadata(dir).map_err(|e| failed(&format!("reading {}", dir), &e))?;
        if meta.file_type().is_symlink() || !meta.is_dir() {
            return Err(format!(
                "{} is a link, a junction or a file, not a directory moat made: moat will not \
                 change the permissions of what it points to; delete it (it is not moat's), \
                 then run `moat setup` again",
                dir
            ));
        }
        set_descriptor(dir, sddl).map_err(|e| failed(&format!("protecting {}", dir), &e))
    }

    fn dir_security(&mut self, dir: &str) -> Result<Option<SecretsDir>, String> {
        match std::fs::symlink_metadata(dir) {
            Err(err) if gone(&err) => return Ok(None),
            Err(err) => return Err(failed(&format!("reading {}", dir), &err)),
            // A link or a file where moat's directory should be is not it:
            // reported as wrong, never followed.
            Ok(meta) if !meta.is_dir() => {
                return Ok(Some(SecretsDir {
                    path: dir.to_string(),
                    owner: None,
                    dacl: String::new(),
                }))
            }
            Ok(_) => {}
        }
        let (owner, dacl) =
            descriptor(dir).map_err(|e| failed(&format!("reading the DACL of {}", dir), &e))?;
        Ok(Some(SecretsDir {
            path: dir.to_string(),
            owner,
            dacl,
        }))
    }

    fn never_expire(&mut self, name: &str) -> Result<(), String> {
        update_flags(name, UF_DONT_EXPIRE_PASSWD, 0)
            .map_err(|e| failed(&format!("making the password of {} never expire", name), &e))
    }

    fn set_password(&mut self, name: &str, password: &Password) -> Result<(), String> {
        accounts::set_password(name, password)
            .map_err(|e| failed(&format!("setting the password of {}", name), &e))
    }

    fn store_secret(&mut self, path: &str, password: &Password) -> Result<(), String> {
        // The UTF-8 copy DPAPI reads is wiped as soon as it is sealed.
        let sealed = password
            .with_utf8(dpapi::protect)
            .map_err(|e| failed("encrypting a password with DPAPI", &e))?;
        replace_file(Path::new(path), &sealed).map_err(|e| failed(&format!("writing {}", path), &e))
    }

    fn add_to_group(&mut self, account: &str, group: &str) -> Result<(), String> {
        match accounts::add_to_group(group, account) {
            Ok(()) => Ok(()),
            Err(err) if err.raw_os_error() == Some(MEMBER_IN_ALIAS) => Ok(()),
            Err(err) => Err(failed(&format!("adding {} to {}", account, group), &err)),
        }
    }

    fn set_hidden(&mut self, name: &str, hidden: bool) -> Result<(), String> {
        accounts::set_hidden(name, hidden)
            .map_err(|e| failed(&format!("changing the sign-in entry of {}", name), &e))
    }

    fn unlock(&mut self, name: &str) -> Result<(), String> {
        update_flags(name, 0, UF_LOCKOUT).map_err(|e| failed(&format!("unlocking {}", name), &e))
    }

    fn enable(&mut self, name: &str) -> Result<(), String> {
        update_flags(name, 0, UF_ACCOUNTDISABLE)
            .map_err(|e| failed(&format!("enabling {}", name), &e))
    }

    fn disable(&mut self, name: &str) -> Result<(), String> {
        match update_flags(name, UF_ACCOUNTDISABLE, 0) {
            Err(err) if !gone(&err) => Err(failed(&format!("disabling {}", name), &err)),
            _ => Ok(()),
        }
    }

    fn create_profile(&mut self, name: &str, secret: &str) -> Result<(), String> {
        let password = read_password(secret)
            .map_err(|e| failed(&format!("reading the password of {}", name), &e))?;
        let system = system_dir()?;
        let program = format!("{}\\cmd.exe", system);
        let launch = RunnerLaunch {
            account: name,
            password: &password,
            program: &program,
            command_line: "cmd.exe /d /c exit 0",
            cwd: &system,
        };
        // Error 1385 and its kin come back explained (`crate::logon`).
        let started = logon::start(&launch, None).map_err(|e| e.to_string())?;
        let handle = std::os::windows::io::AsRawHandle::as_raw_handle(&started.process) as HANDLE;
        // SAFETY: the process handle is live for the wait and the query.
        let waited = unsafe { WaitForSingleObject(handle, PROFILE_WAIT.as_millis() as u32) };
        let mut exit = 1u32;
        // SAFETY: as above; `exit` is a live out-parameter.
        let ok = unsafe { GetExitCodeProcess(handle, &mut exit) };
        if waited != 0 || ok == 0 || exit != 0 {
            return Err(format!(
                "the first logon of {} (which makes its profile) did not finish cleanly \
                 (wait {}, exit code {})",
                name, waited, exit
            ));
        }
        Ok(())
    }

    fn delete_profile(&mut self, sid: &Sid) -> Result<(), String> {
        let text = wide(&sid.to_string());
        // SAFETY: `text` is NUL-terminated; the path and computer are the
        // documented nulls (the profile's own path, this machine).
        let ok = unsafe { DeleteProfileW(text.as_ptr(), std::ptr::null(), std::ptr::null()) };
        if ok != 0 {
            return Ok(());
        }
        let err = last_error();
        if gone(&err) {
            Ok(())
        } else {
            Err(failed(&format!("deleting the profile of {}", sid), &err))
        }
    }

    fn end_processes(&mut self, name: &str) -> Result<usize, String> {
        match self.sid_of(name)? {
            Some(sid) => end_processes_of(&sid)
                .map_err(|e| failed(&format!("ending the processes of {}", name), &e)),
            None => Ok(0),
        }
    }

    fn delete_account(&mut self, name: &str) -> Result<(), String> {
        match accounts::delete_user(name) {
            Err(err) if !gone(&err) => Err(failed(&format!("deleting the account {}", name), &err)),
            _ => Ok(()),
        }
    }

    fn delete_group(&mut self, name: &str) -> Result<(), String> {
        match accounts::delete_group(name) {
            Err(err) if !gone(&err) => Err(failed(&format!("deleting the group {}", name), &err)),
            _ => Ok(()),
        }
    }

    fn read_file(&mut self, path: &str) -> Result<Option<String>, String> {
        read_if_present(Path::new(path)).map_err(|err| failed(&format!("reading {}", path), &err))
    }

    fn write_file(&mut self, path: &str, text: &str) -> Result<(), String> {
        replace_file(Path::new(path), text.as_bytes())
            .map_err(|e| failed(&format!("writing {}", path), &e))
    }

    fn remove_file(&mut self, path: &str) -> Result<(), String> {
        match std::fs::remove_file(path) {
            Err(err) if !gone(&err) => Err(failed(&format!("deleting {}", path), &err)),
            _ => Ok(()),
        }
    }

    fn remove_empty_dir(&mut self, dir: &str) -> Result<bool, String> {
        match std::fs::remove_dir(dir) {
            Ok(()) => Ok(true),
            Err(err) if gone(&err) => Ok(true),
            // ERROR_DIR_NOT_EMPTY: someone's files; kept, and reported.
            Err(err) if err.raw_os_error() == Some(145) => Ok(false),
            Err(err) => Err(failed(&format!("removing {}", dir), &err)),
        }
    }

    fn exists(&mut self, path: &str) -> Result<bool, String> {
        Ok(Path::new(path).exists())
    }

    fn acl(&mut self) -> &mut dyn apply::Host {
        &mut self.disk
    }

    fn runner_current(&mut self, source: &str, target: &str) -> Result<bool, String> {
        let shipped =
            std::fs::read(source).map_err(|e| failed(&format!("reading {}", source), &e))?;
        match std::fs::read(target) {
            Ok(installed) => Ok(installed == shipped),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(err) => Err(failed(&format!("reading {}", target), &err)),
        }
    }

    fn install_runner(&mut self, source: &str, dir: &str, sddl: &str) -> Result<(), String> {
        self.protect_dir(dir, sddl)?;
        // Nothing else may sit beside the runner: Windows loads DLLs from
        // a program's own directory first.
        let entries =
            std::fs::read_dir(dir).map_err(|e| failed(&format!("listing {}", dir), &e))?;
        for entry in entries {
            let entry = entry.map_err(|e| failed(&format!("listing {}", dir), &e))?;
            if entry
                .file_name()
                .to_string_lossy()
                .eq_ignore_ascii_case(RUNNER_EXE)
            {
                continue;
            }
            let path = entry.path();
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(|e| failed(&format!("removing {}", path.display()), &e))?;
        }
        let bytes =
            std::fs::read(source).map_err(|e| failed(&format!("reading {}", source), &e))?;
        let target = crate::setup_run::runner_target(dir);
        replace_file(Path::new(&target), &bytes).map_err(|e| {
            if code(&e) == 32 || code(&e) == 5 {
                format!(
                    "{} is in use (a run in the elevated tier?): try again when it ends",
                    target
                )
            } else {
                failed(&format!("writing {}", target), &e)
            }
        })
    }
}
