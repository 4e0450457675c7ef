//! Carrying out an ACL plan and undoing it, in the order that keeps the
//! disk safe and the ledger true.
//!
//! Each step is recorded in the ledger only after it succeeded, and the
//! caller saves the ledger after every call, so a run that stops halfway
//! (a crash, a refused step) leaves exactly what the ledger says: removal
//! then takes off everything moat added and nothing else. Steps already in
//! the ledger are skipped, so a second run does not touch the disk.
//!
//! The disk is reached through [`Host`], implemented by `sys::acl` on
//! Windows and by a recording fake in the tests.

use std::fmt;

use crate::acl_plan::{AclPlan, AclStep, Ledger, RemovalStep, WinPath};
use crate::sddl::Ace;
use crate::sid::Sid;

/// What applying and removing need from the system.
pub trait Host {
    fn create_dir(&mut self, path: &WinPath) -> Result<(), String>;
    fn add_ace(&mut self, path: &WinPath, ace: &Ace) -> Result<(), String>;
    /// Removes the explicit ACEs for `sid` on `path`; how many there were.
    fn remove_aces(&mut self, path: &WinPath, sid: &Sid) -> Result<usize, String>;
    /// Removes `path` if it is an empty directory; whether it did.
    fn remove_dir_if_empty(&mut self, path: &WinPath) -> Result<bool, String>;
}

/// A step that failed, after the ones before it were applied (and
/// recorded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailed {
    pub step: String,
    pub reason: String,
    pub done: usize,
}

impl fmt::Display for StepFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} failed: {} ({} steps before it were applied and recorded: the next run carries \
             on from there, and removing the root, or `moat setup --remove` for the elevated \
             tier's, takes them off)",
            self.step, self.reason, self.done
        )
    }
}

impl std::error::Error for StepFailed {}

/// Applies what `plan` has that `ledger` does not; how many steps.
pub fn apply(
    plan: &AclPlan,
    ledger: &mut Ledger,
    host: &mut dyn Host,
) -> Result<usize, StepFailed> {
    let mut done = 0;
    for step in plan.pending(ledger) {
        let result = match &step {
            AclStep::CreateDir(path) => host.create_dir(path),
            other => match other.ace() {
                Some(ace) => host.add_ace(other.path(), &ace),
                None => Err("the step has no ACE".to_string()),
            },
        };
        if let Err(reason) = result {
            return Err(StepFailed {
                step: step.to_string(),
                reason,
                done,
            });
        }
        ledger.record(&step);
        done += 1;
    }
    Ok(done)
}

/// Carries out `steps` (from [`Ledger::removal_plan`] or
/// [`Ledger::removal_plan_for`]), recording each in `ledger`; stops at the
/// first failure.
pub fn remove(
    steps: &[RemovalStep],
    ledger: &mut Ledger,
    host: &mut dyn Host,
) -> Result<usize, StepFailed> {
    let mut done = 0;
    for step in steps {
        let result = match step {
            RemovalStep::RemoveAces { path, sid } => host.remove_aces(path, sid).map(|_| ()),
            RemovalStep::RemoveDirIfEmpty(path) => host.remove_dir_if_empty(path).map(|_| ()),
        };
        if let Err(reason) = result {
            return Err(StepFailed {
                step: format!("{:?}", step),
                reason,
                done,
            });
        }
        ledger.record_removed(step);
        done += 1;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::acl_plan::{plan, PathState, PlanInput, ProtectedPath, SidBook};

    /// Records ACEs per path; fails the Nth call when asked.
    #[derive(Default)]
    struct Fake {
        aces: Vec<(String, Ace)>,
        dirs: Vec<String>,
        calls: usize,
        fail_at: Option<usize>,
    }

    impl Fake {
        fn tick(&mut self) -> Result<(), String> {
            self.calls += 1;
            if self.fail_at == Some(self.calls) {
                return Err("access denied (5)".into());
            }
            Ok(())
        }
    }

    impl Host for Fake {
        fn create_dir(&mut self, path: &WinPath) -> Result<(), String> {
            self.tick()?;
            self.dirs.push(path.to_string());
            Ok(())
        }
        fn add_ace(&mut self, path: &WinPath, ace: &Ace) -> Result<(), String> {
            self.tick()?;
            self.aces.push((path.to_string(), *ace));
            Ok(())
        }
        fn remove_aces(&mut self, path: &WinPath, sid: &Sid) -> Result<usize, String> {
            self.tick()?;
            let p = path.to_string();
            let before = self.aces.len();
            self.aces.retain(|(q, a)| !(q == &p && &a.sid == sid));
            Ok(before - self.aces.len())
        }
        fn remove_dir_if_empty(&mut self, path: &WinPath) -> Result<bool, String> {
            self.tick()?;
            let p = path.to_string();
            let before = self.dirs.len();
            self.dirs.retain(|d| d != &p);
            Ok(before != self.dirs.len())
        }
    }

    fn sample() -> (AclPlan, SidBook) {
        let input = PlanInput {
            roots: vec![r"D:\work\app".to_string()],
            protected: vec![
                ProtectedPath::new(r"D:\work\app\.git\hooks", PathState::Dir),
                ProtectedPath::new(r"D:\work\app\.moat", PathState::Absent),
            ],
            everyone_writable: vec![r"C:\Shared".to_string()],
            profiles_root: r"C:\Users".to_string(),
            profile_dir: r"C:\Users\me".to_string(),
            principals: Vec::new(),
        };
        let mut book = SidBook::new();
        let mut n = 0u32;
        let mut random = || {
            n += 1;
            n
        };
        let p = plan(&input, &mut book, &mut random).unwrap();
        (p, book)
    }

    #[test]
    fn a_plan_applies_once_and_comes_off_completely() {
        let (p, _) = sample();
        let mut ledger = Ledger::new();
        let mut disk = Fake::default();
        let n = apply(&p, &mut ledger, &mut disk).unwrap();
        assert!(n >= 4, "{n} steps");
        assert_eq!(disk.dirs, vec![r"D:\work\app\.moat".to_string()]);
        let calls = disk.calls;
        assert_eq!(apply(&p, &mut ledger, &mut disk).unwrap(), 0);
        assert_eq!(disk.calls, calls, "a second run touched the disk");
        let steps = ledger.removal_plan();
        remove(&steps, &mut ledger, &mut disk).unwrap();
        assert!(disk.aces.is_empty(), "left: {:?}", disk.aces);
        assert!(disk.dirs.is_empty());
        assert!(ledger.is_empty(), "{}", ledger.to_text());
    }

    #[test]
    fn a_failure_halfway_leaves_a_ledger_that_removes_exactly_what_was_done() {
        let (p, _) = sample();
        for fail_at in 1..6 {
            let mut ledger = Ledger::new();
            let mut disk = Fake {
                fail_at: Some(fail_at),
                ..Fake::default()
            };
            let err = apply(&p, &mut ledger, &mut disk).unwrap_err();
            assert_eq!(err.done, fail_at - 1);
            assert!(err.to_string().contains("applied and recorded"));
            disk.fail_at = None;
            let steps = ledger.removal_plan();
            remove(&steps, &mut ledger, &mut disk).unwrap();
            assert!(
                disk.aces.is_empty(),
                "fail at {fail_at}: left {:?}",
                disk.aces
            );
            assert!(
                disk.dirs.is_empty(),
                "fail at {fail_at}: left {:?}",
                disk.dirs
            );
        }
    }
}
