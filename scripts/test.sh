#!/usr/bin/env bash
# moat's whole test suite, from a fresh Debian 12 machine with a Rust
# toolchain. As root it first installs what the tests use and creates the
# unprivileged account they also run moat as; both steps are idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ]; then
    # setpriv (util-linux) switches to the test account, script (bsdutils)
    # gives the terminal-injection tests a terminal, bubblewrap simulates a
    # machine without user namespaces, Debian's cargo and python3 are the
    # toolchains the unprivileged account can reach (root's rustup is in a
    # home it cannot enter), nftables holds the elevated tier's firewall.
    packages=(util-linux bsdutils bubblewrap git gcc python3 python3-pip python3-venv cargo curl openssl nftables)
    missing=()
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "test.sh: installing ${missing[*]}"
        apt-get update -qq || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    id moat-test >/dev/null 2>&1 || useradd --create-home --shell /bin/bash moat-test
    # The official MCP SDK, the client `moat mcp` is tested with; in
    # Debian's Python, so the test account can run it too.
    if ! /opt/moat-test/venv/bin/python -c 'import mcp' 2>/dev/null; then
        echo "test.sh: installing the MCP SDK in /opt/moat-test/venv"
        rm -rf /opt/moat-test/venv
        /usr/bin/python3 -m venv /opt/moat-test/venv
        /opt/moat-test/venv/bin/pip install -q --disable-pip-version-check 'mcp==2.3.0'
    fi
    chmod -R a+rX /opt/moat-test
else
    echo "test.sh: not root: the tests run moat as $(id -un) only (run as root to also test the unprivileged account and to install packages)"
fi

# The policy crate must stay buildable by Debian's Rust 1.63, which
# type-checks the Windows backend.
if [ -x /usr/bin/rustc ]; then
    out=$(mktemp -d)
    /usr/bin/rustc --edition 2021 --crate-type lib --crate-name moat_policy \
        -A warnings --out-dir "$out" crates/moat-policy/src/lib.rs
    rm -rf "$out"
    echo "test.sh: moat-policy builds with $(/usr/bin/rustc --version)"
fi

# The Windows backend: type-checked with Debian's Rust 1.63 for Linux and
# for x86_64-pc-windows-gnu (its unit tests run below with the rest).
bash scripts/windows-check.sh

# The lints the workspace declares (undocumented_unsafe_blocks,
# unwrap_used, panic, ...) hold only where clippy runs.
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
cargo clippy --workspace --all-targets -- -D warnings

cargo build --workspace --bins
moat_bin=$PWD/target/x86_64-unknown-linux-gnu/debug/moat
[ -x "$moat_bin" ] || moat_bin=$PWD/target/debug/moat

# A setup the tests made and could not remove (the run was killed) is
# marked; remove it, or every later run would take the elevated tier it
# names. A setup without the mark is the machine's own and is left alone.
test_setup_mark=/var/lib/moat-test-setup
if [ "$(id -u)" = 0 ] && [ -e "$test_setup_mark" ]; then
    echo "test.sh: removing the setup an interrupted test run left"
    "$moat_bin" setup --remove >/dev/null
    rm -f "$test_setup_mark"
fi

cargo test --workspace -- --test-threads="${MOAT_TEST_THREADS:-4}"

# moat probe: the catalogue of escapes in both modes (named, so a mode that
# cannot start fails the run instead of being skipped),
# as root and as the unprivileged account. Any escape, inconclusive probe or
# leftover on the host fails the run.
echo "test.sh: moat probe as $(id -un)"
"$moat_bin" probe --mode full --mode landlock-only --mode allow
if [ "$(id -u)" = 0 ]; then
    echo "test.sh: moat probe as moat-test"
    (cd / && setpriv --reuid=moat-test --regid=moat-test --init-groups --reset-env -- "$moat_bin" probe --mode full --mode landlock-only --mode allow)
fi

# The elevated tier: set it up for root and moat-test, run the catalogue
# through it as both, and remove it, checking nothing is left. A machine
# with a setup of its own is left alone.
if [ "$(id -u)" = 0 ] && [ ! -e /var/lib/moat/setup.toml ]; then
    echo "moat's test.sh made the setup in /var/lib/moat" > "$test_setup_mark"
    trap '"$moat_bin" setup --remove >/dev/null 2>&1 && rm -f "$test_setup_mark"' EXIT
    "$moat_bin" setup --user moat-test >/dev/null
    echo "test.sh: moat probe through the elevated tier as $(id -un)"
    "$moat_bin" probe --mode elevated --mode elevated-allow
    echo "test.sh: moat probe through the elevated tier as moat-test"
    (cd / && setpriv --reuid=moat-test --regid=moat-test --init-groups --reset-env -- "$moat_bin" probe --mode elevated --mode elevated-allow)
    # Where no process may create a user namespace (a seccomp filter, as
    # the sysctl cannot be written here), the elevated tier still runs the
    # catalogue; the unelevated tier refusing is the control that the
    # filter works. The id mappings' namespaces were made by the runs above.
    no_userns="python3 $(pwd)/crates/moat-cli/tests/no_userns.py"
    as_test="setpriv --reuid=moat-test --regid=moat-test --init-groups --reset-env --"
    # An empty workspace of the test account's: what else lies around in
    # /tmp is no business of this control.
    nouserns_ws=$(mktemp -d /tmp/moat-nouserns.XXXXXX)
    chown moat-test "$nouserns_ws"
    control=$(cd / && $no_userns $as_test "$moat_bin" run --tier unelevated --workspace "$nouserns_ws" -- true 2>&1) && {
        echo "test.sh: the unelevated tier ran without user namespaces: the filter does not work" >&2
        exit 1
    }
    rm -rf "$nouserns_ws"
    case "$control" in *"user namespaces are not available"*) ;; *)
        echo "test.sh: unexpected refusal without user namespaces: $control" >&2
        exit 1 ;;
    esac
    echo "test.sh: without user namespaces the unelevated tier refuses (control), so:"
    echo "test.sh: moat probe through the elevated tier without user namespaces, as $(id -un) and moat-test"
    # Creating a user namespace is refused outside the sandbox too here, so
    # that one probe has no working control and is inconclusive.
    for who in "" "$as_test"; do
        (cd / && $no_userns $who "$moat_bin" probe --json --mode elevated --mode elevated-allow || true) |
            python3 scripts/check-probe.py --control-refused "create a user namespace"
    done
    "$moat_bin" setup --remove
    rm -f "$test_setup_mark"
    trap - EXIT
fi
