//! Putting the ACL plan's ACEs on disk and taking them off again. Each
//! step touches one path's own DACL: an ACE is added with its inheritance
//! flags and Windows carries it to existing children once; nothing here
//! walks a tree.

use std::io;

use windows_sys::Win32::Foundation::{LocalFree, HLOCAL};
use windows_sys::Win32::Security::Authorization::{
    ConvertSecurityDescriptorToStringSecurityDescriptorW, GetNamedSecurityInfoW, SetEntriesInAclW,
    SetNamedSecurityInfoW, DENY_ACCESS, EXPLICIT_ACCESS_W, GRANT_ACCESS, NO_MULTIPLE_TRUSTEE,
    SDDL_REVISION_1, SE_FILE_OBJECT, TRUSTEE_IS_SID, TRUSTEE_IS_UNKNOWN, TRUSTEE_W,
};
use windows_sys::Win32::Security::{
    DeleteAce, GetAce, ACE_HEADER, ACL, DACL_SECURITY_INFORMATION, INHERITED_ACE,
    PSECURITY_DESCRIPTOR,
};

use super::wide;
use crate::sddl::{Ace, AceKind};
use crate::sid::Sid;

/// A path's DACL, read with its security descriptor (which owns it).
struct Read {
    dacl: *mut ACL,
    sd: PSECURITY_DESCRIPTOR,
}

impl Drop for Read {
    fn drop(&mut self) {
        // SAFETY: `sd` came from GetNamedSecurityInfoW's LocalAlloc.
        unsafe { LocalFree(self.sd as HLOCAL) };
    }
}

fn win32(code: u32) -> io::Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(code as i32))
    }
}

fn read(path: &[u16]) -> io::Result<Read> {
    let mut dacl: *mut ACL = std::ptr::null_mut();
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: `path` is NUL-terminated; the out-parameters are live; the
    // owner, group and SACL are not asked for.
    let code = unsafe {
        GetNamedSecurityInfoW(
            path.as_ptr(),
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut dacl,
            std::ptr::null_mut(),
            &mut sd,
        )
    };
    win32(code)?;
    Ok(Read { dacl, sd })
}

/// The DACL of `path` as SDDL; `None` for a NULL DACL (no DACL at all).
pub fn dacl_sddl(path: &str) -> io::Result<Option<String>> {
    let found = read(&wide(path))?;
    if found.dacl.is_null() {
        return Ok(None);
    }
    let mut text: *mut u16 = std::ptr::null_mut();
    // SAFETY: `found.sd` is the descriptor just read and lives until the
    // end of this function; `text` receives a LocalAlloc'd NUL-terminated
    // string, copied and freed here.
    unsafe {
        let ok = ConvertSecurityDescriptorToStringSecurityDescriptorW(
            found.sd,
            SDDL_REVISION_1,
            DACL_SECURITY_INFORMATION,
            &mut text,
            std::ptr::null_mut(),
        );
        if ok == 0 {
            return Err(super::last_error());
        }
        let out = super::from_wide(text);
        LocalFree(text as HLOCAL);
        Ok(Some(out))
    }
}

fn write(path: &[u16], dacl: *const ACL) -> io::Result<()> {
    // SAFETY: `path` is NUL-terminated; `dacl` is a valid ACL for the call.
    let code = unsafe {
        SetNamedSecurityInfoW(
            path.as_ptr(),
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            dacl,
            std::ptr::null(),
        )
    };
    win32(code)
}

/// Adds `ace` (an allow or deny for one SID) to the DACL of `path`.
pub fn add(path: &str, ace: &Ace) -> io::Result<()> {
    let name = wide(path);
    let current = read(&name)?;
    let sid = super::SidBuf::new(&ace.sid);
    let entry = EXPLICIT_ACCESS_W {
        grfAccessPermissions: ace.mask,
        grfAccessMode: match ace.kind {
            AceKind::Allow => GRANT_ACCESS,
            AceKind::Deny => DENY_ACCESS,
        },
        grfInheritance: ace.flags.bits() as u32,
        Trustee: TRUSTEE_W {
            pMultipleTrustee: std::ptr::null_mut(),
            MultipleTrusteeOperation: NO_MULTIPLE_TRUSTEE,
            TrusteeForm: TRUSTEE_IS_SID,
            TrusteeType: TRUSTEE_IS_UNKNOWN,
            // With TRUSTEE_IS_SID the name field carries the SID.
            ptstrName: sid.psid() as *mut u16,
        },
    };
    let mut merged: *mut ACL = std::ptr::null_mut();
    // SAFETY: `entry` and the SID it points to are live for the call;
    // `current.dacl` is the path's DACL (or null); `merged` receives a new
    // LocalAlloc'd ACL freed below.
    let code = unsafe { SetEntriesInAclW(1, &entry, current.dacl, &mut merged) };
    win32(code)?;
    let result = write(&name, merged);
    // SAFETY: `merged` came from SetEntriesInAclW's LocalAlloc.
    unsafe { LocalFree(merged as HLOCAL) };
    result
}

/// Removes every explicit (not inherited) ACE for `sid` from the DACL of
/// `path`, allow and deny alike; how many it removed.
pub fn remove_for(path: &str, sid: &Sid) -> io::Result<usize> {
    let name = wide(path);
    let current = read(&name)?;
    if current.dacl.is_null() {
        return Ok(0);
    }
    let want = sid.to_bytes();
    let mut removed = 0;
    // SAFETY: `current.dacl` points into the security descriptor `current`
    // owns; DeleteAce edits it in place, and it is written back below
    // before `current` is freed.
    unsafe {
        let mut i = u32::from((*current.dacl).AceCount);
        while i > 0 {
            i -= 1;
            let mut ace: *mut core::ffi::c_void = std::ptr::null_mut();
            if GetAce(current.dacl, i, &mut ace) == 0 {
                continue;
            }
            let header = &*(ace as *const ACE_HEADER);
            // Allowed (0) and denied (1) ACEs: header, mask, then the SID.
            if header.AceType > 1 || u32::from(header.AceFlags) & INHERITED_ACE != 0 {
                continue;
            }
            let size = usize::from(header.AceSize);
            if size < 8 + want.len() {
                continue;
            }
            let sid_bytes = std::slice::from_raw_parts((ace as *const u8).add(8), want.len());
            if sid_bytes == want.as_slice() && DeleteAce(current.dacl, i) != 0 {
                removed += 1;
            }
        }
    }
    if removed > 0 {
        write(&name, current.dacl)?;
    }
    Ok(removed)
}

/// The real disk, for [`crate::apply`].
#[derive(Debug, Default)]
pub struct Disk;

impl crate::apply::Host for Disk {
    fn create_dir(&mut self, path: &crate::acl_plan::WinPath) -> Result<(), String> {
        match std::fs::create_dir(path.verbatim()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(crate::errors::describe(
                &format!("creating {}", path),
                e.raw_os_error().unwrap_or(0) as u32,
            )),
        }
    }

    fn add_ace(&mut self, path: &crate::acl_plan::WinPath, ace: &Ace) -> Result<(), String> {
        add(&path.verbatim(), ace).map_err(|e| {
            crate::errors::describe(
                &format!("adding {} to {}", ace, path),
                e.raw_os_error().unwrap_or(0) as u32,
            )
        })
    }

    fn remove_aces(&mut self, path: &crate::acl_plan::WinPath, sid: &Sid) -> Result<usize, String> {
        match remove_for(&path.verbatim(), sid) {
            Ok(n) => Ok(n),
            // Gone already: nothing of moat's is left on it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(crate::errors::describe(
                &format!("removing the ACEs of {} from {}", sid, path),
                e.raw_os_error().unwrap_or(0) as u32,
            )),
        }
    }

    fn remove_dir_if_empty(&mut self, path: &crate::acl_plan::WinPath) -> Result<bool, String> {
        match std::fs::remove_dir(path.verbatim()) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            // ERROR_DIR_NOT_EMPTY: the person put something there; keep it.
            Err(e) if e.raw_os_error() == Some(145) => Ok(false),
            Err(e) => Err(crate::errors::describe(
                &format!("removing {}", path),
                e.raw_os_error().unwrap_or(0) as u32,
            )),
        }
    }
}
