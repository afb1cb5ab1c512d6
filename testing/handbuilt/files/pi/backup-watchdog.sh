#!/bin/bash
# Hourly on the Pi: alert from the Pi's own mail path when john-ai's
# heartbeat goes stale, and when the Pi's disk passes 95%.
HEARTBEAT=/mnt/backup/.heartbeat/john-ai-last-success
THRESHOLD_HOURS=30
age=$(( ( $(date +%s) - $(stat -c %Y "$HEARTBEAT") ) / 3600 ))
if [ "$age" -gt "$THRESHOLD_HOURS" ]; then
  printf 'Subject: [WATCHDOG] john-ai heartbeat STALE\n\nLast heartbeat: %sh ago\n' "$age" | msmtp {{.MailTo}}
fi
used=$(df --output=pcent /mnt/backup | tail -1 | tr -dc 0-9)
if [ "$used" -ge 95 ]; then
  printf 'Subject: [WATCHDOG] offsite-backup DISK SPACE WARNING\n\n%s%% full\n' "$used" | msmtp {{.MailTo}}
fi
