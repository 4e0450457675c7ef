//! The sandbox accounts' passwords at rest: DPAPI with the machine's key,
//! in a directory the sandbox group is denied (`crate::setup_plan`).

use std::io;

use windows_sys::Win32::Foundation::{LocalFree, HLOCAL};
use windows_sys::Win32::Security::Cryptography::{
    CryptProtectData, CryptUnprotectData, CRYPTPROTECT_LOCAL_MACHINE, CRYPTPROTECT_UI_FORBIDDEN,
    CRYPT_INTEGER_BLOB,
};

use super::last_error;

fn blob(data: &[u8]) -> CRYPT_INTEGER_BLOB {
    CRYPT_INTEGER_BLOB {
        cbData: data.len() as u32,
        pbData: data.as_ptr() as *mut u8,
    }
}

/// Copies DPAPI's output and frees it, zeroed first: after `unprotect` it
/// is a password in plain text, which must not linger in freed memory.
fn take(out: CRYPT_INTEGER_BLOB) -> Vec<u8> {
    // SAFETY: DPAPI returned a LocalAlloc'd buffer of cbData bytes that
    // only this function holds; it is read, overwritten byte by byte with
    // volatile writes (which the optimiser may not drop), then freed.
    unsafe {
        let v = std::slice::from_raw_parts(out.pbData, out.cbData as usize).to_vec();
        for i in 0..out.cbData as usize {
            std::ptr::write_volatile(out.pbData.add(i), 0);
        }
        LocalFree(out.pbData as HLOCAL);
        v
    }
}

/// Encrypts `secret` with the machine's DPAPI key.
pub fn protect(secret: &[u8]) -> io::Result<Vec<u8>> {
    let input = blob(secret);
    let mut out = CRYPT_INTEGER_BLOB {
        cbData: 0,
        pbData: std::ptr::null_mut(),
    };
    // SAFETY: `input` points into `secret`, live for the call; DPAPI only
    // reads it; `out` receives a new buffer.
    let ok = unsafe {
        CryptProtectData(
            &input,
            std::ptr::null(),
            std::ptr::null(),
            std::ptr::null(),
            std::ptr::null(),
            CRYPTPROTECT_LOCAL_MACHINE | CRYPTPROTECT_UI_FORBIDDEN,
            &mut out,
        )
    };
    if ok == 0 {
        return Err(last_error());
    }
    Ok(take(out))
}

/// Decrypts what [`protect`] made.
pub fn unprotect(sealed: &[u8]) -> io::Result<Vec<u8>> {
    let input = blob(sealed);
    let mut out = CRYPT_INTEGER_BLOB {
        cbData: 0,
        pbData: std::ptr::null_mut(),
    };
    // SAFETY: as in `protect`; no description is asked for.
    let ok = unsafe {
        CryptUnprotectData(
            &input,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
            std::ptr::null(),
            CRYPTPROTECT_UI_FORBIDDEN,
            &mut out,
        )
    };
    if ok == 0 {
        return Err(last_error());
    }
    Ok(take(out))
}
