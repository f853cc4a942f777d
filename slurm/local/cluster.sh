#!/usr/bin/env bash
# A real, one-machine SLURM cluster for development and tests (Debian/Ubuntu, run as root).
#
#   cluster.sh up      install (apt) what is missing and start munge, MariaDB, slurmdbd,
#                      slurmctld and two slurmd (nodes n1, n2); a quick no-op when it is up
#   cluster.sh down    cancel all jobs, then stop the daemons this script started (by pid)
#   cluster.sh status  show what runs (exit 0 when everything is up, 3 otherwise)
#   cluster.sh purge   down, then delete the state dir (accounting DB, job state, logs)
#
# Configs are generated from the templates next to this script into /etc/slurm/ (where every
# Slurm client looks); state, pid files and logs live in $T2S_SLURM_STATE
# (default /var/lib/t2s-slurm). See README.md in this directory.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}

# ---- settings (environment overrides for unusual machines) ----------------------------------
STATE=${T2S_SLURM_STATE:-/var/lib/t2s-slurm}
CLUSTER=${T2S_SLURM_CLUSTER:-t2s}
NODE_CPUS=${T2S_SLURM_NODE_CPUS:-$(nproc)} # declared per node: the CPUs binding can use (slurm.conf.in)
NODE_MEM_MB=${T2S_SLURM_NODE_MEM_MB:-8000}
MYSQL_PORT=${T2S_SLURM_MYSQL_PORT:-3307}   # private MariaDB; 3307 avoids a system one on 3306
CTLD_PORT=6817
N1_PORT=6818
DBD_PORT=6819
N2_PORT=6820
WAIT_S=${T2S_SLURM_WAIT_S:-60}             # bound on every "wait until ready"

NODES=(n1 n2)
PACKAGES=(munge mariadb-server mariadb-client slurmctld slurmd slurm-client slurmdbd)
BINARIES=(munged munge unmunge mariadbd mariadb mariadb-install-db mariadb-admin
  slurmdbd slurmctld slurmd sinfo squeue scontrol scancel sacct sacctmgr srun sbatch)
MARKER=T2S-LOCAL-SLURM                     # first line of every file we generate
ETC=/etc/slurm
RUN=$STATE/run
LOG=$STATE/log
MUNGE_DIR=$STATE/munge                     # munged runs as user munge: its pid+log live here
DB_DIR=$STATE/mariadb/data
DB_RUN=$STATE/mariadb/run                  # socket + pid file, owned by mysql
DB_SOCK=$DB_RUN/mariadb.sock
DB_PASS_FILE=$STATE/db.pass
DAEMON_ENV=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/root)

CMD=${1:-}
CURRENT_LOG=""                              # the log to show if `up` fails now
STOPPED_PIDS=()

log() { printf '[cluster] %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# On a failed `up`, say where the logs are and show the end of the relevant one.
on_exit() {
  local rc=$?
  if ((rc != 0)) && [[ $CMD == up ]]; then
    log "cluster-up FAILED (exit $rc). Logs in $LOG/: $(ls "$LOG" 2>/dev/null | tr '\n' ' ')"
    if [[ -n $CURRENT_LOG && -f $CURRENT_LOG ]]; then
      log "---- last lines of $CURRENT_LOG ----"
      tail -n 30 "$CURRENT_LOG" >&2 || true
    fi
  fi
}
trap on_exit EXIT

# ---- small helpers ---------------------------------------------------------------------------

# wait_until SECONDS CMD...: poll CMD (quietly) every 0.5 s; fail after SECONDS.
wait_until() {
  local end=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < end)) || return 1
    sleep 0.5
  done
}

# pid_of PIDFILE COMM: print the pid if that process runs and is named COMM (guards against a
# stale pid file whose pid was reused after a reboot).
pid_of() {
  local pid
  [[ -r $1 ]] || return 1
  pid=$(tr -dc '0-9' <"$1")
  [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]] && running "$pid" || return 1
  echo "$pid"
}
alive() { pid_of "$@" >/dev/null; }

# running PID: the process exists and is not a zombie (an exited daemon stays a zombie until
# init reaps it).
running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  [[ ${stat##*) } != Z* ]]
}

# start_daemon NAME CMD...: run a self-daemonizing command with a clean environment, from /,
# detached from our stdin/stdout/stderr (so CI log pipes see EOF), bounded in time.
start_daemon() {
  local name=$1
  shift
  (cd / && exec timeout "$WAIT_S" "${DAEMON_ENV[@]}" "$@" </dev/null >>"$LOG/$name.out" 2>&1 9>&-)
}

# stop PIDFILE COMM: SIGTERM the process, wait up to 30 s, then SIGKILL.
stop() {
  local pid
  pid=$(pid_of "$1" "$2") || return 0
  log "stopping $2 (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  local end=$((SECONDS + 30))
  while running "$pid" && ((SECONDS < end)); do sleep 0.2; done
  if running "$pid"; then
    log "$2 (pid $pid) ignored SIGTERM for 30 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$1"
  STOPPED_PIDS+=("$pid")
}

# After `stop`s: wait (up to 10 s) until init has reaped them, so that no zombie shows up in ps.
wait_reaped() {
  local end=$((SECONDS + 10)) pid
  for pid in "${STOPPED_PIDS[@]}"; do
    while [[ -e /proc/$pid ]] && ((SECONDS < end)); do sleep 0.1; done
  done
}

require_root() { [[ $(id -u) == 0 ]] || die "run as root (it installs packages and starts daemons)"; }

# ---- installation ----------------------------------------------------------------------------

missing_binaries() {
  local b
  for b in "${BINARIES[@]}"; do command -v "$b" >/dev/null || echo "$b"; done
}

missing_packages() {
  local p
  for p in "${PACKAGES[@]}"; do
    [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == "install ok installed" ]] || echo "$p"
  done
}

install_packages() {
  local missing
  missing=$(missing_binaries; missing_packages)
  [[ -z $missing ]] && return 0
  command -v apt-get >/dev/null || die "missing ${missing//$'\n'/ } and no apt-get: install ${PACKAGES[*]} yourself"
  log "installing ${PACKAGES[*]} (missing: ${missing//$'\n'/ })"
  CURRENT_LOG=$LOG/apt.log
  # Keep package scripts from starting the daemons themselves: we start them below.
  local own_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  local rc=0
  {
    DEBIAN_FRONTEND=noninteractive apt-get update -q &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${PACKAGES[@]}"
  } </dev/null >"$LOG/apt.log" 2>&1 || rc=$?
  ((own_policy)) && rm -f /usr/sbin/policy-rc.d
  ((rc == 0)) || die "apt-get failed (exit $rc), see $LOG/apt.log"
  missing=$(missing_binaries)
  [[ -z $missing ]] || die "still missing after install: ${missing//$'\n'/ }"
}

# ---- host setup and configuration ------------------------------------------------------------

hosts_has() { awk -v n="$1" '{sub(/#.*/, "")} {for (i = 2; i <= NF; i++) if ($i == n) f = 1} END {exit !f}' /etc/hosts; }
hosts_ok() { hosts_has n1 && hosts_has n2 && getent hosts "$(hostname -s)" >/dev/null; }

# n1/n2 (and this machine's name, if it does not resolve) -> 127.0.0.1. Appends only: /etc/hosts
# is often a bind mount that cannot be replaced.
ensure_hosts() {
  local names=() h
  h=$(hostname -s)
  hosts_has n1 || names+=(n1)
  hosts_has n2 || names+=(n2)
  getent hosts "$h" >/dev/null || names+=("$h")
  if ((${#names[@]})); then
    log "adding to /etc/hosts: 127.0.0.1 ${names[*]}"
    printf '127.0.0.1 %s  # %s\n' "${names[*]}" "$MARKER" >>/etc/hosts
  fi
}

db_pass() {
  if [[ ! -s $DB_PASS_FILE ]]; then
    (umask 077 && od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$DB_PASS_FILE")
  fi
  cat "$DB_PASS_FILE"
}

render() {
  sed -e "s|@CLUSTER@|$CLUSTER|g" -e "s|@HOSTNAME@|$(hostname -s)|g" -e "s|@STATE@|$STATE|g" \
    -e "s|@CTLD_PORT@|$CTLD_PORT|g" -e "s|@DBD_PORT@|$DBD_PORT|g" -e "s|@N1_PORT@|$N1_PORT|g" \
    -e "s|@N2_PORT@|$N2_PORT|g" -e "s|@NODE_CPUS@|$NODE_CPUS|g" -e "s|@NODE_MEM_MB@|$NODE_MEM_MB|g" \
    -e "s|@MYSQL_PORT@|$MYSQL_PORT|g" -e "s|@DB_PASS@|$(db_pass)|g" "$1"
}

# configs_current: exit 0 if /etc/slurm holds exactly what the templates render to now.
configs_current() {
  cmp -s <(render "$HERE/slurm.conf.in") "$ETC/slurm.conf" &&
    cmp -s <(render "$HERE/slurmdbd.conf.in") "$ETC/slurmdbd.conf"
}

# write_config TEMPLATE DEST MODE: refuse to overwrite a config that we did not generate.
write_config() {
  local tmp
  if [[ -e $2 ]] && ! head -n 1 "$2" | grep -q "$MARKER"; then
    die "$2 exists and was not generated by $0; move it away to use the local cluster"
  fi
  tmp=$(mktemp "$2.XXXXXX")
  render "$1" >"$tmp"
  chmod "$3" "$tmp"
  mv -f "$tmp" "$2"
}

write_configs() {
  mkdir -p "$ETC"
  if configs_current; then return 0; fi
  # A changed config (e.g. another hostname) needs the Slurm daemons restarted.
  stop_slurm_daemons
  log "writing $ETC/slurm.conf and $ETC/slurmdbd.conf"
  write_config "$HERE/slurm.conf.in" "$ETC/slurm.conf" 0644
  write_config "$HERE/slurmdbd.conf.in" "$ETC/slurmdbd.conf" 0600
}

make_dirs() {
  install -d -m 0755 "$STATE" "$RUN" "$LOG" "$STATE/spool" "$STATE/spool/slurmctld"
  local n
  for n in "${NODES[@]}"; do install -d -m 0755 "$STATE/spool/slurmd-$n"; done
}

# ---- munge -----------------------------------------------------------------------------------

munge_works() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
  CURRENT_LOG=$MUNGE_DIR/munged.log
  if munge_works; then
    alive "$MUNGE_DIR/munged.pid" munged || log "using the munged that already runs (not ours)"
    return 0
  fi
  if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating /etc/munge/munge.key"
    install -d -o munge -g munge -m 0700 /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  install -d -o munge -g munge -m 0755 /run/munge # /run is a tmpfs: gone after a reboot
  install -d -o munge -g munge -m 0700 "$MUNGE_DIR"
  log "starting munged"
  start_daemon munged runuser -u munge -- /usr/sbin/munged \
    --pid-file="$MUNGE_DIR/munged.pid" --log-file="$MUNGE_DIR/munged.log" ||
    die "munged did not start, see $MUNGE_DIR/munged.log and $LOG/munged.out"
  wait_until "$WAIT_S" munge_works || die "munge does not work after ${WAIT_S}s, see $MUNGE_DIR/munged.log"
}

# ---- MariaDB (a private instance: own datadir, socket and port) -------------------------------

db_ping() { mariadb-admin --no-defaults --socket="$DB_SOCK" -uroot ping; }

start_mariadb() {
  CURRENT_LOG=$LOG/mariadb.log
  if alive "$DB_RUN/mariadb.pid" mariadbd; then return 0; fi
  install -d -m 0755 "$STATE/mariadb"
  install -d -o mysql -g mysql -m 0750 "$DB_RUN"
  if [[ ! -d $DB_DIR/mysql ]]; then
    log "initialising the MariaDB datadir $DB_DIR"
    rm -rf "$DB_DIR"
    install -d -o mysql -g mysql -m 0750 "$DB_DIR"
    CURRENT_LOG=$LOG/mariadb-install.log
    (cd / && mariadb-install-db --no-defaults --user=mysql --datadir="$DB_DIR" \
      --auth-root-authentication-method=socket --skip-test-db) </dev/null >"$CURRENT_LOG" 2>&1 ||
      die "mariadb-install-db failed, see $CURRENT_LOG"
    CURRENT_LOG=$LOG/mariadb.log
  fi
  touch "$LOG/mariadb.log"
  chown mysql:mysql "$LOG/mariadb.log"
  log "starting mariadbd (127.0.0.1:$MYSQL_PORT)"
  # mariadbd stays in the foreground: detach it ourselves.
  (cd / && exec setsid "${DAEMON_ENV[@]}" /usr/sbin/mariadbd --no-defaults --user=mysql \
    --datadir="$DB_DIR" --socket="$DB_SOCK" --pid-file="$DB_RUN/mariadb.pid" \
    --bind-address=127.0.0.1 --port="$MYSQL_PORT" --skip-name-resolve \
    --log-error="$LOG/mariadb.log" --innodb-buffer-pool-size=512M \
    --innodb-lock-wait-timeout=900 --max-connections=100 \
    </dev/null >>"$LOG/mariadb.out" 2>&1 9>&-) &
  local pid=$! end=$((SECONDS + WAIT_S))
  until db_ping >/dev/null 2>&1; do
    running "$pid" || die "mariadbd exited while starting (port $MYSQL_PORT taken?), see $LOG/mariadb.log"
    ((SECONDS < end)) || die "MariaDB not answering after ${WAIT_S}s, see $LOG/mariadb.log"
    sleep 0.5
  done
}

# The accounting database and its user (idempotent; also re-syncs the password).
setup_db() {
  local p
  p=$(db_pass)
  mariadb --no-defaults --socket="$DB_SOCK" -uroot <<SQL || die "creating the accounting database failed"
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$p';
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$p';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$p';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$p';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost', 'slurm'@'127.0.0.1';
SQL
}

# ---- Slurm -----------------------------------------------------------------------------------

dbd_clusters() { timeout 15 sacctmgr -n -P show cluster format=cluster </dev/null; }
cluster_registered() { dbd_clusters | grep -qx "$CLUSTER"; }
ctld_up() { timeout 15 scontrol ping </dev/null | grep -q 'is UP'; }

# Start a controller daemon (slurmdbd, slurmctld) unless it runs, then wait for its probe.
start_and_wait() {
  local name=$1 probe=$2
  CURRENT_LOG=$LOG/$name.log
  if ! alive "$RUN/$name.pid" "$name"; then
    log "starting $name"
    start_daemon "$name" "/usr/sbin/$name" || die "$name did not start, see $LOG/$name.log"
  fi
  wait_until "$WAIT_S" "$probe" || die "$name not answering after ${WAIT_S}s, see $LOG/$name.log"
}

start_slurmdbd() { start_and_wait slurmdbd dbd_clusters; }

# Register the cluster in the accounting DB before slurmctld starts (a running slurmctld
# would need a restart to pick it up).
ensure_cluster() {
  if cluster_registered; then return 0; fi
  log "registering cluster '$CLUSTER' in slurmdbd"
  timeout 30 sacctmgr -i add cluster "$CLUSTER" </dev/null >>"$LOG/sacctmgr.out" 2>&1 ||
    die "sacctmgr add cluster failed, see $LOG/sacctmgr.out"
  if alive "$RUN/slurmctld.pid" slurmctld; then
    stop "$RUN/slurmctld.pid" slurmctld
  fi
}

start_slurmctld() { start_and_wait slurmctld ctld_up; }

start_slurmds() {
  local n
  for n in "${NODES[@]}"; do
    CURRENT_LOG=$LOG/slurmd-$n.log
    alive "$RUN/slurmd-$n.pid" slurmd && continue
    log "starting slurmd -N $n"
    start_daemon "slurmd-$n" /usr/sbin/slurmd -N "$n" || die "slurmd -N $n did not start, see $CURRENT_LOG"
  done
}

node_state() { sinfo -h -N -n "$1" -o '%t' </dev/null 2>/dev/null | head -n 1; }
nodes_ready() {
  local n
  for n in "${NODES[@]}"; do
    case $(node_state "$n") in idle | mix | alloc | comp) ;; *) return 1 ;; esac
  done
}

# Wait until n1 and n2 are usable. A node that is DOWN/DRAINED although its slurmd answers
# (e.g. left over from a crash or a previous session) is resumed once: this is a dev cluster.
wait_nodes() {
  CURRENT_LOG=$LOG/slurmctld.log
  local end=$((SECONDS + WAIT_S)) n s resumed=" "
  until nodes_ready; do
    for n in "${NODES[@]}"; do
      s=$(node_state "$n")
      if [[ $s =~ ^(down|drain|drng|fail)$ && $resumed != *" $n "* ]]; then
        log "node $n is $s ($(sinfo -h -N -n "$n" -o '%E' </dev/null)): resuming it"
        scontrol update NodeName="$n" State=RESUME </dev/null || true
        resumed+="$n "
      fi
    done
    if ((SECONDS >= end)); then
      sinfo -N -l </dev/null >&2 || true
      die "nodes not idle after ${WAIT_S}s, see $LOG/slurmctld.log and $LOG/slurmd-n{1,2}.log"
    fi
    sleep 0.5
  done
}

all_daemons_alive() {
  alive "$DB_RUN/mariadb.pid" mariadbd && alive "$RUN/slurmdbd.pid" slurmdbd &&
    alive "$RUN/slurmctld.pid" slurmctld && alive "$RUN/slurmd-n1.pid" slurmd &&
    alive "$RUN/slurmd-n2.pid" slurmd
}

# Everything installed, configured, running and answering? (the fast path of `up`)
cluster_healthy() {
  [[ -z $(missing_binaries) ]] && [[ -z $(missing_packages) ]] && hosts_ok && configs_current && all_daemons_alive &&
    munge_works && ctld_up && nodes_ready && cluster_registered
}

stop_slurm_daemons() {
  local n
  for n in "${NODES[@]}"; do stop "$RUN/slurmd-$n.pid" slurmd; done
  stop "$RUN/slurmctld.pid" slurmctld
  stop "$RUN/slurmdbd.pid" slurmdbd
}

# Cancel every job (so that no slurmstepd outlives its slurmd) and wait until they are gone.
cancel_all_jobs() {
  alive "$RUN/slurmctld.pid" slurmctld && ctld_up || return 0
  local users u
  users=$(squeue -h -o '%u' </dev/null 2>/dev/null | sort -u)
  [[ -z $users ]] && return 0
  log "cancelling all jobs (of: ${users//$'\n'/ })"
  for u in $users; do scancel -u "$u" </dev/null || true; done
  wait_until 60 bash -c '[[ -z $(squeue -h -t RUNNING,COMPLETING,SUSPENDED -o %i) ]]' ||
    log "WARNING: some jobs are still running/completing after 60 s"
}

# ---- subcommands -----------------------------------------------------------------------------

cmd_up() {
  require_root
  local t0=$SECONDS
  make_dirs
  exec 9>"$STATE/lock"
  flock -w 600 9 || die "another cluster.sh holds $STATE/lock"
  if cluster_healthy; then
    log "already up: nodes $(sinfo -h -N -o '%N=%t' </dev/null | tr '\n' ' ')"
    return 0
  fi
  install_packages
  ensure_hosts
  write_configs
  start_munge
  start_mariadb
  setup_db
  start_slurmdbd
  ensure_cluster
  start_slurmctld
  start_slurmds
  wait_nodes
  log "up in $((SECONDS - t0)) s: cluster '$CLUSTER', nodes $(sinfo -h -N -o '%N=%t' </dev/null | tr '\n' ' ')"
  log "logs: $LOG/   state: $STATE/   config: $ETC/slurm.conf"
}

cmd_down() {
  require_root
  [[ -d $STATE ]] || {
    log "nothing to stop ($STATE does not exist)"
    return 0
  }
  exec 9>"$STATE/lock"
  flock -w 600 9 || die "another cluster.sh holds $STATE/lock"
  cancel_all_jobs
  stop_slurm_daemons
  stop "$DB_RUN/mariadb.pid" mariadbd
  stop "$MUNGE_DIR/munged.pid" munged
  wait_reaped
  log "down"
}

cmd_status() {
  local ok=0 name pidfile comm pid
  while read -r name pidfile comm; do
    if pid=$(pid_of "$pidfile" "$comm"); then
      printf '  %-10s running (pid %s)\n' "$name" "$pid"
    else
      printf '  %-10s stopped\n' "$name"
      ok=3
    fi
  done <<EOF
munged $MUNGE_DIR/munged.pid munged
mariadb $DB_RUN/mariadb.pid mariadbd
slurmdbd $RUN/slurmdbd.pid slurmdbd
slurmctld $RUN/slurmctld.pid slurmctld
slurmd-n1 $RUN/slurmd-n1.pid slurmd
slurmd-n2 $RUN/slurmd-n2.pid slurmd
EOF
  if ((ok == 0)); then
    sinfo -N -l </dev/null || ok=3
    squeue </dev/null || ok=3
    timeout 15 sacctmgr -n show cluster format=cluster,controlhost,controlport </dev/null || ok=3
  fi
  echo "state: $STATE   logs: $LOG   config: $ETC/slurm.conf"
  return "$ok"
}

cmd_purge() {
  cmd_down
  log "deleting $STATE and the generated configs"
  rm -rf "$STATE"
  local f
  for f in "$ETC/slurm.conf" "$ETC/slurmdbd.conf"; do
    if [[ -e $f ]] && head -n 1 "$f" | grep -q "$MARKER"; then rm -f "$f"; fi
  done
}

case $CMD in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  purge) cmd_purge ;;
  *)
    echo "usage: $0 up|down|status|purge" >&2
    exit 2
    ;;
esac
