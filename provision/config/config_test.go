package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
)

// lines joins YAML lines, so a test's line numbers can be read off its
// source: the first string is line 1.
func lines(ls ...string) string { return strings.Join(ls, "\n") + "\n" }

// problemFor finds the problem of kind sentinel in err, whether Parse
// returned one *Problem or Problems.
func problemFor(t *testing.T, err error, sentinel error) *Problem {
	t.Helper()
	var ps Problems
	if errors.As(err, &ps) {
		for _, p := range ps {
			if errors.Is(p, sentinel) {
				return p
			}
		}
		t.Fatalf("no %v among problems:\n%v", sentinel, err)
	}
	var p *Problem
	if !errors.As(err, &p) {
		t.Fatalf("error is neither *Problem nor Problems: %T %v", err, err)
	}
	if !errors.Is(p, sentinel) {
		t.Fatalf("problem is not %v:\n%v", sentinel, err)
	}
	return p
}

// header is the valid top of most test files: lines 1-6.
var header = []string{
	"version: 1",             // 1
	"alerts:",                // 2
	"  to: me@example.com",   // 3
	"  from: me@example.com", // 4
	"retention: {daily: 3, weekly: 2, monthly: 6}", // 5
	"hosts:", // 6
}

func withHeader(ls ...string) string { return lines(append(slices.Clone(header), ls...)...) }

// server is a valid server host: lines 7-14 after header.
var server = []string{
	"  - name: srv",               // 7
	"    role: server",            // 8
	"    address: 100.64.0.1",     // 9
	"    repos:",                  // 10
	"      - name: sys",           // 11
	"        path: /srv/borg/sys", // 12
	"        sources: [/home]",    // 13
}

func TestParseValidMinimal(t *testing.T) {
	c, err := Parse("ok.yaml", []byte(withHeader(server...)))
	if err != nil {
		t.Fatal(err)
	}
	if c.File != "ok.yaml" || len(c.Hosts) != 1 || c.Hosts[0].Repos[0].Sources[0] != "/home" {
		t.Fatalf("decoded wrongly: %+v", c)
	}
}

func TestParseProblems(t *testing.T) {
	srv := func(extra ...string) string {
		return withHeader(append(slices.Clone(server), extra...)...)
	}
	tests := []struct {
		name      string
		src       string
		sentinel  error
		line, col int
		msg       string
	}{
		{
			name:     "unknown field",
			src:      srv("    ssh:", "      prt: 22"),
			sentinel: ErrUnknownField, line: 15, col: 7,
			msg: `unknown field "prt", did you mean "port"?`,
		},
		{
			name:     "unknown top-level field",
			src:      lines("version: 1", "hostz: []"),
			sentinel: ErrUnknownField, line: 2, col: 1,
			msg: `did you mean "hosts"?`,
		},
		{
			name:     "first of two unknown fields, in file order",
			src:      lines("version: 1", "zz: 1", "hosts: []", "aa: 2"),
			sentinel: ErrUnknownField, line: 2, col: 1,
			msg: `unknown field "zz" (valid here: alerts, compaction, hosts, retention, site, version)`,
		},
		{
			name:     "wrong type",
			src:      srv("    ssh:", "      port: abc"),
			sentinel: ErrType, line: 15, col: 13,
			msg: `expected an integer, got "abc"`,
		},
		{
			name:     "list where a string belongs",
			src:      srv("    scheduler: [cron]"),
			sentinel: ErrType, line: 14, col: 16,
			msg: "expected a string, got a list",
		},
		{
			name:     "fraction for an integer",
			src:      withHeader(server[:7]...) + lines("    ssh: {port: 22.5}"),
			sentinel: ErrType, line: 14, col: 17,
			msg: "expected an integer",
		},
		{
			name:     "YAML tag",
			src:      srv("    scheduler: !!str cron"),
			sentinel: ErrType, line: 14, col: 16,
			msg: `YAML tags such as "!!str" are not supported`,
		},
		{
			name:     "duplicate key",
			src:      srv("    role: offsite"),
			sentinel: ErrDuplicateKey, line: 14, col: 5,
			msg: `duplicate key "role" (first set on line 8)`,
		},
		{
			name:     "syntax error",
			src:      lines("version: 1", "hosts: [", ""),
			sentinel: ErrSyntax, line: 2, col: 8,
			msg: "",
		},
		{
			name:     "bad uuid",
			src:      srv("    disks:", "      - name: usb", "        uuid: not-a-uuid", "        mountpoint: /srv/borg"),
			sentinel: ErrBadUUID, line: 16, col: 15,
			msg: `uuid "not-a-uuid"`,
		},
		{
			name:     "uppercase uuid",
			src:      srv("    disks:", "      - name: usb", "        uuid: 3F9C2D4E-8B1A-4C6F-9E2D-7A5B1C3D9E0F", "        mountpoint: /srv/borg"),
			sentinel: ErrBadUUID, line: 16, col: 15,
			msg: "lowercase",
		},
		{
			name: "dotdot in a path",
			src: withHeader(server[0], server[1], server[2], server[3], server[4],
				"        path: /srv/../etc/borg", server[6]),
			sentinel: ErrBadPath, line: 12, col: 15,
			msg: `path "/srv/../etc/borg" must not contain ".."`,
		},
		{
			name: "relative path",
			src: withHeader(server[0], server[1], server[2], server[3], server[4], server[5],
				"        sources: [/home, var/lib]"),
			sentinel: ErrBadPath, line: 13, col: 26,
			msg: `source "var/lib" must be an absolute path`,
		},
		{
			name:     "unclean path",
			src:      withHeader(server[0], server[1], server[2], server[3], server[4], "        path: /srv//borg/", server[6]),
			sentinel: ErrBadPath, line: 12, col: 15,
			msg: `write "/srv/borg"`,
		},
		{
			name:     "name with a newline",
			src:      withHeader(`  - name: "a\nb"`, server[1], server[2]),
			sentinel: ErrBadName, line: 7, col: 11,
			msg: `host name "a\nb"`,
		},
		{
			name:     "name with a semicolon",
			src:      withHeader(server[0], server[1], server[2], server[3], "      - name: sys;reboot", server[5], server[6]),
			sentinel: ErrBadName, line: 11, col: 15,
			msg: `repo name "sys;reboot"`,
		},
		{
			name:     "duplicate repo name",
			src:      srv("      - name: sys", "        path: /srv/borg/other", "        sources: [/var]"),
			sentinel: ErrDuplicateName, line: 14, col: 15,
			msg: `repo name "sys" is already used at hosts[0].repos[0].name`,
		},
		{
			name:     "unknown host reference",
			src:      srv("    mirrors:", "      - name: off", "        host: nope", "        path: /mnt/backup"),
			sentinel: ErrUnknownHost, line: 16, col: 15,
			msg: `mirror host "nope" is not one of the hosts ("srv")`,
		},
		{
			name:     "bad schedule",
			src:      srv("    schedules:", `      nightly: "0 24 * * *"`),
			sentinel: ErrBadSchedule, line: 15, col: 16,
			msg: "hour: 24 is out of range 0-23",
		},
		{
			name:     "schedule of another role",
			src:      srv("    schedules:", `      watchdog: "@hourly"`),
			sentinel: ErrRoleMismatch, line: 15, col: 17,
			msg: "a server host does not run watchdog",
		},
		{
			name:     "systemd cannot express day OR weekday",
			src:      srv("    scheduler: systemd", "    schedules:", `      check: "0 9 1 * 6"`),
			sentinel: ErrBadSchedule, line: 16, col: 14,
			msg: "OnCalendar= cannot express",
		},
		{
			name:     "version 2",
			src:      lines("version: 2", "hosts: []"),
			sentinel: ErrVersion, line: 1, col: 10,
			msg: "unsupported version 2: this borgkit reads version 1",
		},
		{
			name:     "version as a string",
			src:      lines(`version: "1"`),
			sentinel: ErrVersion, line: 1, col: 10,
			msg: "unsupported version 1",
		},
		{
			name:     "missing version",
			src:      lines("# a comment", "hosts: []"),
			sentinel: ErrVersion, line: 2, col: 1,
			msg: `missing "version: 1"`,
		},
		{
			name:     "empty file",
			src:      lines("# nothing but a comment"),
			sentinel: ErrEmpty, line: 1, col: 1,
			msg: "config is empty",
		},
		{
			name:     "two documents",
			src:      lines("version: 1", "---", "version: 1"),
			sentinel: ErrSyntax, line: 3, col: 1,
			msg: "more than one YAML document",
		},
		{
			name:     "top level is a list",
			src:      lines("- version: 1"),
			sentinel: ErrType, line: 1, col: 1,
			msg: "top level must be a mapping",
		},
		{
			name: "retention all zero",
			src: lines(header[0], header[1], header[2], header[3],
				"retention: {daily: 0, weekly: 0, monthly: 0}", header[5]) + lines(server...),
			sentinel: ErrBadValue, line: 5, col: 1,
			msg: "retention keeps nothing",
		},
		{
			name: "no retention anywhere",
			src: lines(header[0], header[1], header[2], header[3], header[5]) +
				lines(server...),
			sentinel: ErrBadValue, line: 10, col: 9,
			msg: "retention keeps nothing",
		},
		{
			name:     "negative retention",
			src:      srv("    retention: {daily: -1, weekly: 2, monthly: 6}"),
			sentinel: ErrBadValue, line: 14, col: 24,
			msg: "daily -1 must be 0 or more",
		},
		{
			name:     "compaction weekday misspelt",
			src:      srv("    compaction:", "      weekdays: [sun, sunday]"),
			sentinel: ErrBadValue, line: 15, col: 23,
			msg: `weekday "sunday": use mon, tue, wed, thu, fri, sat or sun`,
		},
		{
			name:     "compaction weekday twice",
			src:      srv("    compaction: {weekdays: [sat, sat]}"),
			sentinel: ErrDuplicateName, line: 14, col: 34,
			msg: `weekday "sat" is already used`,
		},
		{
			name:     "compaction on no day",
			src:      srv("    compaction:", "      weekdays: []"),
			sentinel: ErrBadValue, line: 15, col: 7,
			msg: "weekdays is empty",
		},
		{
			name:     "compaction threshold zero",
			src:      withHeader(server...) + lines("compaction: {threshold: 0}"),
			sentinel: ErrBadValue, line: 14, col: 25,
			msg: "threshold 0 is out of range 1..99",
		},
		{
			name:     "compaction threshold 100",
			src:      srv("    compaction: {threshold: 100}"),
			sentinel: ErrBadValue, line: 14, col: 29,
			msg: "threshold 100 is out of range 1..99",
		},
		{
			name: "compaction on an offsite host",
			src: withHeader("  - name: pi", "    role: offsite", "    address: 100.64.0.2",
				"    compaction: {threshold: 30}"),
			sentinel: ErrRoleMismatch, line: 10, col: 5,
			msg: "compaction belongs on a server or archive host",
		},
		{
			name:     "snapshots on a server",
			src:      srv("    snapshots: {daily: 7, weekly: 4}"),
			sentinel: ErrRoleMismatch, line: 14, col: 5,
			msg: "snapshots are kept by an offsite host of its mirror",
		},
		{
			name: "no daily snapshot",
			src: withHeader("  - name: pi", "    role: offsite", "    address: 100.64.0.2",
				"    snapshots: {daily: 0, weekly: 4}"),
			sentinel: ErrBadValue, line: 10, col: 24,
			msg: "daily 0 is out of range 1..1000",
		},
		{
			name: "weekly snapshots beyond bound",
			src: withHeader("  - name: pi", "    role: offsite", "    address: 100.64.0.2",
				"    snapshots: {daily: 7, weekly: 5200}"),
			sentinel: ErrBadValue, line: 10, col: 35,
			msg: "weekly 5200 is out of range 0..1000",
		},
		{
			name: "snapshot lag not a duration",
			src: withHeader("  - name: pi", "    role: offsite", "    address: 100.64.0.2",
				"    thresholds: {snapshot_max_lag: soon}"),
			sentinel: ErrBadDuration, line: 10, col: 36,
			msg: "snapshot_max_lag",
		},
		{
			name: "watchdog age on an offsite host",
			src: withHeader("  - name: pi", "    role: offsite", "    address: 100.64.0.2",
				"    thresholds: {watchdog_max_age: 3h}"),
			sentinel: ErrRoleMismatch, line: 10, col: 36,
			msg: "watchdog_max_age is watched by the server's stale check",
		},
		{
			name:     "snapshot lag on a server",
			src:      srv("    thresholds: {snapshot_max_lag: 3h}"),
			sentinel: ErrRoleMismatch, line: 14, col: 36,
			msg: "snapshot_max_lag is watched by an offsite host's watchdog",
		},
		{
			name:     "proxmox with the stale check off",
			src:      srv("    schedules: {stale: \"off\"}", "    proxmox:", "      dump_dir: /mnt/nas/dump"),
			sentinel: ErrBadValue, line: 15, col: 5,
			msg: "whose schedule is off",
		},
		{
			name: "proxmox on an offsite host",
			src: withHeader("  - name: pi", "    role: offsite", "    address: 100.64.0.2",
				"    proxmox: {dump_dir: /mnt/nas/dump}"),
			sentinel: ErrRoleMismatch, line: 10, col: 5,
			msg: "proxmox is for a host that runs the stale check",
		},
		{
			name:     "port out of range",
			src:      srv("    ssh: {port: 70000}"),
			sentinel: ErrBadValue, line: 14, col: 17,
			msg: "port 70000 is out of range",
		},
		{
			name:     "explicit zero percent",
			src:      srv("    thresholds:", "      disk_warn_percent: 0"),
			sentinel: ErrBadValue, line: 15, col: 26,
			msg: "disk_warn_percent 0 is out of range 1..100",
		},
		{
			name:     "bad duration",
			src:      srv("    thresholds:", "      nightly_max_age: 30 hours"),
			sentinel: ErrBadDuration, line: 15, col: 24,
			msg: `nightly_max_age "30 hours" is not a duration`,
		},
		{
			name:     "zero duration",
			src:      srv("    thresholds:", "      sync_max_age: 0s"),
			sentinel: ErrBadDuration, line: 15, col: 21,
			msg: "must be positive",
		},
		{
			name:     "bad role",
			src:      withHeader(server[0], "    role: primary", server[2]),
			sentinel: ErrBadValue, line: 8, col: 11,
			msg: `role "primary": must be server, offsite, archive or borg-server`,
		},
		{
			name:     "unlock on a server",
			src:      srv("    unlock: {server: srv}"),
			sentinel: ErrRoleMismatch, line: 14, col: 5,
			msg: "unlock is only for an offsite host",
		},
		{
			name: "repos on an offsite host",
			src: withHeader(server[0], "    role: offsite", server[2], server[3], server[4],
				"        path: /mnt/backup/sys", server[6]),
			sentinel: ErrRoleMismatch, line: 10, col: 5,
			msg: "an offsite host keeps mirrors, not borg repos",
		},
		{
			name: "mirror to a non-offsite host",
			src: srv("    mirrors:", "      - name: self", "        host: arc", "        path: /x",
				"  - name: arc", "    role: archive", "    address: 100.64.0.3"),
			sentinel: ErrRoleMismatch, line: 16, col: 15,
			msg: `mirror host "arc" has role "archive"`,
		},
		{
			name: "offsite LUKS disk without unlock",
			src: srv("  - name: pi", "    role: offsite", "    address: 100.64.0.2",
				"    disks:",
				"      - name: backup",
				"        device: /dev/disk/by-id/usb-WD",
				"        mountpoint: /mnt/backup",
				"        luks: {key_host: srv}"),
			sentinel: ErrRequired, line: 14, col: 5,
			msg: `offsite host "pi" has a LUKS disk but no unlock`,
		},
		{
			name: "unlock retry too often",
			src: srv("  - name: pi", "    role: offsite", "    address: 100.64.0.2",
				"    disks:",
				"      - name: backup",
				"        device: /dev/disk/by-id/usb-WD",
				"        mountpoint: /mnt/backup",
				"        luks: {key_host: srv}",
				"    unlock: {server: srv, retry: 2s}"),
			sentinel: ErrBadDuration, line: 22, col: 34,
			msg: `retry "2s" must be whole seconds, at least 10s`,
		},
		{
			name: "LUKS disk without device",
			src: srv("    disks:", "      - name: usb", "        mountpoint: /srv/borg",
				"        luks: {key_host: srv}"),
			sentinel: ErrRequired, line: 15, col: 9,
			msg: "device is required for a LUKS disk",
		},
		{
			name:     "device outside /dev",
			src:      srv("    disks:", "      - name: usb", "        uuid: 3f9c2d4e-8b1a-4c6f-9e2d-7a5b1c3d9e0f", "        device: /srv/disk", "        mountpoint: /srv/borg"),
			sentinel: ErrBadPath, line: 17, col: 17,
			msg: "must be under /dev/",
		},
		{
			name:     "repo not on the host's disk",
			src:      srv("    disks:", "      - name: usb", "        uuid: 3f9c2d4e-8b1a-4c6f-9e2d-7a5b1c3d9e0f", "        mountpoint: /mnt/backup"),
			sentinel: ErrBadPath, line: 12, col: 15,
			msg: `repo path "/srv/borg/sys" is on none of this host's disks (/mnt/backup)`,
		},
		{
			name: "repo inside its own source",
			src: withHeader(server[0], server[1], server[2], server[3], server[4], server[5],
				"        sources: [/srv]"),
			sentinel: ErrBadPath, line: 13, col: 19,
			msg: "borg would back the repository up into itself",
		},
		{
			name:     "bad compression",
			src:      srv("        compression: zstd,23"),
			sentinel: ErrBadValue, line: 14, col: 22,
			msg: `compression "zstd,23"`,
		},
		{
			name:     "bad encryption",
			src:      srv("        encryption: repokey"),
			sentinel: ErrBadValue, line: 14, col: 21,
			msg: `encryption "repokey"`,
		},
		{
			name:     "bad host key",
			src:      srv("    ssh: {host_key: 'SHA256:abc'}"),
			sentinel: ErrBadValue, line: 14, col: 21,
			msg: "43 base64 characters",
		},
		{
			name:     "header injection in to",
			src:      lines(header[0], header[1], `  to: "me@example.com\r\nBcc: spy@example.com"`, header[3], header[4], header[5]) + lines(server...),
			sentinel: ErrBadValue, line: 3, col: 7,
			msg: "would inject mail headers",
		},
		{
			name:     "relative sendmail",
			src:      lines(header[0], header[1], header[2], header[3], "  sendmail: [msmtp, -t]", header[4], header[5]) + lines(server...),
			sentinel: ErrBadPath, line: 5, col: 14,
			msg: `sendmail command "msmtp" must be an absolute path`,
		},
		{
			name:     "proxmox dump_dir relative",
			src:      srv("    proxmox:", "      dump_dir: dumps"),
			sentinel: ErrBadPath, line: 15, col: 17,
			msg: `dump_dir "dumps" must be an absolute path`,
		},
		{
			name:     "proxmox guest that is no VMID",
			src:      srv("    proxmox:", "      dump_dir: /mnt/nas/dump", "      guests: [100, 42]"),
			sentinel: ErrBadValue, line: 16, col: 21,
			msg: "guest 42 is not a Proxmox VMID",
		},
		{
			name:     "proxmox max_age",
			src:      srv("    proxmox:", "      dump_dir: /mnt/nas/dump", "      max_age: weekly"),
			sentinel: ErrBadDuration, line: 16, col: 16,
			msg: `max_age "weekly" is not a duration`,
		},
		{
			name:     "ping_url with an unknown placeholder",
			src:      lines(header[0], header[1], header[2], header[3], "  ping_url: https://hc-ping.com/k/{hostname}-{job}", header[4], header[5]) + lines(server...),
			sentinel: ErrBadValue, line: 5, col: 13,
			msg: "unknown placeholder {hostname}",
		},
		{
			name:     "ping_url not http",
			src:      lines(header[0], header[1], header[2], header[3], "  ping_url: ftp://hc-ping.com/k", header[4], header[5]) + lines(server...),
			sentinel: ErrBadValue, line: 5, col: 13,
			msg: "must start with https://",
		},
		{
			name:     "relative textfile_dir",
			src:      lines(header[0], header[1], header[2], header[3], "  textfile_dir: node-exporter", header[4], header[5]) + lines(server...),
			sentinel: ErrBadPath, line: 5, col: 17,
			msg: `textfile_dir "node-exporter" must be an absolute path`,
		},
		{
			name:     "no alert address",
			src:      lines(header[0], header[4], header[5]) + lines(server...),
			sentinel: ErrRequired, line: 1, col: 1,
			msg: `alerts to is required (host "srv"`,
		},
		{
			name:     "address starting with a dash",
			src:      withHeader(server[0], server[1], "    address: -oProxyCommand=x"),
			sentinel: ErrBadValue, line: 9, col: 14,
			msg: "not a host name or IP address",
		},
		{
			name:     "required name missing",
			src:      withHeader("  - role: server", server[2]),
			sentinel: ErrRequired, line: 7, col: 5,
			msg: "host name is required",
		},
		{
			name:     "audit cover period of zero days",
			src:      srv("    audit:", "      cover_days: 0"),
			sentinel: ErrBadValue, line: 15, col: 19,
			msg: "cover_days 0 is out of range 1..366",
		},
		{
			name:     "a borg timeout that is no duration",
			src:      srv("    timeouts:", "      prune: soon"),
			sentinel: ErrBadDuration, line: 15, col: 14,
			msg: `prune "soon" is not a duration`,
		},
		{
			name:     "nightly parallel of zero",
			src:      srv("    nightly:", "      parallel: 0"),
			sentinel: ErrBadValue, line: 15, col: 17,
			msg: "parallel 0 is out of range 1..32",
		},
		{
			name:     "nightly per_disk beyond parallel",
			src:      srv("    nightly: {parallel: 2, per_disk: 3}"),
			sentinel: ErrBadValue, line: 14, col: 38,
			msg: "per_disk 3 is more than parallel 2",
		},
		{
			name:     "suspicious drop of all",
			src:      srv("    thresholds:", "      suspicious: {drop_percent: 100}"),
			sentinel: ErrBadValue, line: 15, col: 34,
			msg: "drop_percent 100 is out of range 1..99",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("bad.yaml", []byte(tt.src))
			if err == nil {
				t.Fatalf("parsed without error: %+v", c)
			}
			if c != nil {
				t.Errorf("Parse returned a config along with an error")
			}
			p := problemFor(t, err, tt.sentinel)
			if p.Line != tt.line || p.Col != tt.col {
				t.Errorf("at %d:%d, want %d:%d\n%v", p.Line, p.Col, tt.line, tt.col, p)
			}
			if !strings.Contains(p.Msg, tt.msg) {
				t.Errorf("message %q does not contain %q", p.Msg, tt.msg)
			}
			// The rendered error names file, line and column, and shows the
			// source line (when there is one) with a caret under the column.
			text := err.Error()
			pos := fmt.Sprintf("bad.yaml:%d:%d: ", tt.line, tt.col)
			if !strings.Contains(text, pos) {
				t.Errorf("error does not contain %q:\n%s", pos, text)
			}
			srcLine := strings.Split(tt.src, "\n")[tt.line-1]
			if strings.TrimSpace(srcLine) != "" {
				if p.Source != strings.TrimRight(srcLine, "\r") {
					t.Errorf("Source = %q, want %q", p.Source, srcLine)
				}
				want := "    " + srcLine + "\n    " + strings.Repeat(" ", tt.col-1) + "^"
				if !strings.Contains(p.Error(), want) {
					t.Errorf("rendered problem lacks source and caret:\n%s\nwant:\n%s", p.Error(), want)
				}
			}
		})
	}
}

func TestProblemRendering(t *testing.T) {
	src := withHeader(append(slices.Clone(server), "    ssh:", "      port: abc")...)
	_, err := Parse("site.yaml", []byte(src))
	want := "site.yaml:15:13: hosts[0].ssh.port: expected an integer, got \"abc\"\n" +
		"          port: abc\n" +
		"                ^"
	if err == nil || err.Error() != want {
		t.Fatalf("got:\n%v\nwant:\n%s", err, want)
	}
	var p *Problem
	if !errors.As(err, &p) || p.Path != "$.hosts[0].ssh.port" {
		t.Fatalf("path = %q", p.Path)
	}
}

func TestProblemsAllReportedAndSorted(t *testing.T) {
	src := lines(
		"version: 1",                        // 1
		"alerts: {to: a@b.c, from: a@b.c}",  // 2
		"retention: {daily: 1}",             // 3
		"hosts:",                            // 4
		"  - name: Srv",                     // 5
		"    role: server",                  // 6
		"    address: 100.64.0.1",           // 7
		"    repos:",                        // 8
		"      - name: sys",                 // 9
		"        path: relative",            // 10
		"        sources: [/home]",          // 11
		"    mirrors:",                      // 12
		"      - name: off",                 // 13
		"        host: nope",                // 14
		"        path: /x",                  // 15
		"    schedules: {nightly: 'daily'}", // 16
	)
	_, err := Parse("multi.yaml", []byte(src))
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("want Problems, got %T: %v", err, err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, fmt.Sprintf("%d:%d", p.Line, p.Col))
	}
	want := []string{"5:11", "10:15", "14:15", "16:26"}
	if !slices.Equal(got, want) {
		t.Fatalf("problems at %v, want %v:\n%v", got, want, err)
	}
	for _, s := range []error{ErrBadName, ErrBadPath, ErrUnknownHost, ErrBadSchedule} {
		if !errors.Is(err, s) {
			t.Errorf("errors.Is(err, %v) = false", s)
		}
	}
	if errors.Is(err, ErrBadUUID) {
		t.Error("errors.Is matched a sentinel that is not there")
	}
	if !strings.HasPrefix(err.Error(), "4 problems:\nmulti.yaml:5:11: ") {
		t.Errorf("rendering: %s", err)
	}
}

func TestParseDecoderErrorKeepsCause(t *testing.T) {
	_, err := Parse("x.yaml", []byte(withHeader(append(slices.Clone(server), "    ssh: {port: abc}")...)))
	var p *Problem
	if !errors.As(err, &p) || p.cause == nil {
		t.Fatalf("want the YAML library's error kept as cause: %v", err)
	}
}

func TestExample(t *testing.T) {
	c, err := Parse("", Example())
	if err != nil {
		t.Fatalf("the embedded example must parse cleanly:\n%v", err)
	}
	if len(c.Hosts) != 3 {
		t.Fatalf("%d hosts, want 3", len(c.Hosts))
	}
	srv, ok := c.Host("john-ai")
	if !ok || srv.Role != RoleServer {
		t.Fatal("no server john-ai")
	}
	var repos []string
	for _, r := range srv.Repos {
		repos = append(repos, r.Name)
	}
	if want := []string{"john-ai", "john-ai-vms", "john-ai-containers", "john-ai-containerd", "john-ai-docker"}; !slices.Equal(repos, want) {
		t.Fatalf("john-ai repos %v, want %v", repos, want)
	}
	sys := &srv.Repos[0]
	if !slices.Equal(sys.Sources, []string{"/", "/home", "/var"}) || len(sys.Excludes) != 10 ||
		!slices.Equal(sys.MustBeMountpoints, []string{"/home", "/var", "/storage"}) {
		t.Errorf("system repo differs from the seed: %+v", sys)
	}
	if vms := srv.Repos[1].VMs; !slices.Equal(vms, []string{"homeassistant", "claudecode", "openclaw"}) {
		t.Errorf("vms = %v", vms)
	}
	if got := c.RepoRetention(srv, sys); got != (Retention{Daily: 3, Weekly: 2, Monthly: 6}) {
		t.Errorf("retention %+v", got)
	}
	if got := sys.PassphrasePath(); got != "/etc/borgkit/keys/john-ai.pass" {
		t.Errorf("passphrase file %q", got)
	}
	if d := srv.BackupDisk(); d == nil || d.Mountpoint != "/mnt/backup" || d.FSTypeOrDefault() != "ext4" {
		t.Errorf("backup disk %+v", d)
	}
	if got := srv.Jobs(); !slices.Equal(got, []string{"nightly", "sync", "stale", "check", "verify", "audit", "restore_test", "summary"}) {
		t.Errorf("server jobs %v", got)
	}
	if a := c.HostAlerts(srv); a.SubjectPrefix != "[BACKUP]" || a.To != "me@example.com" ||
		!slices.Equal(a.Sendmail, DefaultSendmail()) || a.SMTP == nil || a.SMTP.PortOrDefault() != 587 || !a.SMTP.TLSOrDefault() {
		t.Errorf("server alerts %+v", a)
	}

	pi, _ := c.Host("pi")
	if a := c.HostAlerts(pi); a.SubjectPrefix != "[WATCHDOG]" || a.To != "me@example.com" || a.From != "offsite-backup <me@example.com>" {
		t.Errorf("pi alerts %+v", a)
	}
	d := pi.BackupDisk()
	if d == nil || d.LUKS == nil || d.LUKS.MapperName(d) != "backup" || c.LUKSKeyfile(pi, d) != "/etc/borgkit/keys/pi-backup.key" {
		t.Errorf("pi disk %+v", d)
	}
	if pi.DiskWarnPercent() != 95 || pi.Thresholds.HeartbeatMaxAgeOrDefault() != 30*time.Hour {
		t.Errorf("pi thresholds %+v", pi.Thresholds)
	}
	if got := pi.Jobs(); !slices.Equal(got, []string{"watchdog", "snapshot"}) {
		t.Errorf("pi jobs %v", got)
	}
	if r := pi.SnapshotRetention(); r != (Snapshots{Daily: 7, Weekly: 4}) || pi.Thresholds.SnapshotMaxLagOrDefault() != 3*time.Hour {
		t.Errorf("pi snapshots %+v, lag %s", r, pi.Thresholds.SnapshotMaxLagOrDefault())
	}
	if s := c.OffsiteServer(pi); s == nil || s.Name != "john-ai" {
		t.Errorf("pi belongs to %v", s)
	}
	if got := c.OffsiteHosts(srv); len(got) != 1 || got[0].Name != "pi" || srv.Thresholds.WatchdogMaxAgeOrDefault() != 3*time.Hour {
		t.Errorf("john-ai watches %v", got)
	}
	if pi.SSH.UserOrDefault() != "root" || pi.SSH.PortOrDefault() != 22 {
		t.Errorf("pi ssh %+v", pi.SSH)
	}

	arc, _ := c.Host("archive")
	if arc.SchedulerKind() != SchedulerSystemd || len(arc.Datasets) != 3 || arc.Pull == nil {
		t.Fatalf("archive %+v", arc)
	}
	if a := c.HostAlerts(arc); a.To != "alerts@example.com" || a.From != "me@example.com" {
		t.Errorf("archive alerts %+v", a)
	}
	if got := arc.Jobs(); len(got) != 9 {
		t.Errorf("archive jobs %v", got)
	}
}

// Every role default must parse, and an archive's (systemd) must convert.
func TestRoleDefaultSchedules(t *testing.T) {
	for role, jobs := range roleJobs {
		for _, j := range jobs {
			s, err := ParseSchedule(j.spec)
			if err != nil {
				t.Errorf("%s %s: %v", role, j.job, err)
				continue
			}
			if s.CronSpec() != j.spec {
				t.Errorf("%s %s: CronSpec %q, want %q", role, j.job, s.CronSpec(), j.spec)
			}
			if _, err := s.OnCalendar(); err != nil {
				t.Errorf("%s %s: %v", role, j.job, err)
			}
		}
	}
}

func TestHostSchedule(t *testing.T) {
	h := &Host{Role: RoleServer, Schedules: Schedules{Check: "off", Verify: "0 4 15 * *"}}
	cases := []struct {
		job, spec string
		ok        bool
	}{
		{"nightly", "0 0 * * *", true},
		{"check", "", false},
		{"verify", "0 4 15 * *", true},
		{"restore-test", "0 10 1 * *", true},
		{"sync", "", false},  // no mirrors
		{"audit", "", false}, // no copies to audit
		{"watchdog", "", false},
		{"bogus", "", false},
	}
	for _, c := range cases {
		spec, ok := h.Schedule(c.job)
		if spec != c.spec || ok != c.ok {
			t.Errorf("Schedule(%q) = %q, %v; want %q, %v", c.job, spec, ok, c.spec, c.ok)
		}
	}
	if got := h.Jobs(); !slices.Equal(got, []string{"nightly", "stale", "verify", "restore_test", "summary"}) {
		t.Errorf("Jobs() = %v", got)
	}
}

func TestDefaults(t *testing.T) {
	r := &Repo{Name: "r"}
	if r.EncryptionMode() != "none" || r.CompressionSpec() != "zstd" || r.PassphrasePath() != "" {
		t.Errorf("repo defaults: %q %q %q", r.EncryptionMode(), r.CompressionSpec(), r.PassphrasePath())
	}
	r.Encryption = EncKeyfileBlake2
	if r.PassphrasePath() != "/etc/borgkit/keys/r.pass" {
		t.Errorf("passphrase default %q", r.PassphrasePath())
	}
	var th Thresholds
	if th.NightlyMaxAgeOrDefault() != 30*time.Hour || th.SyncMaxAgeOrDefault() != 30*time.Hour ||
		th.DiskWarnPercentOrDefault(RoleServer) != 90 || th.DiskWarnPercentOrDefault(RoleOffsite) != 95 {
		t.Error("threshold defaults")
	}
	th.SyncMaxAge = "2h"
	if th.SyncMaxAgeOrDefault() != 2*time.Hour {
		t.Error("sync max age not read")
	}
	c := &Config{Alerts: Alerts{Sendmail: []string{"/usr/sbin/sendmail", "-t"}}}
	a := c.HostAlerts(&Host{})
	a.Sendmail[0] = "/changed"
	if c.Alerts.Sendmail[0] != "/usr/sbin/sendmail" {
		t.Error("HostAlerts shares its Sendmail slice with the config")
	}
	var l *LUKS
	if l.MapperName(&Disk{Name: "d"}) != "" {
		t.Error("nil LUKS has a mapper name")
	}
	if (&Host{Disks: []Disk{{Name: "a"}, {Name: "b"}}}).BackupDisk() != nil {
		t.Error("BackupDisk guessed between two disks")
	}
}

// A Config built in code validates too, without positions.
func TestValidateWithoutSource(t *testing.T) {
	c := &Config{Version: 1, File: "built", Hosts: []Host{{Name: "x y", Role: RoleServer, Address: "h"}}}
	err := c.Validate()
	p := problemFor(t, err, ErrBadName)
	if p.Line != 0 || p.Path != "$.hosts[0].name" || !strings.HasPrefix(p.Error(), "built: hosts[0].name: ") {
		t.Errorf("problem %+v: %v", p, p)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "borgkit.yaml")
	if err := os.WriteFile(path, Example(), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil || c.File != path {
		t.Fatalf("Load: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestParseOddInputs(t *testing.T) {
	for name, src := range map[string]string{
		"bom":          "\ufeff" + withHeader(server...),
		"crlf":         strings.ReplaceAll(withHeader(server...), "\n", "\r\n"),
		"anchor+merge": withHeader(server...) + lines("    ssh: &s {user: root}", "  - name: pi", "    role: offsite", "    address: 100.64.0.2", "    ssh: {<<: *s, port: 2222}"),
	} {
		if _, err := Parse(name, []byte(src)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	_, err := Parse("bin", []byte("version: 1\nsite: \xff\n"))
	if p := problemFor(t, err, ErrSyntax); p.Line != 2 || p.Col != 7 {
		t.Errorf("invalid UTF-8 at %d:%d", p.Line, p.Col)
	}
	// The merged value is placed at its anchor: the only place it is written.
	src := withHeader(server...) + lines("    ssh: &s {port: 0}", "  - name: pi", "    role: offsite", "    address: 100.64.0.2", "    ssh: {<<: *s, user: root}")
	_, err = Parse("merge", []byte(src))
	if p := problemFor(t, err, ErrBadValue); p.Line != 14 || p.Col != 20 {
		t.Errorf("merged port at %d:%d: %v", p.Line, p.Col, err)
	}
}

// The decoder has panicked on odd input (see testdata/fuzz); Parse must
// turn any such panic into a problem.
func TestParseRecoversPanic(t *testing.T) {
	defer func(orig func(ast.Node, any, ...yaml.DecodeOption) error) { nodeToValue = orig }(nodeToValue)
	nodeToValue = func(ast.Node, any, ...yaml.DecodeOption) error { panic("boom") }
	c, err := Parse("p.yaml", []byte(withHeader(server...)))
	var p *Problem
	if c != nil || !errors.As(err, &p) || !errors.Is(err, ErrSyntax) || !strings.Contains(p.Msg, "boom") {
		t.Fatalf("got %v, %v", c, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(Example())
	f.Add([]byte(withHeader(server...)))
	f.Add([]byte("version: 1\nhosts: [\n"))
	f.Add([]byte("version: 2\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("version: 1\nhosts:\n  - name: \"a\\nb\"\n    role: server\n    ssh: {port: abc}\n"))
	f.Add([]byte("version: 1\nretention: {daily: 0}\nhosts:\n  - {name: x, role: offsite, address: y, unlock: {server: z}}\n"))
	f.Add([]byte("version: 1\nhosts:\n  - name: s\n    role: server\n    address: a\n    schedules: {nightly: '*/0 * * * *'}\n"))
	// Hostile shapes the limits refuse: nesting, aliases, long keys.
	f.Add([]byte("version: 1\nsite: " + strings.Repeat("[", 70) + strings.Repeat("]", 70) + "\n"))
	f.Add([]byte("version: 1\nsite:\n  " + strings.Repeat("- ", 70) + "x\n"))
	f.Add([]byte("version: 1\na: &a [x, x, x, x]\nb: &b [*a, *a, *a, *a]\nc: &c [*b, *b, *b, *b]\nd: [*c, *c, *c, *c]\n"))
	f.Add([]byte("version: 1\nhosts: [{name: s, role: server, address: a, repos: [{name: r, path: /r, sources: &s [/, /r], excludes: &e ['/r/*', 're:^x']}, {name: q, path: /q, sources: *s, excludes: *e}]}]\n"))
	f.Add([]byte("version: 1\n" + strings.Repeat("k", 1100) + ": {a: [1, 2]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		timer := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("Parse hangs on %q", data)) })
		defer timer.Stop()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		c, err := Parse("fuzz.yaml", data)
		runtime.ReadMemStats(&after)
		// A 1 MiB config allocates under 900 MB in all; what the limits
		// let through must stay in proportion to the input.
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20+2048*uint64(len(data)) {
			t.Fatalf("Parse allocated %d MB for %d bytes: %q", alloc>>20, len(data), data)
		}
		if err == nil {
			if c == nil {
				t.Fatal("nil config without error")
			}
			return
		}
		var p *Problem
		var ps Problems
		if !errors.As(err, &ps) && !errors.As(err, &p) {
			t.Fatalf("error is neither *Problem nor Problems: %T %v", err, err)
		}
		_ = err.Error()
	})
}

func TestHostCompaction(t *testing.T) {
	src := withHeader(append(slices.Clone(server),
		"    compaction: {threshold: 50}",
		"  - name: srv2",
		"    role: server",
		"    address: 100.64.0.3",
		"compaction:",
		"  weekdays: [wed, sat]",
		"  threshold: 30")...)
	c, err := Parse("c.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	// The host's policy replaces the site's whole: its weekdays are the
	// default, not the site's.
	if p := c.HostCompaction(&c.Hosts[0]); p.Threshold != 50 || !slices.Equal(p.Weekdays, DefaultCompactWeekdays()) {
		t.Errorf("srv: %+v", p)
	}
	p := c.HostCompaction(&c.Hosts[1])
	if p.Threshold != 30 || !slices.Equal(p.Weekdays, []string{"wed", "sat"}) {
		t.Errorf("srv2: %+v", p)
	}
	p.Weekdays[0] = "mon"
	if c.Compaction.Weekdays[0] != "wed" {
		t.Error("HostCompaction shares its weekdays with the config")
	}
	wed := time.Date(2026, 11, 25, 1, 0, 0, 0, time.Local)
	if !c.HostCompaction(&c.Hosts[1]).Due(wed) || c.HostCompaction(&c.Hosts[0]).Due(wed) {
		t.Error("Due")
	}
}

func TestNightlyWindow(t *testing.T) {
	for _, tc := range []struct {
		nightly       string
		total, perDsk int
	}{
		{"", 0, 1},                           // one per disk, every disk at once
		{"{parallel: 2}", 2, 2},              // the user says what the disks take
		{"{parallel: 4, per_disk: 1}", 4, 1}, // at most 4, still one per disk
		{"{per_disk: 2}", 0, 2},
	} {
		src := withHeader(server...)
		if tc.nightly != "" {
			src = withHeader(append(slices.Clone(server), "    nightly: "+tc.nightly)...)
		}
		c, err := Parse("ok.yaml", []byte(src))
		if err != nil {
			t.Fatalf("%s: %v", tc.nightly, err)
		}
		h, _ := c.Host("srv")
		if total, per := h.NightlyWindow(); total != tc.total || per != tc.perDsk {
			t.Errorf("nightly %q: window %d, %d per disk; want %d, %d", tc.nightly, total, per, tc.total, tc.perDsk)
		}
	}
}
