#!/bin/bash
# Every 6 hours: alert when the nightly backup or the offsite sync is older than 30 hours.
source /usr/local/lib/backup-lib.sh
THRESHOLD_HOURS=30
last=$(borg list --last 1 --format '{time}' /mnt/backup/john-ai)
age=$(( ( $(date +%s) - $(date -d "$last" +%s) ) / 3600 ))
if [ "$age" -gt "$THRESHOLD_HOURS" ]; then
  send_alert "STALENESS ALERT" "Nightly backup age: ${age}h (threshold: ${THRESHOLD_HOURS}h)"
fi
