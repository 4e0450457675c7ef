//! `moat`: run commands of coding agents in a sandbox.
//!
//! Exit status: the command's own for `moat run` and `moat shell` (128+N when killed by
//! signal N, 124 on timeout, 127 when not found, 126 when not executable);
//! 125 when moat itself refuses or fails; 2 for usage errors. `moat policy
//! suggest`: 1 when moat never allows what the run was refused, 2 when the
//! report cannot be read or used.

mod cache;
mod cli;
mod doctor;
mod flags;
mod mcp;
mod policy_show;
mod probe;
mod proxy;
mod refusals;
mod run;
mod setup;
mod shell;
mod suggest;

use std::process::ExitCode;

use clap::Parser;

/// An error already reported (as JSON); only the exit status is left.
#[derive(Debug)]
pub struct Reported;

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("reported")
    }
}

impl std::error::Error for Reported {}

/// moat's own failures, as `env` and `timeout` report theirs.
pub const MOAT_FAILED: u8 = 125;

fn main() -> ExitCode {
    let cli = cli::Cli::parse_from(shell::as_shell_verb(std::env::args_os().collect()));
    let result = match cli.command {
        cli::Verb::Run(args) => run::run(args),
        cli::Verb::Shell(args) => shell::shell(args),
        cli::Verb::Proxy(args) => proxy::proxy(args),
        cli::Verb::Mcp(args) => mcp::mcp(args),
        cli::Verb::Policy {
            command: cli::PolicyVerb::Show { policy, json },
        } => policy_show::show(&policy, json).map(|()| 0),
        cli::Verb::Policy {
            command: cli::PolicyVerb::Suggest { from },
        } => suggest::suggest(&from),
        cli::Verb::Doctor { json } => doctor::doctor(json).map(|()| 0),
        cli::Verb::Cache { command, json } => cache::cache(command, json),
        cli::Verb::Setup(args) => setup::setup(&args),
        cli::Verb::Probe(args) => probe::probe(probe::Options {
            json: args.json,
            only: args.only,
            wrappers: args.wrapper,
            modes: args.mode,
        }),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if e.downcast_ref::<Reported>().is_none() {
                eprintln!("moat: {:#}", e);
            }
            ExitCode::from(MOAT_FAILED)
        }
    }
}
