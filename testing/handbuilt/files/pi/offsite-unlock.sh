#!/bin/sh
# Fetch the LUKS key from john-ai over Tailscale and pipe it straight into
# cryptsetup: the key is never written to any filesystem on the Pi.
set -eu
DEVICE=/dev/disk/by-uuid/{{.LUKSUUID}}
MAPPER=offsite-backup
if [ ! -e "/dev/mapper/$MAPPER" ]; then
  ssh -i /root/.ssh/unlock_ed25519 -o BatchMode=yes root@{{.ServerAddr}} \
    | cryptsetup open --key-file=- "$DEVICE" "$MAPPER"
fi
mountpoint -q /mnt/backup || mount "/dev/mapper/$MAPPER" /mnt/backup
