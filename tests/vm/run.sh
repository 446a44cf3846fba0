#!/usr/bin/env bash
# Real-kernel crash test for txfile: boots a Linux VM on a scratch disk, runs
# several writer processes doing txfile transactions and Batch commits, panics
# the kernel mid-commit after a random delay, boots again on the same disk,
# recovers interrupted batch commits and checks that every target holds one
# complete version, that no acknowledged commit was lost, that the members of
# every batch agree, and that one transaction later no temporary file and no
# journal remains.
#
#   tests/vm/run.sh [--fs ext4,xfs,btrfs,ext4:noauto_da_alloc] [--cuts N] [--mode MODE]
#                   [--time-limit SECONDS] [--accel auto|kvm|tcg] [--writers N] [--files N]
#                   [--groups N] [--delay MIN_MS-MAX_MS] [--mount-opts OPTS] [--seed N] [--work DIR]
#   MODE: correct | no-file-fsync | no-dir-fsync | batch-no-journal-fsync | batch-rename-before-journal
#
# Short (CI):  tests/vm/run.sh --fs ext4,xfs --cuts 5 --time-limit 1200
# Long:        tests/vm/run.sh --fs ext4,xfs,btrfs --cuts 50 --time-limit 5400
# Broken:      tests/vm/run.sh --fs ext4,ext4:noauto_da_alloc,xfs,btrfs --cuts 10 --mode no-file-fsync
#              (and the other broken modes)
#
# Prints one line per filesystem:
#   fs=ext4 cuts=N acked=M batch_acked=K violations=V mode=... cuts_with_violations=C boot_failures=B
# Exits 1 when a boot fails (no boot, no crash, check did not finish, the
# workload errored) or, in correct mode, on any violation; 0 otherwise. Broken
# modes only measure: their violations do not fail the run. Exits 0 early with
# a "SKIP" line when the time limit leaves no room for even one cut.
#
# What it models. `echo c > /proc/sysrq-trigger` is a kernel crash: whatever
# sits in the guest's page cache (dirty data, uncommitted journal) is lost,
# block requests already issued to the virtual disk are kept. The disk is
# attached with cache=unsafe: the host page cache holds the image and guest
# flushes are ignored, which is fast and loses nothing here because the host
# itself never crashes, and qemu drains in-flight requests when it exits.
# Every host cache mode would keep the same data for the same reason, so
# cache=unsafe only costs nothing; what the test exercises is the guest
# kernel's write caching, which is exactly what the panic throws away. Not
# modelled: a disk whose own volatile write cache loses or reorders writes
# that were issued but not flushed (a true power cut on cheap hardware).
#
# Needs root (apt-get, mkfs). Installs what is missing: qemu-system-x86,
# busybox-static, cpio, linux-image-amd64, e2fsprogs, xfsprogs, btrfs-progs.
# TXFILE_VM_SRC=DIR builds the workload from another checkout of the crate.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SRC=${TXFILE_VM_SRC:-$ROOT}

FS_LIST=ext4,xfs
CUTS=5
MODE=correct
TIME_LIMIT=0
ACCEL=auto
WRITERS=3
FILES=4
BATCH_GROUPS=2
DELAY=300-4000
MOUNT_OPTS=
SEED=
WORK=${TXVM_WORK:-/tmp/txfile-vm}
MEM_MB=512
DISK_MB=320

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --fs) FS_LIST=$2; shift 2 ;;
        --cuts) CUTS=$2; shift 2 ;;
        --mode) MODE=$2; shift 2 ;;
        --time-limit) TIME_LIMIT=$2; shift 2 ;;
        --accel) ACCEL=$2; shift 2 ;;
        --writers) WRITERS=$2; shift 2 ;;
        --files) FILES=$2; shift 2 ;;
        --groups) BATCH_GROUPS=$2; shift 2 ;;
        --delay) DELAY=$2; shift 2 ;;
        --mount-opts) MOUNT_OPTS=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        --work) WORK=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done

case "$MODE" in
    correct) MUTANT=none ;;
    no-file-fsync|no-dir-fsync|batch-no-journal-fsync|batch-rename-before-journal) MUTANT=$MODE ;;
    *) echo "run.sh: --mode must be correct, no-file-fsync, no-dir-fsync, batch-no-journal-fsync" \
        "or batch-rename-before-journal" >&2; exit 2 ;;
esac
# A filesystem is TYPE or TYPE:MOUNT_OPTIONS (options joined by '+', since ','
# separates filesystems), e.g. ext4:noauto_da_alloc.
IFS=, read -r -a FSES <<<"$FS_LIST"
for fs in "${FSES[@]}"; do
    case "${fs%%:*}" in ext4|xfs|btrfs) ;; *) echo "run.sh: unknown filesystem $fs" >&2; exit 2 ;; esac
done
DELAY_MIN=${DELAY%-*}
DELAY_MAX=${DELAY#*-}
[ -n "$SEED" ] && RANDOM=$SEED
START=$SECONDS

LOG_TAG=vm
# shellcheck source=tests/vm/lib.sh
. "$HERE/lib.sh"

# ---------------------------------------------------------------- packages

ensure_packages() {
    ensure_commands qemu-system-x86_64=qemu-system-x86 busybox-static cpio=cpio gzip=gzip \
        mkfs.ext4=e2fsprogs mkfs.xfs=xfsprogs mkfs.btrfs=btrfs-progs
}

# ---------------------------------------------------------------- workload

build_workload() {
    local target=x86_64-unknown-linux-gnu
    # Its own target directory: the static-linking flags would otherwise
    # make cargo rebuild the ordinary build.
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$SRC/target/vm}
    log "building the static workload from $SRC"
    (cd "$SRC" && RUSTFLAGS='-C target-feature=+crt-static --cfg txfile_mutants' \
        cargo build --quiet --release --example vm_workload --features sim --target "$target")
    WORKLOAD=$CARGO_TARGET_DIR/$target/release/examples/vm_workload
    # The initramfs has no dynamic loader: insist on a static binary.
    if ! ldd "$WORKLOAD" 2>&1 | grep -qE 'not a dynamic executable|statically linked'; then
        die "$WORKLOAD is not statically linked"
    fi
}

# ---------------------------------------------------------------- initramfs

build_initramfs() {
    local root=$WORK/initramfs common
    rm -rf "$root"
    mkdir -p "$root"/{bin,dev,proc,sys,mnt,tmp,lib/modules}
    cp /bin/busybox "$root/bin/busybox"
    cp "$WORKLOAD" "$root/bin/vm_workload"
    cp "$HERE/init" "$root/init"
    chmod 755 "$root/init" "$root/bin/busybox" "$root/bin/vm_workload"
    mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || true
    # Built in or not, whatever is a module here gets loaded by /init. The
    # crc32c, xxhash and blake2b drivers are looked up by name at run time,
    # which needs modprobe: load them up front instead.
    common="virtio_pci virtio_blk crc32c_generic"
    add_modules "$root" probe $common
    add_modules "$root" ext4 $common ext4
    add_modules "$root" xfs $common libcrc32c xfs
    add_modules "$root" btrfs $common libcrc32c xxhash_generic blake2b_generic btrfs
    (cd "$root" && find . | cpio -o -H newc --quiet) | gzip -1 >"$WORK/initramfs.cpio.gz"
    INITRD=$WORK/initramfs.cpio.gz
}

# ---------------------------------------------------------------- qemu

# ---------------------------------------------------------------- one cut

mkfs_disk() {
    local fs=$1 disk=$2
    rm -f "$disk"
    truncate -s "${DISK_MB}M" "$disk"
    case "$fs" in
        ext4) mkfs.ext4 -q -F "$disk" ;;
        xfs) mkfs.xfs -q -f "$disk" ;;
        btrfs) mkfs.btrfs -q -f "$disk" >/dev/null ;;
    esac
}

# Workload's `floors` output: "floors=f0:3,g0:2,... acks=N batch_acks=K".
floors_of() { "$WORKLOAD" floors --base "$1" "${@:2}"; }

declare -A CUTS_DONE=() ACKED=() BATCH_ACKED=() VIOLATIONS=() CAUGHT=() BOOT_FAILS=() FLOORS=()

fs_type() { echo "${1%%:*}"; }
fs_opts() {
    local opts=$MOUNT_OPTS
    case "$1" in *:*) opts=${1#*:}; opts=${opts//+/,} ;; esac
    echo "${opts:--}"
}
fs_slug() { echo "$1" | tr ':+' '__'; }

# one_cut FS N: one write boot crashed mid-commit, then one check boot.
one_cut() {
    local fs=$1 n=$2 slug
    slug=$(fs_slug "$fs")
    local disk=$WORK/$slug.img
    local wlog=$WORK/logs/$slug-$n-write.log clog=$WORK/logs/$slug-$n-check.log
    local delay=$((DELAY_MIN + (RANDOM * 32768 + RANDOM) % (DELAY_MAX - DELAY_MIN + 1)))
    local common="tx_fs=$(fs_type "$fs") tx_writers=$WRITERS tx_files=$FILES tx_groups=$BATCH_GROUPS"
    common+=" tx_boot=$n"
    common+=" tx_mntopts=$(fs_opts "$fs")"
    local out acks batch_acks floors v t0=$SECONDS

    boot "$wlog" $((delay / 1000 + 120)) "$disk" tx_mode=write tx_mutant="$MUTANT" \
        tx_delay="$delay" $common || true
    if ! grep -q 'WRITERS STARTED' "$wlog" || ! grep -qE 'sysrq: Trigger a crash|Kernel panic' "$wlog" ||
        grep -E 'WORKLOAD ERROR|TXVM FAIL' "$wlog" | grep -qv VIOLATION; then
        log "fs=$fs cut=$n: the write boot did not run and crash as planned: $wlog"
        BOOT_FAILS[$fs]=$((BOOT_FAILS[$fs] + 1))
        return
    fi
    out=$(floors_of "${FLOORS[$fs]}" "$wlog")
    acks=$(echo "$out" | sed -n 's/.* acks=\([0-9]*\).*/\1/p')
    batch_acks=$(echo "$out" | sed -n 's/.* batch_acks=\([0-9]*\).*/\1/p')
    floors=${out#floors=}
    floors=${floors%% *}
    v=$(grep -c 'VIOLATION' "$wlog" || true)

    boot "$clog" 180 "$disk" tx_mode=check tx_floors="$floors" $common || true
    if ! grep -q 'TXVM DONE' "$clog" || ! grep -qE 'RESULT (PASS|FAIL)' "$clog"; then
        log "fs=$fs cut=$n: the check boot did not finish: $clog"
        BOOT_FAILS[$fs]=$((BOOT_FAILS[$fs] + 1))
        return
    fi
    v=$((v + $(sed -n 's/.*RESULT [A-Z]* violations=\([0-9]*\).*/\1/p' "$clog" | head -n1)))
    out=$(floors_of "$floors" "$clog")
    FLOORS[$fs]=$(echo "${out#floors=}" | cut -d' ' -f1)
    CUTS_DONE[$fs]=$((CUTS_DONE[$fs] + 1))
    ACKED[$fs]=$((ACKED[$fs] + acks))
    BATCH_ACKED[$fs]=$((BATCH_ACKED[$fs] + batch_acks))
    VIOLATIONS[$fs]=$((VIOLATIONS[$fs] + v))
    if [ "$v" -gt 0 ]; then
        CAUGHT[$fs]=$((CAUGHT[$fs] + 1))
        grep -h 'VIOLATION' "$wlog" "$clog" | sed "s/^/  fs=$fs cut=$n: /" >&2
    fi
    log "fs=$fs cut=$n delay=${delay}ms acked=$acks batch_acked=$batch_acks violations=$v" \
        "left_by_crash: $(sed -n 's/.*CRASH LEFT \(temps=[0-9]* journals=[0-9]*\).*/\1/p' "$clog" | head -n1)" \
        "($((SECONDS - t0)) s)"
}

# ---------------------------------------------------------------- main

mkdir -p "$WORK/logs"
ensure_packages
pick_kernel
build_workload
build_initramfs
log "kernel $KERNEL, workload $WORKLOAD, initramfs $INITRD ($(du -h "$INITRD" | cut -f1))"
pick_accel

for fs in "${FSES[@]}"; do
    mkfs_disk "$(fs_type "$fs")" "$WORK/$(fs_slug "$fs").img"
    CUTS_DONE[$fs]=0 ACKED[$fs]=0 BATCH_ACKED[$fs]=0 VIOLATIONS[$fs]=0 CAUGHT[$fs]=0 BOOT_FAILS[$fs]=0 FLOORS[$fs]=-
done

# Round robin over the filesystems, so a time limit cuts all of them short
# alike. A cut starts only if the slowest one so far (at first a guess: a TCG
# cut takes 12-30 s here) still fits.
slowest=30
stopped=
for ((n = 1; n <= CUTS; n++)); do
    for fs in "${FSES[@]}"; do
        if [ "$TIME_LIMIT" -gt 0 ] && [ $((SECONDS - START + slowest)) -gt "$TIME_LIMIT" ]; then
            stopped="time limit ${TIME_LIMIT}s reached before cut $n on $fs"
            break 2
        fi
        t=$SECONDS
        one_cut "$fs" "$n"
        if [ "$n" -eq 1 ] && [ "$fs" = "${FSES[0]}" ]; then
            slowest=$((SECONDS - t))
        elif [ $((SECONDS - t)) -gt "$slowest" ]; then
            slowest=$((SECONDS - t))
        fi
    done
done

[ -n "$stopped" ] && log "$stopped"
status=0
total_cuts=0
for fs in "${FSES[@]}"; do
    echo "fs=$fs cuts=${CUTS_DONE[$fs]} acked=${ACKED[$fs]} batch_acked=${BATCH_ACKED[$fs]}" \
        "violations=${VIOLATIONS[$fs]}" \
        "mode=$MODE cuts_with_violations=${CAUGHT[$fs]} boot_failures=${BOOT_FAILS[$fs]}" \
        "accel=$ACCEL"
    total_cuts=$((total_cuts + CUTS_DONE[$fs]))
    [ "${BOOT_FAILS[$fs]}" -eq 0 ] || status=1
    [ "$MODE" != correct ] || [ "${VIOLATIONS[$fs]}" -eq 0 ] || status=1
done
log "done in $((SECONDS - START)) s; logs in $WORK/logs"
if [ "$total_cuts" -eq 0 ] && [ "$status" -eq 0 ]; then
    echo "SKIP: no cut fitted in the time limit"
fi
exit "$status"
