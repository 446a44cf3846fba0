#!/usr/bin/env bash
# What the `tracing` feature costs: the same workload built without and with
# the feature, compared in one run.
#
#   benches/tracing-cost.sh            # syscalls, then time (about 3 minutes)
#   benches/tracing-cost.sh syscalls   # only the syscall comparison (CI)
#   benches/tracing-cost.sh time       # only the time comparison
#   ROUNDS=3 QUICK=1 benches/tracing-cost.sh time   # a smoke run
#
# Syscalls: `tests/syscalls.rs` (100 durable updates under strace) in both
# builds; the calls per update must be the same, name by name.
#
# Time: the `tracing` part of `benches/txbench` (4 KiB updates, median per
# update) in both builds, the two binaries taking turns ROUNDS times so that
# machine noise hits both; the ratio is on / off of the medians over the
# turns. The `on` build also runs each case with a subscriber that formats
# every span (to nowhere), which is what an operator who turns debug
# tracing on pays.
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-all}
rounds=${ROUNDS:-7}

syscalls() {
    local off on
    echo "== syscalls per durable update, tracing off and on"
    off=$(cargo test --quiet --test syscalls -- --nocapture 2>&1 | grep -E "syscalls for|skipped" || true)
    on=$(cargo test --quiet --features tracing --test syscalls -- --nocapture 2>&1 | grep -E "syscalls for|skipped" || true)
    echo "off: $off"
    echo "on:  $on"
    if [[ $off == *skipped* || $on == *skipped* ]]; then
        echo "skipped: strace is not usable here"
        return 0
    fi
    if [[ -z $off || $off != "$on" ]]; then
        echo "the syscalls differ (or were not counted)"
        return 1
    fi
    echo "identical"
}

bench_binary() {
    cargo bench --bench txbench --no-run --message-format=json "$@" 2>/dev/null |
        python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "txbench" and m.get("executable"):
        print(m["executable"])'
}

timing() {
    local off on dir out
    echo "== time per 4 KiB update, tracing off and on"
    off=$(bench_binary)
    on=$(bench_binary --features tracing)
    [[ -n $off && -n $on && $off != "$on" ]] || { echo "could not build both binaries"; return 1; }
    dir=${TXFILE_BENCH_DIR:-$(dirname "$(dirname "$(dirname "$off")")")/txbench-tracing}
    out=$(mktemp)
    echo "load before: $(uptime)"
    for ((round = 0; round < rounds; round++)); do
        for binary in "$off" "$on"; do
            "$binary" --dir "$dir" ${QUICK:+--quick} tracing | grep '^tracing-cost ' >>"$out"
        done
    done
    echo "load after:  $(uptime)"
    python3 - "$out" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    _, build, variant, secs = line.split()
    runs.setdefault((build, variant), []).append(float(secs))
median = {key: statistics.median(values) for key, values in runs.items()}
print(f"{len(runs[('off', 'none')])} turns of each build; median of the per-run medians")
print()
print("| durability | off | on | on / off | on + subscriber | (on + subscriber) / off |")
print("|---|---|---|---|---|---|")
for durability in ("none", "full"):
    off, on = median[("off", durability)], median[("on", durability)]
    sub = median[("on", durability + "+subscriber")]
    print(f"| {durability} | {off * 1e6:.1f} µs | {on * 1e6:.1f} µs | {on / off:.3f} "
          f"| {sub * 1e6:.1f} µs | {sub / off:.3f} |")
EOF
    rm -f "$out"
}

case $what in
    syscalls) syscalls ;;
    time) timing ;;
    all) syscalls && timing ;;
    *) echo "usage: $0 [syscalls|time|all]"; exit 2 ;;
esac
