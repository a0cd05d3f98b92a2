#!/usr/bin/env bash
# Start a throwaway Slurm 22.05 cluster (Debian bookworm packages) on loopback:
#   slurmctld + N slurmd (one host, `slurmd -N gpuI`, one port each) advertising fake GPUs via GRES,
#   optional slurmdbd + MariaDB (so sacct works), optional slurmrestd (JSON REST, JWT auth).
# Idempotent: if the cluster in $SLURM_CI_DIR is healthy it only re-prints the env; otherwise it is
# (re)started from a clean state. Needs root (installs packages, runs daemons as root).
#   SLURM_CI_DIR         config, state, logs     (default /tmp/slurm-ci)
#   SLURM_CI_NODES       slurmd nodes gpu[1-N]    (default 4)
#   SLURM_CI_GPUS        GPUs per node            (default 8)
#   SLURM_CI_GPU_TYPE    GRES type                (default h100)  -> Gres=gpu:h100:8
#   SLURM_CI_CPUS        CPUs advertised per node (default 64; real cores don't matter)
#   SLURM_CI_ACCOUNTING  1 = MariaDB+slurmdbd, sacct works (default 1); 0 = no sacct (jobcomp file only)
#   SLURM_CI_REST        1 = slurmrestd on 127.0.0.1:$SLURM_CI_REST_PORT (default 1)
#   ports: SLURM_CI_CTLD_PORT 6817, SLURM_CI_DBD_PORT 6819, SLURM_CI_REST_PORT 6820,
#          SLURM_CI_DB_PORT 6821 (MariaDB), SLURM_CI_SLURMD_PORT 6830 (node i uses 6830+i-1)
# Writes $SLURM_CI_DIR/env.sh: SLURM_CONF, SLURM_CI_REST_URL, SLURM_CI_JWT (for X-SLURM-USER-TOKEN).
# Partitions: gpu (all nodes, default), debug (first min(2,N) nodes, MaxTime=60).
# ProctrackType=proctrack/pgid: a stop signal reaches the whole process group at once. With
# proctrack/linuxproc processes are signalled one at a time, and a job's background subshell
# could run its next command between its child's death and its own (backendtest Cancel saw it).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DIR=${SLURM_CI_DIR:-/tmp/slurm-ci}
NODES=${SLURM_CI_NODES:-4}
GPUS=${SLURM_CI_GPUS:-8}
GTYPE=${SLURM_CI_GPU_TYPE:-h100}
CPUS=${SLURM_CI_CPUS:-64}
ACCT=${SLURM_CI_ACCOUNTING:-1}
REST=${SLURM_CI_REST:-1}
CTLD_PORT=${SLURM_CI_CTLD_PORT:-6817}
DBD_PORT=${SLURM_CI_DBD_PORT:-6819}
REST_PORT=${SLURM_CI_REST_PORT:-6820}
DB_PORT=${SLURM_CI_DB_PORT:-6821}
SLURMD_PORT=${SLURM_CI_SLURMD_PORT:-6830}
CONF=$DIR/etc/slurm.conf
export SLURM_CONF=$CONF
log() { echo "[slurm-up] $*" >&2; }
alive() { # recorded PID exists and is not a zombie
  local p
  p=$(cat "$DIR/pids/$1.pid" 2>/dev/null) || return 1
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null && ! grep -q '^[^)]*) Z' "/proc/$p/stat" 2>/dev/null
}

# ---- already up? ---------------------------------------------------------------------------------
if [ -f "$DIR/env.sh" ] && alive slurmctld && scontrol ping 2>/dev/null | grep -q UP; then
  ok=1
  for i in $(seq 1 "$NODES"); do alive "slurmd-gpu$i" || ok=0; done
  [ "$ACCT" = 0 ] || { alive mariadb && alive slurmdbd; } || ok=0
  [ "$REST" = 0 ] || alive slurmrestd || ok=0
  if [ $ok = 1 ]; then cat "$DIR/env.sh"; exit 0; fi
fi
SLURM_CI_DIR=$DIR "$HERE/slurm-down.sh" >/dev/null 2>&1 || true

# ---- packages ------------------------------------------------------------------------------------
pkgs=()
command -v slurmctld >/dev/null || pkgs+=(slurmctld)
command -v slurmd >/dev/null || pkgs+=(slurmd)
command -v sbatch >/dev/null || pkgs+=(slurm-client)
dpkg -s slurm-wlm-jwt-plugin >/dev/null 2>&1 || pkgs+=(slurm-wlm-jwt-plugin)
[ "$REST" = 0 ] || command -v slurmrestd >/dev/null || pkgs+=(slurmrestd)
if [ "$ACCT" != 0 ]; then
  command -v slurmdbd >/dev/null || pkgs+=(slurmdbd)
  command -v mariadbd >/dev/null || pkgs+=(mariadb-server)
fi
if [ ${#pkgs[@]} -gt 0 ]; then
  log "apt-get install ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null; }
fi

t0=$(date +%s.%N)
rm -rf "$DIR"
mkdir -p "$DIR"/{etc,state,log,pids,run,dev}
for i in $(seq 1 "$NODES"); do mkdir -p "$DIR/spool/gpu$i"; done
start() { # name, args... : start in the foreground of its own session, record PID
  local n=$1; shift
  setsid "$@" >"$DIR/log/$n.out" 2>&1 </dev/null &
  echo $! >"$DIR/pids/$n.pid"
}
wait_for() { # what, timeout_s, command...
  local what=$1 t=$2; shift 2
  for _ in $(seq 1 $((t * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  log "timeout waiting for $what; see $DIR/log"; tail -n 20 "$DIR"/log/* >&2; exit 1
}

# ---- fake GPU device files (GRES gpu needs File=; char devices 1,3 = same as /dev/null) ----------
LAST=$((GPUS - 1))
for g in $(seq 0 $LAST); do mknod "$DIR/dev/nvidia$g" c 1 3 2>/dev/null || touch "$DIR/dev/nvidia$g"; done
head -c 32 /dev/urandom >"$DIR/etc/jwt_hs256.key"
chmod 600 "$DIR/etc/jwt_hs256.key"

HOST=$(hostname -s)
LASTPORT=$((SLURMD_PORT + NODES - 1))
PORTS=$SLURMD_PORT; [ "$NODES" -gt 1 ] && PORTS="[$SLURMD_PORT-$LASTPORT]"
DEBUGN=$((NODES < 2 ? NODES : 2))
{
  cat <<EOF
ClusterName=ci
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/none
CredType=cred/none
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$DIR/etc/jwt_hs256.key
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
MpiDefault=none
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
GresTypes=gpu
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,bf_continue,default_queue_depth=1000
JobRequeue=1
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
JobAcctGatherType=jobacct_gather/none
MinJobAge=3600
MaxJobCount=100000
InactiveLimit=0
KillWait=5
Waittime=0
EOF
  if [ "$ACCT" != 0 ]; then
    cat <<EOF
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
AccountingStorageTRES=gres/gpu,gres/gpu:$GTYPE
EOF
  else
    echo "AccountingStorageType=accounting_storage/none"
  fi
  cat <<EOF
NodeName=gpu[1-$NODES] NodeHostname=$HOST NodeAddr=127.0.0.1 Port=$PORTS CPUs=$CPUS RealMemory=512000 Gres=gpu:$GTYPE:$GPUS State=UNKNOWN
PartitionName=gpu Nodes=gpu[1-$NODES] Default=YES MaxTime=INFINITE State=UP
PartitionName=debug Nodes=gpu[1-$DEBUGN] MaxTime=60 State=UP
EOF
} >"$CONF"
G=$DIR/dev/nvidia0; [ "$LAST" -gt 0 ] && G="$DIR/dev/nvidia[0-$LAST]"
echo "NodeName=gpu[1-$NODES] Name=gpu Type=$GTYPE File=$G" >"$DIR/etc/gres.conf"

# ---- accounting: MariaDB + slurmdbd --------------------------------------------------------------
if [ "$ACCT" != 0 ]; then
  mkdir -p "$DIR/mysql"
  mariadb-install-db --no-defaults --datadir="$DIR/mysql" --user=root --auth-root-authentication-method=normal \
    --skip-test-db >"$DIR/log/mariadb-install.log" 2>&1
  start mariadb mariadbd --no-defaults --user=root --datadir="$DIR/mysql" --socket="$DIR/run/mysql.sock" \
    --port="$DB_PORT" --bind-address=127.0.0.1 --pid-file="$DIR/run/mysql.pid" --log-error="$DIR/log/mysql.log" \
    --skip-log-bin --innodb-buffer-pool-size=64M --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0
  wait_for mariadb 30 mariadb-admin --no-defaults -S "$DIR/run/mysql.sock" -uroot ping
  mariadb --no-defaults -S "$DIR/run/mysql.sock" -uroot -e "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
  cat >"$DIR/etc/slurmdbd.conf" <<EOF
AuthType=auth/none
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$DIR/etc/jwt_hs256.key
DbdHost=$HOST
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
PidFile=$DIR/run/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
EOF
  chmod 600 "$DIR/etc/slurmdbd.conf"
  start slurmdbd slurmdbd -D
  dbd_up() { grep -q "slurmdbd version .* started" "$DIR/log/slurmdbd.log"; }
  wait_for slurmdbd 60 dbd_up
fi

# ---- slurmctld + slurmd per node -----------------------------------------------------------------
start slurmctld slurmctld -D -f "$CONF"
ctld_up() { scontrol ping | grep -q UP; }
wait_for slurmctld 30 ctld_up
for i in $(seq 1 "$NODES"); do start "slurmd-gpu$i" slurmd -D -N "gpu$i" -f "$CONF"; done
all_idle() { [ "$(sinfo -h -N -o '%N %T' | sort -u | grep -c ' idle$')" -ge "$NODES" ]; }
wait_for "idle nodes" 60 all_idle
t_ready=$(date +%s.%N)

# ---- slurmrestd (JSON REST API, JWT over TCP) ----------------------------------------------------
TOKEN=$(scontrol token username=root lifespan=$((7 * 86400)) | sed -n 's/^SLURM_JWT=//p')
echo "$TOKEN" >"$DIR/jwt.token"
if [ "$REST" != 0 ]; then
  # root is refused unless disable_user_check; SLURM_JWT=daemon makes slurmrestd use the JWT it receives
  start slurmrestd env SLURM_JWT=daemon SLURMRESTD_SECURITY=disable_user_check \
    slurmrestd -f "$CONF" -s openapi/v0.0.38 -a rest_auth/jwt "127.0.0.1:$REST_PORT"
  rest_up() { curl -sf --max-time 2 -H "X-SLURM-USER-NAME: root" -H "X-SLURM-USER-TOKEN: $TOKEN" \
    "http://127.0.0.1:$REST_PORT/slurm/v0.0.38/ping" | grep -q '"UP"'; }
  wait_for slurmrestd 30 rest_up
fi

cat >"$DIR/env.sh" <<EOF
export SLURM_CONF=$CONF
export SLURM_CI_REST_URL=http://127.0.0.1:$REST_PORT SLURM_CI_REST_USER=root
export SLURM_CI_JWT=$TOKEN
EOF
log "slurm ready (ctld+${NODES} slurmd idle) after $(echo "$t_ready - $t0" | bc) s, all after $(echo "$(date +%s.%N) - $t0" | bc) s"
cat "$DIR/env.sh"
