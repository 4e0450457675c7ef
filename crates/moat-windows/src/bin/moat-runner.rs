//! `moat-runner`: the elevated tier's runner on Windows. moat starts it as
//! a sandbox account (`CreateProcessWithLogonW`) with the names of two
//! named pipes; it restricts its own token, runs the requested command in a
//! kill-on-close job and relays its input, output and exit code as frames
//! (`moat_windows::sys::runner`). It is not meant to be started by hand.

#[cfg(windows)]
// The runner's exit code is the command's, a u32 that may be an NTSTATUS;
// `ExitCode` cannot carry that with Rust 1.63.
#[allow(clippy::exit)]
fn main() {
    let code = moat_windows::sys::runner::main();
    std::process::exit(code as i32);
}

#[cfg(not(windows))]
fn main() -> std::process::ExitCode {
    eprintln!(
        "moat-runner: this is moat's Windows runner (the elevated tier starts it as a sandbox \
         account); it does nothing on this system"
    );
    std::process::ExitCode::from(2)
}
