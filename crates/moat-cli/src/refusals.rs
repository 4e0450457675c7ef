//! The short block on stderr that ends a run with refusals, for the person
//! (and the agent) reading the output; the run report has them all.

use moat::RunReport;

/// How many refusals the block lists.
const SHOWN: usize = 5;

/// The block, or `None` when nothing was refused.
pub fn summary(report: &RunReport) -> Option<String> {
    let d = &report.denials;
    if d.is_empty() {
        return None;
    }
    let total: u64 = d.iter().map(|x| u64::from(x.count)).sum();
    let mut out = format!(
        "refused {} {} ({} distinct):\n",
        total,
        if total == 1 { "action" } else { "actions" },
        d.len()
    );
    for x in d.iter().take(SHOWN) {
        out.push_str(&format!("  {}\n", line(x)));
    }
    if d.len() > SHOWN {
        out.push_str(&format!("  ... and {} more\n", d.len() - SHOWN));
    }
    out.push_str(
        "the run report (--json, --report FILE) has them all; `moat policy suggest --from FILE` \
         turns one into config lines",
    );
    Some(out)
}

/// One refusal on one line: what, how often, by which layer and process,
/// and what would allow it.
pub fn line(x: &moat::Denial) -> String {
    let who = match (&x.process, x.pid) {
        (Some(p), Some(pid)) => format!(", {p}[{pid}]"),
        (Some(p), None) => format!(", {p}"),
        _ => String::new(),
    };
    let times = if x.count > 1 {
        format!(" ×{}", x.count)
    } else {
        String::new()
    };
    format!(
        "{} {}{} (by {}{}) -> {}",
        x.kind, x.target, times, x.layer, who, x.hint
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn denial(target: &str, count: u32) -> moat::Denial {
        moat::Denial {
            kind: "write".into(),
            target: target.into(),
            layer: "mount".into(),
            pid: Some(7),
            process: Some("touch".into()),
            count,
            hint: "--allow-write /x".into(),
            grants: Vec::new(),
        }
    }

    #[test]
    fn nothing_refused_says_nothing() {
        assert_eq!(summary(&RunReport::default()), None);
    }

    #[test]
    fn lists_the_first_few_and_counts_all() {
        let r = RunReport {
            denials: (0..7).map(|i| denial(&format!("/x/{i}"), 2)).collect(),
            ..RunReport::default()
        };
        let s = summary(&r).unwrap();
        assert!(s.starts_with("refused 14 actions (7 distinct):\n"), "{s}");
        assert!(
            s.contains("  write /x/0 ×2 (by mount, touch[7]) -> --allow-write /x\n"),
            "{s}"
        );
        assert!(!s.contains("/x/5"), "{s}");
        assert!(s.contains("... and 2 more"), "{s}");
    }
}
