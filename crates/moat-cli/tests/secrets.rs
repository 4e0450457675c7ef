//! Secrets that never enter the sandbox: `--secret NAME:HOST` gives the
//! command a placeholder, and moat's proxy puts the real value into
//! requests to HOST only. Against a real HTTPS server with a test CA
//! (`secrets_server.py`), through curl and git inside the sandbox, as root
//! and as the test account, in both tiers. The server logs what reached it,
//! so each check looks at the far side too. Controls: the same requests
//! without `--secret` are refused by the server (401), and the searches
//! for the value find it where it is present.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

use common::*;
use serde_json::Value;

/// The HTTPS server, on a loopback address of its own.
struct Upstream {
    dir: PathBuf,
    addr: String,
    port: u16,
    token: String,
    child: Child,
}

impl Upstream {
    fn start(tag: &str) -> Upstream {
        let n = std::process::id() % 200 + 20;
        let addr = format!("127.0.{}.{}", tag.len() % 200 + 1, n);
        let dir = std::env::temp_dir().join(format!("moat-secrets-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("git")).unwrap();
        let git = Command::new("git")
            .args(["init", "-q", "--bare", "-b", "main"])
            .arg(dir.join("git/repo.git"))
            .output()
            .unwrap();
        assert!(git.status.success(), "{}", show(&git));
        // A token of GitHub's shape, different on every run.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let token = format!(
            "ghp_{:036x}",
            nanos ^ (u128::from(std::process::id()) << 64)
        )[..40]
            .to_string();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/secrets_server.py");
        let child = Command::new("python3")
            .arg(script)
            .arg(&dir)
            .arg(&addr)
            .arg(&token)
            .spawn()
            .unwrap();
        // Readable by the test account: moat reads ca.pem as them.
        let _ = Command::new("chmod").arg("755").arg(&dir).status();
        let port_file = dir.join("port");
        for _ in 0..300 {
            if port_file.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let port = std::fs::read_to_string(&port_file)
            .unwrap_or_else(|e| panic!("the test server did not start: {e}"))
            .trim()
            .parse()
            .unwrap();
        Upstream {
            dir,
            addr,
            port,
            token,
            child,
        }
    }

    fn url(&self, host: &str, path: &str) -> String {
        if self.port == 443 {
            format!("https://{host}{path}")
        } else {
            format!("https://{host}:{}{path}", self.port)
        }
    }

    /// The flags that reach the server's names through the proxy, trusting
    /// its test CA upstream.
    fn flags(&self) -> Vec<String> {
        let mut f: Vec<String> = vec!["--network".into(), "allow".into()];
        for host in ["secret.test", "other.test", "git.test"] {
            f.push("--resolve".into());
            f.push(format!("{host}:{}", self.addr));
        }
        f.extend([
            "--allow-domain".into(),
            "other.test".into(),
            "--allow-domain".into(),
            "secret.test".into(),
            "--allow-domain".into(),
            "git.test".into(),
            "--allow-cidr".into(),
            format!("{}/32", self.addr),
            "--upstream-ca".into(),
            self.dir.join("ca.pem").display().to_string(),
        ]);
        f
    }

    /// What reached the server since the last call.
    fn seen(&self) -> Vec<Value> {
        let log = self.dir.join("seen.log");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `moat run` as `who` with API_TOKEN in moat's environment; the output
/// and the run report.
fn run(who: &Who, s: &Scratch, up: &Upstream, args: &[&str], script: &str) -> (Output, Value) {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let report = s.base.join(format!("report-{n}.json"));
    let mut c = command_as(who, "env");
    c.arg(format!("API_TOKEN={}", up.token))
        .arg(moat())
        .args(["run", "--workspace"])
        .arg(&s.ws)
        .arg("--report")
        .arg(&report);
    if !args.contains(&"--tier") {
        c.args(["--tier", "unelevated"]);
    }
    c.args(up.flags())
        .args(args)
        .args(["--", "sh", "-c", script])
        .current_dir(&s.ws);
    let out = output(&mut c);
    let text = std::fs::read_to_string(&report)
        .unwrap_or_else(|e| panic!("no report ({e}): {}", show(&out)));
    let v: Value = serde_json::from_str(&text).unwrap();
    (out, v["report"].clone())
}

const SECRET: &[&str] = &["--secret", "API_TOKEN:secret.test,git.test"];

fn with(a: &[&str], b: &[&str]) -> Vec<String> {
    a.iter().chain(b).map(|s| s.to_string()).collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// curl with the token from the environment as a bearer token.
fn curl(url: &str, extra: &str) -> String {
    format!(
        "curl -sS {extra} -o - -w ' %{{http_code}}' -H \"Authorization: Bearer $API_TOKEN\" '{url}'"
    )
}

fn authorizations(seen: &[Value], host: &str) -> Vec<String> {
    seen.iter()
        .filter(|e| e["host"] == host)
        .map(|e| e["authorization"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The bearer token gets to its host, through the proxy variables and
/// through transparent mode; the control without --secret gets 401.
fn bearer(v: &mut Verdicts, who: &Who, up: &Upstream, tier: &[&str]) {
    let s = Scratch::new(who, "secret-bearer");
    let args = with(tier, SECRET);
    let (out, report) = run(
        who,
        &s,
        up,
        &strs(&args),
        &curl(&up.url("secret.test", "/"), ""),
    );
    let seen = up.seen();
    v.check(
        &format!("{}: curl gets 200 with the secret put in", who.name),
        stdout(&out).trim() == "ok\n 200"
            && authorizations(&seen, "secret.test") == vec![format!("Bearer {}", up.token)],
        format!("{} | seen {seen:?}", show(&out)),
    );
    let secrets = &report["secrets"];
    v.check(
        &format!(
            "{}: the report says the secret went in, not its value",
            who.name
        ),
        secrets[0]["env"] == "API_TOKEN"
            && secrets[0]["injected"].as_u64() == Some(1)
            && !report.to_string().contains(&up.token),
        format!("{secrets}"),
    );
    // A server that echoes the header it got hands back the placeholder:
    // moat masks the value in responses.
    let echo = format!(
        "curl -sS -H \"Authorization: Bearer $API_TOKEN\" '{}'; echo; echo \"Bearer $API_TOKEN\"",
        up.url("secret.test", "/echo")
    );
    let (out, _) = run(who, &s, up, &strs(&args), &echo);
    let seen = up.seen();
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    v.check(
        &format!(
            "{}: an echoed header comes back as the placeholder",
            who.name
        ),
        lines.len() == 2
            && lines[0] == lines[1]
            && !text.contains(&up.token)
            && authorizations(&seen, "secret.test") == vec![format!("Bearer {}", up.token)],
        format!("{} | seen {seen:?}", show(&out)),
    );
    // The control: the same request without --secret. Nothing terminates
    // its TLS then, so curl checks the server against the test CA itself.
    let ca = std::fs::read_to_string(up.dir.join("ca.pem")).unwrap();
    s.write("ws/test-ca.pem", &ca);
    let (out, _) = run(
        who,
        &s,
        up,
        tier,
        &curl(&up.url("secret.test", "/"), "--cacert test-ca.pem"),
    );
    let seen = up.seen();
    v.check(
        &format!(
            "{}: control: without --secret the server says 401",
            who.name
        ),
        stdout(&out).trim().ends_with("401") && !seen.is_empty(),
        format!("{} | seen {seen:?}", show(&out)),
    );
    if up.port == 443 {
        let (out, _) = run(
            who,
            &s,
            up,
            &strs(&args),
            &curl(&up.url("secret.test", "/"), "--noproxy '*'"),
        );
        let seen = up.seen();
        v.check(
            &format!(
                "{}: transparent mode (no proxy variables) puts it in too",
                who.name
            ),
            stdout(&out).trim().ends_with("200")
                && authorizations(&seen, "secret.test") == vec![format!("Bearer {}", up.token)],
            format!("{} | seen {seen:?}", show(&out)),
        );
    } else {
        v.check(
            "transparent mode needs the server on port 443",
            false,
            "port 443 could not be bound on the loopback address",
        );
    }
}

/// Elsewhere the placeholder stays a placeholder: through a tunnel to
/// another allowed host it arrives as it is; over plain HTTP it is
/// refused before anything is sent.
fn elsewhere(v: &mut Verdicts, who: &Who, up: &Upstream, tier: &[&str]) {
    let s = Scratch::new(who, "secret-elsewhere");
    // other.test is tunnelled, not brokered: curl checks its certificate
    // against the test CA itself.
    let ca = std::fs::read_to_string(up.dir.join("ca.pem")).unwrap();
    s.write("ws/test-ca.pem", &ca);
    let args = with(tier, SECRET);
    let script = format!(
        "{}; echo; {}",
        curl(&up.url("other.test", "/"), "--cacert test-ca.pem"),
        curl("http://other.test:9/", "")
    );
    let (out, report) = run(who, &s, up, &strs(&args), &script);
    let seen = up.seen();
    let got = authorizations(&seen, "other.test");
    let placeholder_only = got.len() == 1
        && got[0].starts_with("Bearer ghp_")
        && got[0].len() == format!("Bearer {}", up.token).len()
        && !got[0].contains(&up.token);
    let text = stdout(&out);
    v.check(
        &format!(
            "{}: another host gets the placeholder, never the value",
            who.name
        ),
        placeholder_only && text.contains("other\n 200"),
        format!("{} | seen {seen:?}", show(&out)),
    );
    let refused = report["denials"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["target"] == "other.test:9" && d["layer"] == "proxy");
    v.check(
        &format!(
            "{}: a placeholder over plain HTTP is refused and reported",
            who.name
        ),
        text.trim_end().ends_with("403") && text.contains("placeholder of API_TOKEN") && refused,
        format!("{} | {}", show(&out), report["denials"]),
    );
}

/// Request rules: GET only on secret.test refuses POST (403, naming the
/// rule, nothing sent) and lets GET through.
fn rules(v: &mut Verdicts, who: &Who, up: &Upstream, tier: &[&str]) {
    let s = Scratch::new(who, "secret-rules");
    let args = with(
        tier,
        &[SECRET, &["--allow-request", "GET:secret.test"]].concat(),
    );
    let script = format!(
        "{}; echo; {}",
        curl(&up.url("secret.test", "/x"), "-X POST -d a=b"),
        curl(&up.url("secret.test", "/x"), "")
    );
    let (out, _) = run(who, &s, up, &strs(&args), &script);
    let seen = up.seen();
    let text = stdout(&out);
    let methods: Vec<&str> = seen.iter().map(|e| e["method"].as_str().unwrap()).collect();
    v.check(
        &format!(
            "{}: a GET-only rule refuses POST and lets GET through",
            who.name
        ),
        text.contains(" 403")
            && text.contains("request rule")
            && text.ends_with("ok\n 200")
            && methods == ["GET"],
        format!("{} | seen {seen:?}", show(&out)),
    );
}

/// Nothing the command can read holds the value; the bundle it trusts
/// holds moat's certificate and no key; the host's bundle is untouched.
fn nothing_inside(v: &mut Verdicts, who: &Who, up: &Upstream, tier: &[&str]) {
    let s = Scratch::new(who, "secret-inside");
    let args = with(tier, SECRET);
    // In Python, with the value given reversed: a search whose arguments
    // held it would find itself in /proc. Copied into the workspace: the
    // checkout may be under /tmp, which is private inside the sandbox.
    s.write("ws/find_value.py", include_str!("find_value.py"));
    let search = "python3 find_value.py";
    let reversed: String = up.token.chars().rev().collect();
    let script = format!(
        "{search} {reversed} /tmp /dev/shm /etc/ssl /run .; \
         grep -c 'BEGIN CERTIFICATE' $SSL_CERT_FILE; \
         grep -c 'PRIVATE KEY' $SSL_CERT_FILE; echo $SSL_CERT_FILE"
    );
    let host_bundle = std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt").unwrap();
    let host_certs = host_bundle.matches("BEGIN CERTIFICATE").count();
    let (out, _) = run(who, &s, up, &strs(&args), &script);
    let lines: Vec<String> = stdout(&out).lines().map(String::from).collect();
    v.check(
        &format!("{}: the value is nowhere the command can read", who.name),
        lines.first().map(String::as_str) == Some("found nothing"),
        show(&out),
    );
    v.check(
        &format!(
            "{}: the command's bundle is the system's plus moat's, with no key",
            who.name
        ),
        lines.get(1) == Some(&(host_certs + 1).to_string())
            && lines.get(2).map(String::as_str) == Some("0")
            && lines.get(3).map(String::as_str) == Some("/etc/ssl/certs/ca-certificates.crt"),
        show(&out),
    );
    // The control: the same search, outside, where the value is.
    let control = s.sh(&format!(
        "API_TOKEN={} {search} {reversed} /tmp/nothing-here",
        up.token
    ));
    v.check(
        "control: the search finds the value where it is",
        stdout(&control).starts_with("found ") && stdout(&control).contains("environment"),
        show(&control),
    );
    let after = std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt").unwrap();
    v.check(
        "the host's bundle is untouched after the run",
        after == host_bundle,
        "the bundle changed",
    );
}

/// `git push` over HTTPS with the token as Basic credentials, as git
/// sends them; the control without --secret is refused by the server.
fn git_push(v: &mut Verdicts, who: &Who, up: &Upstream, tier: &[&str]) {
    let s = Scratch::new(who, "secret-git");
    let init = s.sh("git init -q -b work . && echo hi > f && git add f && \
         git -c user.name=t -c user.email=t@t commit -qm one");
    assert!(init.status.success(), "{}", show(&init));
    let remote = up.url("git.test", "/repo.git");
    let push = format!(
        "git push -q \"https://x-access-token:$API_TOKEN@{}\" work:refs/heads/{}",
        remote.trim_start_matches("https://"),
        who.name
    );
    let (out, _) = run(who, &s, up, &strs(&with(tier, SECRET)), &push);
    let seen = up.seen();
    let pushed = Command::new("git")
        .arg("--git-dir")
        .arg(up.dir.join("git/repo.git"))
        .args(["log", "--format=%s", &who.name])
        .output()
        .unwrap();
    v.check(
        &format!(
            "{}: git push with Basic credentials gets the real token",
            who.name
        ),
        out.status.success() && stdout(&pushed).trim() == "one",
        format!("{} | {} | seen {seen:?}", show(&out), show(&pushed)),
    );
    let ca = std::fs::read_to_string(up.dir.join("ca.pem")).unwrap();
    s.write("ws/test-ca.pem", &ca);
    let (out, _) = run(
        who,
        &s,
        up,
        tier,
        &format!("GIT_SSL_CAINFO=$PWD/test-ca.pem {push}-control"),
    );
    v.check(
        &format!(
            "{}: control: without --secret the push is refused",
            who.name
        ),
        !out.status.success() && stderr(&out).contains("401")
            || stderr(&out).contains("Authentication failed"),
        show(&out),
    );
}

/// Every check, as root and as the test account, in one tier.
fn in_tier(tag: &str, tier: &[&str]) {
    let up = Upstream::start(tag);
    let mut v = Verdicts::default();
    for who in identities() {
        bearer(&mut v, &who, &up, tier);
        elsewhere(&mut v, &who, &up, tier);
        rules(&mut v, &who, &up, tier);
        nothing_inside(&mut v, &who, &up, tier);
        git_push(&mut v, &who, &up, tier);
    }
    v.finish();
}

#[test]
fn secrets_reach_their_hosts_only_unelevated() {
    in_tier("unelevated", &["--tier", "unelevated"]);
}

#[test]
fn secrets_reach_their_hosts_only_elevated() {
    if let Some(_setup) = elevated_tier() {
        in_tier("elevated-tier", &["--tier", "elevated"]);
    }
}

/// What cannot be honoured is refused before anything runs.
#[test]
fn secrets_that_cannot_be_kept_are_refused() {
    let who = user();
    let s = Scratch::new(&who, "secret-refused");
    let cases: &[(&[&str], &str)] = &[
        (
            &["--network", "off", "--secret", "API_TOKEN:secret.test"],
            "needs --network allow",
        ),
        (
            &[
                "--network",
                "allow",
                "--secret",
                "NOT_SET_ANYWHERE:secret.test",
            ],
            "NOT_SET_ANYWHERE: no such variable",
        ),
    ];
    for (args, want) in cases {
        let out = moat_run(&who, &s.ws, args, &["true"]);
        assert!(
            !out.status.success() && stderr(&out).contains(want),
            "{args:?}: {}",
            show(&out)
        );
    }
}
