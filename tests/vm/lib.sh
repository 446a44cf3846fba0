# Shared by tests/vm/run.sh and tests/nfs/run.sh (sourced, not run): finding
# the kernel, packing kernel modules into an initramfs, booting qemu.
# The caller sets LOG_TAG, and before boot(): ACCEL, MEM_MB, KERNEL, INITRD.
# pick_accel needs an init that answers tx_mode=probe with "TXVM PROBE OK".

log() { echo "[${LOG_TAG:-vm} $(date +%H:%M:%S)] $*" >&2; }
die() { echo "run.sh: $*" >&2; exit 1; }

# ensure_commands COMMAND=PACKAGE...: installs the packages of the missing
# commands (PACKAGE alone: installs it unless dpkg knows it).
ensure_commands() {
    local missing=() spec
    for spec in "$@"; do
        case "$spec" in
            *=*) command -v "${spec%%=*}" >/dev/null || missing+=("${spec#*=}") ;;
            *) dpkg -s "$spec" >/dev/null 2>&1 || missing+=("$spec") ;;
        esac
    done
    compgen -G '/boot/vmlinuz-*' >/dev/null || missing+=(linux-image-amd64)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# The newest installed kernel that has its modules.
pick_kernel() {
    local k v
    for k in $(ls -1 /boot/vmlinuz-* | sort -V -r); do
        v=${k#/boot/vmlinuz-}
        if [ -f "/lib/modules/$v/modules.dep" ]; then
            KERNEL=$k
            KVER=$v
            return
        fi
    done
    die "no /boot/vmlinuz-* with /lib/modules/<version>/modules.dep"
}

# Module files (relative to /lib/modules/$KVER) for the given module names,
# dependencies first, each once.
module_files() {
    local dep=/lib/modules/$KVER/modules.dep name line path deps d
    declare -A seen=()
    for name in "$@"; do
        line=$(grep -E "/${name}\.ko(\.[a-z]+)?:" "$dep" | head -n1) ||
            die "module $name not found in $dep"
        path=${line%%:*}
        read -r -a deps <<<"${line#*:}"
        # modules.dep lists the full closure, deepest last: load in reverse.
        for ((d = ${#deps[@]} - 1; d >= 0; d--)); do
            [ -n "${seen[${deps[d]}]:-}" ] || { seen[${deps[d]}]=1; echo "${deps[d]}"; }
        done
        [ -n "${seen[$path]:-}" ] || { seen[$path]=1; echo "$path"; }
    done
}

# Copies modules into the initramfs and writes the load list for one set.
add_modules() {
    local root=$1 set=$2 f base out
    shift 2
    : >"$root/lib/modules/$set.list"
    for f in $(module_files "$@"); do
        base=$(basename "$f")
        out=${base%.xz}
        out=${out%.zst}
        out=${out%.gz}
        if [ ! -f "$root/lib/modules/$out" ]; then
            case "$base" in
                *.xz) xz -dc "/lib/modules/$KVER/$f" >"$root/lib/modules/$out" ;;
                *.zst) zstd -qdc "/lib/modules/$KVER/$f" >"$root/lib/modules/$out" ;;
                *.gz) gzip -dc "/lib/modules/$KVER/$f" >"$root/lib/modules/$out" ;;
                *) cp "/lib/modules/$KVER/$f" "$root/lib/modules/$out" ;;
            esac
        fi
        echo "$out" >>"$root/lib/modules/$set.list"
    done
}

# boot LOG TIMEOUT DISK|none KERNEL_ARGS...: one boot; the serial console goes
# to LOG. Returns qemu's status (124 when the timeout killed it).
boot() {
    local logf=$1 limit=$2 disk=$3 cpu=max
    shift 3
    local drive=()
    [ "$disk" != none ] && drive=(-drive "file=$disk,format=raw,if=virtio,cache=unsafe")
    [ "$ACCEL" = kvm ] && cpu=host
    rm -f "$logf"
    # The subshell keeps bash's own "Aborted"/"Killed" notice out of the output.
    (timeout --kill-after=5 "$limit" qemu-system-x86_64 \
        -nodefaults -no-user-config -machine pc -accel "$ACCEL" -cpu "$cpu" \
        -smp 2 -m "$MEM_MB" -display none -monitor none -serial "file:$logf" \
        -no-reboot -kernel "$KERNEL" -initrd "$INITRD" "${drive[@]}" \
        -append "console=ttyS0 panic=-1 oops=panic quiet loglevel=3 $*" \
        </dev/null >"$logf.qemu" 2>&1
        exit $?) 2>>"$logf.qemu"
}

pick_accel() {
    if [ "$ACCEL" = auto ]; then
        ACCEL=tcg
        if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
            # Nested KVM can hang instead of failing: try a boot, bounded.
            ACCEL=kvm
            if boot "$WORK/probe.log" 25 none tx_mode=probe tx_fs=probe &&
                grep -q 'TXVM PROBE OK' "$WORK/probe.log"; then
                log "KVM works"
                return
            fi
            log "KVM probe failed or hung: using TCG"
            ACCEL=tcg
        fi
    fi
    local t=$SECONDS
    boot "$WORK/probe.log" 120 none tx_mode=probe tx_fs=probe || true
    grep -q 'TXVM PROBE OK' "$WORK/probe.log" ||
        die "the VM does not boot with -accel $ACCEL: see $WORK/probe.log"
    log "accel=$ACCEL, empty boot in $((SECONDS - t)) s"
}

