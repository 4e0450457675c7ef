#!/usr/bin/env bash
# Type-checks moat-windows (and moat-policy, moat-config and moat-proxy,
# which it uses) with Debian's Rust 1.63: for Linux (the platform-neutral modules and
# their tests) and for x86_64-pc-windows-gnu (the Windows calls too). The only Windows
# standard library available here is Debian's (libstd-rust-dev-windows),
# and rustup's cargo cannot drive Debian's rustc, so the dependencies are
# vendored with rustup's cargo and checked with Debian's, offline, in a
# scratch workspace whose manifests use nothing newer than 1.63 knows.
#
#   bash scripts/windows-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
if [ "$(id -u)" = 0 ]; then
    for p in rustc cargo libstd-rust-dev-windows; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || {
            apt-get update -qq || true
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
        }
    done
fi
[ -d /usr/lib/rustlib/x86_64-pc-windows-gnu ] || {
    echo "windows-check: Debian's Windows standard library is missing: apt install libstd-rust-dev-windows" >&2
    exit 1
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/crates"
cp -r crates/moat-policy crates/moat-config crates/moat-proxy crates/moat-windows "$work/crates/"
rm -rf "$work/crates/moat-policy/target" "$work/crates/moat-config/target" \
    "$work/crates/moat-proxy/target" \
    "$work/crates/moat-proxy/fuzz" "$work/crates/moat-windows/target"
# Manifests without workspace inheritance or [lints] (Rust 1.63's cargo).
python3 - "$work" <<'PY'
import re, sys
work = sys.argv[1]
for crate in ("moat-policy", "moat-config", "moat-proxy", "moat-windows"):
    path = f"{work}/crates/{crate}/Cargo.toml"
    text = open(path).read()
    text = text.replace("version.workspace = true", 'version = "0.1.0"')
    text = text.replace("edition.workspace = true", 'edition = "2021"')
    text = text.replace("license.workspace = true", 'license = "Apache-2.0"')
    text = re.sub(r"\n\[lints\]\nworkspace = true\n", "\n", text)
    if crate == "moat-config":
        # toml 1 needs a newer Rust; 0.5 reads the same files.
        text = re.sub(r"\ntoml = .*\n", '\ntoml = "0.5"\n', text)
        text = text.replace("toml05 = []", 'default = ["toml05"]\ntoml05 = []')
    open(path, "w").write(text)
open(f"{work}/Cargo.toml", "w").write(
    '[workspace]\nmembers = ["crates/moat-policy", "crates/moat-config", "crates/moat-proxy", "crates/moat-windows"]\n')
PY
cd "$work"
# rustup's cargo resolves and vendors (a version-3 lockfile, which Rust
# 1.63's cargo reads, because the crates declare rust-version 1.63).
# Versions that need a newer Rust are passed over where an older one
# fits; serde is pinned below the release whose derive needs Rust 1.71.
CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback cargo generate-lockfile -q
CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback cargo update -q -p serde --precise 1.0.219
cargo vendor -q vendor >/dev/null
mkdir -p .cargo
printf '[source.crates-io]\nreplace-with = "vendored-sources"\n\n[source.vendored-sources]\ndirectory = "vendor"\n' > .cargo/config.toml
export RUSTC=/usr/bin/rustc
# Warnings fail the check: nothing else ever compiles the Windows code, so
# an unused import or dead branch there would go unseen. (Cargo caps lints
# of the vendored dependencies itself.)
export RUSTFLAGS="-D warnings"
/usr/bin/cargo check -q --offline -p moat-windows -p moat-config -p moat-proxy --tests
/usr/bin/cargo check -q --offline -p moat-windows -p moat-config -p moat-proxy --target x86_64-pc-windows-gnu
echo "windows-check: moat-windows, moat-config and moat-proxy type-check with $(/usr/bin/rustc --version) for Linux and x86_64-pc-windows-gnu"
