//! The library's own ways to run a command, with the denial observer in
//! each: `spawn` with a caller that reads the command's output before it
//! waits (the observer has a thread then), and `status` (answered inside
//! the wait). As root, each scenario also runs as the test account: this
//! binary runs itself again as that account.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::path::PathBuf;
use std::process::Command as Std;
use std::sync::mpsc;
use std::time::Duration;

use moat::{Command, Stdio, Tier};

const TEST_USER: &str = "moat-test";
/// Set when this binary runs one scenario (as the test account, or as
/// whoever runs the tests).
const AS_ACCOUNT: &str = "MOAT_LIBRARY_TEST_ACCOUNT";

/// More than a pipe holds, so a command whose reader never reads would
/// block on its output.
const LINES: usize = 12_000;
const PROBE: &str = "/usr/moat-library-probe";

fn script() -> String {
    format!(
        "touch {PROBE}; i=0; while [ $i -lt {LINES} ]; do echo \"line $i of the output\"; \
         i=$((i+1)); done"
    )
}

fn workspace(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "moat-library-{tag}-{}-{}",
        std::process::id(),
        uid()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn uid() -> String {
    let out = Std::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn command(ws: &PathBuf) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script()])
        .workspace(ws)
        .current_dir(ws)
        .tier(Tier::Unelevated);
    cmd
}

fn the_write_is_reported(report: &moat::RunReport) {
    let found = report
        .denials
        .iter()
        .find(|d| d.kind == "write" && d.target == PROBE);
    let d = found.unwrap_or_else(|| panic!("no denial of {PROBE}: {:#?}", report.denials));
    assert_eq!(d.layer, "mount", "{d:?}");
    assert_eq!(d.process.as_deref(), Some("touch"), "{d:?}");
    assert!(d.hint.contains("--allow-write /usr"), "{d:?}");
}

/// `spawn`, read all of stdout, then `wait`: the command's first observed
/// call comes before its output, so an observer that needed the wait
/// would leave both sides waiting for ever. Bounded here instead.
fn read_then_wait() {
    let ws = workspace("spawn");
    let mut child = command(&ws)
        .stdout(Stdio::Piped)
        .spawn()
        .expect("spawning the command");
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = out.read_to_string(&mut text);
        let _ = tx.send(text);
    });
    let text = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(t) => t,
        Err(_) => {
            child.kill();
            panic!("the command's output never ended: its observed calls went unanswered");
        }
    };
    let outcome = child.wait().expect("waiting");
    assert_eq!(outcome.exit.code(), 0, "{:#?}", outcome.report);
    assert_eq!(text.lines().count(), LINES);
    the_write_is_reported(&outcome.report);
    std::fs::remove_dir_all(&ws).unwrap();
}

/// `status`: the observer is answered inside the wait.
fn status() {
    let ws = workspace("status");
    let outcome = command(&ws)
        .stdout(Stdio::Null)
        .status()
        .expect("running the command");
    assert_eq!(outcome.exit.code(), 0, "{:#?}", outcome.report);
    the_write_is_reported(&outcome.report);
    std::fs::remove_dir_all(&ws).unwrap();
}

/// Secrets need the proxy. Without it, those the program asked for are
/// refused; those of a config file are left out with a note, so that a
/// person's config does not stop every offline run. Either way the value
/// does not enter.
fn secrets_without_the_proxy() {
    let ws = workspace("secrets");
    let asked = Command::new("true")
        .policy(moat::Policy::workspace_write().secret("MOAT_LIBRARY_TEST_SECRET", &["api.test"]))
        .workspace(&ws)
        .current_dir(&ws)
        .tier(Tier::Unelevated)
        .status();
    match asked {
        Err(e) => assert!(e.to_string().contains("needs --network allow"), "{e}"),
        Ok(o) => panic!("ran without the proxy: {:#?}", o.report),
    }
    let mut layer =
        moat::advanced::Layer::new(moat::advanced::Source::UserConfig(ws.join("config.toml")));
    layer.secrets.push(moat::advanced::secrets::SecretBinding {
        env: "MOAT_LIBRARY_TEST_SECRET".into(),
        hosts: vec!["api.test".into()],
        file: None,
    });
    let outcome = Command::new("sh")
        .args(["-c", "test -z \"$MOAT_LIBRARY_TEST_SECRET\""])
        .policy(moat::Policy::from_layer(layer))
        .workspace(&ws)
        .current_dir(&ws)
        .tier(Tier::Unelevated)
        .status()
        .expect("a config's secret does not stop an offline run");
    assert_eq!(outcome.exit.code(), 0, "{:#?}", outcome.report);
    assert!(
        outcome
            .report
            .notes
            .iter()
            .any(|n| n.contains("the secret MOAT_LIBRARY_TEST_SECRET from config files not used")),
        "{:#?}",
        outcome.report.notes
    );
    std::fs::remove_dir_all(&ws).unwrap();
}

/// A value the scenarios' environment holds, as a secret would be.
const SECRET_VALUE: &str = "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB";

/// Runs `scenario` in this binary run again (as `name`) with a secret in
/// its environment: as the current user, and as root also as the test
/// account.
fn each_identity(name: &str, scenario: fn()) {
    if std::env::var_os(AS_ACCOUNT).is_some() {
        assert_eq!(
            std::env::var("MOAT_LIBRARY_TEST_SECRET").as_deref(),
            Ok(SECRET_VALUE)
        );
        scenario();
        return;
    }
    let root = uid() == "0";
    if root {
        // The positive control: without the sandbox, root's write under
        // /usr succeeds (a name of this test's own: tests run at once).
        let control = format!("{PROBE}-{name}");
        std::fs::write(&control, "").expect("root writes under /usr without moat");
        std::fs::remove_file(&control).unwrap();
    }
    let me = std::env::current_exe().unwrap();
    let mut runs = vec![Std::new("env")];
    if root {
        let mut as_account = Std::new("setpriv");
        as_account
            .arg(format!("--reuid={TEST_USER}"))
            .arg(format!("--regid={TEST_USER}"))
            .args(["--init-groups", "--reset-env", "--", "env"]);
        runs.push(as_account);
    }
    for mut run in runs {
        let out = run
            .arg(format!("{AS_ACCOUNT}=1"))
            .arg(format!("MOAT_LIBRARY_TEST_SECRET={SECRET_VALUE}"))
            .arg(&me)
            .args(["--exact", name, "--nocapture", "--test-threads=1"])
            .output()
            .expect("running the scenario");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.contains("1 passed"),
            "{:?}:\n{text}",
            run.get_program()
        );
    }
}

#[test]
fn a_caller_that_reads_before_it_waits_is_observed() {
    each_identity(
        "a_caller_that_reads_before_it_waits_is_observed",
        read_then_wait,
    );
}

#[test]
fn secrets_need_the_proxy() {
    each_identity("secrets_need_the_proxy", secrets_without_the_proxy);
}

#[test]
fn status_is_observed_inside_the_wait() {
    each_identity("status_is_observed_inside_the_wait", status);
}
