//! The policy's limits as a Windows job object enforces them, decided
//! before any Windows call.
//!
//! Both tiers put the command in a kill-on-close job object (the unelevated
//! tier: moat's own; the elevated tier: the runner's). The job also carries
//! the limits:
//! - `memory`: `JobMemoryLimit` (`JOB_OBJECT_LIMIT_JOB_MEMORY`), the
//!   committed memory of all the job's processes together; an allocation
//!   past it fails (the command is not killed, as Linux's OOM killer would).
//! - `processes`: `ActiveProcessLimit` (`JOB_OBJECT_LIMIT_ACTIVE_PROCESS`).
//!   Windows counts processes; Linux's pids limit counts threads too, so
//!   the same number allows more on Windows.
//! - `cpu`: a hard cap (`JOBOBJECT_CPU_RATE_CONTROL_INFORMATION`,
//!   `ENABLE | HARD_CAP`) whose `CpuRate` is in 1/100 of a percent of *all*
//!   the machine's processors, so it depends on their number ([`cpu_rate`]).
//! - `timeout`: not a job setting; whoever waits for the command (moat, or
//!   the runner) kills the job when it runs out and reports exit code
//!   [`TIMEOUT_EXIT`], as moat does on Linux.
//!
//! `file_size` cannot be enforced by a job (Windows has no per-process
//! file size limit), so it is reported as lost.
//!
//! [`Wanted`] is what the spawn request carries to the runner (plain
//! numbers); [`settings`] turns it into the job's values on the machine
//! that applies them; [`plan`] is moat's view: what is wanted, checked,
//! and the report. Bad values are errors that name the limit, never panics.

use std::fmt;
use std::time::Duration;

use moat_policy::units::format_cpus;
use moat_policy::Limits;

use crate::unelevated::LayerReport;

/// The exit code of a run that timed out (as on Linux).
pub const TIMEOUT_EXIT: u32 = 124;

/// `CpuRate` of all processors: 100% in units of 1/100 of a percent.
pub const FULL_RATE: u32 = 10_000;

/// The limits a job can enforce, as plain numbers: what the spawn request
/// carries (`crate::framing::SpawnRequest::limits`). `None` is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Wanted {
    /// Wall-clock milliseconds after which the run is killed.
    pub timeout_ms: Option<u64>,
    /// Most processes alive at once.
    pub processes: Option<u64>,
    /// Most committed memory of all processes together, in bytes.
    pub memory: Option<u64>,
    /// Most CPU, in thousandths of a CPU.
    pub cpu_millis: Option<u64>,
}

impl Wanted {
    /// The job's share of `limits` (everything but `file_size`).
    pub fn from_policy(limits: &Limits) -> Wanted {
        Wanted {
            timeout_ms: limits.timeout.as_ref().map(|t| millis(t.value)),
            processes: limits.processes.as_ref().map(|p| p.value),
            memory: limits.memory.as_ref().map(|m| m.value),
            cpu_millis: limits.cpu.as_ref().map(|c| c.value),
        }
    }

    /// Whether no limit is asked for.
    pub fn is_empty(&self) -> bool {
        *self == Wanted::default()
    }

    /// The timeout, if any.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout_ms.map(Duration::from_millis)
    }
}

/// `d` in whole milliseconds, rounded up so that a timeout shorter than
/// one is not taken for none.
fn millis(d: Duration) -> u64 {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 && d > Duration::ZERO {
        1
    } else {
        ms
    }
}

/// What the job object is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JobSettings {
    /// `JobMemoryLimit` in bytes, with `JOB_OBJECT_LIMIT_JOB_MEMORY`.
    pub job_memory: Option<u64>,
    /// `ActiveProcessLimit`, with `JOB_OBJECT_LIMIT_ACTIVE_PROCESS`.
    pub active_processes: Option<u32>,
    /// `CpuRate` (1..=[`FULL_RATE`]), with `ENABLE | HARD_CAP`.
    pub cpu_rate: Option<u32>,
    /// When the waiter kills the job.
    pub timeout: Option<Duration>,
}

impl JobSettings {
    /// Whether the job needs anything besides kill-on-close.
    pub fn is_empty(&self) -> bool {
        self.job_memory.is_none() && self.active_processes.is_none() && self.cpu_rate.is_none()
    }
}

/// A limit the job cannot take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitError {
    /// `memory` of 0 bytes: nothing could start.
    ZeroMemory,
    /// `processes` of 0: not even the command could start.
    ZeroProcesses,
    /// `cpu` of 0: the command could never run.
    ZeroCpu,
    /// A `timeout` of 0: the command would be killed before it starts.
    ZeroTimeout,
    /// The machine reports no processors (a bug in the caller).
    NoProcessors,
    /// `cpu` (thousandths of a CPU) is under 1/100 of a percent of
    /// `processors`, the least rate Windows can cap at.
    CpuTooSmall { cpu_millis: u64, processors: u32 },
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitError::ZeroMemory => f.write_str(
                "limits: memory is 0 bytes, so nothing could start; give a size such as 512M, or \
                 leave the memory limit out",
            ),
            LimitError::ZeroProcesses => f.write_str(
                "limits: processes is 0, so not even the command could start; give at least 1, \
                 or leave the processes limit out",
            ),
            LimitError::ZeroCpu => f.write_str(
                "limits: cpu is 0, so the command could never run; give a share such as 0.5, or \
                 leave the cpu limit out",
            ),
            LimitError::ZeroTimeout => f.write_str(
                "limits: timeout is 0, so the command would be killed before it starts; give a \
                 duration such as 90s, or leave the timeout out",
            ),
            LimitError::NoProcessors => f.write_str(
                "limits: the machine reported 0 processors, so the cpu limit cannot be computed",
            ),
            LimitError::CpuTooSmall {
                cpu_millis,
                processors,
            } => write!(
                f,
                "limits: cpu {} is less than 1/100 of a percent of this machine's {processors} \
                 processors, the smallest share a Windows job can be capped at; give at least {}",
                format_cpus(*cpu_millis),
                format_cpus(min_cpu_millis(*processors))
            ),
        }
    }
}

impl std::error::Error for LimitError {}

/// The least `cpu` (thousandths of a CPU) that gives a rate of 1.
fn min_cpu_millis(processors: u32) -> u64 {
    // rate = millis * 10 / processors >= 1  <=>  millis >= ceil(processors / 10)
    (u64::from(processors) + 9) / 10
}

/// `CpuRate` for `cpu_millis` thousandths of a CPU on a machine with
/// `processors` processors: `cpu_millis * 10000 / (1000 * processors)`,
/// rounded down, at most [`FULL_RATE`] (a share larger than the machine is
/// the whole machine). A share that rounds to 0 is an error: a rate of 0
/// means no cap at all to Windows.
pub fn cpu_rate(cpu_millis: u64, processors: u32) -> Result<u32, LimitError> {
    if cpu_millis == 0 {
        return Err(LimitError::ZeroCpu);
    }
    if processors == 0 {
        return Err(LimitError::NoProcessors);
    }
    let rate = u128::from(cpu_millis) * 10 / u128::from(processors);
    if rate == 0 {
        return Err(LimitError::CpuTooSmall {
            cpu_millis,
            processors,
        });
    }
    Ok(u32::try_from(rate.min(u128::from(FULL_RATE))).unwrap_or(FULL_RATE))
}

/// Checks what does not depend on the machine: no limit of 0.
pub fn check(wanted: &Wanted) -> Result<(), LimitError> {
    if wanted.memory == Some(0) {
        return Err(LimitError::ZeroMemory);
    }
    if wanted.processes == Some(0) {
        return Err(LimitError::ZeroProcesses);
    }
    if wanted.cpu_millis == Some(0) {
        return Err(LimitError::ZeroCpu);
    }
    if wanted.timeout_ms == Some(0) {
        return Err(LimitError::ZeroTimeout);
    }
    Ok(())
}

/// The job's settings for `wanted` on a machine with `processors`
/// processors (all processor groups). A process count beyond what the
/// job's 32-bit field holds is no limit in practice, and is capped there.
pub fn settings(wanted: &Wanted, processors: u32) -> Result<JobSettings, LimitError> {
    check(wanted)?;
    let cpu_rate = match wanted.cpu_millis {
        Some(millis) => Some(cpu_rate(millis, processors)?),
        None => None,
    };
    Ok(JobSettings {
        job_memory: wanted.memory,
        active_processes: wanted
            .processes
            .map(|p| u32::try_from(p).unwrap_or(u32::MAX)),
        cpu_rate,
        timeout: wanted.timeout(),
    })
}

/// What moat knows of a run's limits before it starts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LimitPlan {
    /// For the job (the unelevated tier) or the spawn request (the
    /// elevated tier).
    pub wanted: Wanted,
    /// The `limits` layer, when any limit the job enforces is set.
    pub layer: Option<LayerReport>,
    /// What cannot be enforced: `file_size`.
    pub lost: Vec<String>,
}

/// Checks `limits` and says what holds.
pub fn plan(limits: &Limits) -> Result<LimitPlan, LimitError> {
    let wanted = Wanted::from_policy(limits);
    check(&wanted)?;
    let mut parts: Vec<String> = Vec::new();
    if let Some(memory) = wanted.memory {
        parts.push(format!(
            "memory {} for the command and everything it starts, together (an allocation past \
             it fails)",
            format_bytes(memory)
        ));
    }
    if let Some(processes) = wanted.processes {
        parts.push(format!(
            "at most {processes} process{} at once (Windows counts processes; moat's pids \
             limit on Linux counts threads too)",
            if processes == 1 { "" } else { "es" }
        ));
    }
    if let Some(cpu) = wanted.cpu_millis {
        parts.push(format!(
            "cpu capped at {} CPU{} (a hard cap on the job's share of all processors)",
            format_cpus(cpu),
            if cpu == 1000 { "" } else { "s" }
        ));
    }
    if let Some(timeout) = wanted.timeout() {
        parts.push(format!(
            "timeout {}: then the command and everything it started are killed (exit code \
             {TIMEOUT_EXIT})",
            format_duration(timeout)
        ));
    }
    let mut lost = Vec::new();
    if let Some(size) = limits.file_size.as_ref().map(|s| s.value) {
        lost.push(format!(
            "the file_size limit ({}) is not enforced on Windows: a job object cannot limit the \
             size of the files a command writes, and Windows has no per-process file size limit",
            format_bytes(size)
        ));
    }
    let layer = if parts.is_empty() {
        None
    } else {
        Some(LayerReport {
            layer: "limits",
            state: if lost.is_empty() { "full" } else { "partial" },
            detail: format!("job object: {}", parts.join("; ")),
        })
    };
    Ok(LimitPlan {
        wanted,
        layer,
        lost,
    })
}

/// What moat prints (after `moat: `) when the timeout kills a run.
pub fn timeout_message(timeout: Duration) -> String {
    format!(
        "timed out after {}: killed the command and everything it started",
        format_duration(timeout)
    )
}

/// `90s`, `1.5s`: seconds, with a tenth when the duration has one.
pub fn format_duration(d: Duration) -> String {
    let tenths = d.as_millis() / 100;
    if tenths % 10 == 0 {
        format!("{}s", tenths / 10)
    } else {
        format!("{}.{}s", tenths / 10, tenths % 10)
    }
}

/// Bytes in the largest binary unit that divides them (`512 MiB`).
pub fn format_bytes(bytes: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1u64 << shift && bytes % (1u64 << shift) == 0 {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    if bytes == 1 {
        "1 byte".to_string()
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use moat_policy::{Source, Sourced};

    fn flag<T>(value: T) -> Option<Sourced<T>> {
        Some(Sourced::new(value, Source::Flag("test".into())))
    }

    fn all_limits() -> Limits {
        Limits {
            timeout: flag(Duration::from_secs(90)),
            processes: flag(64),
            memory: flag(512 << 20),
            file_size: flag(1 << 30),
            cpu: flag(1500),
        }
    }

    #[test]
    fn wanted_takes_everything_but_file_size() {
        let w = Wanted::from_policy(&all_limits());
        assert_eq!(
            w,
            Wanted {
                timeout_ms: Some(90_000),
                processes: Some(64),
                memory: Some(512 << 20),
                cpu_millis: Some(1500),
            }
        );
        assert!(!w.is_empty());
        assert_eq!(w.timeout(), Some(Duration::from_secs(90)));
        let only_file_size = Limits {
            file_size: flag(10),
            ..Limits::default()
        };
        assert!(Wanted::from_policy(&only_file_size).is_empty());
        assert_eq!(Wanted::default().timeout(), None);
    }

    #[test]
    fn a_sub_millisecond_timeout_is_not_none() {
        let limits = Limits {
            timeout: flag(Duration::from_micros(10)),
            ..Limits::default()
        };
        assert_eq!(Wanted::from_policy(&limits).timeout_ms, Some(1));
    }

    #[test]
    fn cpu_rate_is_a_share_of_all_processors() {
        // 1.5 CPUs of 8: 18.75% = 1875.
        assert_eq!(cpu_rate(1500, 8), Ok(1875));
        // One CPU of one: all of it.
        assert_eq!(cpu_rate(1000, 1), Ok(FULL_RATE));
        // Half a CPU of 4: 12.5%.
        assert_eq!(cpu_rate(500, 4), Ok(1250));
        // Rounded down: 1 CPU of 3 is 33.33%.
        assert_eq!(cpu_rate(1000, 3), Ok(3333));
        // More than the machine has: the whole machine.
        assert_eq!(cpu_rate(16_000, 8), Ok(FULL_RATE));
        assert_eq!(cpu_rate(u64::MAX, 1), Ok(FULL_RATE));
        // The smallest share that is not 0.
        assert_eq!(cpu_rate(7, 64), Ok(1));
        assert_eq!(
            cpu_rate(6, 64),
            Err(LimitError::CpuTooSmall {
                cpu_millis: 6,
                processors: 64
            })
        );
        assert_eq!(cpu_rate(0, 8), Err(LimitError::ZeroCpu));
        assert_eq!(cpu_rate(1000, 0), Err(LimitError::NoProcessors));
    }

    #[test]
    fn settings_for_the_job() {
        let s = settings(&Wanted::from_policy(&all_limits()), 8).unwrap();
        assert_eq!(
            s,
            JobSettings {
                job_memory: Some(512 << 20),
                active_processes: Some(64),
                cpu_rate: Some(1875),
                timeout: Some(Duration::from_secs(90)),
            }
        );
        assert!(!s.is_empty());
        // A timeout alone changes nothing in the job.
        let t = Wanted {
            timeout_ms: Some(5),
            ..Wanted::default()
        };
        let s = settings(&t, 8).unwrap();
        assert!(s.is_empty());
        assert_eq!(s.timeout, Some(Duration::from_millis(5)));
        // Processes beyond the job's 32-bit field: capped, not wrapped.
        let many = Wanted {
            processes: Some(u64::from(u32::MAX) + 5),
            ..Wanted::default()
        };
        assert_eq!(settings(&many, 1).unwrap().active_processes, Some(u32::MAX));
        assert_eq!(settings(&Wanted::default(), 0), Ok(JobSettings::default()));
    }

    #[test]
    fn zeros_are_errors_that_name_the_limit() {
        let cases = [
            (
                Wanted {
                    memory: Some(0),
                    ..Wanted::default()
                },
                LimitError::ZeroMemory,
                "memory",
            ),
            (
                Wanted {
                    processes: Some(0),
                    ..Wanted::default()
                },
                LimitError::ZeroProcesses,
                "processes",
            ),
            (
                Wanted {
                    cpu_millis: Some(0),
                    ..Wanted::default()
                },
                LimitError::ZeroCpu,
                "cpu",
            ),
            (
                Wanted {
                    timeout_ms: Some(0),
                    ..Wanted::default()
                },
                LimitError::ZeroTimeout,
                "timeout",
            ),
        ];
        for (wanted, err, word) in cases {
            assert_eq!(check(&wanted), Err(err));
            assert_eq!(settings(&wanted, 4), Err(err));
            assert!(err.to_string().contains(word), "{err}");
        }
        let small = settings(
            &Wanted {
                cpu_millis: Some(1),
                ..Wanted::default()
            },
            16,
        )
        .unwrap_err();
        let text = small.to_string();
        assert!(
            text.contains("cpu 0.001") && text.contains("16") && text.contains("at least 0.002"),
            "{text}"
        );
        assert!(LimitError::NoProcessors
            .to_string()
            .contains("0 processors"));
    }

    #[test]
    fn the_report_names_each_limit_and_loses_file_size() {
        let p = plan(&all_limits()).unwrap();
        let layer = p.layer.unwrap();
        assert_eq!(layer.layer, "limits");
        assert_eq!(layer.state, "partial");
        for part in [
            "memory 512 MiB",
            "at most 64 processes",
            "Windows counts processes",
            "threads too",
            "cpu capped at 1.5 CPUs",
            "timeout 90s",
            "exit code 124",
        ] {
            assert!(layer.detail.contains(part), "{part}: {}", layer.detail);
        }
        assert_eq!(p.lost.len(), 1);
        assert!(
            p.lost[0].contains("file_size") && p.lost[0].contains("1 GiB"),
            "{:?}",
            p.lost
        );

        // Without file_size the layer is full; one limit, one part.
        let p = plan(&Limits {
            timeout: flag(Duration::from_secs(5)),
            ..Limits::default()
        })
        .unwrap();
        let layer = p.layer.unwrap();
        assert_eq!(layer.state, "full");
        assert_eq!(
            layer.detail,
            "job object: timeout 5s: then the command and everything it started are killed \
             (exit code 124)"
        );
        assert!(p.lost.is_empty());

        // No limits: no layer, nothing lost.
        assert_eq!(plan(&Limits::default()).unwrap(), LimitPlan::default());
        // file_size alone: lost, and no layer claims anything.
        let p = plan(&Limits {
            file_size: flag(4096),
            ..Limits::default()
        })
        .unwrap();
        assert_eq!(p.layer, None);
        assert!(p.lost[0].contains("4 KiB"));
        // A bad value refuses the run.
        let bad = Limits {
            memory: flag(0),
            ..Limits::default()
        };
        assert_eq!(plan(&bad), Err(LimitError::ZeroMemory));
    }

    #[test]
    fn timeout_text() {
        assert_eq!(
            timeout_message(Duration::from_secs(30)),
            "timed out after 30s: killed the command and everything it started"
        );
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_secs(3600)), "3600s");
        assert_eq!(format_bytes(1), "1 byte");
        assert_eq!(format_bytes(1536), "1536 bytes");
        assert_eq!(format_bytes(2048), "2 KiB");
        assert_eq!(format_bytes(3 << 30), "3 GiB");
        assert_eq!(format_bytes(1 << 40), "1 TiB");
        assert_eq!(format_bytes(0), "0 bytes");
    }
}
