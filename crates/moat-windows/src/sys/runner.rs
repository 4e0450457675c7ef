//! The runner on Windows: the process moat starts as a sandbox account
//! (`super::logon`), which opens moat's two pipes, checks that moat serves
//! them, and then does what `crate::runner_loop::Driver` says.
//!
//! Threads, each feeding one bounded channel that only the main thread
//! reads (so only it touches the session):
//! - one reads moat's pipe and turns the bytes into frames;
//! - one per output pipe of the command (one for a pseudoconsole) relays
//!   what it reads;
//! - one waits for the command (at most its timeout, after which it
//!   kills the job and reports the timeout instead of an exit), then ends
//!   its job (nothing the command left behind outlives it, or holds its
//!   output open), closes the pseudoconsole, waits for the output to be
//!   relayed and only then reports the exit, so that no output comes after
//!   it;
//! - one writes standard input, so that a command that does not read it
//!   cannot stall the main thread, which must stay free to act on
//!   Terminate or on moat going away.
//!
//! The bounded channel holds output back when moat reads slowly: the
//! command blocks on a full pipe rather than the runner buffering without
//! limit. Standard input is not bounded: it is what moat chose to send.
//!
//! The job is the runner's own and kill-on-close: when the runner exits,
//! for whatever reason, whatever is left of the command dies with it. It
//! carries the request's limits (`crate::limits`), set before the command
//! resumes. moat's Resize frames resize the pseudoconsole, which the
//! waiting thread closes once the command is gone.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::windows::io::{AsRawHandle, OwnedHandle};
use std::str::FromStr;
use std::sync::mpsc::{self, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::anon_pipe::{self, ChildEnd};
use super::pipe::{self, Direction};
use super::process::{self, Stdio};
use super::{conpty, failure, job, token};
use crate::framing::Frame;
use crate::limits;
use crate::runner::{Event, Launch};
use crate::runner_args::{self, RunnerArgs};
use crate::runner_loop::{Driver, Host, Inbound, Input};
use crate::sid::Sid;

/// Inputs waiting for the main thread: about 4 MiB of output at most.
const QUEUE: usize = 64;

/// One read from a pipe.
const READ_SIZE: usize = 64 * 1024;

/// The exit code of processes ended by the job (Terminate, moat gone, or
/// left behind by the command).
const KILLED: u32 = 1;

/// The runner's exit code for an ending the session did not decide (the
/// channel closed, which holding a sender forbids).
const LOST: u32 = 1;

/// Runs the runner with the process's own arguments; its exit code.
pub fn main() -> u32 {
    let args: Result<Vec<String>, _> = std::env::args_os()
        .skip(1)
        .map(|arg| arg.into_string())
        .collect();
    let parsed = match args {
        Ok(args) => RunnerArgs::parse(&args),
        Err(_) => Err("an argument is not Unicode".to_string()),
    };
    let args = match parsed {
        Ok(args) => args,
        Err(err) => {
            say(&err);
            return runner_args::EXIT_USAGE;
        }
    };
    let from_moat = match open(&args, &args.input_pipe, Direction::Read) {
        Ok(file) => file,
        Err(code) => return code,
    };
    let to_moat = match open(&args, &args.output_pipe, Direction::Write) {
        Ok(file) => file,
        Err(code) => return code,
    };
    run(&args, from_moat, to_moat)
}

/// Tells whoever started the runner by hand why it stopped before talking
/// to moat (a runner started by moat has no window, and the exit code is
/// what moat reads: `runner_args::explain_exit`). Unlike `eprintln!`, a
/// failed write does not panic.
fn say(message: &str) {
    let _ = writeln!(io::stderr(), "moat-runner: {message}");
}

/// Opens one of moat's pipes and checks that moat serves it; the exit code
/// otherwise.
fn open(args: &RunnerArgs, name: &str, direction: Direction) -> Result<File, u32> {
    let file = pipe::connect(name, direction).map_err(|err| {
        say(&failure(&format!("opening pipe {name}"), &err));
        runner_args::EXIT_CONNECT
    })?;
    let pid = pipe::server_process_id(&file).map_err(|err| {
        say(&failure(&format!("asking who serves pipe {name}"), &err));
        runner_args::EXIT_CONNECT
    })?;
    args.check_server(name, pid).map_err(|err| {
        say(&err);
        runner_args::EXIT_WRONG_SERVER
    })?;
    Ok(file)
}

fn run(args: &RunnerArgs, from_moat: File, to_moat: File) -> u32 {
    let (tx, rx) = mpsc::sync_channel::<Input>(QUEUE);
    let reader_tx = tx.clone();
    thread::spawn(move || read_moat(from_moat, reader_tx));
    let mut host = WinHost {
        tx,
        to_moat,
        desktop: args.desktop.clone(),
        job: None,
        stdin: None,
        console: None,
    };
    let mut driver = Driver::new();
    loop {
        let input = match rx.recv() {
            Ok(input) => input,
            Err(_) => {
                host.terminate();
                return LOST;
            }
        };
        if let Some(code) = driver.step(&mut host, input) {
            // Returning closes the job's last handles once the process
            // exits: kill-on-close ends whatever is left.
            return code;
        }
    }
}

fn read_moat(mut from_moat: File, tx: SyncSender<Input>) {
    let mut inbound = Inbound::new();
    let mut buf = vec![0u8; READ_SIZE];
    loop {
        let inputs = match from_moat.read(&mut buf) {
            // A broken pipe reads as the end of the file; any other error
            // leaves the runner just as unsupervised.
            Ok(0) | Err(_) => inbound.closed(),
            Ok(n) => inbound.push(&buf[..n]),
        };
        for input in inputs {
            if tx.send(input).is_err() {
                return;
            }
        }
        if inbound.failed() {
            return;
        }
    }
}

#[derive(Debug)]
struct WinHost {
    tx: SyncSender<Input>,
    to_moat: File,
    desktop: String,
    /// Shared with the thread that waits for the command.
    job: Option<Arc<OwnedHandle>>,
    /// Dropped to close the command's standard input.
    stdin: Option<Sender<Vec<u8>>>,
    /// The command's pseudoconsole, shared with the thread that waits for
    /// the command, which takes it out and closes it.
    console: Option<SharedConsole>,
}

/// A pseudoconsole that one thread resizes and another closes.
type SharedConsole = Arc<Mutex<Option<conpty::PseudoConsole>>>;

impl Host for WinHost {
    fn start(&mut self, launch: &Launch) -> Result<(), String> {
        let mut sids = Vec::with_capacity(launch.capability_sids.len());
        for text in &launch.capability_sids {
            let sid =
                Sid::from_str(text).map_err(|err| format!("capability SID {text:?}: {err}"))?;
            sids.push(sid);
        }
        // Refused before anything is made: a CPU share this machine cannot
        // cap (moat checked everything else, and so did `prepare`).
        let settings = limits::settings(&launch.limits, job::processor_count())
            .map_err(|err| err.to_string())?;
        // The runner's own token is the sandbox account's: restricted as in
        // the unelevated tier, its writes also need a capability SID.
        let token = token::write_restricted(&sids)
            .map_err(|err| failure("restricting the sandbox account's token", &err))?;
        let job =
            Arc::new(job::kill_on_close().map_err(|err| failure("creating the job object", &err))?);
        // Kept before the start, so that Terminate reaches whatever a start
        // that fails halfway leaves in the job.
        self.job = Some(Arc::clone(&job));
        // On the job before the command is started in it (suspended).
        job::apply_limits(&job, &settings)
            .map_err(|err| failure("putting the limits on the job object", &err))?;
        let stdin = match launch.pty {
            None => self.start_piped(launch, &token, job, settings.timeout)?,
            Some((cols, rows)) => {
                self.start_console(launch, &token, job, (cols, rows), settings.timeout)?
            }
        };
        self.stdin = Some(stdin);
        Ok(())
    }

    fn write_stdin(&mut self, bytes: Vec<u8>) {
        if let Some(stdin) = &self.stdin {
            // Fails once the command closed its standard input: the bytes
            // have nowhere to go.
            let _ = stdin.send(bytes);
        }
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    fn terminate(&mut self) {
        if let Some(job) = &self.job {
            // Failing means there was nothing left to end.
            let _ = job::terminate(job, KILLED);
        }
    }

    fn resize(&mut self, cols: u16, rows: u16) {
        if let Some(shared) = &self.console {
            let console = match shared.lock() {
                Ok(console) => console,
                Err(poisoned) => poisoned.into_inner(),
            };
            if let Some(console) = console.as_ref() {
                // A console that cannot be resized keeps its old size.
                let _ = conpty::resize(console, cols, rows);
            }
        }
    }

    fn send(&mut self, frame: &Frame) -> Result<(), String> {
        let bytes = frame.encode().map_err(|err| err.to_string())?;
        self.to_moat
            .write_all(&bytes)
            .map_err(|err| failure("writing to moat", &err))
    }
}

impl WinHost {
    /// The command with three anonymous pipes; the writer of its standard
    /// input.
    fn start_piped(
        &self,
        launch: &Launch,
        token: &OwnedHandle,
        job: Arc<OwnedHandle>,
        timeout: Option<Duration>,
    ) -> Result<Sender<Vec<u8>>, String> {
        let make = |end| {
            anon_pipe::create(end).map_err(|err| failure("creating the command's pipes", &err))
        };
        let stdin = make(ChildEnd::Read)?;
        let stdout = make(ChildEnd::Write)?;
        let stderr = make(ChildEnd::Write)?;
        let started = process::start(
            token,
            &job,
            &process::Launch {
                command_line: &launch.command_line,
                environment: &launch.environment,
                cwd: &launch.cwd,
                desktop: &self.desktop,
                stdio: Stdio::Handles([
                    stdin.read.as_raw_handle(),
                    stdout.write.as_raw_handle(),
                    stderr.write.as_raw_handle(),
                ]),
            },
        )
        .map_err(|err| failure("CreateProcessAsUserW", &err))?;
        // The command has its own copies; the runner's would keep its
        // output open after it exits.
        drop(stdin.read);
        drop(stdout.write);
        drop(stderr.write);
        let readers = vec![
            relay(stdout.read, self.tx.clone(), Event::ChildStdout),
            relay(stderr.read, self.tx.clone(), Event::ChildStderr),
        ];
        watch(
            started.process,
            job,
            None,
            readers,
            self.tx.clone(),
            timeout,
        );
        Ok(feed(stdin.write))
    }

    /// The command on a pseudoconsole, whose output is the terminal's
    /// (standard error included); the writer of its input.
    fn start_console(
        &mut self,
        launch: &Launch,
        token: &OwnedHandle,
        job: Arc<OwnedHandle>,
        (cols, rows): (u16, u16),
        timeout: Option<Duration>,
    ) -> Result<Sender<Vec<u8>>, String> {
        let make = |end| {
            anon_pipe::create(end).map_err(|err| failure("creating the console's pipes", &err))
        };
        // The console reads `input.read` and writes `output.write`; it
        // duplicates both, so neither is inherited by anyone.
        let input = make(ChildEnd::Neither)?;
        let output = make(ChildEnd::Neither)?;
        let console = conpty::create(cols, rows, &input.read, &output.write)
            .map_err(|err| failure("CreatePseudoConsole", &err))?;
        let started = process::start(
            token,
            &job,
            &process::Launch {
                command_line: &launch.command_line,
                environment: &launch.environment,
                cwd: &launch.cwd,
                desktop: &self.desktop,
                stdio: Stdio::PseudoConsole(console.handle),
            },
        )
        .map_err(|err| failure("CreateProcessAsUserW", &err))?;
        // The console holds its own copies; the runner's write end would
        // keep the output open after the console closes.
        drop(input.read);
        drop(output.write);
        let readers = vec![relay(output.read, self.tx.clone(), Event::ChildStdout)];
        let console: SharedConsole = Arc::new(Mutex::new(Some(console)));
        self.console = Some(Arc::clone(&console));
        watch(
            started.process,
            job,
            Some(console),
            readers,
            self.tx.clone(),
            timeout,
        );
        Ok(feed(input.write))
    }
}

/// A thread that relays what `end` yields as `wrap` events until the end
/// of the output.
fn relay(end: OwnedHandle, tx: SyncSender<Input>, wrap: fn(Vec<u8>) -> Event) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut file = File::from(end);
        let mut buf = vec![0u8; READ_SIZE];
        loop {
            match file.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.send(Input::Event(wrap(buf[..n].to_vec()))).is_err() {
                        return;
                    }
                }
            }
        }
    })
}

/// A thread that writes what it is sent to `end`, and closes it when the
/// sender is dropped.
fn feed(end: OwnedHandle) -> Sender<Vec<u8>> {
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    thread::spawn(move || {
        let mut file = File::from(end);
        for bytes in rx {
            // The command closed its standard input: the rest is dropped.
            if file.write_all(&bytes).is_err() {
                return;
            }
        }
    });
    tx
}

/// A thread that waits for the command (at most `timeout`), ends the rest
/// of its job, lets the output drain and then reports the exit, or the
/// timeout.
fn watch(
    process: OwnedHandle,
    job: Arc<OwnedHandle>,
    console: Option<SharedConsole>,
    readers: Vec<JoinHandle<()>>,
    tx: SyncSender<Input>,
    timeout: Option<Duration>,
) {
    thread::spawn(move || {
        // `Ok(None)`: the timeout ran out with the command still running.
        let result = match timeout {
            None => process::wait(&process).map(Some),
            Some(timeout) => process::wait_for(&process, timeout),
        };
        let _ = job::terminate(&job, KILLED);
        if let Ok(None) = result {
            // Killed just now: gone before its output is drained.
            let _ = process::wait(&process);
        }
        // Closing the pseudoconsole flushes it and ends its output; taken
        // out first, so that no resize reaches a closed one.
        if let Some(shared) = console {
            let taken = match shared.lock() {
                Ok(mut console) => console.take(),
                Err(poisoned) => poisoned.into_inner().take(),
            };
            drop(taken);
        }
        for reader in readers {
            let _ = reader.join();
        }
        let input = match (result, timeout) {
            (Ok(Some(code)), _) => Input::Event(Event::ChildExited(code)),
            (Ok(None), Some(timeout)) => Input::Event(Event::ChildTimedOut(timeout)),
            (Ok(None), None) => Input::Fail(
                "internal error: the wait for the command ended without an exit or a timeout"
                    .to_string(),
            ),
            (Err(err), _) => Input::Fail(failure("waiting for the command", &err)),
        };
        let _ = tx.send(input);
    });
}
