//! The runner's own command line, and what its exit code means before it
//! ever talked to moat.
//!
//! moat creates two named pipes, one per direction, then starts the runner
//! as the sandbox account with their names, its own process id and the
//! desktop for the command. Two pipes rather than one duplex pipe because
//! the runner reads moat's frames on one thread while it writes output on
//! another, and Windows serialises synchronous I/O on a single handle: a
//! pending read would hold every write back.
//!
//! The runner opens the pipes as a client and checks that the process at
//! the server end is the moat that started it, so that a pipe of the same
//! name created by someone else (the names are guessable once seen) is
//! never mistaken for moat's. moat checks the other way round
//! (`sys::pipe::accept` returns the client's process id).

use crate::cmdline;

/// The desktop of the command unless moat names another: the interactive
/// one, which `CreateProcessWithLogonW` opens to the sandbox account for
/// the runner. PowerShell fails to start (`STATUS_DLL_INIT_FAILED`) when
/// `lpDesktop` is left unset, so the runner always sets it.
pub const DEFAULT_DESKTOP: &str = r"winsta0\default";

/// The runner's exit code for a command line it does not understand.
pub const EXIT_USAGE: u32 = 64;

/// The runner's exit code when it could not open moat's pipes.
pub const EXIT_CONNECT: u32 = 69;

/// The runner's exit code when a pipe's server is not the process named
/// on its command line.
pub const EXIT_WRONG_SERVER: u32 = 77;

/// Every pipe moat makes for a runner starts with this.
const PIPE_PREFIX: &str = "moat-runner-";

/// `\\.\pipe\` plus the name must stay under Windows' 256 characters.
const MAX_PIPE_NAME: usize = 200;

/// `CreateProcessWithLogonW` takes at most this many UTF-16 units of
/// command line (its documentation; `CreateProcessW` takes 32767).
const MAX_LOGON_COMMAND_LINE: usize = 1024;

/// `winsta\desktop`; Windows' own limit for either part is far larger,
/// this only keeps a command line bounded.
const MAX_DESKTOP: usize = 256;

/// What the runner is told on its command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerArgs {
    /// The pipe moat writes frames to and the runner reads.
    pub input_pipe: String,
    /// The pipe the runner writes frames to and moat reads.
    pub output_pipe: String,
    /// moat's process id: the server end of both pipes.
    pub server_pid: u32,
    /// `winsta\desktop` for the command.
    pub desktop: String,
}

impl RunnerArgs {
    /// The arguments for a runner of moat process `server_pid`, with pipe
    /// names made unique by `nonce` (random bits from the caller; a name
    /// already taken fails moat's `CreateNamedPipeW`, since moat asks for
    /// the first instance).
    pub fn new(server_pid: u32, nonce: [u32; 4]) -> RunnerArgs {
        let base = format!(
            "{PIPE_PREFIX}{server_pid}-{:08x}{:08x}{:08x}{:08x}",
            nonce[0], nonce[1], nonce[2], nonce[3]
        );
        RunnerArgs {
            input_pipe: format!("{base}-in"),
            output_pipe: format!("{base}-out"),
            server_pid,
            desktop: DEFAULT_DESKTOP.to_string(),
        }
    }

    /// The arguments after the program name.
    pub fn to_args(&self) -> Vec<String> {
        vec![
            "--input".to_string(),
            self.input_pipe.clone(),
            "--output".to_string(),
            self.output_pipe.clone(),
            "--server-pid".to_string(),
            self.server_pid.to_string(),
            "--desktop".to_string(),
            self.desktop.clone(),
        ]
    }

    /// The runner's whole command line, for `CreateProcessWithLogonW`.
    /// Checked with [`RunnerArgs::parse`] first, so that moat never starts
    /// a runner that would refuse its own arguments.
    pub fn command_line(&self, runner_exe: &str) -> Result<String, String> {
        let args = self.to_args();
        RunnerArgs::parse(&args)?;
        let mut argv: Vec<&str> = vec![runner_exe];
        argv.extend(args.iter().map(String::as_str));
        let line = cmdline::join(&argv).map_err(|err| format!("runner command line: {err}"))?;
        let units = line.encode_utf16().count();
        if units > MAX_LOGON_COMMAND_LINE {
            return Err(format!(
                "the runner's command line is {units} characters, more than the \
                 {MAX_LOGON_COMMAND_LINE} CreateProcessWithLogonW takes: install moat in a \
                 shorter path"
            ));
        }
        Ok(line)
    }

    /// The arguments after the program name. Each option exactly once,
    /// `--desktop` optional; nothing else.
    pub fn parse(args: &[String]) -> Result<RunnerArgs, String> {
        let mut input = None;
        let mut output = None;
        let mut pid = None;
        let mut desktop = None;
        let mut rest = args.iter();
        while let Some(flag) = rest.next() {
            let slot = match flag.as_str() {
                "--input" => &mut input,
                "--output" => &mut output,
                "--server-pid" => &mut pid,
                "--desktop" => &mut desktop,
                other => return Err(format!("unknown argument {other:?}")),
            };
            if slot.is_some() {
                return Err(format!("{flag} given twice"));
            }
            match rest.next() {
                Some(value) => *slot = Some(value.clone()),
                None => return Err(format!("{flag} needs a value")),
            }
        }
        let input_pipe = input.ok_or("--input is missing")?;
        let output_pipe = output.ok_or("--output is missing")?;
        let pid = pid.ok_or("--server-pid is missing")?;
        check_pipe_name(&input_pipe)?;
        check_pipe_name(&output_pipe)?;
        if input_pipe == output_pipe {
            return Err("--input and --output name the same pipe".to_string());
        }
        // Digits only: u32's parser would take a leading '+'.
        let server_pid = if pid.bytes().all(|b| b.is_ascii_digit()) {
            pid.parse::<u32>().ok()
        } else {
            None
        };
        let server_pid = match server_pid {
            // 0 is the idle process, which serves no pipe.
            Some(n) if n != 0 => n,
            _ => return Err(format!("--server-pid {pid:?} is not a process id")),
        };
        let desktop = desktop.unwrap_or_else(|| DEFAULT_DESKTOP.to_string());
        check_desktop(&desktop)?;
        Ok(RunnerArgs {
            input_pipe,
            output_pipe,
            server_pid,
            desktop,
        })
    }

    /// Whether `actual`, the server process of `pipe`, is moat.
    pub fn check_server(&self, pipe: &str, actual: u32) -> Result<(), String> {
        if actual == self.server_pid {
            Ok(())
        } else {
            Err(format!(
                "pipe {pipe} is served by process {actual}, not by moat (process {}): refusing it",
                self.server_pid
            ))
        }
    }
}

/// `\\.\pipe\<name>`.
pub fn pipe_path(name: &str) -> String {
    format!(r"\\.\pipe\{name}")
}

fn check_pipe_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.';
    if !name.starts_with(PIPE_PREFIX)
        || name.len() > MAX_PIPE_NAME
        || name.len() == PIPE_PREFIX.len()
        || !name.chars().all(allowed)
    {
        return Err(format!(
            "pipe name {name:?} is not one of moat's ({PIPE_PREFIX}..., at most {MAX_PIPE_NAME} \
             letters, digits, '-', '_' or '.')"
        ));
    }
    Ok(())
}

fn check_desktop(desktop: &str) -> Result<(), String> {
    let mut parts = desktop.split('\\');
    let station = parts.next().unwrap_or("");
    let name = parts.next().unwrap_or("");
    if station.is_empty()
        || name.is_empty()
        || parts.next().is_some()
        || desktop.len() > MAX_DESKTOP
        || desktop.chars().any(|c| c == '\0' || c == '/')
    {
        return Err(format!(
            "desktop {desktop:?} is not of the form station\\desktop"
        ));
    }
    Ok(())
}

/// The directory of `runner_exe`, an absolute Windows path: the working
/// directory of the runner itself. The sandbox account can read it (it
/// runs the program in it), which is not true of wherever moat was started.
pub fn working_directory(runner_exe: &str) -> Option<String> {
    let cut = runner_exe.rfind(['\\', '/'])?;
    let dir = &runner_exe[..cut];
    let bytes = dir.as_bytes();
    match bytes {
        // `C:` alone is the drive's current directory, not its root.
        [letter, b':'] if letter.is_ascii_alphabetic() => Some(format!("{dir}\\")),
        [letter, b':', b'\\' | b'/', ..] if letter.is_ascii_alphabetic() => Some(dir.to_string()),
        // \\server\share\dir: at least a server and a share.
        [b'\\', b'\\', ..] if unc_parts(&dir[2..]) >= 2 => Some(dir.to_string()),
        _ => None,
    }
}

fn unc_parts(rest: &str) -> usize {
    rest.split(['\\', '/']).filter(|p| !p.is_empty()).count()
}

/// What the runner's exit code means when it ended without sending a
/// frame: moat shows this instead of a bare number.
pub fn explain_exit(code: u32) -> Option<&'static str> {
    Some(match code {
        EXIT_USAGE => "the runner refused its command line (a runner from another build of moat?)",
        EXIT_CONNECT => {
            "the runner could not open moat's pipes (their DACL admits only the sandbox account)"
        }
        EXIT_WRONG_SERVER => {
            "the runner found another process serving moat's pipes and refused to talk to it"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    fn sample() -> RunnerArgs {
        RunnerArgs::new(4242, [1, 0xdead_beef, 0, u32::MAX])
    }

    #[test]
    fn names_are_unique_and_valid() {
        let args = sample();
        assert_eq!(
            args.input_pipe,
            "moat-runner-4242-00000001deadbeef00000000ffffffff-in"
        );
        assert_eq!(
            args.output_pipe,
            "moat-runner-4242-00000001deadbeef00000000ffffffff-out"
        );
        assert_eq!(args.desktop, DEFAULT_DESKTOP);
        assert_ne!(
            RunnerArgs::new(4242, [2, 0, 0, 0]).input_pipe,
            args.input_pipe
        );
        assert_ne!(RunnerArgs::new(1, [1, 0, 0, 0]).input_pipe, {
            RunnerArgs::new(11, [1, 0, 0, 0]).input_pipe
        });
        // The longest name fits.
        let longest = RunnerArgs::new(u32::MAX, [u32::MAX; 4]);
        assert!(longest.output_pipe.len() <= MAX_PIPE_NAME);
        assert!(pipe_path(&longest.output_pipe).len() < 256);
        assert_eq!(RunnerArgs::parse(&longest.to_args()), Ok(longest));
    }

    #[test]
    fn round_trip() {
        let mut args = sample();
        assert_eq!(RunnerArgs::parse(&args.to_args()), Ok(args.clone()));
        args.desktop = r"winsta0\moat-3f2a".to_string();
        assert_eq!(RunnerArgs::parse(&args.to_args()), Ok(args));
    }

    #[test]
    fn command_line_quotes_the_program_and_splits_back() {
        let args = sample();
        let line = args
            .command_line(r"C:\Program Files\moat\moat-runner.exe")
            .unwrap();
        assert!(line.starts_with(r#""C:\Program Files\moat\moat-runner.exe" --input "#));
        let split = cmdline::split(&line);
        assert_eq!(split[0], r"C:\Program Files\moat\moat-runner.exe");
        assert_eq!(RunnerArgs::parse(&split[1..]), Ok(args));
    }

    #[test]
    fn command_line_fits_create_process_with_logon() {
        let args = RunnerArgs::new(u32::MAX, [u32::MAX; 4]);
        let dir = format!(r"C:\{}", "d".repeat(700));
        assert!(args
            .command_line(&format!(r"{dir}\moat-runner.exe"))
            .is_ok());
        let dir = format!(r"C:\{}", "d".repeat(1000));
        let err = args
            .command_line(&format!(r"{dir}\moat-runner.exe"))
            .unwrap_err();
        assert!(err.contains("1024"), "{err}");
    }

    #[test]
    fn command_line_refuses_what_the_runner_would() {
        let mut args = sample();
        args.input_pipe = "other".to_string();
        assert!(args.command_line(r"C:\moat\moat-runner.exe").is_err());
        let mut args = sample();
        args.server_pid = 0;
        assert!(args.command_line(r"C:\moat\moat-runner.exe").is_err());
    }

    #[test]
    fn desktop_is_optional() {
        let parsed = RunnerArgs::parse(&strings(&[
            "--server-pid",
            "7",
            "--output",
            "moat-runner-b",
            "--input",
            "moat-runner-a",
        ]))
        .unwrap();
        assert_eq!(parsed.input_pipe, "moat-runner-a");
        assert_eq!(parsed.output_pipe, "moat-runner-b");
        assert_eq!(parsed.server_pid, 7);
        assert_eq!(parsed.desktop, DEFAULT_DESKTOP);
    }

    #[test]
    fn refusals() {
        let good = ["--input", "moat-runner-a", "--output", "moat-runner-b"];
        let with = |extra: &[&str]| {
            let mut v = strings(&good);
            v.extend(strings(extra));
            RunnerArgs::parse(&v)
        };
        assert!(with(&["--server-pid", "1"]).is_ok());
        for (extra, want) in [
            (&[][..], "--server-pid is missing"),
            (&["--server-pid"][..], "needs a value"),
            (&["--server-pid", "0"][..], "not a process id"),
            (&["--server-pid", "+5"][..], "not a process id"),
            (&["--server-pid", "-5"][..], "not a process id"),
            (&["--server-pid", ""][..], "not a process id"),
            (&["--server-pid", "4294967296"][..], "not a process id"),
            (
                &["--server-pid", "1", "--server-pid", "1"][..],
                "given twice",
            ),
            (&["--server-pid", "1", "--verbose"][..], "unknown argument"),
            (
                &["--server-pid", "1", "--desktop", "default"][..],
                "desktop",
            ),
            (&["--server-pid", "1", "--desktop", r"a\b\c"][..], "desktop"),
            (&["--server-pid", "1", "--desktop", r"\b"][..], "desktop"),
            (&["--server-pid", "1", "--desktop", "a\\b\0"][..], "desktop"),
        ] {
            let err = with(extra).unwrap_err();
            assert!(err.contains(want), "{extra:?}: {err}");
        }
        assert!(RunnerArgs::parse(&strings(&[
            "--output",
            "moat-runner-b",
            "--server-pid",
            "1"
        ]))
        .unwrap_err()
        .contains("--input is missing"));
        assert!(RunnerArgs::parse(&[]).is_err());
    }

    #[test]
    fn pipe_names_are_checked() {
        for bad in [
            "",
            "moat-runner-",
            "other-pipe",
            r"moat-runner-a\..\b",
            "moat-runner-a b",
            "moat-runner-é",
            "moat-runner-a/b",
        ] {
            let args = strings(&[
                "--input",
                bad,
                "--output",
                "moat-runner-b",
                "--server-pid",
                "1",
            ]);
            assert!(RunnerArgs::parse(&args).is_err(), "{bad:?}");
        }
        let long = format!("moat-runner-{}", "a".repeat(MAX_PIPE_NAME));
        let args = strings(&[
            "--input",
            &long,
            "--output",
            "moat-runner-b",
            "--server-pid",
            "1",
        ]);
        assert!(RunnerArgs::parse(&args).is_err());
        let same = strings(&[
            "--input",
            "moat-runner-a",
            "--output",
            "moat-runner-a",
            "--server-pid",
            "1",
        ]);
        assert!(RunnerArgs::parse(&same).unwrap_err().contains("same pipe"));
    }

    #[test]
    fn server_check() {
        let args = sample();
        assert_eq!(args.check_server("p", 4242), Ok(()));
        let err = args.check_server("moat-runner-x-in", 99).unwrap_err();
        assert!(err.contains("99") && err.contains("4242") && err.contains("moat-runner-x-in"));
    }

    #[test]
    fn pipe_paths() {
        assert_eq!(pipe_path("moat-runner-a"), r"\\.\pipe\moat-runner-a");
    }

    #[test]
    fn working_directories() {
        for (exe, want) in [
            (r"C:\moat\bin\moat-runner.exe", Some(r"C:\moat\bin")),
            (r"C:\moat-runner.exe", Some(r"C:\")),
            ("c:/moat/moat-runner.exe", Some("c:/moat")),
            (r"\\server\share\moat-runner.exe", Some(r"\\server\share")),
            (r"\\server\moat-runner.exe", None),
            (
                r"\\server\share\bin\moat-runner.exe",
                Some(r"\\server\share\bin"),
            ),
            ("moat-runner.exe", None),
            (r"bin\moat-runner.exe", None),
            (r"C:moat-runner.exe", None),
            (r"\moat\moat-runner.exe", None),
        ] {
            assert_eq!(working_directory(exe).as_deref(), want, "{exe}");
        }
    }

    #[test]
    fn exit_codes_are_explained() {
        for code in [EXIT_USAGE, EXIT_CONNECT, EXIT_WRONG_SERVER] {
            assert!(explain_exit(code).is_some());
        }
        assert_eq!(explain_exit(0), None);
        assert_eq!(explain_exit(1), None);
    }
}
