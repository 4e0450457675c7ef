//! The sandbox accounts and their group (elevated setup): create, set a
//! password that never expires, add to the group, hide from the sign-in
//! screen, delete. Each call is one NetAPI or registry call; what to call
//! and in which order is decided by `crate::setup_plan`. And, for a run in
//! the elevated tier, the SID an account name resolves to now.

use std::io;

use windows_sys::Win32::NetworkManagement::NetManagement::{
    NERR_Success, NetLocalGroupAdd, NetLocalGroupAddMembers, NetLocalGroupDel, NetUserAdd,
    NetUserDel, NetUserSetInfo, LOCALGROUP_INFO_1, LOCALGROUP_MEMBERS_INFO_3,
    UF_DONT_EXPIRE_PASSWD, UF_PASSWD_CANT_CHANGE, UF_SCRIPT, USER_INFO_1, USER_INFO_1003,
    USER_INFO_1008, USER_PRIV_USER,
};
use windows_sys::Win32::Security::{LookupAccountNameW, SidTypeUser, PSID, SID_NAME_USE};
use windows_sys::Win32::System::Registry::{
    RegCloseKey, RegCreateKeyExW, RegDeleteValueW, RegSetValueExW, HKEY, HKEY_LOCAL_MACHINE,
    KEY_SET_VALUE, REG_DWORD, REG_OPTION_NON_VOLATILE,
};

use super::{last_error, wide};
use crate::logon::Password;
use crate::sid::Sid;

/// NERR codes and Win32 errors alike come back as numbers.
pub(super) fn net(code: u32) -> io::Result<()> {
    if code == NERR_Success {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(code as i32))
    }
}

/// A local account: a normal user, password never expires and cannot be
/// changed by the account, with `comment` marking it as moat's.
pub fn create_user(name: &str, password: &Password, comment: &str) -> io::Result<()> {
    let mut n = wide(name);
    let mut c = wide(comment);
    let info = USER_INFO_1 {
        usri1_name: n.as_mut_ptr(),
        // NetUserAdd only reads the password; the structure's field is
        // mutable by C convention. No copy is made, so the only copy is
        // the one `Password` wipes.
        usri1_password: password.as_ptr() as *mut u16,
        usri1_password_age: 0,
        usri1_priv: USER_PRIV_USER,
        usri1_home_dir: std::ptr::null_mut(),
        usri1_comment: c.as_mut_ptr(),
        usri1_flags: UF_SCRIPT | UF_DONT_EXPIRE_PASSWD | UF_PASSWD_CANT_CHANGE,
        usri1_script_path: std::ptr::null_mut(),
    };
    let mut bad = 0u32;
    // SAFETY: `info` and the strings it points to are live for the call.
    net(unsafe {
        NetUserAdd(
            std::ptr::null(),
            1,
            &info as *const USER_INFO_1 as *const u8,
            &mut bad,
        )
    })
}

/// `NetUserSetInfo` of `name` at `level`, whose structure `info` must be
/// (USER_INFO_1003 for 1003, USER_INFO_1008 for 1008, ...).
pub(super) fn set_user_info<T>(name: &str, level: u32, info: &T) -> io::Result<()> {
    let n = wide(name);
    let mut bad = 0u32;
    // SAFETY: `n` is NUL-terminated; `info` is live for the call and, as
    // the caller promises, the structure `level` names.
    net(unsafe {
        NetUserSetInfo(
            std::ptr::null(),
            n.as_ptr(),
            level,
            info as *const T as *const u8,
            &mut bad,
        )
    })
}

/// Sets a new password (lockout and expiry recovery).
pub fn set_password(name: &str, password: &Password) -> io::Result<()> {
    // NetUserSetInfo only reads the password (the field is mutable by C
    // convention); `password` outlives the call that reads it through
    // `info`, and no unwiped copy is made.
    let info = USER_INFO_1003 {
        usri1003_password: password.as_ptr() as *mut u16,
    };
    set_user_info(name, 1003, &info)
}

/// Clears lockout and disabling, keeps "never expires".
pub fn enable(name: &str) -> io::Result<()> {
    let info = USER_INFO_1008 {
        usri1008_flags: UF_SCRIPT | UF_DONT_EXPIRE_PASSWD | UF_PASSWD_CANT_CHANGE,
    };
    set_user_info(name, 1008, &info)
}

pub fn delete_user(name: &str) -> io::Result<()> {
    let n = wide(name);
    // SAFETY: the string is live for the call.
    net(unsafe { NetUserDel(std::ptr::null(), n.as_ptr()) })
}

pub fn create_group(name: &str, comment: &str) -> io::Result<()> {
    let mut n = wide(name);
    let mut c = wide(comment);
    let info = LOCALGROUP_INFO_1 {
        lgrpi1_name: n.as_mut_ptr(),
        lgrpi1_comment: c.as_mut_ptr(),
    };
    let mut bad = 0u32;
    // SAFETY: `info` and the strings are live for the call.
    net(unsafe {
        NetLocalGroupAdd(
            std::ptr::null(),
            1,
            &info as *const LOCALGROUP_INFO_1 as *const u8,
            &mut bad,
        )
    })
}

pub fn add_to_group(group: &str, account: &str) -> io::Result<()> {
    let g = wide(group);
    let mut a = wide(account);
    let member = LOCALGROUP_MEMBERS_INFO_3 {
        lgrmi3_domainandname: a.as_mut_ptr(),
    };
    // SAFETY: `member` and the strings are live for the call.
    net(unsafe {
        NetLocalGroupAddMembers(
            std::ptr::null(),
            g.as_ptr(),
            3,
            &member as *const LOCALGROUP_MEMBERS_INFO_3 as *const u8,
            1,
        )
    })
}

pub fn delete_group(name: &str) -> io::Result<()> {
    let n = wide(name);
    // SAFETY: the string is live for the call.
    net(unsafe { NetLocalGroupDel(std::ptr::null(), n.as_ptr()) })
}

const USER_LIST: &str =
    r"SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon\SpecialAccounts\UserList";

fn user_list() -> io::Result<HKEY> {
    let path = wide(USER_LIST);
    let mut key: HKEY = std::ptr::null_mut();
    // SAFETY: `path` is NUL-terminated; `key` is a live out-parameter.
    let code = unsafe {
        RegCreateKeyExW(
            HKEY_LOCAL_MACHINE,
            path.as_ptr(),
            0,
            std::ptr::null(),
            REG_OPTION_NON_VOLATILE,
            KEY_SET_VALUE,
            std::ptr::null(),
            &mut key,
            std::ptr::null_mut(),
        )
    };
    net(code)?;
    Ok(key)
}

/// Hides `name` from the sign-in screen (a DWORD 0 under UserList), or
/// shows it again.
pub fn set_hidden(name: &str, hidden: bool) -> io::Result<()> {
    let key = user_list()?;
    let value = wide(name);
    let zero = 0u32.to_le_bytes();
    // SAFETY: `key` is open; `value` is NUL-terminated; `zero` is live.
    let code = unsafe {
        if hidden {
            RegSetValueExW(key, value.as_ptr(), 0, REG_DWORD, zero.as_ptr(), 4)
        } else {
            RegDeleteValueW(key, value.as_ptr())
        }
    };
    // SAFETY: `key` was opened above.
    unsafe { RegCloseKey(key) };
    // Showing an account that was not hidden is not an error.
    if !hidden && code == 2 {
        return Ok(());
    }
    net(code)
}

/// The SID `name` resolves to now, refused unless it is a user's (a group
/// or an alias may carry the same name). The caller compares it with the
/// one setup recorded. A name nothing has is error 1332.
pub fn lookup_sid(name: &str) -> io::Result<Sid> {
    match lookup(name)? {
        None => Err(io::Error::from_raw_os_error(1332)),
        Some((sid, kind)) if kind == SidTypeUser => Ok(sid),
        Some((_, kind)) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{name} is not a user account (SID type {kind})"),
        )),
    }
}

/// The SID `name` resolves to and its kind; `None` when nothing has it
/// (error 1332).
pub fn lookup(name: &str) -> io::Result<Option<(Sid, SID_NAME_USE)>> {
    let n = wide(name);
    // Words, not bytes: Windows reads a SID's sub-authorities as aligned
    // 32-bit values. 24 words hold the largest SID (68 bytes).
    let mut sid = vec![0u32; 24];
    let mut sid_size = (sid.len() * 4) as u32;
    let mut domain = vec![0u16; 256];
    let mut domain_size = domain.len() as u32;
    let mut kind: SID_NAME_USE = 0;
    // SAFETY: both buffers are live and as large as the sizes passed (256
    // characters hold any computer name); the name is NUL-terminated and
    // the out-parameters are live.
    let ok = unsafe {
        LookupAccountNameW(
            std::ptr::null(),
            n.as_ptr(),
            sid.as_mut_ptr() as PSID,
            &mut sid_size,
            domain.as_mut_ptr(),
            &mut domain_size,
            &mut kind,
        )
    };
    if ok == 0 {
        let err = last_error();
        return if err.raw_os_error() == Some(1332) {
            Ok(None)
        } else {
            Err(err)
        };
    }
    let bytes: Vec<u8> = sid.iter().flat_map(|word| word.to_le_bytes()).collect();
    // The buffer is longer than the SID: its own length says where it ends.
    Sid::from_bytes_prefix(&bytes)
        .map(|(sid, _)| Some((sid, kind)))
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err.to_string()))
}
