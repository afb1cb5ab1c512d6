package config

import (
	"strings"
	"testing"
)

// The fields borgkit adopt writes are checked like every other: against the
// host they sit on, the repo they describe and the grammar of the
// authorized_keys line, borg argv or file they reach. Each case edits the
// example config in one place.
func TestParseAdoptedFields(t *testing.T) {
	ex := string(Example())
	edit := func(old, new string) string {
		t.Helper()
		if !strings.Contains(ex, old) {
			t.Fatalf("the example has no %q", old)
		}
		return strings.Replace(ex, old, new, 1)
	}
	repo := func(field string) string {
		return edit("        encryption: repokey-blake2\n        timeout: 6h\n",
			"        encryption: repokey-blake2\n        timeout: 6h\n        "+field+"\n")
	}
	plainRepo := func(field string) string {
		return edit("        encryption: repokey-blake2\n        timeout: 6h\n",
			"        encryption: none\n        timeout: 6h\n        "+field+"\n")
	}
	mirrorRoot := func(root string) string {
		return edit("    # mirror_root: /mnt/backup/borgkit\n", "    mirror_root: '"+root+"'\n")
	}
	retire := func(f string) string {
		return edit("    scheduler: cron ", "    retire: ['"+f+"']\n    scheduler: cron ")
	}
	for _, tc := range []struct{ name, src, msg string }{
		{"mirror_root a shell splits", mirrorRoot("/mnt/backup/a b"), "read by a shell"},
		{"mirror_root with a quote", mirrorRoot(`/mnt/backup/a"b`), "read by a shell"},
		{"mirror_root off the disk", mirrorRoot("/srv/mirrors"), "is not on the backup disk"},
		{"mirror_root among the snapshots", mirrorRoot("/mnt/backup/borgkit-snapshots/x"), "where the host keeps its snapshots"},
		{"mirror_root on a server", edit("    scheduler: cron ", "    mirror_root: /mnt/backup\n    scheduler: cron "), "on an offsite host"},
		{"archive_prefix a glob", repo("archive_prefix: 'john-ai-*'"), "archive_prefix"},
		{"archive_prefix a placeholder", repo("archive_prefix: '{hostname}-'"), "archive_prefix"},
		{"passphrase_from of a plain repo", plainRepo("passphrase_from: /root/.borg_env"), "not encrypted"},
		{"key_export inside its repo", repo("key_export: /mnt/backup/john-ai/key.txt"), "inside the repo"},
		{"key_export of a plain repo", plainRepo("key_export: /root/borg-key.txt"), "it has no key"},
		{"retire borgkit's own", retire("/etc/borgkit/borgkit.yaml"), "borgkit's own"},
		{"retire a shared crontab", retire("/etc/crontab"), "holds more than the old setup"},
		{"retire a repo", retire("/mnt/backup/john-ai"), "inside) repo"},
		{"retire a share's mountpoint", retire("/mnt/nas"), "holds the mountpoint of share"},
		{"password_from without password_file", edit("    password_file: /etc/borgkit/smtp.pass", "    password_from: /etc/msmtprc"), "needs password_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("adopted.yaml", []byte(tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("want an error with %q, got %v", tc.msg, err)
			}
		})
	}
	// What adopt writes for the first seed's system is accepted.
	ok := edit("    # mirror_root: /mnt/backup/borgkit\n", "    mirror_root: /mnt/backup\n")
	ex = ok
	ok = repo("archive_prefix: john-ai-\n        passphrase_from: /root/.borg_env\n        key_export: /root/borg-key.txt")
	ex = ok
	ok = retire("/etc/cron.d/john-ai-backups")
	if _, err := Parse("adopted.yaml", []byte(ok)); err != nil {
		t.Fatal(err)
	}
}
