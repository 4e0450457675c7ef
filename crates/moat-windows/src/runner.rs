//! The runner's protocol, as a state machine, and moat's side of it.
//!
//! In the elevated tier moat starts a runner process as the sandbox account
//! and talks to it over named pipes in the frames of [`crate::framing`].
//! Everything the runner decides (is this request acceptable, what to do
//! with each frame, when to kill the command and when to quit) lives here
//! without a single OS call, so it runs in unit tests on Linux; the Windows
//! part only turns [`Event`]s into calls to [`Session::handle`] and carries
//! out the [`Action`]s it returns, in order.
//!
//! The runner fails closed: a protocol error, or moat going away, ends the
//! command rather than leaving it running unsupervised.
//!
//! moat's side is [`spawn_frame`], which builds the first frame, and
//! [`Outcome`], which collects what the runner sends back.

use std::str::FromStr;
use std::time::Duration;

use crate::cmdline;
use crate::envblock;
use crate::errors;
use crate::framing::{self, Frame, Kind, SpawnRequest, MAX_FRAME};
use crate::limits::{self, Wanted};
use crate::offline_env;
use crate::sid::Sid;

/// The largest payload of one frame: the frame's length also covers the
/// kind byte.
const MAX_PAYLOAD: usize = MAX_FRAME - 1;

/// The runner's exit code when it stops for any reason other than the
/// command exiting: a protocol error, a refused request, moat going away.
const FAILURE: u32 = 1;

/// Everything the Windows layer needs to start the command, checked and
/// converted from a [`SpawnRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// For `CreateProcessW`: the program, then the arguments, quoted.
    pub command_line: String,
    /// For `CreateProcessW` with `CREATE_UNICODE_ENVIRONMENT`.
    pub environment: Vec<u16>,
    /// The working directory, as the request gave it.
    pub cwd: String,
    /// `(cols, rows)` of a pseudo console, if the command wants one.
    pub pty: Option<(u16, u16)>,
    /// The capability SIDs for the command's token, as the request gave
    /// them (each one known to parse).
    pub capability_sids: Vec<String>,
    /// The limits for the command's job, none of them 0; the Windows layer
    /// turns them into the job's settings with the machine's processor
    /// count (`crate::limits::settings`) and kills the job at the timeout.
    pub limits: Wanted,
}

/// Checks a spawn request and builds what starting it takes.
///
/// Refused: an empty program, a working directory that is not an absolute
/// Windows path (`C:\...`, `\\server\share\...`, or either behind the
/// verbatim prefix `\\?\`), a Microsoft Store program (it cannot run as
/// another account), a capability SID that does not parse, a pseudo
/// console of zero size (`CreatePseudoConsole` refuses one), a limit of 0
/// (`crate::limits::check`), and anything [`cmdline::join`] or
/// [`envblock::build`] refuses. The environment gains
/// git's `safe.directory` for the working directory, since the sandbox
/// account does not own the repository it works in.
pub fn prepare(req: &SpawnRequest) -> Result<Launch, String> {
    if req.program.is_empty() {
        return Err("spawn request has an empty program name".to_string());
    }
    let plain_cwd = windows_absolute(&req.cwd).ok_or_else(|| {
        format!(
            "working directory {:?} is not an absolute Windows path (C:\\... or \\\\server\\share\\...)",
            req.cwd
        )
    })?;
    if errors::store_packaged(&req.program) {
        return Err(errors::store_packaged_refusal(&req.program));
    }
    for text in &req.capability_sids {
        if let Err(err) = Sid::from_str(text) {
            return Err(format!("capability SID {text:?} is not a valid SID: {err}"));
        }
    }
    limits::check(&req.limits).map_err(|err| err.to_string())?;
    let pty = if req.pty {
        if req.cols == 0 || req.rows == 0 {
            return Err(format!(
                "pseudo console of {} columns and {} rows; both must be at least 1",
                req.cols, req.rows
            ));
        }
        Some((req.cols, req.rows))
    } else {
        None
    };

    let mut argv: Vec<&str> = Vec::with_capacity(req.args.len() + 1);
    argv.push(&req.program);
    argv.extend(req.args.iter().map(String::as_str));
    let command_line = cmdline::join(&argv).map_err(|err| format!("command line: {err}"))?;

    let mut vars = req.env.clone();
    // git compares safe.directory with the path it resolves itself, which
    // never has the verbatim prefix.
    offline_env::add_safe_directory(&mut vars, &plain_cwd);
    let environment = envblock::build(&vars).map_err(|err| format!("environment: {err}"))?;

    Ok(Launch {
        command_line,
        environment,
        cwd: req.cwd.clone(),
        pty,
        capability_sids: req.capability_sids.clone(),
        limits: req.limits,
    })
}

/// `path` without a verbatim prefix if it is an absolute Windows path,
/// `None` otherwise.
///
/// A drive path needs its separator (`C:foo` is relative to the drive's
/// current directory) and a UNC path needs a server and a share. Device
/// paths (`\\.\...`) are no working directory.
fn windows_absolute(path: &str) -> Option<String> {
    if path.contains('\0') {
        return None;
    }
    if let Some(rest) = path.strip_prefix(r"\\?\") {
        if let Some(unc) = strip_prefix_ignore_case(rest, r"UNC\") {
            let plain = format!(r"\\{unc}");
            return if unc_path(&plain) { Some(plain) } else { None };
        }
        return if drive_path(rest) {
            Some(rest.to_string())
        } else {
            None
        };
    }
    if drive_path(path) || unc_path(path) {
        Some(path.to_string())
    } else {
        None
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        text.get(prefix.len()..)
    } else {
        None
    }
}

fn is_separator(byte: u8) -> bool {
    byte == b'\\' || byte == b'/'
}

fn drive_path(path: &str) -> bool {
    match path.as_bytes() {
        [letter, b':', sep, ..] => letter.is_ascii_alphabetic() && is_separator(*sep),
        _ => false,
    }
}

fn unc_path(path: &str) -> bool {
    let rest = match path.strip_prefix(r"\\") {
        Some(rest) => rest,
        None => return false,
    };
    let mut parts = rest.split('\\');
    let server = parts.next().unwrap_or("");
    let share = parts.next().unwrap_or("");
    !server.is_empty() && server != "." && server != "?" && !share.is_empty()
}

/// What happened, as the Windows layer reports it to [`Session::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A frame from moat.
    Frame(Frame),
    /// The command wrote to standard output.
    ChildStdout(Vec<u8>),
    /// The command wrote to standard error.
    ChildStderr(Vec<u8>),
    /// The command exited with this code.
    ChildExited(u32),
    /// The command ran out of its timeout: the Windows layer killed its
    /// job, and its output was relayed.
    ChildTimedOut(Duration),
    /// moat's pipe ended: moat exited or was killed.
    PipeClosed,
}

/// What the Windows layer must do, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start the command in its job.
    Start(Launch),
    /// Write these bytes to the command's standard input.
    WriteStdin(Vec<u8>),
    /// Close the command's standard input.
    CloseStdin,
    /// Kill the command's job.
    Terminate,
    /// Resize the command's pseudoconsole to `(cols, rows)`.
    Resize(u16, u16),
    /// Send this frame to moat.
    Send(Frame),
    /// Exit the runner with this code. Always the last action.
    Exit(u32),
}

/// Where a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing received yet: the first frame must be a spawn request.
    AwaitingSpawn,
    /// The command was started.
    Running {
        /// Whether moat may still send standard input.
        stdin_open: bool,
        /// Whether the command has a pseudoconsole to resize.
        pty: bool,
    },
    /// The runner exits: nothing more is done.
    Finished,
}

/// The runner's protocol state machine: one per runner, for one command.
#[derive(Debug)]
pub struct Session {
    state: State,
}

impl Default for Session {
    fn default() -> Session {
        Session::new()
    }
}

impl Session {
    pub fn new() -> Session {
        Session {
            state: State::AwaitingSpawn,
        }
    }

    /// Whether the session has ended (an [`Action::Exit`] was returned).
    pub fn finished(&self) -> bool {
        self.state == State::Finished
    }

    /// What to do about `event`. Once an [`Action::Exit`] was returned,
    /// every event gives no action.
    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        match self.state {
            State::Finished => Vec::new(),
            State::AwaitingSpawn => self.before_start(event),
            State::Running { stdin_open, pty } => self.running(event, stdin_open, pty),
        }
    }

    /// Ends the session on a failure the Windows layer found itself: the
    /// command could not be started, moat's byte stream is not frames, a
    /// pipe failed. moat is told why (if its pipe still works, the send
    /// fails harmlessly otherwise) and a started command is killed.
    pub fn fail(&mut self, message: &str) -> Vec<Action> {
        match self.state {
            State::Finished => Vec::new(),
            State::AwaitingSpawn => self.refuse(message),
            State::Running { .. } => self.abort(message),
        }
    }

    fn before_start(&mut self, event: Event) -> Vec<Action> {
        match event {
            Event::Frame(frame) if frame.kind == Kind::Spawn => {
                let req = match SpawnRequest::decode(&frame.payload) {
                    Ok(req) => req,
                    Err(err) => return self.refuse(&format!("malformed spawn request: {err}")),
                };
                match prepare(&req) {
                    Ok(launch) => {
                        self.state = State::Running {
                            stdin_open: true,
                            pty: launch.pty.is_some(),
                        };
                        vec![Action::Start(launch)]
                    }
                    Err(err) => self.refuse(&format!("spawn request refused: {err}")),
                }
            }
            Event::Frame(frame) => self.refuse(&format!(
                "protocol error: the first frame must be Spawn, not {:?}",
                frame.kind
            )),
            // Nothing was started, so there is nothing to kill and no one
            // to tell.
            Event::PipeClosed => self.exit_now(),
            // The Windows layer reports a command it never started: a bug
            // there, so stop rather than guess.
            Event::ChildStdout(_)
            | Event::ChildStderr(_)
            | Event::ChildExited(_)
            | Event::ChildTimedOut(_) => {
                self.refuse("internal error: command output or exit before it was started")
            }
        }
    }

    fn running(&mut self, event: Event, stdin_open: bool, pty: bool) -> Vec<Action> {
        match event {
            Event::Frame(frame) => self.frame_while_running(frame, stdin_open, pty),
            Event::ChildStdout(bytes) => chunks(Kind::Stdout, &bytes),
            Event::ChildStderr(bytes) => chunks(Kind::Stderr, &bytes),
            Event::ChildExited(code) => {
                self.state = State::Finished;
                vec![
                    Action::Send(Frame::new(Kind::Exit, framing::exit_payload(code))),
                    Action::Exit(code),
                ]
            }
            // Reported as moat reports it on Linux: a line on standard
            // error, then exit code 124. Killing again is harmless, and
            // fails closed should the Windows layer have missed something.
            Event::ChildTimedOut(timeout) => {
                self.state = State::Finished;
                let message = format!("moat: {}\n", limits::timeout_message(timeout));
                let mut actions = vec![Action::Terminate];
                actions.extend(chunks(Kind::Stderr, message.as_bytes()));
                actions.push(Action::Send(Frame::new(
                    Kind::Exit,
                    framing::exit_payload(limits::TIMEOUT_EXIT),
                )));
                actions.push(Action::Exit(limits::TIMEOUT_EXIT));
                actions
            }
            // No one is left to supervise the command: kill it.
            Event::PipeClosed => {
                self.state = State::Finished;
                vec![Action::Terminate, Action::Exit(FAILURE)]
            }
        }
    }

    fn frame_while_running(&mut self, frame: Frame, stdin_open: bool, pty: bool) -> Vec<Action> {
        match frame.kind {
            Kind::Stdin if !stdin_open => {
                self.abort("protocol error: Stdin frame after CloseStdin")
            }
            Kind::Stdin if frame.payload.is_empty() => Vec::new(),
            Kind::Stdin => vec![Action::WriteStdin(frame.payload)],
            // Closing twice changes nothing, so it is no error.
            Kind::CloseStdin if !stdin_open => Vec::new(),
            Kind::CloseStdin => {
                self.state = State::Running {
                    stdin_open: false,
                    pty,
                };
                vec![Action::CloseStdin]
            }
            // A malformed size is a protocol error like any other; a
            // well-formed one for a command without a pseudoconsole has
            // nothing to resize.
            Kind::Resize => match framing::parse_resize(&frame.payload) {
                Err(err) => self.abort(&format!("protocol error: {err}")),
                Ok(_) if !pty => Vec::new(),
                Ok((cols, rows)) => vec![Action::Resize(cols, rows)],
            },
            // The command's exit follows as ChildExited, which reports the
            // code to moat as usual. Killing twice is harmless.
            Kind::Terminate => vec![Action::Terminate],
            Kind::Spawn => self.abort("protocol error: second Spawn frame"),
            Kind::Error => self.abort(&format!(
                "moat reported an error: {}",
                framing::parse_error(&frame.payload)
            )),
            Kind::Stdout | Kind::Stderr | Kind::Exit => self.abort(&format!(
                "protocol error: moat sent a {:?} frame, which only the runner sends",
                frame.kind
            )),
        }
    }

    /// Before the command starts: report and exit.
    fn refuse(&mut self, message: &str) -> Vec<Action> {
        self.state = State::Finished;
        vec![
            Action::Send(Frame::new(Kind::Error, framing::error_payload(message))),
            Action::Exit(FAILURE),
        ]
    }

    /// After the command started: kill it first, then report and exit.
    fn abort(&mut self, message: &str) -> Vec<Action> {
        self.state = State::Finished;
        vec![
            Action::Terminate,
            Action::Send(Frame::new(Kind::Error, framing::error_payload(message))),
            Action::Exit(FAILURE),
        ]
    }

    fn exit_now(&mut self) -> Vec<Action> {
        self.state = State::Finished;
        vec![Action::Exit(FAILURE)]
    }
}

/// `bytes` as frames of `kind`, each small enough to encode; none for no
/// bytes.
fn chunks(kind: Kind, bytes: &[u8]) -> Vec<Action> {
    bytes
        .chunks(MAX_PAYLOAD)
        .map(|chunk| Action::Send(Frame::new(kind, chunk.to_vec())))
        .collect()
}

/// moat's first frame to the runner.
///
/// The request is checked with [`prepare`] first, so that a request the
/// runner would refuse fails here, before a runner is started, with the
/// same message.
pub fn spawn_frame(req: &SpawnRequest) -> Result<Frame, String> {
    prepare(req)?;
    let payload = req.encode();
    if payload.len() > MAX_PAYLOAD {
        return Err(format!(
            "spawn request of {} bytes; a frame holds at most {MAX_PAYLOAD}",
            payload.len()
        ));
    }
    Ok(Frame::new(Kind::Spawn, payload))
}

/// What moat collects from the runner's frames.
///
/// Output is appended to `stdout` and `stderr`. A caller that streams it
/// instead takes it out after each frame with [`Outcome::take_stdout`] and
/// [`Outcome::take_stderr`], so the buffers hold one frame's worth; a
/// caller that collects reads the fields once the exit code came.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The command's exit code, once the Exit frame came.
    pub exit: Option<u32>,
}

impl Outcome {
    pub fn new() -> Outcome {
        Outcome::default()
    }

    /// Takes one frame from the runner: `Ok(Some(code))` for the Exit
    /// frame, `Ok(None)` for output, and `Err` with the runner's message for
    /// an Error frame, or with what is wrong for a malformed Exit frame, a
    /// frame only moat sends, or any frame after Exit.
    pub fn absorb(&mut self, frame: &Frame) -> Result<Option<u32>, String> {
        if let Some(code) = self.exit {
            return Err(format!(
                "runner sent a {:?} frame after the exit code {code}",
                frame.kind
            ));
        }
        match frame.kind {
            Kind::Stdout => {
                self.stdout.extend_from_slice(&frame.payload);
                Ok(None)
            }
            Kind::Stderr => {
                self.stderr.extend_from_slice(&frame.payload);
                Ok(None)
            }
            Kind::Exit => {
                let code = framing::parse_exit(&frame.payload)
                    .map_err(|err| format!("runner sent a malformed exit frame: {err}"))?;
                self.exit = Some(code);
                Ok(Some(code))
            }
            Kind::Error => Err(format!("runner: {}", framing::parse_error(&frame.payload))),
            Kind::Spawn | Kind::Stdin | Kind::CloseStdin | Kind::Terminate | Kind::Resize => {
                Err(format!(
                    "runner sent a {:?} frame, which only moat sends",
                    frame.kind
                ))
            }
        }
    }

    /// The standard output received since the last take.
    pub fn take_stdout(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.stdout)
    }

    /// The standard error received since the last take.
    pub fn take_stderr(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.stderr)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::envblock;

    const SID_A: &str = "S-1-5-21-1-2-3-4";
    const SID_B: &str = "S-1-5-21-4000000000-17-99-123456";

    fn request() -> SpawnRequest {
        SpawnRequest {
            program: r"C:\Program Files\Git\bin\git.exe".to_string(),
            args: vec!["status".to_string(), "two words".to_string()],
            cwd: r"C:\Users\ana\repo".to_string(),
            env: vec![
                ("PATH".to_string(), r"C:\Windows\System32".to_string()),
                ("TEMP".to_string(), r"C:\Temp".to_string()),
            ],
            writable_roots: vec![r"C:\Users\ana\repo".to_string()],
            capability_sids: vec![SID_A.to_string(), SID_B.to_string()],
            pty: false,
            cols: 0,
            rows: 0,
            limits: Wanted::default(),
        }
    }

    fn spawn(req: &SpawnRequest) -> Event {
        Event::Frame(Frame::new(Kind::Spawn, req.encode()))
    }

    fn frame(kind: Kind, payload: &[u8]) -> Event {
        Event::Frame(Frame::new(kind, payload.to_vec()))
    }

    fn error_text(action: &Action) -> String {
        match action {
            Action::Send(frame) if frame.kind == Kind::Error => {
                framing::parse_error(&frame.payload)
            }
            other => format!("not an error frame: {other:?}"),
        }
    }

    fn started() -> Session {
        let mut session = Session::new();
        let actions = session.handle(spawn(&request()));
        assert!(matches!(actions.as_slice(), [Action::Start(_)]));
        session
    }

    fn env_of(launch: &Launch) -> Vec<(String, String)> {
        envblock::parse(&launch.environment).unwrap()
    }

    fn lookup<'a>(vars: &'a [(String, String)], name: &str) -> Option<&'a str> {
        vars.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn prepare_builds_the_launch() {
        let launch = prepare(&request()).unwrap();
        assert_eq!(
            launch.command_line,
            r#""C:\Program Files\Git\bin\git.exe" status "two words""#
        );
        assert_eq!(launch.cwd, r"C:\Users\ana\repo");
        assert_eq!(launch.pty, None);
        assert_eq!(launch.capability_sids, [SID_A, SID_B]);
        let vars = env_of(&launch);
        assert_eq!(lookup(&vars, "PATH"), Some(r"C:\Windows\System32"));
        assert_eq!(lookup(&vars, "TEMP"), Some(r"C:\Temp"));
    }

    #[test]
    fn prepare_injects_safe_directory() {
        let vars = env_of(&prepare(&request()).unwrap());
        assert_eq!(lookup(&vars, "GIT_CONFIG_COUNT"), Some("1"));
        assert_eq!(lookup(&vars, "GIT_CONFIG_KEY_0"), Some("safe.directory"));
        assert_eq!(
            lookup(&vars, "GIT_CONFIG_VALUE_0"),
            Some("C:/Users/ana/repo")
        );

        // After the caller's own git config entries, which stay.
        let mut req = request();
        req.env.push(("GIT_CONFIG_COUNT".into(), "1".into()));
        req.env
            .push(("GIT_CONFIG_KEY_0".into(), "core.autocrlf".into()));
        req.env.push(("GIT_CONFIG_VALUE_0".into(), "false".into()));
        let vars = env_of(&prepare(&req).unwrap());
        assert_eq!(lookup(&vars, "GIT_CONFIG_COUNT"), Some("2"));
        assert_eq!(lookup(&vars, "GIT_CONFIG_KEY_0"), Some("core.autocrlf"));
        assert_eq!(lookup(&vars, "GIT_CONFIG_KEY_1"), Some("safe.directory"));
        assert_eq!(
            lookup(&vars, "GIT_CONFIG_VALUE_1"),
            Some("C:/Users/ana/repo")
        );

        // A verbatim working directory is kept for the launch, but git gets
        // the path it resolves itself.
        let mut req = request();
        req.cwd = r"\\?\D:\work".into();
        let launch = prepare(&req).unwrap();
        assert_eq!(launch.cwd, r"\\?\D:\work");
        assert_eq!(
            lookup(&env_of(&launch), "GIT_CONFIG_VALUE_0"),
            Some("D:/work")
        );
        req.cwd = r"\\?\UNC\srv\share\repo".into();
        let launch = prepare(&req).unwrap();
        assert_eq!(
            lookup(&env_of(&launch), "GIT_CONFIG_VALUE_0"),
            Some("//srv/share/repo")
        );
    }

    #[test]
    fn prepare_accepts_absolute_windows_paths() {
        for cwd in [
            r"C:\",
            r"c:\x",
            "D:/forward/slashes",
            r"\\server\share",
            r"\\server\share\dir",
            r"\\?\C:\long\path",
            r"\\?\unc\server\share\dir",
        ] {
            let mut req = request();
            req.cwd = cwd.to_string();
            assert!(prepare(&req).is_ok(), "{cwd}");
        }
    }

    #[test]
    fn prepare_refuses_relative_cwd() {
        for cwd in [
            "",
            "repo",
            r"repo\sub",
            r"C:repo",
            "C:",
            r"\rooted\no\drive",
            "/home/ana",
            r"\\server",
            r"\\server\",
            r"\\\share",
            r"\\.\pipe\x",
            r"\\?\relative",
            r"\\?\UNC\server",
            "1:\\x",
            "é:\\x",
            "C:\\a\0b",
        ] {
            let mut req = request();
            req.cwd = cwd.to_string();
            let err = prepare(&req).unwrap_err();
            assert!(err.contains("working directory"), "{cwd}: {err}");
        }
    }

    #[test]
    fn prepare_refuses_empty_program() {
        let mut req = request();
        req.program.clear();
        let err = prepare(&req).unwrap_err();
        assert!(err.contains("empty program"), "{err}");
    }

    #[test]
    fn prepare_refuses_store_packages() {
        for program in [
            r"C:\Users\ana\AppData\Local\Microsoft\WindowsApps\pwsh.exe",
            r"C:\Program Files\WindowsApps\Microsoft.PowerShell_7.4.1.0_x64__8wekyb3d8bbwe\pwsh.exe",
        ] {
            let mut req = request();
            req.program = program.to_string();
            assert_eq!(
                prepare(&req).unwrap_err(),
                errors::store_packaged_refusal(program)
            );
        }
    }

    #[test]
    fn prepare_refuses_bad_sids() {
        for bad in ["", "S-1", "not a sid", "S-1-5-21-x", "S-2-5-21-1"] {
            let mut req = request();
            req.capability_sids.push(bad.to_string());
            let err = prepare(&req).unwrap_err();
            assert!(err.contains("capability SID"), "{bad}: {err}");
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
    }

    #[test]
    fn prepare_refuses_what_windows_cannot_carry() {
        let mut req = request();
        req.args.push("a\0b".into());
        assert!(prepare(&req).unwrap_err().contains("NUL"));

        let mut req = request();
        req.program = r#"C:\bad"name.exe"#.into();
        assert!(prepare(&req).unwrap_err().starts_with("command line"));

        let mut req = request();
        req.env.push(("A=B".into(), "x".into()));
        assert!(prepare(&req).unwrap_err().starts_with("environment"));
    }

    #[test]
    fn prepare_pty_size() {
        let mut req = request();
        req.pty = true;
        req.cols = 120;
        req.rows = 40;
        assert_eq!(prepare(&req).unwrap().pty, Some((120, 40)));
        for (cols, rows) in [(0, 40), (120, 0), (0, 0)] {
            req.cols = cols;
            req.rows = rows;
            assert!(prepare(&req).unwrap_err().contains("pseudo console"));
        }
        // Without a pseudo console the size is not looked at.
        req.pty = false;
        assert_eq!(prepare(&req).unwrap().pty, None);
    }

    #[test]
    fn prepare_carries_and_checks_the_limits() {
        let mut req = request();
        req.limits = Wanted {
            timeout_ms: Some(30_000),
            processes: Some(10),
            memory: Some(1 << 30),
            cpu_millis: Some(500),
        };
        assert_eq!(prepare(&req).unwrap().limits, req.limits);
        req.limits.memory = Some(0);
        let err = prepare(&req).unwrap_err();
        assert!(err.contains("memory is 0"), "{err}");
        // Refused by the runner as by moat, before anything starts.
        let mut session = Session::new();
        let actions = session.handle(spawn(&req));
        assert!(error_text(&actions[0]).contains("memory is 0"));
        assert_eq!(actions[1], Action::Exit(1));
        assert!(spawn_frame(&req).unwrap_err().contains("memory is 0"));
    }

    #[test]
    fn a_timeout_is_reported_with_exit_code_124() {
        let mut session = started();
        session.handle(Event::ChildStdout(b"partial".to_vec()));
        let actions = session.handle(Event::ChildTimedOut(Duration::from_secs(30)));
        assert_eq!(actions.len(), 4, "{actions:?}");
        assert_eq!(actions[0], Action::Terminate);
        assert_eq!(
            actions[1],
            Action::Send(Frame::new(
                Kind::Stderr,
                b"moat: timed out after 30s: killed the command and everything it started\n"
                    .to_vec()
            ))
        );
        assert_eq!(
            actions[2],
            Action::Send(Frame::new(Kind::Exit, framing::exit_payload(124)))
        );
        assert_eq!(actions[3], Action::Exit(124));
        assert!(session.finished());
        assert_eq!(session.handle(Event::ChildExited(1)), []);
    }

    #[test]
    fn resize_reaches_a_pseudoconsole_only() {
        let mut req = request();
        req.pty = true;
        req.cols = 80;
        req.rows = 24;
        let mut session = Session::new();
        assert!(matches!(
            session.handle(spawn(&req)).as_slice(),
            [Action::Start(_)]
        ));
        let resize = |c, r| frame(Kind::Resize, &framing::resize_payload(c, r));
        assert_eq!(session.handle(resize(132, 43)), [Action::Resize(132, 43)]);
        // Still after standard input closed.
        session.handle(frame(Kind::CloseStdin, b""));
        assert_eq!(session.handle(resize(100, 30)), [Action::Resize(100, 30)]);
        assert!(!session.finished());

        // Without a pseudoconsole there is nothing to resize.
        let mut session = started();
        assert_eq!(session.handle(resize(132, 43)), []);
        assert!(!session.finished());
    }

    #[test]
    fn a_malformed_resize_kills_the_command() {
        for payload in [&b"\x50\x00\x18"[..], &framing::resize_payload(0, 24)] {
            let mut session = started();
            let actions = session.handle(frame(Kind::Resize, payload));
            assert_eq!(actions[0], Action::Terminate);
            assert!(error_text(&actions[1]).contains("protocol error"));
            assert_eq!(actions[2], Action::Exit(1));
        }
        // Before the spawn it is a wrong first frame.
        let mut session = Session::new();
        let actions = session.handle(frame(Kind::Resize, &framing::resize_payload(80, 24)));
        assert!(error_text(&actions[0]).contains("first frame must be Spawn"));
    }

    #[test]
    fn whole_session() {
        let mut session = Session::new();
        assert!(!session.finished());
        let actions = session.handle(spawn(&request()));
        assert_eq!(actions, [Action::Start(prepare(&request()).unwrap())]);

        assert_eq!(
            session.handle(frame(Kind::Stdin, b"input")),
            [Action::WriteStdin(b"input".to_vec())]
        );
        // Nothing to write for an empty frame.
        assert_eq!(session.handle(frame(Kind::Stdin, b"")), []);
        assert_eq!(
            session.handle(frame(Kind::CloseStdin, b"")),
            [Action::CloseStdin]
        );
        // Closing again changes nothing.
        assert_eq!(session.handle(frame(Kind::CloseStdin, b"")), []);

        assert_eq!(
            session.handle(Event::ChildStdout(b"out".to_vec())),
            [Action::Send(Frame::new(Kind::Stdout, b"out".to_vec()))]
        );
        assert_eq!(
            session.handle(Event::ChildStderr(b"err".to_vec())),
            [Action::Send(Frame::new(Kind::Stderr, b"err".to_vec()))]
        );
        assert_eq!(session.handle(Event::ChildStdout(Vec::new())), []);

        assert_eq!(
            session.handle(Event::ChildExited(3)),
            [
                Action::Send(Frame::new(Kind::Exit, framing::exit_payload(3))),
                Action::Exit(3)
            ]
        );
        assert!(session.finished());
    }

    #[test]
    fn nothing_happens_after_exit() {
        let mut session = started();
        session.handle(Event::ChildExited(0));
        for event in [
            spawn(&request()),
            frame(Kind::Stdin, b"x"),
            frame(Kind::Terminate, b""),
            Event::ChildStdout(b"late".to_vec()),
            Event::ChildExited(1),
            Event::PipeClosed,
        ] {
            assert_eq!(session.handle(event), []);
        }
        assert_eq!(session.fail("late"), []);
    }

    #[test]
    fn terminate_then_exit_code() {
        let mut session = started();
        assert_eq!(
            session.handle(frame(Kind::Terminate, b"")),
            [Action::Terminate]
        );
        // Asking twice is harmless; the session waits for the exit.
        assert_eq!(
            session.handle(frame(Kind::Terminate, b"")),
            [Action::Terminate]
        );
        assert!(!session.finished());
        let actions = session.handle(Event::ChildExited(0xc000_013a));
        assert_eq!(actions.last(), Some(&Action::Exit(0xc000_013a)));
    }

    #[test]
    fn wrong_first_frame() {
        for kind in Kind::ALL.iter().copied().filter(|k| *k != Kind::Spawn) {
            let mut session = Session::new();
            let actions = session.handle(frame(kind, b"x"));
            assert_eq!(actions.len(), 2, "{kind:?}");
            assert!(error_text(&actions[0]).contains("first frame must be Spawn"));
            assert_eq!(actions[1], Action::Exit(1));
            assert!(session.finished());
        }
    }

    #[test]
    fn stdin_before_start_is_an_error() {
        let mut session = Session::new();
        let actions = session.handle(frame(Kind::Stdin, b"early"));
        assert!(error_text(&actions[0]).contains("Stdin"));
        assert_eq!(actions[1], Action::Exit(1));
        // No Start and no WriteStdin, ever.
        assert_eq!(session.handle(spawn(&request())), []);
    }

    #[test]
    fn malformed_or_refused_spawn() {
        let mut session = Session::new();
        let actions = session.handle(frame(Kind::Spawn, b"\x09junk"));
        assert!(error_text(&actions[0]).starts_with("malformed spawn request"));
        assert_eq!(actions[1], Action::Exit(1));

        let mut req = request();
        req.cwd = "relative".into();
        let mut session = Session::new();
        let actions = session.handle(spawn(&req));
        let text = error_text(&actions[0]);
        assert!(text.starts_with("spawn request refused"), "{text}");
        assert!(text.contains("working directory"), "{text}");
        assert_eq!(actions[1], Action::Exit(1));
    }

    #[test]
    fn double_spawn_kills_the_command() {
        let mut session = started();
        let actions = session.handle(spawn(&request()));
        assert_eq!(actions.len(), 3);
        assert_eq!(actions[0], Action::Terminate);
        assert!(error_text(&actions[1]).contains("second Spawn"));
        assert_eq!(actions[2], Action::Exit(1));
        assert!(session.finished());
    }

    #[test]
    fn runner_only_frames_from_moat_kill_the_command() {
        for kind in [Kind::Stdout, Kind::Stderr, Kind::Exit] {
            let mut session = started();
            let actions = session.handle(frame(kind, b"\0\0\0\0"));
            assert_eq!(actions[0], Action::Terminate, "{kind:?}");
            assert!(error_text(&actions[1]).contains("only the runner sends"));
            assert_eq!(actions[2], Action::Exit(1));
        }
        let mut session = started();
        let actions = session.handle(frame(Kind::Error, b"moat gave up"));
        assert_eq!(actions[0], Action::Terminate);
        assert!(error_text(&actions[1]).contains("moat gave up"));
        assert_eq!(actions[2], Action::Exit(1));
    }

    #[test]
    fn stdin_after_close_kills_the_command() {
        let mut session = started();
        session.handle(frame(Kind::CloseStdin, b""));
        let actions = session.handle(frame(Kind::Stdin, b"late"));
        assert_eq!(actions[0], Action::Terminate);
        assert!(error_text(&actions[1]).contains("after CloseStdin"));
        assert_eq!(actions[2], Action::Exit(1));
    }

    #[test]
    fn moat_going_away_mid_run() {
        let mut session = started();
        session.handle(Event::ChildStdout(b"partial".to_vec()));
        assert_eq!(
            session.handle(Event::PipeClosed),
            [Action::Terminate, Action::Exit(1)]
        );
        assert!(session.finished());
        // The killed command's exit is reported to no one.
        assert_eq!(session.handle(Event::ChildExited(1)), []);
    }

    #[test]
    fn moat_going_away_before_spawn() {
        let mut session = Session::new();
        assert_eq!(session.handle(Event::PipeClosed), [Action::Exit(1)]);
        assert!(session.finished());
    }

    #[test]
    fn child_events_before_start_stop_the_runner() {
        for event in [
            Event::ChildStdout(b"x".to_vec()),
            Event::ChildStderr(b"x".to_vec()),
            Event::ChildExited(0),
            Event::ChildTimedOut(Duration::from_secs(1)),
        ] {
            let mut session = Session::new();
            let actions = session.handle(event);
            assert!(error_text(&actions[0]).contains("internal error"));
            assert_eq!(actions[1], Action::Exit(1));
        }
    }

    #[test]
    fn fail_reports_and_kills() {
        let mut session = Session::new();
        let actions = session.fail("CreateProcessAsUserW failed");
        assert_eq!(error_text(&actions[0]), "CreateProcessAsUserW failed");
        assert_eq!(actions[1], Action::Exit(1));

        let mut session = started();
        let actions = session.fail("pipe broke");
        assert_eq!(actions[0], Action::Terminate);
        assert_eq!(error_text(&actions[1]), "pipe broke");
        assert_eq!(actions[2], Action::Exit(1));
        assert!(session.finished());
    }

    #[test]
    fn large_output_is_chunked() {
        let mut session = started();
        let len = 2 * MAX_PAYLOAD + 10;
        let output: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let actions = session.handle(Event::ChildStderr(output.clone()));
        assert_eq!(actions.len(), 3);
        let frames: Vec<&Frame> = actions
            .iter()
            .filter_map(|action| match action {
                Action::Send(frame) => Some(frame),
                _ => None,
            })
            .collect();
        assert_eq!(frames.len(), 3);
        let mut joined = Vec::new();
        for (i, frame) in frames.iter().enumerate() {
            assert_eq!(frame.kind, Kind::Stderr);
            let want = if i < 2 { MAX_PAYLOAD } else { 10 };
            assert_eq!(frame.payload.len(), want);
            // Every chunk fits a frame on the wire.
            assert!(frame.encode().is_ok());
            joined.extend_from_slice(&frame.payload);
        }
        assert_eq!(joined, output);

        // Exactly one frame's worth is one frame.
        let actions = session.handle(Event::ChildStdout(vec![1; MAX_PAYLOAD]));
        assert_eq!(actions.len(), 1);
    }

    #[test]
    fn session_frames_round_trip_through_the_wire() {
        // moat's frame, through the decoder, drives the session; the
        // session's frames, through the decoder, feed moat's outcome.
        let mut decoder = framing::Decoder::new();
        decoder.push(&spawn_frame(&request()).unwrap().encode().unwrap());
        let mut session = Session::new();
        let first = decoder.next().unwrap().unwrap();
        assert!(matches!(
            session.handle(Event::Frame(first)).as_slice(),
            [Action::Start(_)]
        ));

        let mut sent = Vec::new();
        for event in [
            Event::ChildStdout(b"hello ".to_vec()),
            Event::ChildStderr(b"warn".to_vec()),
            Event::ChildStdout(b"world".to_vec()),
            Event::ChildExited(7),
        ] {
            for action in session.handle(event) {
                if let Action::Send(frame) = action {
                    sent.extend(frame.encode().unwrap());
                }
            }
        }
        let mut decoder = framing::Decoder::new();
        decoder.push(&sent);
        let mut outcome = Outcome::new();
        let mut code = None;
        while let Some(frame) = decoder.next().unwrap() {
            if let Some(c) = outcome.absorb(&frame).unwrap() {
                code = Some(c);
            }
        }
        assert_eq!(code, Some(7));
        assert_eq!(outcome.stdout, b"hello world");
        assert_eq!(outcome.stderr, b"warn");
    }

    #[test]
    fn spawn_frame_checks_first() {
        let frame = spawn_frame(&request()).unwrap();
        assert_eq!(frame.kind, Kind::Spawn);
        assert_eq!(SpawnRequest::decode(&frame.payload), Ok(request()));

        let mut req = request();
        req.cwd = "relative".into();
        assert!(spawn_frame(&req).unwrap_err().contains("working directory"));

        // Too large for one frame, though each part is acceptable.
        let mut req = request();
        req.env = (0..40)
            .map(|i| (format!("V{i}"), "x".repeat(30_000)))
            .collect();
        let err = spawn_frame(&req).unwrap_err();
        assert!(err.contains("a frame holds at most"), "{err}");
    }

    #[test]
    fn outcome_absorbs_a_sequence() {
        let mut outcome = Outcome::new();
        assert_eq!(
            outcome.absorb(&Frame::new(Kind::Stdout, b"a".to_vec())),
            Ok(None)
        );
        assert_eq!(
            outcome.absorb(&Frame::new(Kind::Stderr, b"e".to_vec())),
            Ok(None)
        );
        assert_eq!(
            outcome.absorb(&Frame::new(Kind::Stdout, b"b".to_vec())),
            Ok(None)
        );
        assert_eq!(outcome.take_stdout(), b"ab");
        assert!(outcome.stdout.is_empty());
        assert_eq!(
            outcome.absorb(&Frame::new(Kind::Stdout, b"c".to_vec())),
            Ok(None)
        );
        assert_eq!(
            outcome.absorb(&Frame::new(Kind::Exit, framing::exit_payload(42))),
            Ok(Some(42))
        );
        assert_eq!(outcome.exit, Some(42));
        assert_eq!(outcome.stdout, b"c");
        assert_eq!(outcome.take_stderr(), b"e");
        // Nothing may follow the exit.
        let err = outcome
            .absorb(&Frame::new(Kind::Stdout, b"late".to_vec()))
            .unwrap_err();
        assert!(err.contains("after the exit code 42"), "{err}");
    }

    #[test]
    fn outcome_error_frame() {
        let mut outcome = Outcome::new();
        outcome
            .absorb(&Frame::new(Kind::Stdout, b"some".to_vec()))
            .unwrap();
        let err = outcome
            .absorb(&Frame::new(
                Kind::Error,
                framing::error_payload("spawn request refused: bad cwd"),
            ))
            .unwrap_err();
        assert_eq!(err, "runner: spawn request refused: bad cwd");
        assert_eq!(outcome.stdout, b"some");
        assert_eq!(outcome.exit, None);
    }

    #[test]
    fn outcome_refuses_what_the_runner_must_not_send() {
        for kind in [
            Kind::Spawn,
            Kind::Stdin,
            Kind::CloseStdin,
            Kind::Terminate,
            Kind::Resize,
        ] {
            let err = Outcome::new()
                .absorb(&Frame::new(kind, Vec::new()))
                .unwrap_err();
            assert!(err.contains("only moat sends"), "{kind:?}: {err}");
        }
        for bad in [&b""[..], b"\x01\x02\x03", b"\x01\x02\x03\x04\x05"] {
            let err = Outcome::new()
                .absorb(&Frame::new(Kind::Exit, bad.to_vec()))
                .unwrap_err();
            assert!(err.contains("malformed exit frame"), "{err}");
        }
    }

    #[test]
    fn session_survives_noise() {
        // No frame sequence may panic the session, and once it exits it
        // stays silent; an Exit action is always last.
        let kinds = Kind::ALL;
        let valid = request().encode();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2_000 {
            let mut session = Session::new();
            for _ in 0..6 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let event = match state % 5 {
                    0 => spawn(&request()),
                    1 => {
                        let mut bytes = valid.clone();
                        let at = (state >> 8) as usize % bytes.len();
                        bytes[at] = (state >> 40) as u8;
                        Event::Frame(Frame::new(Kind::Spawn, bytes))
                    }
                    2 => frame(kinds[(state >> 8) as usize % kinds.len()], b"xy"),
                    3 => Event::ChildStdout(vec![0; (state >> 8) as usize % 8]),
                    _ => Event::ChildExited((state >> 16) as u32),
                };
                let was_finished = session.finished();
                let actions = session.handle(event);
                if was_finished {
                    assert!(actions.is_empty());
                }
                if let Some(at) = actions.iter().position(|a| matches!(a, Action::Exit(_))) {
                    assert_eq!(at, actions.len() - 1);
                    assert!(session.finished());
                }
            }
        }
    }
}
