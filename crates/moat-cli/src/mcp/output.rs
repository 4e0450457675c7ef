//! A command's output, kept within a bound: its beginning and its end, and
//! how much was left out between them.

use std::collections::VecDeque;
use std::io::Read;

/// What was kept of one stream.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Kept {
    pub head: Vec<u8>,
    pub tail: Vec<u8>,
    /// Bytes left out between `head` and `tail`.
    pub omitted: u64,
}

impl Kept {
    /// The text, with a line saying what was left out where it was.
    pub fn text(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.head).into_owned();
        if self.omitted > 0 {
            s.push_str(&format!(
                "\n[... {} bytes left out by moat ...]\n",
                self.omitted
            ));
        }
        s.push_str(&String::from_utf8_lossy(&self.tail));
        s
    }
}

/// Reads `from` to its end, keeping the first and the last `limit / 2`
/// bytes.
pub fn keep(mut from: impl Read, limit: usize) -> Kept {
    let half = limit / 2;
    let mut kept = Kept::default();
    let mut tail: VecDeque<u8> = VecDeque::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let mut chunk = &buf[..n];
        if kept.head.len() < half {
            let take = (half - kept.head.len()).min(chunk.len());
            kept.head.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
        }
        tail.extend(chunk);
        while tail.len() > limit - half {
            tail.pop_front();
            kept.omitted += 1;
        }
    }
    kept.tail = tail.into_iter().collect();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_output_is_kept_whole_and_long_output_at_both_ends() {
        let k = keep(&b"hello"[..], 100);
        assert_eq!((k.text(), k.omitted), ("hello".to_string(), 0));
        let long: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let k = keep(&long[..], 1000);
        assert_eq!(k.head, long[..500].to_vec());
        assert_eq!(k.tail, long[long.len() - 500..].to_vec());
        assert_eq!(k.omitted, 99_000);
        assert!(k.text().contains("99000 bytes left out"));
    }
}
