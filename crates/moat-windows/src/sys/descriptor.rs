//! A security descriptor made from SDDL, owned: every use of one (a pipe's,
//! a desktop's, a token's default DACL, a directory's owner and DACL) needs
//! the same conversion and the same `LocalFree`, which lives here once.

use std::io;

use windows_sys::Win32::Foundation::{LocalFree, BOOL, HLOCAL};
use windows_sys::Win32::Security::Authorization::{
    ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{
    GetSecurityDescriptorDacl, GetSecurityDescriptorOwner, ACL, PSECURITY_DESCRIPTOR, PSID,
    SECURITY_ATTRIBUTES,
};

use super::{last_error, wide};

/// A self-relative descriptor from `ConvertStringSecurityDescriptorToSecurityDescriptorW`,
/// freed when dropped. Pointers it hands out point into it and are valid
/// while it lives.
pub struct Descriptor(PSECURITY_DESCRIPTOR);

impl Descriptor {
    pub fn from_sddl(sddl: &str) -> io::Result<Descriptor> {
        let text = wide(sddl);
        let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        // SAFETY: `text` is NUL-terminated; `sd` receives a LocalAlloc'd
        // descriptor that the returned value owns and frees.
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                text.as_ptr(),
                SDDL_REVISION_1,
                &mut sd,
                std::ptr::null_mut(),
            )
        };
        if ok == 0 {
            return Err(last_error());
        }
        Ok(Descriptor(sd))
    }

    pub fn as_ptr(&self) -> PSECURITY_DESCRIPTOR {
        self.0
    }

    /// Attributes for a new object with this descriptor, not inheritable.
    pub fn attributes(&self) -> SECURITY_ATTRIBUTES {
        SECURITY_ATTRIBUTES {
            nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
            lpSecurityDescriptor: self.0,
            bInheritHandle: 0,
        }
    }

    /// The DACL, null when the descriptor has none.
    pub fn dacl(&self) -> io::Result<*mut ACL> {
        let mut present: BOOL = 0;
        let mut defaulted: BOOL = 0;
        let mut dacl: *mut ACL = std::ptr::null_mut();
        // SAFETY: `self.0` is a valid descriptor; the out-parameters are
        // live locals.
        if unsafe { GetSecurityDescriptorDacl(self.0, &mut present, &mut dacl, &mut defaulted) }
            == 0
        {
            return Err(last_error());
        }
        Ok(if present == 0 {
            std::ptr::null_mut()
        } else {
            dacl
        })
    }

    /// The owner, null when the descriptor has none.
    pub fn owner(&self) -> io::Result<PSID> {
        let mut owner: PSID = std::ptr::null_mut();
        let mut defaulted: BOOL = 0;
        // SAFETY: `self.0` is a valid descriptor; the out-parameters are
        // live locals.
        if unsafe { GetSecurityDescriptorOwner(self.0, &mut owner, &mut defaulted) } == 0 {
            return Err(last_error());
        }
        Ok(owner)
    }
}

impl Drop for Descriptor {
    fn drop(&mut self) {
        // SAFETY: the descriptor came from the conversion's LocalAlloc and
        // nothing uses it after this value.
        unsafe { LocalFree(self.0 as HLOCAL) };
    }
}
