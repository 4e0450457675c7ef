//! The runner's main loop, without the OS.
//!
//! [`crate::runner::Session`] decides what to do about each event; this
//! module carries its [`Action`]s out through a small [`Host`] (the
//! Windows calls in `sys::runner`, a recording fake in the tests) and
//! handles what the session cannot see: the command failing to start, and
//! moat's pipe breaking while the runner writes to it. Both end the
//! command, since the runner fails closed.
//!
//! The Windows layer feeds [`Input`]s from several threads (moat's pipe,
//! the command's output, its exit) into one channel and passes each to
//! [`Driver::step`] on the main thread, which alone touches the session.

use std::collections::VecDeque;

use crate::framing::{Decoder, Frame};
use crate::runner::{Action, Event, Launch, Session};

/// What the Windows layer reports to [`Driver::step`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Something the session knows how to handle.
    Event(Event),
    /// A failure the Windows layer found itself (moat's bytes are not
    /// frames, the command could not be waited for), for
    /// [`Session::fail`].
    Fail(String),
}

/// Turns the bytes read from moat's pipe into [`Input`]s.
///
/// A stream that stops being frames gives one [`Input::Fail`] and nothing
/// after it: the reader can stop reading.
#[derive(Debug, Default)]
pub struct Inbound {
    decoder: Decoder,
    failed: bool,
}

impl Inbound {
    pub fn new() -> Inbound {
        Inbound::default()
    }

    /// The frames completed by `bytes`, then the failure if the stream
    /// broke.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Input> {
        if self.failed {
            return Vec::new();
        }
        self.decoder.push(bytes);
        let mut inputs = Vec::new();
        loop {
            match self.decoder.next() {
                Ok(Some(frame)) => inputs.push(Input::Event(Event::Frame(frame))),
                Ok(None) => return inputs,
                Err(err) => {
                    self.failed = true;
                    inputs.push(Input::Fail(format!(
                        "protocol error: moat's pipe does not carry frames: {err}"
                    )));
                    return inputs;
                }
            }
        }
    }

    /// Whether the stream broke; nothing more will be returned.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// The pipe ended (moat closed it, exited or was killed). A frame cut
    /// short changes nothing: either way no one is left to supervise the
    /// command.
    pub fn closed(&mut self) -> Vec<Input> {
        if self.failed {
            return Vec::new();
        }
        self.failed = true;
        vec![Input::Event(Event::PipeClosed)]
    }
}

/// The Windows calls the loop makes. Only [`Host::start`] and
/// [`Host::send`] report failure: the others act on a command that may
/// already be gone, where failing changes nothing.
pub trait Host {
    /// Starts the command in its job (token, pipes or pseudoconsole,
    /// suspended start, job, resume), with threads that feed its output
    /// and exit back as inputs.
    fn start(&mut self, launch: &Launch) -> Result<(), String>;
    /// Queues bytes for the command's standard input.
    fn write_stdin(&mut self, bytes: Vec<u8>);
    /// Closes the command's standard input once the queued bytes are out.
    fn close_stdin(&mut self);
    /// Kills every process of the command's job, if it was started.
    fn terminate(&mut self);
    /// Resizes the command's pseudoconsole, if it has one still open.
    fn resize(&mut self, cols: u16, rows: u16);
    /// Writes a frame to moat.
    fn send(&mut self, frame: &Frame) -> Result<(), String>;
}

/// Drives one [`Session`] through a [`Host`].
#[derive(Debug, Default)]
pub struct Driver {
    session: Session,
    /// A write to moat failed: nothing more is sent.
    moat_gone: bool,
}

impl Driver {
    pub fn new() -> Driver {
        Driver::default()
    }

    /// Handles `input` and carries out what the session asks, in order;
    /// the runner's exit code once it must exit.
    ///
    /// - A command that fails to start is reported to the session as a
    ///   failure, which kills what may have started and tells moat why.
    /// - A failed write to moat means moat is gone: later frames are
    ///   dropped, and the session hears [`Event::PipeClosed`] once the
    ///   current actions are done, which kills the command. An exit that
    ///   was already decided (the command's own) still happens.
    pub fn step<H: Host>(&mut self, host: &mut H, input: Input) -> Option<u32> {
        let first = match input {
            Input::Event(event) => self.session.handle(event),
            Input::Fail(message) => self.session.fail(&message),
        };
        let mut pending: VecDeque<Action> = first.into();
        loop {
            while let Some(action) = pending.pop_front() {
                match action {
                    Action::Start(launch) => {
                        if let Err(err) = host.start(&launch) {
                            pending = self
                                .session
                                .fail(&format!("starting the command: {err}"))
                                .into();
                        }
                    }
                    Action::WriteStdin(bytes) => host.write_stdin(bytes),
                    Action::CloseStdin => host.close_stdin(),
                    Action::Terminate => host.terminate(),
                    Action::Resize(cols, rows) => host.resize(cols, rows),
                    Action::Send(frame) => {
                        if !self.moat_gone && host.send(&frame).is_err() {
                            self.moat_gone = true;
                        }
                    }
                    Action::Exit(code) => return Some(code),
                }
            }
            if !self.moat_gone || self.session.finished() {
                return None;
            }
            pending = self.session.handle(Event::PipeClosed).into();
        }
    }

    /// Whether the session has ended.
    pub fn finished(&self) -> bool {
        self.session.finished()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::framing::{self, Kind, SpawnRequest};

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Call {
        Start(String),
        WriteStdin(Vec<u8>),
        CloseStdin,
        Terminate,
        Resize(u16, u16),
        Send(Kind, Vec<u8>),
    }

    /// Records every call; fails `start` when told, and every `send` from
    /// the `fail_send_at`-th on (moat gone for good).
    #[derive(Debug, Default)]
    struct Fake {
        calls: Vec<Call>,
        start_error: Option<String>,
        fail_send_at: Option<usize>,
        sends: usize,
    }

    impl Host for Fake {
        fn start(&mut self, launch: &Launch) -> Result<(), String> {
            self.calls.push(Call::Start(launch.command_line.clone()));
            match &self.start_error {
                Some(err) => Err(err.clone()),
                None => Ok(()),
            }
        }
        fn write_stdin(&mut self, bytes: Vec<u8>) {
            self.calls.push(Call::WriteStdin(bytes));
        }
        fn close_stdin(&mut self) {
            self.calls.push(Call::CloseStdin);
        }
        fn terminate(&mut self) {
            self.calls.push(Call::Terminate);
        }
        fn resize(&mut self, cols: u16, rows: u16) {
            self.calls.push(Call::Resize(cols, rows));
        }
        fn send(&mut self, frame: &Frame) -> Result<(), String> {
            self.sends += 1;
            if let Some(at) = self.fail_send_at {
                if self.sends >= at {
                    return Err("broken pipe".to_string());
                }
            }
            self.calls
                .push(Call::Send(frame.kind, frame.payload.clone()));
            Ok(())
        }
    }

    fn request() -> SpawnRequest {
        SpawnRequest {
            program: r"C:\Windows\System32\cmd.exe".to_string(),
            args: vec!["/c".to_string(), "echo hi".to_string()],
            cwd: r"C:\work".to_string(),
            env: vec![("PATH".to_string(), r"C:\Windows".to_string())],
            writable_roots: vec![r"C:\work".to_string()],
            capability_sids: vec!["S-1-5-21-1-2-3-4".to_string()],
            pty: false,
            cols: 0,
            rows: 0,
            limits: crate::limits::Wanted::default(),
        }
    }

    fn spawn() -> Input {
        Input::Event(Event::Frame(Frame::new(Kind::Spawn, request().encode())))
    }

    fn frame(kind: Kind, payload: &[u8]) -> Input {
        Input::Event(Event::Frame(Frame::new(kind, payload.to_vec())))
    }

    fn error_sent(calls: &[Call]) -> Option<String> {
        calls.iter().find_map(|call| match call {
            Call::Send(Kind::Error, payload) => Some(framing::parse_error(payload)),
            _ => None,
        })
    }

    #[test]
    fn a_whole_run() {
        let mut host = Fake::default();
        let mut driver = Driver::new();
        assert_eq!(driver.step(&mut host, spawn()), None);
        assert!(matches!(host.calls.as_slice(), [Call::Start(line)] if line.contains("cmd.exe")));
        for input in [
            frame(Kind::Stdin, b"abc"),
            frame(Kind::CloseStdin, b""),
            Input::Event(Event::ChildStdout(b"hi\r\n".to_vec())),
            Input::Event(Event::ChildStderr(b"warn".to_vec())),
        ] {
            assert_eq!(driver.step(&mut host, input), None);
        }
        assert_eq!(
            driver.step(&mut host, Input::Event(Event::ChildExited(3))),
            Some(3)
        );
        assert!(driver.finished());
        assert_eq!(
            host.calls[1..],
            [
                Call::WriteStdin(b"abc".to_vec()),
                Call::CloseStdin,
                Call::Send(Kind::Stdout, b"hi\r\n".to_vec()),
                Call::Send(Kind::Stderr, b"warn".to_vec()),
                Call::Send(Kind::Exit, framing::exit_payload(3)),
            ]
        );
    }

    #[test]
    fn a_resize_and_a_timeout() {
        let mut req = request();
        req.pty = true;
        req.cols = 80;
        req.rows = 24;
        req.limits.timeout_ms = Some(2_000);
        let mut host = Fake::default();
        let mut driver = Driver::new();
        let spawn = Input::Event(Event::Frame(Frame::new(Kind::Spawn, req.encode())));
        assert_eq!(driver.step(&mut host, spawn), None);
        let resize = frame(Kind::Resize, &framing::resize_payload(120, 40));
        assert_eq!(driver.step(&mut host, resize), None);
        assert_eq!(host.calls[1], Call::Resize(120, 40));
        let timed_out = Input::Event(Event::ChildTimedOut(std::time::Duration::from_secs(2)));
        assert_eq!(driver.step(&mut host, timed_out), Some(124));
        assert_eq!(host.calls[2], Call::Terminate);
        assert!(matches!(&host.calls[3], Call::Send(Kind::Stderr, text)
            if String::from_utf8_lossy(text).contains("timed out after 2s")));
        assert_eq!(
            host.calls[4],
            Call::Send(Kind::Exit, framing::exit_payload(124))
        );
        assert_eq!(host.calls.len(), 5);
    }

    #[test]
    fn a_failed_start_is_reported_and_killed() {
        let mut host = Fake {
            start_error: Some("CreateProcessAsUserW failed (error 5)".to_string()),
            ..Fake::default()
        };
        let mut driver = Driver::new();
        assert_eq!(driver.step(&mut host, spawn()), Some(1));
        assert!(matches!(host.calls[0], Call::Start(_)));
        // Whatever a half-done start left in the job goes first.
        assert_eq!(host.calls[1], Call::Terminate);
        let err = error_sent(&host.calls).unwrap();
        assert!(
            err.contains("starting the command") && err.contains("error 5"),
            "{err}"
        );
        assert_eq!(host.calls.len(), 3);
    }

    #[test]
    fn a_refused_request_starts_nothing() {
        let mut req = request();
        req.program = r"C:\Program Files\WindowsApps\pwsh.exe".to_string();
        let mut host = Fake::default();
        let mut driver = Driver::new();
        let input = Input::Event(Event::Frame(Frame::new(Kind::Spawn, req.encode())));
        assert_eq!(driver.step(&mut host, input), Some(1));
        assert_eq!(host.calls.len(), 1);
        assert!(error_sent(&host.calls).unwrap().contains("Store"));
    }

    #[test]
    fn moat_gone_while_relaying_output_kills_the_command() {
        let mut host = Fake {
            fail_send_at: Some(2),
            ..Fake::default()
        };
        let mut driver = Driver::new();
        driver.step(&mut host, spawn());
        let out = |b: &[u8]| Input::Event(Event::ChildStdout(b.to_vec()));
        assert_eq!(driver.step(&mut host, out(b"one")), None);
        assert_eq!(driver.step(&mut host, out(b"two")), Some(1));
        assert_eq!(
            host.calls[1..],
            [Call::Send(Kind::Stdout, b"one".to_vec()), Call::Terminate]
        );
        // Nothing happens afterwards.
        assert_eq!(driver.step(&mut host, out(b"three")), None);
        assert_eq!(host.calls.len(), 3);
    }

    #[test]
    fn moat_gone_at_the_exit_frame_still_exits_with_the_code() {
        let mut host = Fake {
            fail_send_at: Some(1),
            ..Fake::default()
        };
        let mut driver = Driver::new();
        driver.step(&mut host, spawn());
        assert_eq!(
            driver.step(&mut host, Input::Event(Event::ChildExited(0))),
            Some(0)
        );
        // The command had exited: nothing to kill.
        assert_eq!(host.calls.len(), 1);
    }

    #[test]
    fn moat_gone_on_the_error_frame_before_spawn() {
        let mut host = Fake {
            fail_send_at: Some(1),
            ..Fake::default()
        };
        let mut driver = Driver::new();
        assert_eq!(driver.step(&mut host, frame(Kind::Stdin, b"x")), Some(1));
        assert!(host.calls.is_empty());
    }

    #[test]
    fn pipe_closed_kills_the_command() {
        let mut host = Fake::default();
        let mut driver = Driver::new();
        driver.step(&mut host, spawn());
        assert_eq!(
            driver.step(&mut host, Input::Event(Event::PipeClosed)),
            Some(1)
        );
        assert_eq!(host.calls[1..], [Call::Terminate]);
    }

    #[test]
    fn failures_kill_and_report() {
        let mut host = Fake::default();
        let mut driver = Driver::new();
        driver.step(&mut host, spawn());
        assert_eq!(
            driver.step(&mut host, Input::Fail("protocol error: junk".to_string())),
            Some(1)
        );
        assert_eq!(host.calls[1], Call::Terminate);
        assert!(error_sent(&host.calls).unwrap().contains("junk"));

        // Before a spawn: reported, nothing to kill.
        let mut host = Fake::default();
        let mut driver = Driver::new();
        assert_eq!(
            driver.step(&mut host, Input::Fail("bad".to_string())),
            Some(1)
        );
        assert_eq!(host.calls.len(), 1);
        assert_eq!(error_sent(&host.calls).as_deref(), Some("bad"));
    }

    #[test]
    fn terminate_from_moat_then_the_exit_code() {
        let mut host = Fake::default();
        let mut driver = Driver::new();
        driver.step(&mut host, spawn());
        assert_eq!(driver.step(&mut host, frame(Kind::Terminate, b"")), None);
        assert_eq!(
            driver.step(&mut host, Input::Event(Event::ChildExited(1))),
            Some(1)
        );
        assert_eq!(
            host.calls[1..],
            [
                Call::Terminate,
                Call::Send(Kind::Exit, framing::exit_payload(1))
            ]
        );
    }

    #[test]
    fn inbound_reassembles_frames() {
        let frames = [
            Frame::new(Kind::Spawn, request().encode()),
            Frame::new(Kind::Stdin, b"abc".to_vec()),
            Frame::new(Kind::CloseStdin, Vec::new()),
        ];
        let mut bytes = Vec::new();
        for f in &frames {
            bytes.extend(f.encode().unwrap());
        }
        let mut inbound = Inbound::new();
        let mut got = Vec::new();
        for piece in bytes.chunks(3) {
            got.extend(inbound.push(piece));
        }
        let want: Vec<Input> = frames
            .iter()
            .map(|f| Input::Event(Event::Frame(f.clone())))
            .collect();
        assert_eq!(got, want);
        assert!(!inbound.failed());
        assert_eq!(inbound.closed(), [Input::Event(Event::PipeClosed)]);
        assert!(inbound.failed());
        assert_eq!(inbound.closed(), []);
        assert_eq!(inbound.push(&bytes), []);
    }

    #[test]
    fn inbound_fails_once() {
        let good = Frame::new(Kind::Stdin, b"x".to_vec()).encode().unwrap();
        let mut bytes = good.clone();
        bytes.extend([0, 0, 0, 0]);
        let mut inbound = Inbound::new();
        let got = inbound.push(&bytes);
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0],
            Input::Event(Event::Frame(Frame::new(Kind::Stdin, b"x".to_vec())))
        );
        assert!(matches!(&got[1], Input::Fail(m) if m.contains("protocol error")));
        assert!(inbound.failed());
        assert_eq!(inbound.push(&good), []);
        assert_eq!(inbound.closed(), []);
    }

    #[test]
    fn driven_by_inbound_bytes() {
        // Bytes from moat through Inbound and the driver: a spawn frame
        // followed by noise kills the command and says why.
        let mut bytes = Frame::new(Kind::Spawn, request().encode())
            .encode()
            .unwrap();
        bytes.extend([5, 0, 0, 0, 99]);
        let mut inbound = Inbound::new();
        let mut host = Fake::default();
        let mut driver = Driver::new();
        let mut code = None;
        for input in inbound.push(&bytes) {
            code = driver.step(&mut host, input);
        }
        assert_eq!(code, Some(1));
        assert_eq!(host.calls[1], Call::Terminate);
        assert!(error_sent(&host.calls).unwrap().contains("99"));
    }
}
