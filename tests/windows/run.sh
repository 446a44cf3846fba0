#!/usr/bin/env bash
# The Windows test suite under Wine: `bash tests/windows/run.sh` (CI runs it
# from .ci/run; as root it installs what it needs, see setup.sh).
#
# 1. tests/windows.rs, built for x86_64-pc-windows-gnu and run under Wine;
#    prints the number of tests that ran, and fails if none did.
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
