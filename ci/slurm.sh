#!/usr/bin/env bash
# ci/slurm.sh -- a real single-node SLURM cluster on localhost, for CI and local tests.
#
# Usage:  ci/slurm.sh up | down | status | env | clean
#
#   up      install Debian's packages if missing (slurmctld slurmd slurm-client munge, and with
#           WITH_SLURMDBD=1 also slurmdbd mariadb-server-core mariadb-client-core eatmydata), write
#           the configuration, start the daemons (munged, [mariadbd, slurmdbd], slurmctld, slurmd)
#           and run two `srun` smoke tests (a plain job, and a GPU job when FAKE_GPUS > 0).
#           Idempotent: daemons already running are kept; a changed configuration restarts them.
#           Measured on a 2-core Debian 12 VM from a bare machine (packages purged): ~10 s without
#           slurmdbd, ~12-18 s with it; ~0.3-1 s when already up. `down`: ~4 s / ~6-7 s.
#   down    cancel the cluster's jobs, then stop the daemons started by `up`, by the PIDs in their
#           PID files (never by process name). Idempotent. Logs and state stay for inspection.
#   status  show which daemons run and `sinfo`; exit 0 only when the cluster answers.
#   env     print `export SLURM_CONF=...` (eval it where /etc/slurm/slurm.conf is not ours).
#   clean   `down`, then delete the state directory.
#
# Exit codes: 0 ok; 1 the cluster failed to come up / stop (see the logs under $CI_SLURM_DIR/log);
#             2 usage; 3 SLURM cannot be started in this environment (not root, no apt-get/dpkg,
#             packages not installable). Callers (.ci/run, tests) treat 3 as "skip, with reason".
#
# Knobs (environment variables, defaults in brackets):
#   CI_SLURM_DIR     state: configuration, PID files, logs, spool, database [/tmp/hearlike-slurm]
#   WITH_SLURMDBD    1: run slurmdbd + a private MariaDB so `sacct` works (the status path of real
#                    clusters; costs ~3-8 s more); 0: no accounting, profiles must use squeue [1]
#   ACCOUNT          SLURM account created in slurmdbd for root (and $SUDO_USER) [ci]
#   PARTITIONS       comma list of partitions on the one node; the first is the default [debug,gpu]
#   FAKE_GPUS        number of fake GPUs (GRES gpu) on the node; 0 disables GRES [1]
#   NODE_MEM_MB      RealMemory advertised for the node [80 % of the machine's memory]
#   DEF_MEM_PER_CPU  DefMemPerCPU in MB (memory of jobs that ask for none) [512]
#   DB_PORT          TCP port of the private MariaDB (127.0.0.1 only) [3307]
#
# Settings and traps this relies on (see also profiles/slurm/README.md):
#   * No systemd: every daemon is started by hand and writes a PID file under $CI_SLURM_DIR/run.
#   * No cgroups: ProctrackType=proctrack/linuxproc, TaskPlugin=task/affinity. Time limits are
#     enforced, memory limits are not (mem_mb only affects scheduling).
#   * EnforcePartLimits=ALL: a job that can never fit is rejected by sbatch instead of pending
#     forever (a snakemake run would otherwise hang).
#   * MinJobAge=600: finished jobs stay visible to squeue long enough for the executor plugin.
#   * GPUs need a File= in gres.conf, else slurmd drops them; we mknod fake character devices
#     (major:minor 1:3, like /dev/null) under $CI_SLURM_DIR/dev.
#   * Without slurmdbd, `sacct` exits 1 and snakemake-executor-plugin-slurm (default status command
#     sacct) waits forever; hence WITH_SLURMDBD=1 by default.
#   * Daemons use the standard ports 6817-6819 (a second SLURM on the same host would clash) and a
#     private munged socket ($CI_SLURM_DIR/munge), so a system munged is not disturbed.
#   * Client commands find the cluster through /etc/slurm/slurm.conf, which `up` makes a symlink
#     to $CI_SLURM_DIR/etc/slurm.conf when that path is free (and `down` removes it again);
#     otherwise use `eval "$(ci/slurm.sh env)"`.
set -euo pipefail

CI_SLURM_DIR=${CI_SLURM_DIR:-/tmp/hearlike-slurm}
WITH_SLURMDBD=${WITH_SLURMDBD:-1}
ACCOUNT=${ACCOUNT:-ci}
PARTITIONS=${PARTITIONS:-debug,gpu}
FAKE_GPUS=${FAKE_GPUS:-1}
DEF_MEM_PER_CPU=${DEF_MEM_PER_CPU:-512}
DB_PORT=${DB_PORT:-3307}
CLUSTER=ci
DB_PASS=ci-slurmdbd

ETC=$CI_SLURM_DIR/etc
RUN=$CI_SLURM_DIR/run
LOG=$CI_SLURM_DIR/log
MUNGE_DIR=$CI_SLURM_DIR/munge
DB_DIR=$CI_SLURM_DIR/mysql
SLURM_CONF_FILE=$ETC/slurm.conf
MUNGE_SOCKET=$MUNGE_DIR/munge.socket
DB_SOCKET=$DB_DIR/mysqld.sock
SYS_CONF=/etc/slurm/slurm.conf
export SLURM_CONF=$SLURM_CONF_FILE

PKGS_BASE=(slurmctld slurmd slurm-client munge)
# *-core: the binaries only; mariadb-server would also initialise and register /var/lib/mysql
PKGS_DBD=(slurmdbd mariadb-server-core mariadb-client-core eatmydata)

say() { printf '[ci/slurm] %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }
unsupported() { say "SLURM UNAVAILABLE: $*"; exit 3; }

# ---------------------------------------------------------------- helpers: PIDs and waiting
pid_of() { # $1 = PID file named <daemon>.pid; prints the PID if that daemon runs under it
    local f=$1 pid comm
    [[ -s $f ]] || return 1
    pid=$(tr -dc '0-9' <"$f")
    [[ -n $pid && -r /proc/$pid/comm ]] || return 1
    read -r comm <"/proc/$pid/comm" || return 1
    # a stale PID file whose number now belongs to another process is not ours
    [[ $comm == "$(basename "$f" .pid)" ]] || return 1
    printf '%s\n' "$pid"
}

stop_pidfiles() { # args: name=pidfile ...; SIGTERM them together, wait up to 20 s, then SIGKILL
    local item name f pid i alive
    local -a pids=() files=()
    for item in "$@"; do
        name=${item%%=*} f=${item#*=}
        if pid=$(pid_of "$f"); then
            say "stopping $name (pid $pid)"
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
        files+=("$f")
    done
    for ((i = 0; i < 200 && ${#pids[@]} > 0; i++)); do
        alive=()
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
        pids=("${alive[@]}")
        ((${#pids[@]} == 0)) || sleep 0.1
    done
    for pid in "${pids[@]}"; do
        say "pid $pid did not stop after 20 s; SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    done
    rm -f "${files[@]}"
}

wait_for() { # $1 = seconds, $2 = description, rest = command that succeeds when ready
    local secs=$1 what=$2 i
    shift 2
    for ((i = 0; i < secs * 5; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    say "timed out after ${secs}s waiting for $what"
    return 1
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

write_if_changed() { # $1 = path, $2 = mode, $3 = owner, stdin = content; exit 0 when changed
    local dst=$1 mode=$2 owner=$3 tmp
    tmp=$(mktemp "$dst.XXXXXX")
    cat >"$tmp"
    if [[ -f $dst ]] && cmp -s "$tmp" "$dst"; then
        rm -f "$tmp"
        return 1
    fi
    chmod "$mode" "$tmp"
    chown "$owner" "$tmp"
    mv -f "$tmp" "$dst"
    return 0
}

# ---------------------------------------------------------------- preconditions, packages
check_env() {
    [[ $(id -u) -eq 0 ]] || unsupported "needs root (it installs packages and runs daemons); try: sudo -E $0 up"
    [[ $WITH_SLURMDBD == 0 || $WITH_SLURMDBD == 1 ]] || { say "WITH_SLURMDBD must be 0 or 1"; exit 2; }
    [[ $FAKE_GPUS =~ ^[0-9]+$ ]] || { say "FAKE_GPUS must be a number"; exit 2; }
    [[ $PARTITIONS =~ ^[A-Za-z0-9_]+(,[A-Za-z0-9_]+)*$ ]] || { say "PARTITIONS must be a comma list"; exit 2; }
}

ensure_packages() {
    local pkgs=("${PKGS_BASE[@]}") missing=() p
    [[ $WITH_SLURMDBD == 1 ]] && pkgs+=("${PKGS_DBD[@]}")
    command -v dpkg-query >/dev/null || unsupported "no dpkg (this script needs a Debian/Ubuntu system)"
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    command -v apt-get >/dev/null || unsupported "apt-get not available to install: ${missing[*]}"
    say "installing ${missing[*]}"
    # --force-unsafe-io: dpkg skips its fsyncs (a throw-away CI machine; halves the install time)
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends
        -o Dpkg::Options::=--force-unsafe-io)
    if ! "${apt[@]}" "${missing[@]}" >"$LOG/apt.log" 2>&1; then
        # stale or empty package lists: refresh once and retry
        apt-get update -q >>"$LOG/apt.log" 2>&1 || unsupported "apt-get update failed (offline?), see $LOG/apt.log"
        "${apt[@]}" "${missing[@]}" >>"$LOG/apt.log" 2>&1 ||
            unsupported "apt-get install ${missing[*]} failed, see $LOG/apt.log"
    fi
    # Debian's maintainer scripts may have started services where policy-rc.d allows it; that is
    # not ours to stop, but they do not hold our ports (we use private sockets / DB_PORT).
}

# ---------------------------------------------------------------- configuration
node_line() { # NodeName line from the hardware (slurmd -C) with our memory and GRES
    local hw cpus boards spb cps tpc mem
    hw=$(slurmd -C | head -1)
    cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$hw")
    boards=$(sed -n 's/.* Boards=\([0-9]*\).*/\1/p' <<<"$hw")
    spb=$(sed -n 's/.* SocketsPerBoard=\([0-9]*\).*/\1/p' <<<"$hw")
    cps=$(sed -n 's/.* CoresPerSocket=\([0-9]*\).*/\1/p' <<<"$hw")
    tpc=$(sed -n 's/.* ThreadsPerCore=\([0-9]*\).*/\1/p' <<<"$hw")
    mem=${NODE_MEM_MB:-$(($(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$hw") * 8 / 10))}
    printf 'NodeName=%s NodeAddr=127.0.0.1 CPUs=%s Boards=%s SocketsPerBoard=%s CoresPerSocket=%s ThreadsPerCore=%s RealMemory=%s' \
        "$NODE" "$cpus" "$boards" "$spb" "$cps" "$tpc" "$mem"
    ((FAKE_GPUS > 0)) && printf ' Gres=gpu:%s' "$FAKE_GPUS"
    printf ' State=UNKNOWN\n'
}

ensure_fake_gpus() { # prints the gres.conf File= value
    local i
    ((FAKE_GPUS > 0)) || return 0
    install -d -m 0755 "$CI_SLURM_DIR/dev"
    for ((i = 0; i < FAKE_GPUS; i++)); do
        [[ -c $CI_SLURM_DIR/dev/fakegpu$i ]] && continue
        rm -f "$CI_SLURM_DIR/dev/fakegpu$i"
        if ! mknod -m 666 "$CI_SLURM_DIR/dev/fakegpu$i" c 1 3 2>/dev/null; then
            # no CAP_MKNOD (unprivileged container): one GPU can point at /dev/null itself
            ((FAKE_GPUS == 1)) || die "mknod failed; only FAKE_GPUS=1 works without CAP_MKNOD"
            printf '/dev/null\n'
            return 0
        fi
    done
    if ((FAKE_GPUS == 1)); then printf '%s\n' "$CI_SLURM_DIR/dev/fakegpu0"
    else printf '%s\n' "$CI_SLURM_DIR/dev/fakegpu[0-$((FAKE_GPUS - 1))]"; fi
}

write_config() { # sets CONF_CHANGED / DBD_CONF_CHANGED
    local gpu_files first=1 p d acct_lines
    CONF_CHANGED=0 DBD_CONF_CHANGED=0
    gpu_files=$(ensure_fake_gpus)
    if [[ $WITH_SLURMDBD == 1 ]]; then
        acct_lines="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePass=$MUNGE_SOCKET
AccountingStorageEnforce=associations
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30"
    else
        acct_lines="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
    fi
    {
        cat <<EOF
# Written by ci/slurm.sh -- single-node CI cluster; edits are overwritten by 'up'.
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CryptoType=crypto/munge
SlurmUser=slurm
StateSaveLocation=$CI_SLURM_DIR/slurmctld
SlurmdSpoolDir=$CI_SLURM_DIR/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
EnforcePartLimits=ALL
DefMemPerCPU=$DEF_MEM_PER_CPU
MinJobAge=600
$acct_lines
EOF
        ((FAKE_GPUS > 0)) && echo "GresTypes=gpu"
        node_line
        for p in ${PARTITIONS//,/ }; do
            if ((first)); then d=YES; first=0; else d=NO; fi
            echo "PartitionName=$p Nodes=ALL Default=$d MaxTime=INFINITE State=UP"
        done
    } | write_if_changed "$SLURM_CONF_FILE" 0644 root:root && CONF_CHANGED=1
    {
        echo "# Written by ci/slurm.sh"
        ((FAKE_GPUS > 0)) && echo "NodeName=$NODE Name=gpu File=$gpu_files"
        true
    } | write_if_changed "$ETC/gres.conf" 0644 root:root && CONF_CHANGED=1
    if [[ $WITH_SLURMDBD == 1 ]]; then
        cat <<EOF | write_if_changed "$ETC/slurmdbd.conf" 0600 slurm:slurm && DBD_CONF_CHANGED=1
# Written by ci/slurm.sh
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=slurm
PidFile=$RUN/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
    fi
    # Client commands (sinfo, sbatch, sacct...) read /etc/slurm/slurm.conf unless SLURM_CONF is set.
    if [[ -L $SYS_CONF || ! -e $SYS_CONF ]]; then
        install -d -m 0755 /etc/slurm
        ln -sfn "$SLURM_CONF_FILE" "$SYS_CONF"
    else
        say "note: $SYS_CONF is a real file and left alone; run: eval \"\$($0 env)\""
    fi
    return 0
}

# ---------------------------------------------------------------- daemons
start_munge() {
    pid_of "$RUN/munged.pid" >/dev/null && return 0
    install -d -o munge -g munge -m 0755 "$MUNGE_DIR"
    if [[ ! -s $MUNGE_DIR/munge.key ]]; then
        if [[ -s /etc/munge/munge.key ]]; then cp /etc/munge/munge.key "$MUNGE_DIR/munge.key"
        else dd if=/dev/urandom of="$MUNGE_DIR/munge.key" bs=1024 count=1 status=none; fi
    fi
    chown munge:munge "$MUNGE_DIR/munge.key"
    chmod 0600 "$MUNGE_DIR/munge.key"
    rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
    # --force: tolerate the world-writable (sticky) /tmp above the state directory
    runuser -u munge -- munged --force --socket="$MUNGE_SOCKET" --key-file="$MUNGE_DIR/munge.key" \
        --pid-file="$MUNGE_DIR/munged.pid" --log-file="$LOG/munged.log" \
        --seed-file="$MUNGE_DIR/munged.seed" || die "munged did not start, see $LOG/munged.log"
    ln -sfn "$MUNGE_DIR/munged.pid" "$RUN/munged.pid"
    wait_for 10 munged pid_of "$MUNGE_DIR/munged.pid" || die "munged did not write its PID file"
    wait_for 10 "munge socket" bash -c "munge -n --socket='$MUNGE_SOCKET' | unmunge --socket='$MUNGE_SOCKET'" ||
        die "munge does not answer, see $LOG/munged.log"
}

# A throw-away CI database: small, and without fsync. MariaDB syncs its DDL log on every CREATE
# TABLE (~1000 fdatasync calls to initialise, ~4 s); eatmydata turns them into no-ops.
DB_FAST=(--innodb-buffer-pool-size=128M --innodb-log-file-size=16M --innodb-flush-log-at-trx-commit=0
    --innodb-doublewrite=0 --skip-name-resolve)
db_sql() { mariadb --no-defaults --socket="$DB_SOCKET" -uroot -e "$1"; }

start_mariadb() {
    if ! pid_of "$RUN/mariadbd.pid" >/dev/null; then
        # mariadb-server-core does not create the mysql user (mariadb-server would)
        id mysql >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin --user-group mysql
        install -d -o mysql -g mysql -m 0755 "$DB_DIR"
        if [[ ! -d $DB_DIR/data/mysql ]]; then
            say "initialising MariaDB in $DB_DIR/data"
            eatmydata mariadb-install-db --no-defaults --user=mysql --datadir="$DB_DIR/data" --skip-test-db \
                --auth-root-authentication-method=socket "${DB_FAST[@]}" >"$LOG/mariadb-install.log" 2>&1 ||
                die "mariadb-install-db failed, see $LOG/mariadb-install.log"
        fi
        rm -f "$DB_SOCKET"
        # mariadbd does not daemonise; run it in its own session, detached from our stdio.
        setsid eatmydata mariadbd --no-defaults --user=mysql --datadir="$DB_DIR/data" --socket="$DB_SOCKET" \
            --pid-file="$DB_DIR/mariadbd.pid" --port="$DB_PORT" --bind-address=127.0.0.1 \
            --log-error="$LOG/mariadb.log" --innodb-lock-wait-timeout=900 "${DB_FAST[@]}" \
            </dev/null >/dev/null 2>&1 &
        ln -sfn "$DB_DIR/mariadbd.pid" "$RUN/mariadbd.pid"   # before waiting: `down` must find it
        wait_for 30 mariadbd db_sql "SELECT 1" || die "MariaDB did not start, see $LOG/mariadb.log"
    fi
    db_sql "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
            GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" ||
        die "could not create the slurmdbd database user"
}

start_slurmdbd() {
    pid_of "$RUN/slurmdbd.pid" >/dev/null && return 0
    slurmdbd >>"$LOG/slurmdbd.out" 2>&1 || die "slurmdbd did not start, see $LOG/slurmdbd.log"
    # sacctmgr would refuse while slurm.conf says accounting_storage/none; the port is the signal
    wait_for 60 "slurmdbd (port 6819)" port_open 6819 || die "slurmdbd did not come up, see $LOG/slurmdbd.log"
}

setup_accounts() {
    local users=root u
    [[ -n ${SUDO_USER:-} && ${SUDO_USER} != root ]] && users="root,$SUDO_USER"
    if ! sacctmgr -n -P list cluster format=cluster 2>/dev/null | grep -qx "$CLUSTER"; then
        sacctmgr -i add cluster "$CLUSTER" >/dev/null || die "sacctmgr add cluster failed"
    fi
    if ! sacctmgr -n -P list account where name="$ACCOUNT" format=account 2>/dev/null | grep -qx "$ACCOUNT"; then
        sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" Description="CI account" Organization=ci >/dev/null ||
            die "sacctmgr add account $ACCOUNT failed"
    fi
    for u in ${users//,/ }; do
        if ! sacctmgr -n -P list assoc user="$u" account="$ACCOUNT" format=user 2>/dev/null | grep -qx "$u"; then
            sacctmgr -i add user "$u" account="$ACCOUNT" cluster="$CLUSTER" >/dev/null ||
                die "sacctmgr add user $u account=$ACCOUNT failed"
        fi
    done
}

no_active_jobs() { [[ -z $(squeue -h -t R,CG,CF,S -o %i 2>/dev/null) ]]; }

node_state() { sinfo -h -N -n "$NODE" -o %t 2>/dev/null | head -1; }

start_slurm() {
    if ! pid_of "$RUN/slurmctld.pid" >/dev/null; then
        slurmctld >>"$LOG/slurmctld.out" 2>&1 || die "slurmctld did not start, see $LOG/slurmctld.log"
    fi
    wait_for 30 slurmctld bash -c 'scontrol ping | grep -q UP' || die "slurmctld does not answer, see $LOG/slurmctld.log"
    if ! pid_of "$RUN/slurmd.pid" >/dev/null; then
        slurmd -N "$NODE" >>"$LOG/slurmd.out" 2>&1 || die "slurmd did not start, see $LOG/slurmd.log"
    fi
    local i st
    for ((i = 0; i < 150; i++)); do
        st=$(node_state)
        case $st in
            idle | mix | alloc) return 0 ;;
            drain* | drng | inval | down*)
                # a stale DRAIN/INVAL from an earlier configuration: clear it once the node registered
                scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true ;;
        esac
        sleep 0.2
    done
    sinfo -N -l >&2 || true
    die "node $NODE did not become idle (state '$st'), see $LOG/slurmd.log"
}

smoke_test() {
    local acct=() first=${PARTITIONS%%,*} out
    [[ $WITH_SLURMDBD == 1 ]] && acct=(-A "$ACCOUNT")
    out=$(timeout 60 srun --quiet "${acct[@]}" -p "$first" -N1 -n1 --mem=100 -t 1 hostname 2>"$LOG/smoke.err") ||
        die "smoke test 'srun hostname' failed: $out $(cat "$LOG/smoke.err")"
    if ((FAKE_GPUS > 0)); then
        local gpart=$first
        [[ ,$PARTITIONS, == *,gpu,* ]] && gpart=gpu
        out=$(timeout 60 srun --quiet "${acct[@]}" -p "$gpart" --gpus=1 --mem=100 -t 1 \
            printenv CUDA_VISIBLE_DEVICES 2>"$LOG/smoke.err") || die "GPU smoke test failed: $out $(cat "$LOG/smoke.err")"
        [[ $out == 0 ]] || die "GPU smoke test: CUDA_VISIBLE_DEVICES='$out', expected 0"
    fi
}

# ---------------------------------------------------------------- commands
cmd_up() {
    local t0=$SECONDS
    check_env
    install -d -m 0755 "$CI_SLURM_DIR" "$ETC" "$LOG" "$RUN"
    chmod 1777 "$LOG"   # slurm, munge and mysql each write their own log here
    ensure_packages
    NODE=$(hostname -s)
    install -d -o slurm -g slurm -m 0755 "$CI_SLURM_DIR/slurmctld"
    install -d -m 0755 "$CI_SLURM_DIR/slurmd"
    write_config
    if ((CONF_CHANGED)); then
        # a running cluster with an older configuration: restart slurmctld/slurmd
        stop_pidfiles slurmd="$RUN/slurmd.pid" slurmctld="$RUN/slurmctld.pid"
    fi
    start_munge
    if [[ $WITH_SLURMDBD == 1 ]]; then
        if ((DBD_CONF_CHANGED)); then stop_pidfiles slurmdbd="$RUN/slurmdbd.pid"; fi
        start_mariadb
        start_slurmdbd
        setup_accounts
    else
        stop_pidfiles slurmdbd="$RUN/slurmdbd.pid" mariadbd="$RUN/mariadbd.pid"
    fi
    start_slurm
    smoke_test
    say "up in $((SECONDS - t0)) s: cluster '$CLUSTER', node $NODE, partitions $PARTITIONS, fake GPUs $FAKE_GPUS," \
        "slurmdbd $([[ $WITH_SLURMDBD == 1 ]] && echo "on, account $ACCOUNT" || echo off); state in $CI_SLURM_DIR"
}

cmd_down() {
    if [[ $(id -u) -ne 0 ]]; then
        local f
        for f in "$RUN"/*.pid; do
            pid_of "$f" >/dev/null 2>&1 && unsupported "needs root to stop the daemons in $RUN"
        done
        say "down (nothing of ours is running)"
        return 0
    fi
    if pid_of "$RUN/slurmctld.pid" >/dev/null && command -v scancel >/dev/null; then
        # every job on this private cluster is ours; cancel them so no slurmstepd outlives slurmd
        scancel --quiet --user=root 2>/dev/null || true
        [[ -n ${SUDO_USER:-} ]] && { scancel --quiet --user="$SUDO_USER" 2>/dev/null || true; }
        wait_for 30 "jobs to end" no_active_jobs || true
    fi
    # in stages: slurmctld reports to slurmdbd and both need munge while shutting down
    stop_pidfiles slurmd="$RUN/slurmd.pid" slurmctld="$RUN/slurmctld.pid"
    stop_pidfiles slurmdbd="$RUN/slurmdbd.pid"
    stop_pidfiles mariadbd="$RUN/mariadbd.pid" munged="$RUN/munged.pid"
    if [[ -L $SYS_CONF && $(readlink "$SYS_CONF") == "$SLURM_CONF_FILE" ]]; then rm -f "$SYS_CONF"; fi
    say "down"
}

cmd_status() {
    local d f rc=0 pid
    for d in munged mariadbd slurmdbd slurmctld slurmd; do
        f=$RUN/$d.pid
        if pid=$(pid_of "$f"); then printf '%-10s running (pid %s)\n' "$d" "$pid"
        else printf '%-10s stopped\n' "$d"; fi
    done
    if command -v sinfo >/dev/null && [[ -f $SLURM_CONF_FILE ]] && timeout 10 sinfo 2>/dev/null; then :; else
        echo "sinfo: no answer"
        rc=1
    fi
    return $rc
}

case ${1:-} in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) printf 'export SLURM_CONF=%q\n' "$SLURM_CONF_FILE" ;;
    clean)
        cmd_down
        [[ $CI_SLURM_DIR == / || -z $CI_SLURM_DIR ]] && die "refusing to delete '$CI_SLURM_DIR'"
        rm -rf -- "$CI_SLURM_DIR"
        say "removed $CI_SLURM_DIR" ;;
    *)
        sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
        exit 2 ;;
esac
