#!/usr/bin/env bash
# The Windows test suite under Wine: `bash tests/windows/run.sh` (CI runs it
# from .ci/run; as root it installs what it needs, see setup.sh).
#
# 1. tests/windows.rs, built for x86_64-pc-windows-gnu and run under Wine;
#    prints the number of tests that ran, and fails if none did.
#    Then the command under Ctrl-C (a SIGINT, which Wine delivers as
#    CTRL_C_EVENT), and the ReplaceFileW / MoveFileExW comparison.
# 2. The example program against the public API (examples/held_open.rs),
#    cross-built and run under Wine: 4 processes counting, and a reader
#    holding the target for 400 ms and for 30 s.
# 3. Deliberately broken protocols (src/mutants.rs: `Mutant::NoReplaceRetry`,
#    `Mutant::NoDeleteSharing`, ...) must fail the tests that guard against
#    them; the same tests pass without a mutant in step 1. `--no-mutants`
#    skips this step.
set -euo pipefail
cd "$(dirname "$0")/../.."
unset TXFILE_WINDOWS_MUTANT # step 1 runs the correct protocol
eval "$(bash tests/windows/setup.sh)"
target=x86_64-pc-windows-gnu

echo "--- tests/windows.rs under Wine"
out=$(cargo test --target $target --all-features --test windows 2>&1) || { echo "$out"; exit 1; }
echo "$out" | grep -E "^test result" | tail -1
ran=$(echo "$out" | grep -E "^test result" | tail -1 | sed -E 's/.* ([0-9]+) passed.*/\1/')
[ "${ran:-0}" -gt 0 ] || { echo "windows: no test ran"; exit 1; }
echo "windows: $ran tests passed under Wine"
echo "--- the command: Ctrl-C stops edit and lock, kills CMD, rolls back"
# Wine cannot send a console control event from a program
# (GenerateConsoleCtrlEvent fails: error 12 without a terminal, 6 in one),
# but it turns a SIGINT to a Windows process into CTRL_C_EVENT for that
# process's console control handlers, as Windows does for Ctrl-C. So this
# step sends SIGINT to the Wine process of txfile.exe (runner.sh execs
# Wine: $! is that process) while CMD (the test binary's `sleep` job: 4 s,
# then it writes `after`) runs, and checks what a user would: exit status
# 130, "nothing was committed", the target unchanged (`edit` would have
# committed CMD's empty output), no temporary file, and CMD killed (no
# `after` once its 4 s are over).
test_exe=$(echo "$out" | grep -oE 'target/[^ )]*/deps/windows-[0-9a-f]+\.exe' | tail -1)
txfile_exe=${CARGO_TARGET_DIR:-target}/$target/debug/txfile.exe
[ -x "$test_exe" ] && [ -x "$txfile_exe" ] || { echo "ctrl-c: no $test_exe or $txfile_exe"; exit 1; }
ctrl_c() {
    local sub=$1 tmp status left
    tmp=$(mktemp -d)
    printf old > "$tmp/target"
    TXFILE_WINDOWS_CHILD=$(printf 'sleep\t4000\tZ:%s/ready\tZ:%s/after' "$tmp" "$tmp") \
        tests/windows/runner.sh "$txfile_exe" "$sub" "Z:$tmp/target" -- \
        "$test_exe" --exact child --test-threads=1 --quiet > "$tmp/stdout" 2> "$tmp/stderr" &
    local pid=$!
    for _ in $(seq 600); do [ -e "$tmp/ready" ] && break; sleep 0.1; done
    [ -e "$tmp/ready" ] || { echo "ctrl-c $sub: CMD never started"; exit 1; }
    kill -INT "$pid"
    status=0
    wait "$pid" || status=$?
    sleep 5 # CMD's 4 s are over: alive, it would have written `after`
    left=$(cd "$tmp" && ls -A | grep -vxE 'target|target\.lock|ready|stdout|stderr' || true)
    if [ "$status" -ne 130 ] || ! grep -q "nothing was committed" "$tmp/stderr" \
        || [ "$(cat "$tmp/target")" != old ] || [ -n "$left" ]; then
        echo "ctrl-c $sub: status $status, target '$(cat "$tmp/target")', left: ${left:-nothing}"
        cat "$tmp/stderr"
        exit 1
    fi
    echo "ctrl-c $sub: exit 130, $(cat "$tmp/stderr"), target unchanged, CMD killed, no temporary file"
    rm -rf "$tmp"
}
ctrl_c edit
ctrl_c lock

echo "--- ReplaceFileW against MoveFileExW (the choice in src/sys/windows.rs rests on this)"
cargo test -q --target $target --all-features --test windows -- --exact \
    replacefilew_and_movefileexw_compared --nocapture 2>&1 | grep -E '^(replace:|  )' || true

echo "--- examples/held_open.rs under Wine (4 processes; a reader holding the target 400 ms, then 30 s)"
cargo build --target $target --example held_open
held_open=target/$target/debug/examples/held_open.exe
tests/windows/runner.sh "$held_open"

if [ "${1:-}" = "--no-mutants" ]; then
    exit 0
fi
echo "--- mutants (src/mutants.rs, selected by the tests' Options::mutant) must be caught"
# The project's builds have the mutants (.cargo/config.toml sets --cfg
# txfile_mutants); the tests pick the one TXFILE_WINDOWS_MUTANT names.
while read -r mutant test; do
    status=0
    TXFILE_WINDOWS_MUTANT=$mutant cargo test -q --target $target --all-features --test windows \
        -- --exact "$test" > target/wine-mutant.log 2>&1 || status=$?
    if [ "$status" -eq 0 ]; then
        echo "mutant $mutant was not caught by $test"
        exit 1
    fi
    grep -q "panicked" target/wine-mutant.log || { cat target/wine-mutant.log; echo "mutant $mutant: $test failed without a test failure"; exit 1; }
    echo "mutant $mutant: caught by $test"
done <<'MUTANTS'
no-replace-retry a_reader_without_delete_sharing_for_400_ms_only_delays_the_commit
no-replace-retry processes_lose_no_update
no-delete-sharing an_open_transaction_lets_others_rename_or_delete_the_target
MUTANTS
