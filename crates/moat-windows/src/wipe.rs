//! Zeroing memory that held a secret (a password), as its own small
//! concern: the one unsafe operation outside `sys`, and it calls nothing
//! of Windows, so the platform-neutral code and its tests use it too.

/// Zeroes `buf` with volatile writes, which the optimiser may not drop as
/// dead stores before the buffer is freed.
pub(crate) fn wipe<T: Copy + Default>(buf: &mut [T]) {
    for item in buf.iter_mut() {
        // SAFETY: `item` is a valid, aligned, exclusive reference into
        // `buf`, so writing a `T` through it is sound.
        unsafe { std::ptr::write_volatile(item, T::default()) };
    }
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::wipe;

    #[test]
    fn every_element_is_zeroed() {
        let mut bytes = *b"hunter2!";
        wipe(&mut bytes);
        assert_eq!(bytes, [0u8; 8]);
        let mut wide: Vec<u16> = "pässwörd".encode_utf16().collect();
        let len = wide.len();
        wipe(&mut wide);
        assert_eq!(wide, vec![0u16; len]);
    }
}
