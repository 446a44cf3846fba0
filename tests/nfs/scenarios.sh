# Scenarios of the NFS test, sourced by /init inside the VM after the
# server is up (functions of /init: host_up, on_host, mount_all, umount_all,
# each_host, restart_server). /scenario.sh (written by run.sh) sets
# VERSIONS NHOSTS PROCS COUNT and calls run_short, run_full or run_each_host.
# Result lines start with "TXNFS RESULT "; a failed check prints
# "TXNFS CHECK FAILED ..." (run.sh then exits 1).
W=/bin/nfs_workload
NAIVE=/bin/naive_counter

uptime_cs() { awk '{ printf "%d", $1 * 100 }' /proc/uptime; }

# fresh NAME: an empty shared directory /export/NAME (created on the
# server's side) and an empty local acknowledgement directory.
fresh() {
    rm -rf "/export/$1" "/tmp/acks/$1"
    mkdir -p "/export/$1" "/tmp/acks/$1"
}

failed() { echo "TXNFS CHECK FAILED $*"; }

# field NAME FILE...: the values of NAME=... in the lines of FILE.
field() {
    local name=$1
    shift
    sed -n "s/.*[ :]$name=\\([^ ]*\\).*/\\1/p" "$@"
}

mount_version() {
    mount_all "$1" "${2:-}" || { failed "mount nfs=$1 ${2:-}"; return 1; }
}

hosts_up() {
    local h
    for h in $(seq 1 "$NHOSTS"); do host_up "$h"; done
}

# txfile_counters DIR STYLE PROCS COUNT [EXTRA]: each host runs PROCS
# counters; prints lost and tx/s into LOST and RATE.
txfile_counters() {
    local d=$1 style=$2 procs=$3 count=$4 t0 t1 expect out
    t0=$(uptime_cs)
    each_host "$procs" "$d" "$W" counter --file data --style "$style" --count "$count" \
        --acks "/tmp/acks/$d" ${5:-} >"/tmp/$d.out"
    t1=$(uptime_cs)
    grep -E 'ERROR|REFUSED' "/tmp/$d.out" | head -n3
    expect=$((NHOSTS * procs * count))
    CHECK_OK=1
    out=$($W check --file "/export/$d/data" --expect "$expect" --acks "/tmp/acks/$d") || CHECK_OK=0
    echo "$out" >"/tmp/$d.check"
    grep -q 'exit [^0]' "/tmp/$d.out" && CHECK_OK=0
    echo "  $d: $out errors=$(grep -c ERROR "/tmp/$d.out") deleted_opens=$(field deleted_opens "/tmp/$d.out" | awk '{ s += $1 } END { print s + 0 }')"
    LOST=$(echo "$out" | field lost)
    RATE=$(awk -v n="$expect" -v t="$((t1 - t0))" 'BEGIN { printf "%.1f", n * 100 / (t > 0 ? t : 1) }')
    MAXGAP=$(field max_gap_ms "/tmp/$d.out" | sort -n | tail -n1)
}

naive_counters() {
    local d=$1 procs=$2 count=$3 expect value
    each_host "$procs" "$d" "$NAIVE" naive.txt "$count" >"/tmp/$d.naive.out"
    expect=$((NHOSTS * procs * count))
    value=$(cat "/export/$d/naive.txt" 2>/dev/null || echo 0)
    NAIVE_LOST=$((expect - value))
    echo "  $d: naive expect=$expect value=$value"
}

# ------------------------------------------------------------------ short

run_short() {
    local v style d
    hosts_up
    for v in $VERSIONS; do
        mount_version "$v" || continue
        for style in flock posix; do
            d=short-$v-$style
            fresh "$d"
            naive_counters "$d" "$PROCS" "$COUNT"
            txfile_counters "$d" "$style" "$PROCS" "$COUNT"
            [ "$CHECK_OK" = 1 ] || failed "nfs=$v style=$style txfile check"
            [ "$NAIVE_LOST" -gt 0 ] || failed "nfs=$v style=$style the naive program lost nothing"
            echo "TXNFS RESULT nfs=$v hosts=$NHOSTS style=$style naive_lost=$NAIVE_LOST txfile_lost=$LOST txfile_tx_per_s=$RATE"
        done
        umount_all
    done
    # The same counters on the guest's own tmpfs (one host, as many
    # processes), for the throughput comparison.
    for style in flock posix; do
        local_counters "$style"
    done
}

local_counters() {
    local style=$1 n=$((NHOSTS * PROCS)) i t0 t1 pids= out
    rm -rf "/tmp/local-$style" "/tmp/acks/local-$style"
    mkdir -p "/tmp/local-$style" "/tmp/acks/local-$style"
    t0=$(uptime_cs)
    for i in $(seq 1 "$n"); do
        (cd "/tmp/local-$style" && $W counter --file data --style "$style" --count "$COUNT" \
            --acks "/tmp/acks/local-$style" >/dev/null) &
        pids="$pids $!"
    done
    # shellcheck disable=SC2086
    wait $pids
    t1=$(uptime_cs)
    out=$($W check --file "/tmp/local-$style/data" --expect "$((n * COUNT))" --acks "/tmp/acks/local-$style")
    echo "$out" | grep -q 'lost=0 torn=0' || failed "local tmpfs style=$style: $out"
    echo "TXNFS RESULT local=tmpfs procs=$n style=$style txfile_tx_per_s=$(awk -v n="$((n * COUNT))" \
        -v t="$((t1 - t0))" 'BEGIN { printf "%.1f", n * 100 / (t > 0 ? t : 1) }')"
}

# ------------------------------------------------------------------ full

run_full() {
    local v
    for v in $VERSIONS; do
        mount_version "$v" || continue
        full_batches "$v"
        full_readers "$v"
        full_silly_rename "$v"
        full_cross_style "$v"
        full_kill9 "$v"
        full_server_restart "$v"
        umount_all
        full_local_lock "$v"
    done
    local_cross_style
}

# Batches of two files from every host; members must agree at the end and
# in every Batch::read a reader on host 1 makes meanwhile.
full_batches() {
    local v=$1 d=batch-$1 expect out
    fresh "$d"
    on_host 1 sh -c "cd /mnt/shared/$d && exec $W reader --files a,b --secs 20" >"/tmp/$d.reader" &
    local reader=$!
    each_host "$PROCS" "$d" "$W" batch --files a,b --style posix --count "$COUNT" --stamp x >"/tmp/$d.out"
    wait "$reader"
    expect=$((NHOSTS * PROCS * COUNT))
    out=$($W batch-check --files "/export/$d/a,/export/$d/b" --expect "$expect")
    echo "  $d: $out; reader: $(cat "/tmp/$d.reader")"
    echo "$out" | grep -q 'agree=1 torn=0' && echo "$out" | grep -q "value=$expect " ||
        failed "nfs=$v batch: $out"
    grep -q 'torn=0 mixed=0' "/tmp/$d.reader" || failed "nfs=$v batch reader: $(cat "/tmp/$d.reader")"
    echo "TXNFS RESULT batches nfs=$v hosts=$NHOSTS $(echo "$out" | sed 's/^BATCHCHECK //') reader_$(sed 's/^READER //' "/tmp/$d.reader" | cut -d' ' -f2-5)"
}

# Host 1 replaces the file over and over; host 2 reads it with
# TxFile::read (which retries ESTALE) and with a plain read.
full_readers() {
    local v=$1 d=read-$1 mode out
    for mode in txfile raw; do
        fresh "$d"
        on_host 1 sh -c "cd /mnt/shared/$d && exec $W counter --file data --style flock --count 3 --acks /tmp/acks/$d" >/dev/null
        on_host 1 sh -c "cd /mnt/shared/$d && exec $W counter --file data --style flock --count $((COUNT * 3)) --acks /tmp/acks/$d" >"/tmp/$d.w" &
        local writer=$!
        local flag=
        [ "$mode" = raw ] && flag=--raw
        on_host 2 sh -c "cd /mnt/shared/$d && exec $W reader --files data --secs 15 $flag" >"/tmp/$d.$mode"
        wait "$writer"
        out=$(cat "/tmp/$d.$mode")
        echo "TXNFS RESULT reader nfs=$v mode=$mode $(echo "$out" | sed 's/^READER raw=[01] //')"
        [ "$mode" = raw ] || echo "$out" | grep -q 'torn=0 mixed=0 errors=0' || failed "nfs=$v reader: $out"
    done
}

# A file open on host 1 is replaced by host 1: its client renames it to
# .nfsXXXX. txfile must neither sweep nor count that file.
full_silly_rename() {
    local v=$1 d=silly-$1 before after holder
    fresh "$d"
    on_host 1 sh -c "cd /mnt/shared/$d && exec $W counter --file data --style flock --count 1 --acks /tmp/acks/$d" >/dev/null
    on_host 1 sh -c "echo \$\$ >/tmp/$d.pid; exec 3</mnt/shared/$d/data; exec sleep 60" &
    sleep 1
    holder=$(cat "/tmp/$d.pid")
    on_host 1 sh -c "cd /mnt/shared/$d && exec $W counter --file data --style flock --count 1 --acks /tmp/acks/$d" >/dev/null
    before=$(ls -a "/export/$d" | grep -c '^\.nfs' || true)
    # New processes on both hosts: each sweeps at its first lock.
    each_host 1 "$d" "$W" counter --file data --style flock --count 2 --acks "/tmp/acks/$d" >"/tmp/$d.out"
    after=$(ls -a "/export/$d" | grep -c '^\.nfs' || true)
    local out
    out=$($W check --file "/export/$d/data" --expect $((2 + NHOSTS * 2)) --acks "/tmp/acks/$d")
    kill "$holder" 2>/dev/null
    sleep 2
    local gone
    gone=$(ls -a "/export/$d" | grep -c '^\.nfs' || true)
    echo "TXNFS RESULT silly_rename nfs=$v nfs_files_before=$before after_sweeping_commits=$after after_holder_closed=$gone $(echo "$out" | sed 's/^CHECK //' | cut -d' ' -f1-3)"
    [ "$before" -ge 1 ] || echo "  (no .nfsXXXX file appeared: nothing to test)"
    [ "$after" -ge "$before" ] || failed "nfs=$v a .nfsXXXX file was removed by txfile"
    echo "$out" | grep -q 'lost=0 torn=0' || failed "nfs=$v silly: $out"
}

# Does a txfile user of one lock style exclude one of the other style?
# Measured, not assumed: prints excluded=yes|no.
cross_style_pair() {
    local where=$1 dir=$2 holder_style=$3 contender_style=$4 hold_on=$5 try_on=$6 holder got
    if [ "$hold_on" = local ]; then
        (cd "$dir" && exec $W hold --file data --style "$holder_style" --ms 4000) >/tmp/hold.out &
    else
        on_host "$hold_on" sh -c "cd $dir && exec $W hold --file data --style $holder_style --ms 4000" >/tmp/hold.out &
    fi
    holder=$!
    local i=0
    while ! grep -q LOCKED /tmp/hold.out && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    if [ "$try_on" = local ]; then
        got=$(cd "$dir" && $W try --file data --style "$contender_style")
    else
        got=$(on_host "$try_on" sh -c "cd $dir && exec $W try --file data --style $contender_style")
    fi
    wait "$holder"
    case "$got" in
        *got=no*) got=yes ;;
        *got=yes*) got=no ;;
        *) got="error($got)" ;;
    esac
    echo "TXNFS RESULT cross_style $where holder=$holder_style contender=$contender_style excluded=$got"
}

full_cross_style() {
    local v=$1 d=cross-$1
    fresh "$d"
    cross_style_pair "nfs=$v hosts=other" "/mnt/shared/$d" flock posix 1 2
    cross_style_pair "nfs=$v hosts=other" "/mnt/shared/$d" posix flock 1 2
    cross_style_pair "nfs=$v hosts=other" "/mnt/shared/$d" flock flock 1 2
    cross_style_pair "nfs=$v hosts=other" "/mnt/shared/$d" posix posix 1 2
    cross_style_pair "nfs=$v hosts=same" "/mnt/shared/$d" flock posix 1 1
    cross_style_pair "nfs=$v hosts=same" "/mnt/shared/$d" posix flock 1 1
}

local_cross_style() {
    rm -rf /tmp/cross-local
    mkdir -p /tmp/cross-local
    cross_style_pair "fs=tmpfs" /tmp/cross-local flock posix local local
    cross_style_pair "fs=tmpfs" /tmp/cross-local posix flock local local
}

# Host 1 holds the lock and is killed with SIGKILL while host 2 waits.
full_kill9() {
    local v=$1 style d holder waiter killed got i
    for style in flock posix; do
        d=kill-$v-$style
        fresh "$d"
        on_host 1 sh -c "cd /mnt/shared/$d && exec $W hold --file data --style $style --ms 60000" >"/tmp/$d.hold" &
        i=0
        while ! grep -q LOCKED "/tmp/$d.hold" && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
        # The workload's own pid ($! is the subshell running on_host).
        holder=$(field pid "/tmp/$d.hold")
        on_host 2 sh -c "cd /mnt/shared/$d && exec $W wait --file data --style $style" >"/tmp/$d.wait" &
        waiter=$!
        sleep 2
        killed=$($W now)
        kill -9 "$holder"
        i=0
        while kill -0 "$waiter" 2>/dev/null && [ $i -lt 1200 ]; do sleep 0.1; i=$((i + 1)); done
        if kill -0 "$waiter" 2>/dev/null; then
            kill -9 "$waiter"
            echo "TXNFS RESULT kill9 nfs=$v style=$style waiter_got_lock_after_ms=never(120s)"
            failed "nfs=$v kill9 style=$style: the waiter never got the lock"
            continue
        fi
        got=$(field at_ms "/tmp/$d.wait")
        echo "TXNFS RESULT kill9 nfs=$v style=$style waiter_got_lock_after_ms=$((got - killed))"
        $W check --file "/export/$d/data" --expect 1 | grep -q 'lost=0 torn=0' ||
            failed "nfs=$v kill9 style=$style: the waiter's commit is not there"
    done
}

# Counters on every host; the NFS server restarts in the middle.
full_server_restart() {
    local v=$1 d=restart-$1 bg t0
    fresh "$d"
    ( txfile_counters "$d" posix "$PROCS" $((COUNT * 2))
      echo "LOST=$LOST CHECK_OK=$CHECK_OK MAXGAP=$MAXGAP" >"/tmp/$d.res" ) &
    bg=$!
    sleep 4
    t0=$($W now)
    restart_server 1
    echo "  server restarted $(( $($W now) - t0 )) ms"
    wait "$bg"
    . "/tmp/$d.res"
    echo "TXNFS RESULT server_restart nfs=$v hosts=$NHOSTS lost=$LOST check_ok=$CHECK_OK longest_commit_gap_ms=$MAXGAP"
    [ "$CHECK_OK" = 1 ] || failed "nfs=$v server restart"
}

# Mounts whose locks stay on the client: the open must fail; with
# allow_local_locks the counters run and (measured) lose updates.
full_local_lock() {
    local v=$1 opt d refused
    for opt in local_lock=all nolock; do
        [ "$opt" = nolock ] && [ "$v" != 3 ] && continue
        if ! mount_all "$v" "$opt" >/dev/null 2>&1; then
            echo "TXNFS RESULT local_lock nfs=$v option=$opt mount=refused_by_kernel"
            umount_all 2>/dev/null
            continue
        fi
        d=local-$v-${opt%%=*}
        fresh "$d"
        # What the kernel made of the option: the check reads the same line.
        local line shown=no
        line=$(on_host 1 grep ' /mnt/shared ' /proc/self/mountinfo)
        echo "  mountinfo: $line"
        case "$line" in *"$opt"*) shown=yes ;; esac
        each_host 1 "$d" "$W" counter --file data --style posix --count 3 --acks "/tmp/acks/$d" >"/tmp/$d.refuse"
        refused=$(grep -c 'REFUSED' "/tmp/$d.refuse" || true)
        echo "  $(grep -m1 REFUSED "/tmp/$d.refuse")"
        fresh "$d"
        txfile_counters "$d" posix "$PROCS" $((COUNT * 2)) --allow-local-locks
        echo "TXNFS RESULT local_lock nfs=$v option=$opt in_mountinfo=$shown opens_refused=$refused/$NHOSTS" \
            "allowed: lost=$LOST failed_procs=$(grep -c 'exit [^0]' "/tmp/$d.out") final=$(field value "/tmp/$d.check")/$((NHOSTS * PROCS * COUNT * 2))"
        if [ "$shown" = yes ]; then
            [ "$refused" = "$NHOSTS" ] || failed "nfs=$v $opt: open was not refused"
        else
            [ "$refused" = 0 ] || failed "nfs=$v $opt: refused although mountinfo does not show it"
        fi
        umount_all
    done
}

# ------------------------------------------------------------------ each-host

run_each_host() {
    local v
    hosts_up
    for v in $VERSIONS; do
        mount_version "$v" || continue
        fresh each
        echo "nfs=$v hosts=$NHOSTS procs=$PROCS: $*"
        each_host "$PROCS" each "$@"
        umount_all
    done
}
