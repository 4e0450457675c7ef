//! The unelevated tier's token: the person's own token, write-restricted.
//! Every write is checked a second time against the restricting SIDs
//! alone (a capability SID per writable root, the logon SID, Everyone), so
//! the command writes only where those SIDs were granted; reads are the
//! person's. Its default DACL lets the command's own processes use the
//! objects they create (pipes, mostly), which the restricted token would
//! otherwise deny them.

use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle, RawHandle};

use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::Security::{
    CreateRestrictedToken, GetTokenInformation, SetTokenInformation, TokenDefaultDacl, TokenGroups,
    DISABLE_MAX_PRIVILEGE, LUA_TOKEN, SID_AND_ATTRIBUTES, TOKEN_ADJUST_DEFAULT,
    TOKEN_ASSIGN_PRIMARY, TOKEN_DEFAULT_DACL, TOKEN_DUPLICATE, TOKEN_GROUPS, TOKEN_QUERY,
    WRITE_RESTRICTED,
};
use windows_sys::Win32::System::SystemServices::SE_GROUP_LOGON_ID;
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

use super::descriptor::Descriptor;
use super::{last_error, SidBuf};
use crate::sid::Sid;

fn raw(h: &OwnedHandle) -> HANDLE {
    h.as_raw_handle() as HANDLE
}

/// The person's own token, for reading and restricting.
fn own_token() -> io::Result<OwnedHandle> {
    let mut h: HANDLE = std::ptr::null_mut();
    // SAFETY: GetCurrentProcess returns a pseudo-handle; `h` is a live
    // out-parameter.
    let ok = unsafe {
        OpenProcessToken(
            GetCurrentProcess(),
            TOKEN_DUPLICATE | TOKEN_QUERY | TOKEN_ASSIGN_PRIMARY | TOKEN_ADJUST_DEFAULT,
            &mut h,
        )
    };
    if ok == 0 {
        return Err(last_error());
    }
    // SAFETY: `h` is a new handle nothing else owns.
    Ok(unsafe { OwnedHandle::from_raw_handle(h as RawHandle) })
}

/// The logon SID of `token` (S-1-5-5-X-Y).
fn logon_sid(token: &OwnedHandle) -> io::Result<Sid> {
    let mut len = 0u32;
    // SAFETY: a size query: null buffer of length 0, `len` receives the size.
    unsafe { GetTokenInformation(raw(token), TokenGroups, std::ptr::null_mut(), 0, &mut len) };
    if len == 0 {
        return Err(last_error());
    }
    let mut buf = vec![0u64; (len as usize + 7) / 8];
    // SAFETY: `buf` is live, aligned for TOKEN_GROUPS and at least `len`
    // bytes long.
    let ok = unsafe {
        GetTokenInformation(
            raw(token),
            TokenGroups,
            buf.as_mut_ptr() as *mut core::ffi::c_void,
            len,
            &mut len,
        )
    };
    if ok == 0 {
        return Err(last_error());
    }
    let groups = buf.as_ptr() as *const TOKEN_GROUPS;
    // SAFETY: the kernel filled `buf` with a TOKEN_GROUPS whose Groups array
    // has GroupCount entries inside the buffer; each SID it points to lives
    // in the same buffer.
    unsafe {
        let count = (*groups).GroupCount as usize;
        let first = (*groups).Groups.as_ptr();
        for i in 0..count {
            let g = &*first.add(i);
            if g.Attributes & (SE_GROUP_LOGON_ID as u32) == SE_GROUP_LOGON_ID as u32 {
                let sid = g.Sid as *const u8;
                // A SID is 8 bytes plus 4 per sub-authority (count at byte 1).
                let size = 8 + 4 * (*sid.add(1) as usize);
                let bytes = std::slice::from_raw_parts(sid, size);
                return Sid::from_bytes(bytes)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()));
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        "the token has no logon SID",
    ))
}

/// The logon SID of moat's own session: a restricting SID of the
/// write-restricted token, so the audit counts its write access and the
/// private desktop admits it.
pub fn current_logon_sid() -> io::Result<Sid> {
    logon_sid(&own_token()?)
}

/// Applies `sddl`'s DACL as the default DACL of `token`.
fn set_default_dacl(token: &OwnedHandle, sddl: &str) -> io::Result<()> {
    let descriptor = Descriptor::from_sddl(sddl)?;
    let info = TOKEN_DEFAULT_DACL {
        DefaultDacl: descriptor.dacl()?,
    };
    // SAFETY: `info` points into `descriptor`, alive for the call; the
    // token copies the DACL.
    let ok = unsafe {
        SetTokenInformation(
            raw(token),
            TokenDefaultDacl,
            &info as *const TOKEN_DEFAULT_DACL as *const core::ffi::c_void,
            std::mem::size_of::<TOKEN_DEFAULT_DACL>() as u32,
        )
    };
    if ok == 0 {
        return Err(last_error());
    }
    Ok(())
}

/// The person's token, write-restricted to `capability_sids`, the logon
/// SID and Everyone, with every privilege but SeChangeNotify removed.
pub fn write_restricted(capability_sids: &[Sid]) -> io::Result<OwnedHandle> {
    let own = own_token()?;
    let logon_sid = logon_sid(&own)?;
    let logon = SidBuf::new(&logon_sid);
    let everyone = SidBuf::new(&Sid::everyone());
    let caps: Vec<SidBuf> = capability_sids.iter().map(SidBuf::new).collect();
    let mut restrict: Vec<SID_AND_ATTRIBUTES> = caps
        .iter()
        .map(|c| SID_AND_ATTRIBUTES {
            Sid: c.psid(),
            Attributes: 0,
        })
        .collect();
    restrict.push(SID_AND_ATTRIBUTES {
        Sid: logon.psid(),
        Attributes: 0,
    });
    restrict.push(SID_AND_ATTRIBUTES {
        Sid: everyone.psid(),
        Attributes: 0,
    });
    let mut new: HANDLE = std::ptr::null_mut();
    // SAFETY: every SID pointer in `restrict` points into a buffer (`caps`,
    // `logon`, `everyone`) alive for the call; the counts match the arrays;
    // `new` is a live out-parameter.
    let ok = unsafe {
        CreateRestrictedToken(
            raw(&own),
            DISABLE_MAX_PRIVILEGE | LUA_TOKEN | WRITE_RESTRICTED,
            0,
            std::ptr::null(),
            0,
            std::ptr::null(),
            restrict.len() as u32,
            restrict.as_ptr(),
            &mut new,
        )
    };
    if ok == 0 {
        return Err(last_error());
    }
    // SAFETY: `new` is a new handle nothing else owns.
    let token = unsafe { OwnedHandle::from_raw_handle(new as RawHandle) };
    let mut sddl = format!("D:(A;;GA;;;{})(A;;GA;;;SY)", logon_sid);
    for c in capability_sids {
        sddl.push_str(&format!("(A;;GA;;;{})", c));
    }
    set_default_dacl(&token, &sddl)?;
    Ok(token)
}
