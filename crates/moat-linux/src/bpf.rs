//! A small classic-BPF compiler for seccomp filters that dispatches on the
//! syscall number by binary search.
//!
//! Why not a linear chain (what `seccompiler` emits): since Linux 5.11 the
//! kernel, when a filter is installed, runs it once for every syscall
//! number to find those whose answer is always "allow" (and then skips the
//! filter for them). With a linear chain of a few hundred instructions that
//! costs about 0.3 ms at every sandbox start; with a binary search it is a
//! few microseconds, and every filtered syscall at run time is cheaper too.
//!
//! Arguments are compared on their low 32 bits only (how the kernel reads
//! `int` arguments such as ioctl request numbers and socket families).

/// What a matching rule returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Errno(u16),
    /// Ask the process holding the filter's listener (an observer that
    /// records the call and answers it; see `crate::observe`).
    Notify,
    KillProcess,
}

impl Action {
    fn ret(self) -> u32 {
        match self {
            Action::Allow => libc::SECCOMP_RET_ALLOW,
            Action::Errno(e) => libc::SECCOMP_RET_ERRNO | u32::from(e),
            Action::Notify => libc::SECCOMP_RET_USER_NOTIF,
            Action::KillProcess => libc::SECCOMP_RET_KILL_PROCESS,
        }
    }
}

/// A test of one argument's low 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq(u32),
    Ne(u32),
    /// `(arg & mask) != 0`
    AnyBit(u32),
}

/// One syscall's entry: the action of the first rule that matches, allow
/// when none does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub nr: u32,
    pub rules: Vec<Rule>,
}

/// A conjunction of `(argument index, test)`, and what it returns when all
/// hold (a rule with no tests always matches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub when: Vec<(u8, Cmp)>,
    pub action: Action,
}

impl Rule {
    pub fn always(action: Action) -> Rule {
        Rule {
            when: Vec::new(),
            action,
        }
    }
}

/// The filter: architecture check, then syscall numbers at or above
/// `first_unknown` get `unknown`, then the entries, then allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub audit_arch: u32,
    pub first_unknown: u32,
    pub unknown: Action,
    pub entries: Vec<Entry>,
}

/// Why a filter cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BpfError {
    #[error("syscall {0} is listed twice in the seccomp table")]
    Duplicate(u32),
    #[error("syscall {0} is not below the table's first unknown number")]
    OutOfRange(u32),
    #[error("the seccomp filter is {0} instructions long; the kernel takes at most 4096")]
    TooLong(usize),
}

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const ALU_AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// seccomp_data offsets (linux/seccomp.h); arguments are 64-bit and the
/// low half comes first on little-endian machines.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const fn off_arg_low(i: u8) -> u32 {
    16 + 8 * i as u32 + if cfg!(target_endian = "big") { 4 } else { 0 }
}

/// An instruction whose jump target may still be a label.
#[derive(Clone, Copy)]
enum Insn {
    Plain(libc::sock_filter),
    /// `ja label`
    Jump(usize),
}

struct Asm {
    code: Vec<Insn>,
    labels: Vec<Option<usize>>,
}

impl Asm {
    fn emit(&mut self, code: u16, jt: u8, jf: u8, k: u32) {
        self.code
            .push(Insn::Plain(libc::sock_filter { code, jt, jf, k }));
    }

    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }

    fn bind(&mut self, label: usize) {
        self.labels[label] = Some(self.code.len());
    }

    fn jump(&mut self, label: usize) {
        self.code.push(Insn::Jump(label));
    }

    fn ret(&mut self, action: Action) {
        self.emit(RET_K, 0, 0, action.ret());
    }

    /// Conditional branches only skip the next instruction; anything
    /// farther goes through an unconditional jump, whose offset is 32 bits,
    /// so no program here can outgrow the 8-bit conditional offsets.
    fn finish(self) -> Vec<libc::sock_filter> {
        let labels = self.labels;
        self.code
            .iter()
            .enumerate()
            .map(|(i, insn)| match *insn {
                Insn::Plain(f) => f,
                Insn::Jump(l) => {
                    let target = labels[l].unwrap_or(i + 1);
                    libc::sock_filter {
                        code: JA,
                        jt: 0,
                        jf: 0,
                        k: (target - i - 1) as u32,
                    }
                }
            })
            .collect()
    }
}

/// Emits the binary search over `entries` (sorted), jumping to each
/// entry's body label.
fn dispatch(asm: &mut Asm, entries: &[Entry], bodies: &[usize], allow: usize) {
    if entries.len() <= 3 {
        for (e, body) in entries.iter().zip(bodies) {
            // if nr == e.nr: jump to its body
            asm.emit(JEQ_K, 0, 1, e.nr);
            asm.jump(*body);
        }
        asm.jump(allow);
        return;
    }
    let mid = entries.len() / 2;
    let right = asm.label();
    // if nr >= pivot: go right
    asm.emit(JGE_K, 0, 1, entries[mid].nr);
    asm.jump(right);
    dispatch(asm, &entries[..mid], &bodies[..mid], allow);
    asm.bind(right);
    dispatch(asm, &entries[mid..], &bodies[mid..], allow);
}

fn body(asm: &mut Asm, e: &Entry) {
    for rule in &e.rules {
        if rule.when.is_empty() {
            asm.ret(rule.action);
            return;
        }
        let next = asm.label();
        for &(arg, cmp) in &rule.when {
            asm.emit(LD_W_ABS, 0, 0, off_arg_low(arg));
            match cmp {
                // Fall through when the test holds, else try the next rule.
                Cmp::Eq(v) => {
                    asm.emit(JEQ_K, 1, 0, v);
                    asm.jump(next);
                }
                Cmp::Ne(v) => {
                    asm.emit(JEQ_K, 0, 1, v);
                    asm.jump(next);
                }
                Cmp::AnyBit(mask) => {
                    asm.emit(ALU_AND_K, 0, 0, mask);
                    asm.emit(JEQ_K, 0, 1, 0);
                    asm.jump(next);
                }
            }
        }
        asm.ret(rule.action);
        asm.bind(next);
    }
    asm.ret(Action::Allow);
}

/// Compiles `filter`.
pub fn compile(filter: &Filter) -> Result<Vec<libc::sock_filter>, BpfError> {
    let mut entries = filter.entries.clone();
    entries.sort_by_key(|e| e.nr);
    for pair in entries.windows(2) {
        if pair[0].nr == pair[1].nr {
            return Err(BpfError::Duplicate(pair[0].nr));
        }
    }
    if let Some(e) = entries.iter().find(|e| e.nr >= filter.first_unknown) {
        return Err(BpfError::OutOfRange(e.nr));
    }
    let mut asm = Asm {
        code: Vec::new(),
        labels: Vec::new(),
    };
    asm.emit(LD_W_ABS, 0, 0, OFF_ARCH);
    asm.emit(JEQ_K, 1, 0, filter.audit_arch);
    asm.ret(Action::KillProcess);
    asm.emit(LD_W_ABS, 0, 0, OFF_NR);
    asm.emit(JGE_K, 0, 1, filter.first_unknown);
    asm.ret(filter.unknown);
    let allow = asm.label();
    let bodies: Vec<usize> = entries.iter().map(|_| asm.label()).collect();
    dispatch(&mut asm, &entries, &bodies, allow);
    asm.bind(allow);
    asm.ret(Action::Allow);
    for (e, label) in entries.iter().zip(&bodies) {
        asm.bind(*label);
        body(&mut asm, e);
    }
    let program = asm.finish();
    if program.len() > 4096 {
        return Err(BpfError::TooLong(program.len()));
    }
    Ok(program)
}

/// Runs `program` on one syscall, as the kernel would: for tests, and for
/// the observer, which answers a notified call as the filter without a
/// listener would have.
pub fn evaluate(program: &[libc::sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = [0u32; 16];
    data[0] = nr;
    data[1] = arch;
    for (i, a) in args.iter().enumerate() {
        data[4 + 2 * i] = *a as u32;
        data[5 + 2 * i] = (*a >> 32) as u32;
    }
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    while let Some(insn) = program.get(pc) {
        pc += 1;
        match insn.code {
            LD_W_ABS => acc = data.get(insn.k as usize / 4).copied().unwrap_or(0),
            ALU_AND_K => acc &= insn.k,
            JA => pc += insn.k as usize,
            JEQ_K => pc += usize::from(if acc == insn.k { insn.jt } else { insn.jf }),
            JGE_K => pc += usize::from(if acc >= insn.k { insn.jt } else { insn.jf }),
            RET_K => return insn.k,
            _ => return u32::MAX,
        }
    }
    u32::MAX
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARCH: u32 = 0xC000_003E;

    fn filter(entries: Vec<Entry>) -> Filter {
        Filter {
            audit_arch: ARCH,
            first_unknown: 500,
            unknown: Action::Errno(38),
            entries,
        }
    }

    fn deny(nr: u32) -> Entry {
        Entry {
            nr,
            rules: vec![Rule::always(Action::Errno(1))],
        }
    }

    fn when(tests: Vec<(u8, Cmp)>, action: Action) -> Rule {
        Rule {
            when: tests,
            action,
        }
    }

    #[test]
    fn dispatch_finds_every_entry_and_nothing_else() {
        let denied: Vec<u32> = (0..100).map(|i| i * 4 + 1).collect();
        let program =
            compile(&filter(denied.iter().map(|&n| deny(n)).collect())).unwrap_or_default();
        for nr in 0..500 {
            let want = if denied.contains(&nr) {
                libc::SECCOMP_RET_ERRNO | 1
            } else {
                libc::SECCOMP_RET_ALLOW
            };
            assert_eq!(evaluate(&program, ARCH, nr, [0; 6]), want, "nr {nr}");
        }
        assert_eq!(
            evaluate(&program, ARCH, 500, [0; 6]),
            libc::SECCOMP_RET_ERRNO | 38
        );
        assert_eq!(
            evaluate(&program, ARCH, 0x4000_0027, [0; 6]),
            libc::SECCOMP_RET_ERRNO | 38
        );
        assert_eq!(
            evaluate(&program, 0x4000_0003, 20, [0; 6]),
            libc::SECCOMP_RET_KILL_PROCESS
        );
    }

    #[test]
    fn argument_tests_use_the_low_word() {
        let eperm = Action::Errno(1);
        let e = Entry {
            nr: 16,
            rules: vec![
                when(vec![(1, Cmp::Eq(0x5412))], eperm),
                when(vec![(0, Cmp::Ne(1)), (0, Cmp::Ne(2))], eperm),
            ],
        };
        let clone = Entry {
            nr: 56,
            rules: vec![when(vec![(0, Cmp::AnyBit(0x1000_0000))], eperm)],
        };
        let program = compile(&filter(vec![e, clone])).unwrap_or_default();
        let eperm = libc::SECCOMP_RET_ERRNO | 1;
        let allow = libc::SECCOMP_RET_ALLOW;
        assert_eq!(evaluate(&program, ARCH, 16, [1, 0x5412, 0, 0, 0, 0]), eperm);
        assert_eq!(
            evaluate(&program, ARCH, 16, [1, 0x1_0000_5412, 0, 0, 0, 0]),
            eperm
        );
        assert_eq!(evaluate(&program, ARCH, 16, [1, 0x5413, 0, 0, 0, 0]), allow);
        assert_eq!(evaluate(&program, ARCH, 16, [2, 0x5413, 0, 0, 0, 0]), allow);
        assert_eq!(evaluate(&program, ARCH, 16, [3, 0x5413, 0, 0, 0, 0]), eperm);
        assert_eq!(
            evaluate(&program, ARCH, 56, [0x1000_0011, 0, 0, 0, 0, 0]),
            eperm
        );
        assert_eq!(evaluate(&program, ARCH, 56, [0x11, 0, 0, 0, 0, 0]), allow);
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let open = Entry {
            nr: 257,
            rules: vec![
                when(vec![(3, Cmp::AnyBit(0o6000))], Action::Errno(1)),
                when(vec![(2, Cmp::AnyBit(0o3))], Action::Notify),
            ],
        };
        let program = compile(&filter(vec![open])).unwrap_or_default();
        let at = |flags: u64, mode: u64| evaluate(&program, ARCH, 257, [0, 0, flags, mode, 0, 0]);
        assert_eq!(at(0o1, 0o4755), libc::SECCOMP_RET_ERRNO | 1);
        assert_eq!(at(0o1, 0o644), libc::SECCOMP_RET_USER_NOTIF);
        assert_eq!(at(0, 0o644), libc::SECCOMP_RET_ALLOW);
    }

    #[test]
    fn refuses_bad_tables() {
        assert_eq!(
            compile(&filter(vec![deny(3), deny(3)])).err(),
            Some(BpfError::Duplicate(3))
        );
        assert_eq!(
            compile(&filter(vec![deny(600)])).err(),
            Some(BpfError::OutOfRange(600))
        );
    }
}
