//! A private desktop for the command, so it cannot read or send input to
//! the person's windows (window messages do not cross desktops).

use std::io;

use windows_sys::Win32::Security::SECURITY_ATTRIBUTES;
use windows_sys::Win32::System::StationsAndDesktops::{CloseDesktop, CreateDesktopW, HDESK};

use super::descriptor::Descriptor;
use super::{last_error, wide};

/// Every right the command's processes need on their own desktop.
const DESKTOP_ALL: u32 = 0x01ff | 0x000f_0000;

/// An open desktop, closed on drop.
#[derive(Debug)]
pub struct Desktop {
    handle: HDESK,
    /// `winsta0\<name>`, for STARTUPINFO's lpDesktop.
    pub path: String,
}

impl Drop for Desktop {
    fn drop(&mut self) {
        // SAFETY: `handle` came from CreateDesktopW and is closed once.
        unsafe { CloseDesktop(self.handle) };
    }
}

/// Creates the desktop `name` on the interactive window station.
pub fn create(name: &str) -> io::Result<Desktop> {
    create_in(name, std::ptr::null())
}

/// Creates the desktop `name` with the security descriptor `sddl`.
///
/// A write-restricted token opens its desktop for rights the second access
/// check counts as writes, and the default DACL (the person's) names none
/// of its restricting SIDs: without a DACL naming one (the logon SID), the
/// command would fail to start (0xC0000142).
pub fn create_with_sddl(name: &str, sddl: &str) -> io::Result<Desktop> {
    let descriptor = Descriptor::from_sddl(sddl)?;
    // The desktop keeps its own copy of the descriptor.
    create_in(name, &descriptor.attributes())
}

fn create_in(name: &str, attrs: *const SECURITY_ATTRIBUTES) -> io::Result<Desktop> {
    let n = wide(name);
    // SAFETY: `n` is NUL-terminated; the device and mode must be null;
    // `attrs` is null or points to attributes live for the call.
    let handle = unsafe {
        CreateDesktopW(
            n.as_ptr(),
            std::ptr::null(),
            std::ptr::null(),
            0,
            DESKTOP_ALL,
            attrs,
        )
    };
    if handle.is_null() {
        return Err(last_error());
    }
    Ok(Desktop {
        handle,
        path: format!(r"winsta0\{}", name),
    })
}
