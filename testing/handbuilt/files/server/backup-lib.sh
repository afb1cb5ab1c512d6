# /usr/local/lib/backup-lib.sh: shared by the backup scripts (sourced).
BACKUP_MOUNT=/mnt/backup
NAS_MOUNT=/mnt/nas
ALERT_EMAIL="{{.MailTo}}"
BORG_TIMEOUT=6h
REPOS="john-ai john-ai-vms john-ai-containers john-ai-containerd john-ai-docker"

send_alert() {
  subject="$1"
  body="$2"
  printf 'From: john-ai <%s>\nTo: %s\nSubject: [BACKUP] john-ai %s\n\n%s\n' \
    "$ALERT_EMAIL" "$ALERT_EMAIL" "$subject" "$body" | msmtp -t
}

require_backup_mount() {
  if ! mountpoint -q /mnt/backup; then
    echo "ERROR: /mnt/backup is not mounted!"
    send_alert "NIGHTLY BACKUP ABORTED" "/mnt/backup is not mounted"
    exit 1
  fi
}
