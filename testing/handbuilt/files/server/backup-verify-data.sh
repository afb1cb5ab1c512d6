#!/bin/bash
# The 15th, 03:00: read and verify every data chunk of every repository.
source /usr/local/lib/backup-lib.sh
require_backup_mount
for r in $REPOS; do
  borg check --verify-data "/mnt/backup/$r" || send_alert "INTEGRITY CHECK FAILED" "$r (verify-data)"
done
