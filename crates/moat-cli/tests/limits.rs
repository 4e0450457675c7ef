//! Resource limits: processes, memory, file size. Each with a control run
//! without the limit, which must succeed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

#[test]
fn limits_hold_and_the_same_work_passes_without_them() {
    let mut v = Verdicts::default();
    for who in identities() {
        let s = Scratch::new(&who, "limits");
        let ws = s.ws.clone();

        // A fork bomb, bounded so the control cannot hurt the machine.
        let control = inside(&who, &ws, &[], "fork-count", &["40"]);
        if who.uid == 0 {
            // The kernel exempts root from RLIMIT_NPROC: moat must refuse
            // rather than pretend.
            let refused = moat_run(&who, &ws, &["--max-processes", "10"], &["true"]);
            v.check(
                "root --max-processes is refused",
                refused.status.code() == Some(125)
                    && stderr(&refused).contains("process limit is not enforced"),
                stderr(&refused),
            );
            let accepted = moat_run(
                &who,
                &ws,
                &["--max-processes", "10", "--allow-degraded"],
                &["true"],
            );
            v.check(
                "root --max-processes --allow-degraded says what it lost",
                accepted.status.success()
                    && stderr(&accepted).contains("process limit is not enforced"),
                stderr(&accepted),
            );
        } else {
            let limited = inside(&who, &ws, &["--max-processes", "10"], "fork-count", &["40"]);
            v.blocked(
                &format!("{} --max-processes", who.name),
                &control,
                &limited,
                &["EAGAIN"],
            );
            if let Probe::Failed { detail, .. } = &limited {
                let forked: u32 = detail.trim().parse().unwrap_or(u32::MAX);
                v.check(
                    &format!("{} forks stopped near the limit", who.name),
                    forked < 10,
                    format!("forked {forked}"),
                );
            }
        }

        // Only a cgroup holds a CPU share, and this tier has none: refused,
        // or run with the loss named (control: the same run without it).
        let cpu = ["--tier", "unelevated", "--max-cpus", "0.5"];
        let refused = moat_run(&who, &ws, &cpu, &["true"]);
        v.check(
            &format!("{} --max-cpus is refused in the unelevated tier", who.name),
            refused.status.code() == Some(125)
                && stderr(&refused).contains("CPU limit is not enforced"),
            stderr(&refused),
        );
        let accepted = moat_run(
            &who,
            &ws,
            &[&cpu[..], &["--allow-degraded"]].concat(),
            &["true"],
        );
        v.check(
            &format!("{} --max-cpus --allow-degraded says what it lost", who.name),
            accepted.status.success() && stderr(&accepted).contains("CPU limit is not enforced"),
            stderr(&accepted),
        );

        let alloc = [
            "python3",
            "-c",
            "b = bytearray(300 * 1024 * 1024); b[-1] = 1",
        ];
        let control = moat_run(&who, &ws, &[], &alloc);
        let limited = moat_run(&who, &ws, &["--max-memory", "128M"], &alloc);
        v.check(
            &format!("{} allocation control", who.name),
            control.status.success(),
            stderr(&control),
        );
        v.check(
            &format!("{} --max-memory", who.name),
            !limited.status.success() && stderr(&limited).contains("MemoryError"),
            format!("{:?} {}", limited.status, stderr(&limited)),
        );

        let write = ["sh", "-c", "head -c 4194304 /dev/zero > big"];
        let control = moat_run(&who, &ws, &[], &write);
        v.check(
            &format!("{} file size control", who.name),
            control.status.success(),
            stderr(&control),
        );
        let limited = moat_run(&who, &ws, &["--max-file-size", "1M"], &write);
        let size = std::fs::metadata(ws.join("big"))
            .map(|m| m.len())
            .unwrap_or(0);
        v.check(
            &format!("{} --max-file-size", who.name),
            !limited.status.success() && size <= 1 << 20,
            format!("{:?}, file is {size} bytes", limited.status),
        );
    }
    v.finish();
}
