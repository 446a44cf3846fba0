#!/usr/bin/env bash
# NFS across hosts: boots one Linux VM (qemu, Debian kernel) that is a whole
# small network: a kernel NFS server and N client hosts, each in its own
# network, UTS and mount namespaces with its own NFS client, lockd and statd,
# linked to the server by veth pairs. Nothing reaches any network outside
# the guest (qemu gets no network device).
#
#   tests/nfs/run.sh [--short] [--nfs-version 3|4.2|3,4.2] [--hosts N] [--procs K]
#                    [--count N] [--grace SECONDS] [--accel tcg|kvm|auto]
#                    [--time-limit SECONDS] [--work DIR] [--mode correct|no-nfs-revalidate]
#   tests/nfs/run.sh [--nfs-version V] --hosts N --procs K --each-host PROGRAM ARGS...
#
# --short: the seed's trap (naive_counter, a POSIX lock lost at an unrelated
#   close) and txfile counters, both lock styles, on every NFS version; one
#   line per case:
#     nfs=<version> hosts=<n> style=<flock|posix> naive_lost=<n> txfile_lost=<n> txfile_tx_per_s=<x>
#   plus the same txfile counters on the guest's local tmpfs for comparison.
# default (no --short): all of --short, then per version: batches across
#   hosts, readers while another host replaces the file (TxFile::read and a
#   plain read), .nfsXXXX silly-rename files, Flock-style vs Posix-style
#   exclusion (across hosts, on one host, on local tmpfs), mounts whose locks
#   stay local (local_lock=all, nolock), kill -9 of a lock holder, and a
#   server restart in the middle of a run.
# --each-host PROGRAM ARGS...: copies PROGRAM (a static x86_64 Linux binary)
#   into every client host, starts K copies on each at once with the shared
#   NFS directory as working directory (and as TMPDIR), and prints every line
#   they print as "host<H>: <line>" and every exit status as "host<H>: exit <code>".
#
# --mode no-nfs-revalidate runs the workload with a deliberately broken
#   library (Mutant::NoNfsRevalidate: the target is opened without first
#   revalidating its directory); it only measures and never fails the run.
#
# Exits 1 when the VM did not finish, or when a check failed (txfile lost,
# tore or duplicated an update, a batch mixed, a reader saw a torn version,
# the naive program lost nothing). Needs root (apt-get); installs
# qemu-system-x86, busybox-static, cpio, linux-image-amd64 and gcc's static
# libc, and unpacks Debian's nfs-kernel-server, nfs-common and rpcbind (with
# their libraries) into the initramfs without installing them.
# TXFILE_VM_SRC=DIR builds the workload from another checkout.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SRC=${TXFILE_VM_SRC:-$ROOT}
LOG_TAG=nfs
# shellcheck source=tests/vm/lib.sh
. "$ROOT/tests/vm/lib.sh"

VERSIONS=3,4.2
HOSTS=2
PROCS=3
COUNT=
SHORT=0
GRACE=10
ACCEL=tcg
TIME_LIMIT=0
WORK=${TXNFS_WORK:-/tmp/txfile-nfs}
MEM_MB=768
MODE=correct
EACH=()

usage() { sed -n '2,38p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --short) SHORT=1; shift ;;
        --nfs-version) VERSIONS=$2; shift 2 ;;
        --hosts) HOSTS=$2; shift 2 ;;
        --procs) PROCS=$2; shift 2 ;;
        --count) COUNT=$2; shift 2 ;;
        --grace) GRACE=$2; shift 2 ;;
        --accel) ACCEL=$2; shift 2 ;;
        --time-limit) TIME_LIMIT=$2; shift 2 ;;
        --work) WORK=$2; shift 2 ;;
        --mode) MODE=$2; shift 2 ;;
        --each-host) shift; [ $# -gt 0 ] || { usage >&2; exit 2; }; EACH=("$@"); break ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done
case "$MODE" in correct|no-nfs-revalidate) ;; *) echo "run.sh: --mode must be correct or no-nfs-revalidate" >&2; exit 2 ;; esac
IFS=, read -r -a VERS <<<"$VERSIONS"
for v in "${VERS[@]}"; do
    case "$v" in 3|4.2|4.1|4.0) ;; *) echo "run.sh: --nfs-version takes 3 and/or 4.2" >&2; exit 2 ;; esac
done
[ "$HOSTS" -ge 1 ] && [ "$HOSTS" -le 9 ] || { echo "run.sh: --hosts must be 1..9" >&2; exit 2; }
[ "$HOSTS" -ge 2 ] || [ ${#EACH[@]} -gt 0 ] || { echo "run.sh: the checks need --hosts 2 or more" >&2; exit 2; }
if [ ${#EACH[@]} -gt 0 ]; then
    [ -f "${EACH[0]}" ] || die "no such program: ${EACH[0]}"
    if command -v file >/dev/null && ! file -b "${EACH[0]}" | grep -qE 'statically linked|static-pie'; then
        die "${EACH[0]} is not a statically linked program: the hosts have no libraries for it"
    fi
fi
# Increments per process: the short run keeps the whole boot near 5 minutes.
[ -n "$COUNT" ] || { [ "$SHORT" = 1 ] && COUNT=25 || COUNT=40; }
START=$SECONDS
mkdir -p "$WORK"

# ---------------------------------------------------------------- build

ensure_packages() {
    ensure_commands qemu-system-x86_64=qemu-system-x86 busybox-static cpio=cpio gzip=gzip \
        gcc=gcc libc6-dev file=file
}

build_programs() {
    local target=x86_64-unknown-linux-gnu
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$SRC/target/vm}
    log "building the static workload from $SRC"
    (cd "$SRC" && RUSTFLAGS='-C target-feature=+crt-static --cfg txfile_mutants' \
        cargo build --quiet --release --example nfs_workload --features sim --target "$target")
    WORKLOAD=$CARGO_TARGET_DIR/$target/release/examples/nfs_workload
    NAIVE=$WORK/naive_counter
    gcc -O2 -static -o "$NAIVE" "$HERE/naive_counter.c"
    for b in "$WORKLOAD" "$NAIVE"; do
        file -b "$b" | grep -qE 'statically linked|static-pie' || die "$b is not static"
    done
}

# Debian's NFS user space, unpacked (not installed) into $WORK/debs/root.
NFS_DEBS="nfs-kernel-server nfs-common rpcbind libtirpc-common libtirpc3 libwrap0 libnfsidmap1"
fetch_nfs_packages() {
    local dir=$WORK/debs
    if [ ! -f "$dir/.done" ]; then
        rm -rf "$dir"
        mkdir -p "$dir/root"
        chmod 777 "$dir"
        # shellcheck disable=SC2086
        (cd "$dir" && apt-get download $NFS_DEBS >/dev/null 2>&1) || {
            apt-get update -qq >/dev/null
            # shellcheck disable=SC2086
            (cd "$dir" && apt-get download $NFS_DEBS >/dev/null 2>&1)
        } || die "apt-get download $NFS_DEBS failed"
        for d in "$dir"/*.deb; do dpkg -x "$d" "$dir/root"; done
        touch "$dir/.done"
    fi
    DEBROOT=$dir/root
}

# copy_elf ROOT BINARY: copies BINARY (from the unpacked packages) and every
# library it needs (found in the packages, else on this machine) into ROOT.
copy_elf() {
    local root=$1 bin=$2 rel lib
    rel=${bin#"$DEBROOT"}
    mkdir -p "$root$(dirname "$rel")"
    cp "$bin" "$root$rel"
    for lib in $(LD_LIBRARY_PATH="$DEBROOT/lib/x86_64-linux-gnu:$DEBROOT/usr/lib/x86_64-linux-gnu" \
        ldd "$bin" | awk '/=>/ { print $3 } /^\t\/lib64\// { print $1 }'); do
        [ -e "$lib" ] || die "$bin needs $lib, which is missing"
        case "$lib" in
            "$DEBROOT"/*) rel=${lib#"$DEBROOT"} ;;
            *) rel=$lib ;;
        esac
        mkdir -p "$root$(dirname "$rel")"
        [ -e "$root$rel" ] || cp -L "$lib" "$root$rel"
    done
}

build_initramfs() {
    local root=$WORK/initramfs b
    rm -rf "$root"
    mkdir -p "$root"/{bin,sbin,usr/sbin,dev,proc,sys,tmp,run,etc,lib/modules,var/lib/nfs}
    cp /bin/busybox "$root/bin/busybox"
    cp "$WORKLOAD" "$root/bin/nfs_workload"
    cp "$NAIVE" "$root/bin/naive_counter"
    cp "$HERE/init" "$root/init"
    cp "$HERE/scenarios.sh" "$root/scenarios.sh"
    chmod 755 "$root/init" "$root"/bin/*
    for b in sbin/rpcbind sbin/rpc.statd sbin/mount.nfs usr/sbin/exportfs usr/sbin/rpc.mountd \
        usr/sbin/rpc.nfsd usr/sbin/rpcinfo; do
        copy_elf "$root" "$DEBROOT/$b"
    done
    ln -s mount.nfs "$root/sbin/mount.nfs4"
    ln -s mount.nfs "$root/sbin/umount.nfs"
    ln -s mount.nfs "$root/sbin/umount.nfs4"
    cp "$DEBROOT/etc/netconfig" "$root/etc/netconfig"
    printf 'root:x:0:0:root:/:/bin/sh\n_rpc:x:100:65534::/run/rpcbind:/bin/false\nstatd:x:101:65534::/var/lib/nfs:/bin/false\nnobody:x:65534:65534:nobody:/:/bin/false\n' \
        >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
    printf '127.0.0.1 localhost\n' >"$root/etc/hosts"
    printf 'sunrpc 111/tcp portmapper\nsunrpc 111/udp portmapper\nnfs 2049/tcp\nnfs 2049/udp\n' >"$root/etc/services"
    printf 'ip 0 IP\nicmp 1 ICMP\ntcp 6 TCP\nudp 17 UDP\nipv6 41 IPv6\nipv6-icmp 58 IPv6-ICMP\n' >"$root/etc/protocols"
    printf 'rpcbind 100000 portmap sunrpc\nstatus 100024\nmountd 100005 mount\nnfs 100003\nnlockmgr 100021\n' >"$root/etc/rpc"
    printf 'hosts: files\nservices: files\nprotocols: files\nrpc: files\npasswd: files\ngroup: files\n' >"$root/etc/nsswitch.conf"
    mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || true
    add_modules "$root" nfs veth sunrpc grace lockd nfs_acl auth_rpcgss nfsd netfs fscache nfs \
        nfsv3 dns_resolver nfsv4
    (cd "$root" && find . | cpio -o -H newc --quiet) | gzip -1 >"$WORK/base.cpio.gz"
}

# ---------------------------------------------------------------- scenario

# The scenario the guest runs: a second cpio archive with /scenario.sh (and
# the --each-host program), appended to the base initramfs.
pack_scenario() {
    local dir=$WORK/scenario q
    rm -rf "$dir"
    mkdir -p "$dir/hostbin"
    {
        echo "VERSIONS='${VERS[*]}' NHOSTS=$HOSTS PROCS=$PROCS COUNT=$COUNT"
        [ "$MODE" = correct ] || echo "export TXNFS_MUTANT=$MODE"
        if [ ${#EACH[@]} -gt 0 ]; then
            cp "${EACH[0]}" "$dir/hostbin/$(basename "${EACH[0]}")"
            chmod 755 "$dir/hostbin"/*
            printf 'run_each_host /hostbin/%q' "$(basename "${EACH[0]}")"
            for q in "${EACH[@]:1}"; do printf ' %q' "$q"; done
            echo
        elif [ "$SHORT" = 1 ]; then
            echo "run_short"
        else
            echo "run_short"
            echo "run_full"
        fi
    } >"$dir/scenario.sh"
    (cd "$dir" && find . | cpio -o -H newc --quiet) | gzip -1 >"$WORK/scenario.cpio.gz"
    cat "$WORK/base.cpio.gz" "$WORK/scenario.cpio.gz" >"$WORK/initramfs.cpio.gz"
    INITRD=$WORK/initramfs.cpio.gz
}

# ---------------------------------------------------------------- main

ensure_packages
pick_kernel
build_programs
fetch_nfs_packages
build_initramfs
pack_scenario
log "kernel $KERNEL, initramfs $INITRD ($(du -h "$INITRD" | cut -f1)), accel $ACCEL"
[ "$ACCEL" = auto ] && pick_accel

# A generous bound: a full run under TCG on a busy machine takes minutes.
limit=$((SHORT == 1 ? 900 : 3000))
[ "$TIME_LIMIT" -gt 0 ] && limit=$TIME_LIMIT
LOGF=$WORK/console.log
t=$SECONDS
boot "$LOGF" "$limit" none "tx_grace=$GRACE" || true
tr -d '\r' <"$LOGF" >"$LOGF.txt"
log "VM ran $((SECONDS - t)) s; console log $LOGF.txt"

status=0
if ! grep -q 'TXNFS DONE' "$LOGF.txt"; then
    log "the VM did not finish: $(grep -E 'TXNFS FAIL|Kernel panic' "$LOGF.txt" | head -n3)"
    status=1
fi
if [ ${#EACH[@]} -gt 0 ]; then
    grep -E '^(nfs=|host[0-9]+: )' "$LOGF.txt" || true
else
    sed -n 's/^TXNFS RESULT //p' "$LOGF.txt"
    if grep -q '^TXNFS CHECK FAILED' "$LOGF.txt" && [ "$MODE" = correct ]; then
        grep '^TXNFS CHECK FAILED' "$LOGF.txt" >&2
        status=1
    fi
    [ "$(grep -c '^TXNFS RESULT nfs=' "$LOGF.txt" || true)" -gt 0 ] || status=1
fi
log "done in $((SECONDS - START)) s"
exit "$status"
