#!/bin/bash
# Saturdays 09:00: structural check of every repository.
source /usr/local/lib/backup-lib.sh
require_backup_mount
for r in $REPOS; do
  borg check --repository-only "/mnt/backup/$r" || send_alert "INTEGRITY CHECK FAILED" "$r"
done
