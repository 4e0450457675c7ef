#!/usr/bin/env bash
# Denial reporting: what the observer costs. moat as it is against moat
# just before the observer came in (built here from git, in its own target
# directory), interleaved: start-up, the 50,000-file `git status` loop and
# `cargo build` from clean. Prints a Markdown section; bench/run.sh
# includes it in BENCHMARKS.md.
#
#   bash bench/denials.sh MOAT WORKDIR [BASE_COMMIT]
set -euo pipefail
moat=$1
work=$2
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/fixtures.sh"
base=${3:-$(git -C "$root" log --diff-filter=A --format=%H -- crates/moat-linux/src/observe.rs | tail -1)^}
base=$(git -C "$root" rev-parse --short "$base")

# The moat of $base, built once.
if [ ! -x "$work/base/moat" ]; then
    rm -rf "$work/base-src"
    git -C "$root" worktree add -q --detach "$work/base-src" "$base"
    (cd "$work/base-src" && CARGO_TARGET_DIR="$work/base-target" cargo build -q --release -p moat-cli)
    mkdir -p "$work/base"
    cp "$(find "$work/base-target" -path '*release/moat' -type f | head -1)" "$work/base/moat"
    git -C "$root" worktree remove --force "$work/base-src"
fi
old="$work/base/moat"
# The moat measured runs from a copy made the same way as the base's: a
# binary the linker has just written has run slower here than a copy of
# it (by up to 0.6 ms a start in one run), which is not the code's doing.
mkdir -p "$work/new"
cp "$moat" "$work/new/moat"
moat="$work/new/moat"

# Start-up, interleaved.
mkdir -p "$work/denials-empty"
cd "$work/denials-empty"
python3 "$root/bench/interleave.py" 3000 "$work/denials-start.json" \
    "$old run -- true" "$moat run -- true"
s_old=$(median "$work/denials-start.json" 0)
s_new=$(median "$work/denials-start.json" 1)

# The 50,000-file repository, twenty `git status` in one sandbox; then
# `cargo build` from clean. Interleaved as well: hyperfine runs each
# command's rounds in a block, and this machine drifts more between
# blocks than the observer costs.
[ -d "$work/tree/.git" ] || make_tree "$work/tree"
[ -f "$work/crate/Cargo.toml" ] || make_crate "$work/crate" "$root"
cd "$work/tree"
loop20="for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do git status --porcelain >/dev/null; done"
python3 "$root/bench/interleave.py" --warmup 2 --prepare true 20 "$work/denials-git.json" \
    "$old run -- sh -c '$loop20'" "$moat run -- sh -c '$loop20'"
g_old=$(median "$work/denials-git.json" 0)
g_new=$(median "$work/denials-git.json" 1)
cd "$work/crate"
python3 "$root/bench/interleave.py" --warmup 1 --prepare "rm -rf target" 20 "$work/denials-cargo.json" \
    "$old run -- cargo build --offline -q" "$moat run -- cargo build --offline -q"
c_old=$(median "$work/denials-cargo.json" 0)
c_new=$(median "$work/denials-cargo.json" 1)
# How many calls the observer was asked about in one such build.
rm -rf target
"$moat" run --report "$work/denials-cargo-report.json" -- cargo build --offline -q
n_denials=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['report']['denials']))" "$work/denials-cargo-report.json")

cat <<EOF
## Denial reporting (\`bench/denials.sh\`, run by \`bench/run.sh\`)

moat as it is against moat at $base, the commit before the observer
(built from git here), interleaved round by round. Every open (but that
of a directory for reading), every other call that writes through a path,
every connect and every refused call now stops in the observer.

| work | before | with the observer | ratio |
|---|---|---|---|
| \`moat run -- true\` (3,000 interleaved rounds) | ${s_old} ms | ${s_new} ms | $(ratio "$s_new" "$s_old" 3) |
| 20 × \`git status --porcelain\`, 50,000 files, one sandbox (20 rounds) | ${g_old} ms | ${g_new} ms | $(ratio "$g_new" "$g_old" 3) |
| \`cargo build --offline\` from clean (moat-policy, 20 rounds) | ${c_old} ms | ${c_new} ms | $(ratio "$c_new" "$c_old" 3) |

That build reported ${n_denials} denials.
EOF
