//! The local package registries of `tests/registries.py` (a cargo sparse
//! index, npm and a pip index), so no test depends on the internet.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::process::{Child, Command};

/// The registry server, stopped on drop.
pub struct Registry {
    child: Child,
    pub port: u16,
}

impl Registry {
    pub fn start() -> Registry {
        let portfile =
            std::env::temp_dir().join(format!("moat-it-registry-{}", std::process::id()));
        let _ = std::fs::remove_file(&portfile);
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/registries.py");
        // Owned at once, so the server is stopped whatever happens next.
        let mut registry = Registry {
            child: Command::new("python3")
                .arg(script)
                .arg(&portfile)
                .spawn()
                .unwrap(),
            port: 0,
        };
        for _ in 0..200 {
            if let Ok(text) = std::fs::read_to_string(&portfile) {
                let _ = std::fs::remove_file(&portfile);
                registry.port = text.trim().parse().unwrap();
                return registry;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("the registry server did not start");
    }

    /// How many package files it has served.
    pub fn served(&self) -> u64 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        use std::io::Write;
        s.write_all(b"GET /_count HTTP/1.0\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text.rsplit("\r\n\r\n")
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    pub fn url(&self) -> String {
        format!("http://registry.test:{}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
