#!/bin/bash
# Nightly backup of john-ai: system, VMs, containers, containerd and Docker
# to the USB disk. Logs to /var/log/backup-nightly.log (cron redirects).
set -uo pipefail
source /usr/local/lib/backup-lib.sh

trap 'rc=$?; if [ $rc -ne 0 ]; then send_alert "TERMINATED ABNORMALLY" "exit code $rc"; fi' EXIT

# Pre-flight: verify backup disk is mounted
require_backup_mount

# Verify source partitions are actually mounted (not empty mountpoints)
# lab: /storage is a tmpfs at /srv
for src in /home /var /srv; do
  if ! mountpoint -q "$src"; then
    echo "FATAL: $src is not mounted — refusing to back up empty mountpoint"
    send_alert "NIGHTLY BACKUP ABORTED" "$src is not mounted"
    exit 1
  fi
done

# System backup (lab: /etc and /home stand for / /home /var)
REPO=/mnt/backup/john-ai
timeout "$BORG_TIMEOUT" borg create \
  --compression zstd \
  --exclude-caches \
  --exclude '/proc' \
  --exclude '/sys' \
  --exclude '/dev' \
  --exclude '/run' \
  --exclude '/tmp' \
  --exclude '/mnt' \
  --exclude '/media' \
  --exclude '/srv' \
  --exclude '/var/lib/machines' \
  --exclude '/var/log' \
  --stats \
  "$REPO::nightly-{now:%Y-%m-%dT%H:%M}" \
  /etc /home

# VM disk images
timeout "$BORG_TIMEOUT" borg create --compression zstd --stats \
  "/mnt/backup/john-ai-vms::nightly-{now:%Y-%m-%dT%H:%M}" /srv/libvirt/images

# systemd-nspawn containers
timeout "$BORG_TIMEOUT" borg create --compression zstd --stats \
  "/mnt/backup/john-ai-containers::nightly-{now:%Y-%m-%dT%H:%M}" /var/lib/machines

# containerd and Docker
timeout "$BORG_TIMEOUT" borg create --compression zstd --stats \
  "/mnt/backup/john-ai-containerd::nightly-{now:%Y-%m-%dT%H:%M}" /srv/containerd
timeout "$BORG_TIMEOUT" borg create --compression zstd --stats \
  "/mnt/backup/john-ai-docker::nightly-{now:%Y-%m-%dT%H:%M}" /srv/docker

# Retention + compact
for r in $REPOS; do
  borg prune "/mnt/backup/$r" \
    --keep-daily=3 \
    --keep-weekly=2 \
    --keep-monthly=6

  # Reclaim freed space (required since Borg 1.2)
  borg compact "/mnt/backup/$r"
done

# Disk space warning
used=$(df --output=pcent /mnt/backup | tail -1 | tr -dc 0-9)
if [ "$used" -ge 90 ]; then
  send_alert "DISK SPACE WARNING" "/mnt/backup is ${used}% full"
fi
