#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for testing the sbatch scripts in
# slurm/ for real (needs root and Debian's slurm-wlm and munge packages).
#
#   scripts/slurm_local.sh start   write /etc/slurm/slurm.conf, start munged,
#                                  slurmctld (forgetting earlier jobs) and slurmd;
#                                  wait until the node is idle
#   scripts/slurm_local.sh stop    stop the daemons
#
# proctrack/linuxproc and task/none need no cgroups, so this works in containers.
set -euo pipefail

case "${1:-}" in
  start)
    if [[ $(id -u) -ne 0 ]]; then echo "slurm_local: needs root" >&2; exit 1; fi
    host=$(hostname -s)
    cpus=$(nproc)
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
    mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
    cat >/etc/slurm/slurm.conf <<CONF
ClusterName=local
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
JobRequeue=1
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE OverSubscribe=FORCE State=UP
CONF
    if [[ ! -s /etc/munge/munge.key ]]; then
      mkdir -p /etc/munge
      dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
      chmod 400 /etc/munge/munge.key
    fi
    chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
    pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
    # -c: a cold start, without the jobs of an earlier run (a job that was running when the
    # daemons were stopped comes back as RUNNING with no process, and holds the node).
    pgrep -x slurmctld >/dev/null || slurmctld -c
    pgrep -x slurmd >/dev/null || slurmd
    for _ in $(seq 60); do
      if sinfo -h -o %T 2>/dev/null | grep -qE '^idle'; then
        sinfo
        exit 0
      fi
      sleep 1
    done
    echo "slurm_local: the node did not become idle; see /var/log/slurm/" >&2
    sinfo >&2 || true
    exit 1
    ;;
  stop)
    pkill -x slurmd || true
    pkill -x slurmctld || true
    pkill -x munged || true
    ;;
  *)
    echo "usage: scripts/slurm_local.sh start|stop" >&2
    exit 2
    ;;
esac
