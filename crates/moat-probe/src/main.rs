//! `moat-probe ACTION [ARGS...]`: performs exactly one action, usually one the
//! sandbox must forbid, and reports what the kernel said.
//!
//! moat's tests run each action inside the sandbox and, as a positive
//! control, outside it; so every action really performs its syscall, and
//! nothing else: no retries, no fallbacks, no side effects beyond the action.
//!
//! # Output contract
//!
//! Exactly one line of JSON on stdout, then exit:
//!
//! - success, exit 0:
//!   `{"action":"write-file","ok":true,"detail":"..."}` (`detail` optional)
//! - failure with an errno, exit 1:
//!   `{"action":"write-file","ok":false,"errno":13,"error":"EACCES","detail":"..."}`
//!   where `error` is the symbolic errno name (`E<number>` when unknown) and
//!   `detail`, if present, names the failing step of a multi-step action.
//! - failure without an errno (a getaddrinfo code, a protocol surprise),
//!   exit 1: `"errno":null` and a free-text `"error"`.
//! - bad usage: a message on stderr, nothing on stdout, exit 2. Arguments are
//!   validated before anything is attempted.
//!
//! Exceptions: `exec` and `memfd-exec` print nothing when the exec succeeds
//! (the new program's own output and exit status appear instead); and if the
//! kernel kills the probe (SIGSYS from seccomp, SIGSEGV from a disabled
//! `int 0x80`), there is no output and the caller sees the signal.

mod action;
mod errno;
mod fs_actions;
mod json;
mod kernel_actions;
mod net_actions;
mod ns_actions;
mod proc_actions;
#[allow(unsafe_code)]
mod sys;
mod term_actions;

use std::io::Write;
use std::process::ExitCode;

use action::{Action, Args, Fail};

const GROUPS: &[(&str, &[Action])] = &[
    ("Filesystem", fs_actions::ACTIONS),
    ("Network", net_actions::ACTIONS),
    ("Processes", proc_actions::ACTIONS),
    ("Terminal", term_actions::ACTIONS),
    ("Namespaces and mounts", ns_actions::ACTIONS),
    ("Kernel surface", kernel_actions::ACTIONS),
];

const USAGE_EXIT: u8 = 2;

fn find(name: &str) -> Option<&'static Action> {
    GROUPS
        .iter()
        .flat_map(|(_, actions)| actions.iter())
        .find(|action| action.name == name)
}

fn help_text() -> String {
    let mut text = String::from(
        "usage: moat-probe ACTION [ARGS...]\n\
         Performs one action and prints one JSON line: ok/errno/error/detail.\n\
         Exit 0 = ok, 1 = failed (reported), 2 = bad usage. No output if the\n\
         kernel kills the probe; exec and memfd-exec print nothing on success.\n",
    );
    for (group, actions) in GROUPS {
        text.push_str(&format!("\n{group}:\n"));
        for action in actions.iter() {
            let synopsis = format!("{} {}", action.name, action.usage);
            text.push_str(&format!("  {:<34} {}\n", synopsis.trim_end(), action.help));
        }
    }
    text.push_str("\n  help                               this list\n");
    text
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("moat-probe: {message}");
    eprintln!("run `moat-probe help` for the list of actions");
    ExitCode::from(USAGE_EXIT)
}

fn print_line(line: &str) {
    // Errors are ignored on purpose: with stdout closed there is no one to
    // tell, and the exit status still carries the result.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line.as_bytes());
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

fn main() -> ExitCode {
    let mut argv = std::env::args_os().skip(1);
    let Some(name) = argv.next() else {
        return usage_error("missing ACTION");
    };
    let Some(name) = name.to_str() else {
        return usage_error(&format!("unknown action {name:?}"));
    };
    if matches!(name, "help" | "--help" | "-h") {
        print!("{}", help_text());
        return ExitCode::SUCCESS;
    }
    let Some(action) = find(name) else {
        return usage_error(&format!("unknown action {name:?}"));
    };
    let args = Args::new(argv.collect());
    if !action.accepts(args.len()) {
        return usage_error(&format!(
            "usage: moat-probe {} {}",
            action.name, action.usage
        ));
    }
    let outcome = (action.run)(&args);
    if let Err(Fail::Usage(message)) = &outcome {
        return usage_error(&format!(
            "{message}\nusage: moat-probe {} {}",
            action.name, action.usage
        ));
    }
    print_line(&json::report(action.name, &outcome));
    if outcome.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::GROUPS;
    use std::collections::HashSet;

    #[test]
    fn action_names_are_unique() {
        let mut seen = HashSet::new();
        for (_, actions) in GROUPS {
            for action in actions.iter() {
                assert!(seen.insert(action.name), "duplicate {}", action.name);
            }
        }
    }
}
