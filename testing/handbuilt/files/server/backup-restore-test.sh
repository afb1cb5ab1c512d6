#!/bin/bash
# The 1st, 10:00: extract a known file from the latest system archive and compare it.
source /usr/local/lib/backup-lib.sh
require_backup_mount
latest=$(borg list --last 1 --short /mnt/backup/john-ai)
dir=$(mktemp -d)
cd "$dir" && borg extract "/mnt/backup/john-ai::$latest" etc/hostname
cmp "$dir/etc/hostname" /etc/hostname || send_alert "RESTORE TEST FAILED" "etc/hostname differs"
rm -rf "$dir"
