//! moat's side of the elevated tier on Windows: carries out
//! `crate::elevated::plan` and relays the run.
//!
//! In order: the account's SID is looked up and compared with the
//! record's, its password decrypted (DPAPI), the two pipes created for
//! that SID alone, a kill-on-close job of moat's created, and the runner
//! started as the account inside it. moat then waits for the runner to
//! open both pipes (checking the client is the runner it started), sends
//! the spawn frame and relays: moat's standard input to the runner on a
//! thread, the runner's frames to moat's standard output and error on the
//! calling thread, until the Exit frame. Any failure after the runner
//! started ends the job, so nothing of the run outlives the error; moat
//! exiting ends it too (kill-on-close).
//!
//! With `--pty`, moat's console is in raw mode for the run
//! (`super::console::RawMode`, put back however the run ends) and its
//! window size is followed: a Resize frame goes to the runner each time it
//! changes.
//!
//! Threads: one accepts the pipes (`ConnectNamedPipe` blocks and takes no
//! timeout without overlapped I/O, so the calling thread keeps the clock
//! and cancels it); one reads moat's standard input; with `--pty`, one
//! polls the console's size. The last two share moat's end of the input
//! pipe behind a lock, so that their frames never interleave. The standard
//! input thread may stay blocked in its read after the run returns, holding its end of the
//! input pipe until moat exits: there is no portable way to interrupt a
//! read of moat's own standard input, and the runner is gone by then.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::windows::io::{AsRawHandle, OwnedHandle};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{HANDLE, WAIT_OBJECT_0};
use windows_sys::Win32::System::Threading::{GetExitCodeProcess, WaitForSingleObject};
use windows_sys::Win32::System::IO::CancelSynchronousIo;

use super::console;
use super::logon::{self, Password, Runner, RunnerLaunch};
use super::{accounts, dpapi, failure, job, pipe};
use crate::elevated::{self, Context, ElevatedError, Output, Plan, Relay, Request};
use crate::framing::Frame;
use crate::terminal::{SizeWatch, RESIZE_POLL};

/// One read from a pipe or from standard input.
const READ_SIZE: usize = 64 * 1024;

/// How often the wait for the runner's connection looks at the clock and
/// at the runner.
const POLL: Duration = Duration::from_millis(50);

/// How long moat keeps cancelling a blocked `ConnectNamedPipe`: the cancel
/// misses when it comes before the call, so it is repeated.
const CANCEL_TRIES: u32 = 100;

/// The exit code of what the job ends.
const KILLED: u32 = 1;

/// ERROR_BROKEN_PIPE: how a read sees the other end close.
const BROKEN_PIPE: i32 = 109;

/// Where moat finds what it needs besides the request.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// The setup record (`crate::record`); a missing file means setup
    /// never ran.
    pub record: &'a Path,
    /// Another runner program than `moat-runner.exe` next to moat.
    pub runner_override: Option<&'a str>,
    /// Relay moat's standard input; otherwise the command's is closed at
    /// once.
    pub forward_stdin: bool,
}

/// Runs `req` in the elevated tier; the command's exit code.
pub fn run(req: &Request, options: &Options<'_>) -> Result<u32, ElevatedError> {
    let record_path = options.record.to_string_lossy().into_owned();
    let record = super::read_if_present(options.record).map_err(|err| {
        ElevatedError::System(failure(
            &format!("reading the setup record {record_path}"),
            &err,
        ))
    })?;
    let exe = std::env::current_exe()
        .map_err(|err| ElevatedError::System(failure("finding moat's own path", &err)))?;
    let moat_exe = exe.to_str().ok_or_else(|| {
        ElevatedError::Runner(format!("moat's own path {} is not Unicode", exe.display()))
    })?;
    let plan = elevated::plan(
        req,
        &Context {
            record: record.as_deref(),
            record_path: &record_path,
            moat_exe,
            runner_override: options.runner_override,
            server_pid: std::process::id(),
            nonce: nonce()?,
        },
    )?;

    let found = match accounts::lookup_sid(&plan.account) {
        Ok(sid) => Ok(sid),
        Err(err) => match err.raw_os_error() {
            Some(code) => Err(code as u32),
            None => {
                return Err(ElevatedError::Setup(format!(
                    "looking up the sandbox account {}: {err}: run `moat setup` from an \
                     elevated prompt",
                    plan.account
                )))
            }
        },
    };
    elevated::check_account_sid(&plan, found)?;
    let password = read_password(&plan)?;

    let create = |name: &str| {
        pipe::create(name, &plan.account_sid).map_err(|err| {
            ElevatedError::System(failure(&format!("creating the pipe {name}"), &err))
        })
    };
    let input = create(&plan.runner_args.input_pipe)?;
    let output = create(&plan.runner_args.output_pipe)?;
    let job = job::kill_on_close()
        .map_err(|err| ElevatedError::System(failure("creating moat's job object", &err)))?;
    let runner = logon::start(
        &RunnerLaunch {
            account: &plan.account,
            password: &password,
            program: &plan.runner_exe,
            command_line: &plan.runner_command_line,
            cwd: &plan.runner_cwd,
        },
        Some(&job),
    )
    .map_err(ElevatedError::Logon)?;
    // Wiped now rather than held for the rest of the run.
    drop(password);

    // Raw for the run's length: put back when `raw` drops, at the end of
    // this function whatever happened.
    let raw = match req.pty {
        Some(_) => console::raw_for_run(),
        None => None,
    };
    // A raw console is read key by key, Ctrl+Z included.
    let stdin: Option<Box<dyn Read + Send>> = match (options.forward_stdin, &raw) {
        (false, _) => None,
        (true, Some(raw)) => Some(Box::new(raw.input())),
        (true, None) => Some(Box::new(io::stdin())),
    };
    let result = supervise(&plan, &runner, input, output, stdin, req.pty);
    drop(raw);
    if result.is_err() {
        // Failing means nothing was left to end.
        let _ = job::terminate(&job, KILLED);
    }
    // Dropping `job` closes moat's only handle: whatever is left dies.
    result
}

/// 128 random bits for the pipe names.
fn nonce() -> Result<[u32; 4], ElevatedError> {
    let mut bytes = [0u8; 16];
    super::random_bytes(&mut bytes).map_err(|status| {
        ElevatedError::System(format!(
            "drawing random pipe names failed (NTSTATUS {:#010x})",
            status
        ))
    })?;
    let mut words = [0u32; 4];
    for (word, chunk) in words.iter_mut().zip(bytes.chunks(4)) {
        *word = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    Ok(words)
}

/// The account's password, decrypted from where setup stored it.
fn read_password(plan: &Plan) -> Result<Password, ElevatedError> {
    let code = |err: &io::Error| err.raw_os_error().map(|c| c as u32);
    let sealed = std::fs::read(&plan.secret)
        .map_err(|err| elevated::secret_error(&plan.account, &plan.secret, true, code(&err)))?;
    let plain = dpapi::unprotect(&sealed)
        .map_err(|err| elevated::secret_error(&plan.account, &plan.secret, false, code(&err)))?;
    Password::from_utf8(plain).map_err(ElevatedError::Setup)
}

/// The runner's exit code if it exits within `wait`.
fn exit_code(process: &OwnedHandle, wait: Duration) -> Option<u32> {
    // Below INFINITE, which would wait for good.
    let ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX - 1);
    let h = process.as_raw_handle() as HANDLE;
    // SAFETY: the handle is live for the call.
    if unsafe { WaitForSingleObject(h, ms) } != WAIT_OBJECT_0 {
        return None;
    }
    let mut code = 0u32;
    // SAFETY: the handle is live; `code` is a live out-parameter.
    if unsafe { GetExitCodeProcess(h, &mut code) } == 0 {
        return None;
    }
    Some(code)
}

/// Everything after the runner started; any error leaves the job to be
/// ended by the caller.
fn supervise(
    plan: &Plan,
    runner: &Runner,
    input: OwnedHandle,
    output: OwnedHandle,
    stdin: Option<Box<dyn Read + Send>>,
    pty: Option<(u16, u16)>,
) -> Result<u32, ElevatedError> {
    let (input, output) = connect(plan, runner, input, output)?;
    // Shared with the standard input thread (and the size thread), and
    // held here until the end: the runner takes its pipe closing as moat
    // gone, and kills the command.
    let to_runner: ToRunner = Arc::new(Mutex::new(File::from(input)));
    send(&to_runner, &plan.spawn).map_err(|err| {
        ElevatedError::Run(failure("sending the spawn request to the runner", &err))
    })?;
    if let Some(stdin) = stdin {
        forward_stdin_thread(stdin, Arc::clone(&to_runner));
    } else {
        send(&to_runner, &elevated::close_stdin_frame()).map_err(|err| {
            ElevatedError::Run(failure("closing the command's standard input", &err))
        })?;
    }
    let sizes = pty.map(|size| follow_size_thread(Arc::clone(&to_runner), size));
    let result = relay(File::from(output), runner);
    // Not waited for: it ends within one poll, or at once should a write
    // fail, and the run is over either way.
    if let Some(stop) = sizes {
        stop.store(true, Ordering::Relaxed);
    }
    drop(to_runner);
    result
}

/// A thread that polls moat's console size every
/// `crate::terminal::RESIZE_POLL` and sends the runner a Resize frame when
/// it changed from `initial` (the pseudoconsole's size) or the last one
/// sent; it stops when told or when the runner's pipe fails.
fn follow_size_thread(to_runner: ToRunner, initial: (u16, u16)) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    thread::spawn(move || {
        let mut watch = SizeWatch::new(initial);
        while !stopped.load(Ordering::Relaxed) {
            thread::sleep(RESIZE_POLL);
            if let Some((cols, rows)) = watch.changed(console::size()) {
                if send(&to_runner, &elevated::resize_frame(cols, rows)).is_err() {
                    return;
                }
            }
        }
    });
    stop
}

/// Waits for the runner to open both pipes, at most
/// `elevated::CONNECT_TIMEOUT`, and checks that the runner is the client
/// of each.
fn connect(
    plan: &Plan,
    runner: &Runner,
    input: OwnedHandle,
    output: OwnedHandle,
) -> Result<(OwnedHandle, OwnedHandle), ElevatedError> {
    type Accepted = io::Result<((OwnedHandle, u32), (OwnedHandle, u32))>;
    let (tx, rx) = mpsc::channel::<Accepted>();
    // The runner opens the input pipe first, then the output pipe; a
    // client that opens a pipe before ConnectNamedPipe is reported
    // connected at once, so one thread in that order suffices.
    let acceptor = thread::spawn(move || {
        let accepted = pipe::accept(&input)
            .and_then(|a| pipe::accept(&output).map(|b| (a, b)))
            .map(|(a, b)| ((input, a), (output, b)));
        let _ = tx.send(accepted);
    });
    let deadline = Instant::now() + elevated::CONNECT_TIMEOUT;
    loop {
        match rx.recv_timeout(POLL) {
            Ok(Ok(((input, input_pid), (output, output_pid)))) => {
                let _ = acceptor.join();
                elevated::check_client(&plan.runner_args.input_pipe, input_pid, runner.pid)?;
                elevated::check_client(&plan.runner_args.output_pipe, output_pid, runner.pid)?;
                return Ok((input, output));
            }
            Ok(Err(err)) => {
                let _ = acceptor.join();
                // A runner that opened a pipe and quit makes
                // ConnectNamedPipe fail: its exit code says more.
                return Err(match exit_code(&runner.process, elevated::EXIT_GRACE) {
                    Some(code) => elevated::connect_failure(Some(code), elevated::CONNECT_TIMEOUT),
                    None => ElevatedError::Run(failure(
                        "waiting for the runner to open moat's pipes",
                        &err,
                    )),
                });
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(ElevatedError::Run(
                    "the thread waiting for the runner's connection ended without a result"
                        .to_string(),
                ))
            }
            Err(RecvTimeoutError::Timeout) => {
                let exited = exit_code(&runner.process, Duration::ZERO);
                if exited.is_some() || Instant::now() >= deadline {
                    stop_accepting(&acceptor, &rx);
                    return Err(elevated::connect_failure(exited, elevated::CONNECT_TIMEOUT));
                }
            }
        }
    }
}

/// Cancels the acceptor's blocked `ConnectNamedPipe` until the thread
/// reports back. A thread that never does is left blocked (its pipes are
/// open to no one but the sandbox account's runner, which is being
/// killed).
fn stop_accepting<T>(acceptor: &JoinHandle<()>, rx: &Receiver<T>) {
    let thread = acceptor.as_raw_handle() as HANDLE;
    for _ in 0..CANCEL_TRIES {
        // SAFETY: `acceptor` keeps the thread handle open for the call;
        // cancelling a thread with no pending synchronous I/O does nothing.
        unsafe { CancelSynchronousIo(thread) };
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(_) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

/// moat's end of the runner's input pipe, which more than one thread
/// writes frames to.
type ToRunner = Arc<Mutex<File>>;

/// Writes one frame to the runner, whole: the lock keeps another thread's
/// frame from landing inside it.
fn send(to_runner: &Mutex<File>, frame: &Frame) -> io::Result<()> {
    let bytes = frame
        .encode()
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err.to_string()))?;
    let mut writer = match to_runner.lock() {
        Ok(writer) => writer,
        // A thread that panicked mid-frame left the stream out of sync.
        Err(_) => {
            return Err(io::Error::new(
                io::ErrorKind::Other,
                "a thread writing to the runner failed mid-frame",
            ))
        }
    };
    writer.write_all(&bytes)
}

/// A thread that sends moat's standard input to the runner as frames and
/// says when it ended; it stops early when the runner's pipe fails.
fn forward_stdin_thread(mut stdin: Box<dyn Read + Send>, to_runner: ToRunner) {
    thread::spawn(move || {
        let mut buf = vec![0u8; READ_SIZE];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    for frame in elevated::stdin_frames(&buf[..n]) {
                        if send(&to_runner, &frame).is_err() {
                            return;
                        }
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                // Unreadable input ends like empty input.
                Err(_) => break,
            }
        }
        let _ = send(&to_runner, &elevated::close_stdin_frame());
    });
}

/// Relays the runner's frames to moat's standard output and error until
/// the run's end.
fn relay(mut from_runner: File, runner: &Runner) -> Result<u32, ElevatedError> {
    let mut relay = Relay::new();
    let mut buf = vec![0u8; READ_SIZE];
    loop {
        let read = from_runner.read(&mut buf);
        let n = match read {
            Ok(n) if n > 0 => n,
            other => {
                let cause = match other {
                    Err(err) if err.raw_os_error() != Some(BROKEN_PIPE) => {
                        Some(failure("reading from the runner", &err))
                    }
                    _ => None,
                };
                let runner_exit = exit_code(&runner.process, elevated::EXIT_GRACE);
                return relay
                    .closed(cause.as_deref(), runner_exit)
                    .map_err(ElevatedError::Run);
            }
        };
        let pushed = relay.push(&buf[..n]);
        for output in pushed.output {
            write_output(&output)
                .map_err(|err| ElevatedError::Run(failure("writing the command's output", &err)))?;
        }
        if let Some(end) = pushed.end {
            return end.map_err(ElevatedError::Run);
        }
    }
}

/// Writes output at once: an interactive command's prompt must show before
/// it waits for input.
fn write_output(output: &Output) -> io::Result<()> {
    match output {
        Output::Stdout(bytes) => {
            let stdout = io::stdout();
            let mut out = stdout.lock();
            out.write_all(bytes)?;
            out.flush()
        }
        Output::Stderr(bytes) => {
            let stderr = io::stderr();
            let mut err = stderr.lock();
            err.write_all(bytes)?;
            err.flush()
        }
    }
}
