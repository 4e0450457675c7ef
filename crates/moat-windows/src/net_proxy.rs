//! moat's proxy for `--network allow` on Windows (`moat_proxy`), on
//! loopback. In the elevated tier the offline account's firewall rules
//! leave open only the ports `moat setup` recorded, so a run listens on
//! the first of those that is free; in the unelevated tier any free port
//! does, and only programs that honour the proxy variables use it. Only
//! the HTTP proxy (`CONNECT` and absolute `http://` URIs) is served: the
//! transparent ports and the DNS stub need the network namespace moat has
//! only on Linux. Every program on the machine can reach loopback, and in
//! the elevated tier so can a `--network off` run, whose account may reach
//! the same ports: so the proxy wants a password of the run's own, which
//! only the command's proxy variables carry. Platform-neutral: the tests
//! run it on Linux's loopback.

use std::net::{Ipv4Addr, TcpListener};

use moat_policy::domains::DomainRules;
use moat_proxy::{Hooks, Listener, NetDecision, Proxy};

/// A listener on 127.0.0.1 at the first of `ports` that is free; the
/// refusal names the ports and what holds them when none is.
pub fn bind_first_free(ports: &[u16]) -> Result<TcpListener, String> {
    let mut failures: Vec<String> = Vec::new();
    for &port in ports {
        match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            Ok(listener) => return Ok(listener),
            Err(err) => failures.push(format!("{}: {}", port, err)),
        }
    }
    if failures.is_empty() {
        return Err(
            "no proxy port to listen on: run `moat setup` from an elevated prompt, \
                    which opens them to the offline account"
                .to_string(),
        );
    }
    Err(format!(
        "none of the proxy ports `moat setup` opened to the offline account is free on \
         127.0.0.1 ({}): other runs with --network allow, or other programs, are using them; \
         wait for a run to end, or stop the program that holds one",
        failures.join("; ")
    ))
}

/// A listener on any free port of 127.0.0.1 (the unelevated tier, where
/// no firewall rule names the port).
pub fn bind_any() -> Result<TcpListener, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|err| format!("listening on 127.0.0.1 for moat's proxy: {}", err))
}

/// A run's proxy password from `random` (16 bytes or more from the
/// system's generator): hex, so that it needs no escaping in a URL.
pub fn password(random: &[u8]) -> String {
    random.iter().map(|b| format!("{:02x}", b)).collect()
}

/// The proxy of one run; stopped when dropped, so that no path out of a
/// run leaves it serving.
#[derive(Debug)]
pub struct Running {
    proxy: Option<Proxy>,
    port: u16,
}

impl Running {
    /// Serves the HTTP proxy on `listener` with `rules`, to clients that
    /// give `password` (as the user `moat_proxy::PROXY_USER`).
    pub fn start(
        listener: TcpListener,
        rules: DomainRules,
        password: &str,
    ) -> Result<Running, String> {
        let port = listener
            .local_addr()
            .map_err(|err| format!("the proxy's listener has no address: {}", err))?
            .port();
        let hooks = Hooks {
            password: Some(password.to_string()),
            ..Hooks::default()
        };
        let proxy = Proxy::start(vec![Listener::Http(listener)], rules, hooks);
        Ok(Running {
            proxy: Some(proxy),
            port,
        })
    }

    /// The loopback port the proxy listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the proxy; every decision it made.
    pub fn stop(mut self) -> Vec<NetDecision> {
        self.proxy.take().map(Proxy::stop).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(proxy) = self.proxy.take() {
            let _ = proxy.stop();
        }
    }
}

/// One line on what the proxy refused (each `name:port` once), as moat
/// on Linux ends an allowlisted run; `None` when it refused nothing.
pub fn denied_summary(decisions: &[NetDecision]) -> Option<String> {
    let mut denied: Vec<String> = Vec::new();
    for d in decisions.iter().filter(|d| !d.allowed) {
        let entry = format!("{}:{}", d.name, d.port);
        if !denied.contains(&entry) {
            denied.push(entry);
        }
    }
    if denied.is_empty() {
        return None;
    }
    Some(format!(
        "denied {} destinations: {} (allow with --allow-domain)",
        denied.len(),
        denied.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::io::{Read, Write};
    use std::net::{IpAddr, TcpStream};
    use std::time::Duration;

    use moat_policy::domains::{pattern, Cidr};

    /// A port nothing listens on just now.
    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[test]
    fn a_run_takes_the_first_free_recorded_port() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = held.local_addr().unwrap().port();
        let free = free_port();
        let got = bind_first_free(&[busy, free]).unwrap();
        assert_eq!(got.local_addr().unwrap().port(), free);
        let got_port = got.local_addr().unwrap().port();

        // All taken: refused, naming each port.
        let err = bind_first_free(&[busy, got_port]).unwrap_err();
        assert!(
            err.contains(&busy.to_string())
                && err.contains(&got_port.to_string())
                && err.contains("none of the proxy ports"),
            "{err}"
        );
        let err = bind_first_free(&[]).unwrap_err();
        assert!(err.contains("moat setup"), "{err}");
        let any = bind_any().unwrap();
        assert!(any.local_addr().unwrap().ip().is_loopback());
    }

    #[test]
    fn the_proxy_serves_the_allowlist_until_stopped() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let server_port = server.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for mut s in server.incoming().flatten() {
                let mut b = [0u8; 3];
                if s.read_exact(&mut b).is_ok() {
                    let _ = s.write_all(b"pong");
                }
            }
        });
        let local = IpAddr::from(Ipv4Addr::LOCALHOST);
        let rules = DomainRules {
            allow: vec![pattern("pkg.test").unwrap()],
            deny: Vec::new(),
            allow_cidr: vec![Cidr::parse("127.0.0.1/32").unwrap()],
            resolve: vec![("pkg.test".to_string(), local)],
        };
        let secret = password(&[0x00, 0x7f, 0xab, 0xff]);
        assert_eq!(secret, "007fabff");
        let running = Running::start(bind_any().unwrap(), rules, &secret).unwrap();
        let port = running.port();
        // What clients send for the URL in `offline_env::proxy_env`.
        let right = "bW9hdDowMDdmYWJmZg=="; // moat:007fabff
        let ask = |name: &str, auth: &str| -> String {
            let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            write!(
                s,
                "CONNECT {}:{} HTTP/1.1\r\nProxy-Authorization: Basic {}\r\n\r\nping",
                name, server_port, auth
            )
            .unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out
        };
        assert!(ask("pkg.test", right).ends_with("\r\n\r\npong"));
        assert!(ask("other.test", right).starts_with("HTTP/1.1 403 Forbidden"));
        assert!(ask("other.test", right).starts_with("HTTP/1.1 403 Forbidden"));
        // Another program on the machine, without the run's password.
        assert!(ask("pkg.test", "bW9hdDo=").starts_with("HTTP/1.1 407 "));
        // Recorded as each connection ends, so not in the order made.
        let decisions = running.stop();
        assert_eq!(decisions.len(), 4);
        let by_rules: Vec<NetDecision> = decisions
            .iter()
            .filter(|d| d.rule != "no proxy password, or a wrong one")
            .cloned()
            .collect();
        assert_eq!(by_rules.len(), 3, "{decisions:?}");
        assert_eq!(
            denied_summary(&by_rules).as_deref(),
            Some(&*format!(
                "denied 1 destinations: other.test:{} (allow with --allow-domain)",
                server_port
            ))
        );
        assert_eq!(
            denied_summary(&decisions).map(|s| s.starts_with("denied 2 destinations: ")),
            Some(true),
            "pkg.test without the password too"
        );
        let allowed: Vec<NetDecision> = decisions.iter().filter(|d| d.allowed).cloned().collect();
        assert_eq!(allowed.len(), 1);
        assert_eq!(denied_summary(&allowed), None);
        assert!(
            TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(),
            "stopped: the port is closed"
        );

        // Dropped without stop (a run that failed): stopped all the same.
        let dropped = Running::start(bind_any().unwrap(), DomainRules::default(), "x").unwrap();
        let port = dropped.port();
        drop(dropped);
        assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err());
    }
}
