//! `moat-win`: moat for Windows (`moat run`, `moat setup`, `moat doctor`),
//! installed as `moat.exe` there. The command line is parsed by
//! `moat_windows::cli_args` and carried out by `moat_windows::sys::cli`.
//! moat's own CLI (`moat-cli`, whose binary is `moat`) does not build for
//! Windows, hence this one; on other systems it only says what it is.

#[cfg(windows)]
// The exit code is the command's, a u32 that may be an NTSTATUS;
// `ExitCode` cannot carry that with Rust 1.63.
#[allow(clippy::exit)]
fn main() {
    let code = moat_windows::sys::cli::main();
    std::process::exit(code);
}

#[cfg(not(windows))]
fn main() -> std::process::ExitCode {
    eprintln!(
        "moat-win: this is moat's entry point for Windows (moat run, moat setup, moat doctor); \
         on this system use moat"
    );
    std::process::ExitCode::from(2)
}
