#!/usr/bin/env bash
# Runs every cargo-fuzz target of txfile for a while and fails on any crash.
#
#   fuzz/run.sh [SECONDS]        (or FUZZ_SECONDS=SECONDS fuzz/run.sh)
#
# SECONDS per target, 60 by default. Installs cargo-fuzz if it is missing.
# libFuzzer needs nightly-only flags; RUSTC_BOOTSTRAP=1 lets a stable
# toolchain accept them.
#
# Each target first replays its inputs in fuzz/regressions/ (crashes found
# before), then fuzzes from fuzz/corpus/<target>/. Last, the inputs in
# fuzz/mutant-catchers/ must pass and still catch their mutant. New corpus entries land
# there too (ignored by git, except the checked-in seed-* files); a crashing
# input goes to fuzz/artifacts/<target>/ and is named in the output.
set -euo pipefail

seconds="${1:-${FUZZ_SECONDS:-60}}"
case "$seconds" in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS]" >&2
    exit 2
    ;;
esac

cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1
# The library's deliberately broken protocols (src/mutants.rs), which the
# mutant catchers below run: the repository's .cargo/config.toml sets this
# cfg, but cargo-fuzz passes its flags in RUSTFLAGS, which replaces that
# setting (cargo-fuzz appends what RUSTFLAGS already holds).
export RUSTFLAGS="${RUSTFLAGS:-} --cfg txfile_mutants"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# The targets' own unit tests (their checks must be able to fail).
(cd fuzz && cargo test --lib --quiet)
cargo fuzz build
targets=$(cargo fuzz list)
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

failed=()
for target in $targets; do
    log="$logs/$target.log"
    # First the inputs that once crashed it (fuzz/regressions/<target>-*).
    regressions=(fuzz/regressions/"$target"-*)
    if [ -e "${regressions[0]}" ]; then
        echo "fuzz: $target: replaying ${#regressions[@]} regression input(s)"
        if ! cargo fuzz run "$target" "${regressions[@]}" >"$log" 2>&1; then
            echo "fuzz: $target: a regression input crashes it again: FAILED"
            grep -E -A3 'panicked at' "$log" | head -n 20 || true
            tail -n 5 "$log"
            failed+=("$target")
            continue
        fi
    fi
    echo "fuzz: $target for ${seconds}s"
    # -timeout: one input running this long is a hang (a deadlock in
    # guard_registry, say), reported as a crash.
    if cargo fuzz run "$target" -- -max_total_time="$seconds" -timeout=60 >"$log" 2>&1; then
        status=ok
    else
        status=FAILED
        failed+=("$target")
    fi
    runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1 executions in \2 s/p' "$log" | tail -n 1)
    if [ -z "$runs" ]; then
        executed=$({ grep -Eo '^#[0-9]+' "$log" || true; } | tail -n 1 | tr -d '#')
        runs="${executed:-0} executions (stopped early)"
    fi
    echo "fuzz: $target: $runs: $status"
    if [ "$status" = FAILED ]; then
        # The panic message, the input's Debug form, and how to reproduce.
        grep -E -A3 'panicked at|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)' "$log" | head -n 20 || true
        sed -n '/^Failing input:/,/^Minimize test case with:/p' "$log" | head -n 80 || true
        tail -n 5 "$log"
    fi
done

# Inputs that catch a deliberately broken protocol
# (fuzz/mutant-catchers/<target>-<Mutant>-<what>): each must pass with the
# real protocol and still fail with its mutant, or the check it relies on
# has gone blind.
for input in fuzz/mutant-catchers/*-*-*; do
    [ -e "$input" ] || continue
    name=$(basename "$input")
    target=${name%%-*}
    rest=${name#*-}
    mutant=${rest%%-*}
    log="$logs/$name.log"
    if ! cargo fuzz run "$target" "$input" >"$log" 2>&1; then
        echo "fuzz: $name: fails with the real protocol: FAILED"
        grep -E -A3 'panicked at' "$log" | head -n 10 || true
        failed+=("$name")
    elif TXFILE_FUZZ_MUTANT="$mutant" cargo fuzz run "$target" "$input" >"$log" 2>&1; then
        echo "fuzz: $name: the mutant $mutant is no longer caught: FAILED"
        failed+=("$name")
    else
        echo "fuzz: $name: passes, and catches $mutant"
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: crash found in: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: every target ran ${seconds}s without a crash"
