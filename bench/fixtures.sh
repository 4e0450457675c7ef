# What the benchmarks share; sourced by each of them.

# The median of command $2 (from 0) in the interleave.py or hyperfine JSON
# file $1, in milliseconds.
median() {
    python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['results'][int(sys.argv[2])]; print('%.2f' % (r['median']*1000))" "$1" "$2"
}

# $1 / $2, to $3 decimals (default 2).
ratio() {
    python3 -c "import sys; print('%.*f' % (int(sys.argv[3]), float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$2" "${3:-2}"
}

# A 50,000-file git repository in $1: 250 directories of 200 files.
make_tree() {
    mkdir -p "$1"
    (
        cd "$1"
        python3 - <<'PY'
import os
for d in range(250):
    os.makedirs(f"src/d{d:03}", exist_ok=True)
    for f in range(200):
        with open(f"src/d{d:03}/f{f:03}.txt", "w") as fh:
            fh.write(f"{d} {f}\n")
PY
        git init -q . && git add -A && git -c user.name=b -c user.email=b@b commit -q -m tree
    )
}

# moat-policy (about 5,000 lines, no dependencies) as a crate of its own in
# $1, from the checkout at $2.
make_crate() {
    mkdir -p "$1"
    cp -r "$2/crates/moat-policy/src" "$1/"
    cat > "$1/Cargo.toml" <<'TOML'
[package]
name = "bench-policy"
version = "0.1.0"
edition = "2021"
[lib]
path = "src/lib.rs"
TOML
}
