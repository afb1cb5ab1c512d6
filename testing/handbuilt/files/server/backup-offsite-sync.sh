#!/bin/bash
# Offsite + NAS sync: mirror the USB repos to the Pi and to the NAS.
set -uo pipefail
source /usr/local/lib/backup-lib.sh
require_backup_mount

# Wait for the nightly backup to finish.
while pgrep -f backup-nightly.sh >/dev/null; do sleep 60; done

failed=0
# Sync to offsite Pi via Tailscale. The Pi's SSH key is rrsync-restricted to
# /mnt/backup, so the remote paths are relative to that root.
for REPO in john-ai john-ai-vms john-ai-containers john-ai-containerd john-ai-docker; do
  rsync -av --delete --hard-links --numeric-ids \
    /mnt/backup/$REPO/ offsite-backup:$REPO/ || { failed=1; send_alert "OFFSITE SYNC FAILED" "$REPO to offsite-backup"; }
done

# Heartbeat for the Pi's dead-man's switch, only after every repo arrived.
if [ "$failed" -eq 0 ]; then
  date -u +%Y-%m-%dT%H:%M:%SZ > /var/tmp/john-ai-last-success
  rsync -a --mkpath /var/tmp/john-ai-last-success offsite-backup:.heartbeat/john-ai-last-success
fi

# Mirror to NAS (CIFS) — size-only because CIFS can't preserve mtimes
rsync -av --delete --size-only \
  /mnt/backup/ /mnt/nas/backups/ || send_alert "OFFSITE SYNC FAILED" "NAS mirror"
