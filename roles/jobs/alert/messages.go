package alert

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Subjects, the TEXT of "PREFIX HOST TEXT", as the seed lists them.
const (
	SubjectNightlyFailed   = "NIGHTLY BACKUP FAILED"
	SubjectNightlyWarnings = "NIGHTLY BACKUP COMPLETED WITH WARNINGS"
	SubjectSuspicious      = "SUSPICIOUS BACKUP"
	SubjectCopyMismatch    = "COPY MISMATCH"
	SubjectIntegrityNotRun = "INTEGRITY CHECK NOT RUN"
	SubjectConfigBroken    = "CONFIG BROKEN"
	SubjectJobNotRun       = "JOB NOT RUN"
	SubjectNightlyAborted  = "NIGHTLY BACKUP ABORTED"
	SubjectTerminated      = "TERMINATED ABNORMALLY"
	SubjectSyncFailed      = "OFFSITE SYNC FAILED"
	SubjectIntegrityFailed = "INTEGRITY CHECK FAILED"
	SubjectRestoreFailed   = "RESTORE TEST FAILED"
	SubjectDiskSpace       = "DISK SPACE WARNING"
	SubjectOffsiteDisk     = "OFFSITE DISK SPACE WARNING"
	SubjectStaleness       = "STALENESS ALERT"
	SubjectBundleOutOfDate = "RECOVERY BUNDLE OUT OF DATE"
	SubjectHeartbeatStale  = "heartbeat STALE"
)

// SectionStatus is how one step of a job ended.
type SectionStatus string

const (
	StatusOK      SectionStatus = "OK"
	StatusFailed  SectionStatus = "FAILED"
	StatusWarning SectionStatus = "WARNING"
	// StatusSkipped is a step not run because an earlier one failed (no
	// prune after a failed create).
	StatusSkipped SectionStatus = "SKIPPED"
)

// Section is one step of a job: a repo's create, a VM dump, prune + compact.
type Section struct {
	Name     string // "System backup", "VM backup: 102 openclaw"
	Status   SectionStatus
	Duration time.Duration // shown for a step that ended well
	ExitCode int           // shown for a step that did not
	// Output is the tail of the step's output, shown when non-empty.
	Output string
}

// statusLine is "OK (10m 32s)", "FAILED (exit code 1)", "OK".
func (s Section) statusLine() string {
	switch {
	case s.Status != StatusOK && s.ExitCode != 0:
		return fmt.Sprintf("%s (exit code %d)", s.Status, s.ExitCode)
	case s.Duration > 0:
		return fmt.Sprintf("%s (%s)", s.Status, Elapsed(s.Duration))
	}
	return string(s.Status)
}

func writeSections(b *strings.Builder, secs []Section) {
	for _, s := range secs {
		fmt.Fprintf(b, "\n--- %s ---\n", s.Name)
		fmt.Fprintf(b, "  Status: %s\n", s.statusLine())
		writeOutput(b, s.Output)
	}
}

func writeTitle(b *strings.Builder, title string) {
	fmt.Fprintf(b, "=== %s ===\n", title)
}

func writeTimestamp(b *strings.Builder, t time.Time) {
	if !t.IsZero() {
		fmt.Fprintf(b, "Timestamp: %s\n", t.Format(TimestampLayout))
	}
}

func writeLog(b *strings.Builder, path string) {
	if path != "" {
		fmt.Fprintf(b, "\nFull log: %s\n", path)
	}
}

// NightlyReport is one nightly run that went wrong.
type NightlyReport struct {
	ExitCode int
	// Finished is the mail's Timestamp (Started when zero).
	Started, Finished time.Time
	Sections          []Section
	LogPath           string
}

// NightlyFailed is the seed's NIGHTLY BACKUP FAILED mail: one block per step,
// so the failed VM stands out from the ones that went well.
func NightlyFailed(r NightlyReport) Message { return nightly(SubjectNightlyFailed, r) }

// NightlyWarnings is the same report for a night whose every archive was
// written but some step has something to say (a file borg could not read,
// a VM definition not dumped): not a failure, and not silence either.
func NightlyWarnings(r NightlyReport) Message { return nightly(SubjectNightlyWarnings, r) }

func nightly(subject string, r NightlyReport) Message {
	var b strings.Builder
	writeTitle(&b, subject)
	fmt.Fprintf(&b, "Exit code: %d\n", r.ExitCode)
	at := r.Finished
	if at.IsZero() {
		at = r.Started
	}
	writeTimestamp(&b, at)
	writeSections(&b, r.Sections)
	writeLog(&b, r.LogPath)
	return Message{Subject: subject, Text: b.String()}
}

// JobFailed is the mail of a job made of sections (the archive host's
// scrub, SMART tests and pull): the seed's layout under the job's own title.
func JobFailed(title string, at time.Time, secs []Section, logPath string) Message {
	var b strings.Builder
	writeTitle(&b, title)
	writeTimestamp(&b, at)
	writeSections(&b, secs)
	writeLog(&b, logPath)
	return Message{Subject: title, Text: b.String()}
}

// NightlyAborted is sent when a pre-flight check failed (disk not mounted,
// source partition missing, borg not installed): nothing was backed up.
func NightlyAborted(reason string, at time.Time, logPath string) Message {
	var b strings.Builder
	writeTitle(&b, SubjectNightlyAborted)
	writeTimestamp(&b, at)
	b.WriteString("\nA pre-flight check failed, so the backup did not start:\n")
	indent(&b, reason)
	b.WriteString("\nNo archive was created and nothing was pruned.\n")
	writeLog(&b, logPath)
	return Message{Subject: SubjectNightlyAborted, Text: b.String()}
}

// TerminatedAbnormally reports a job that ended without finishing its work:
// killed by a signal it caught (how: "killed by SIGTERM"), or found later
// as a record whose process is gone (OOM kill, power loss, SIGKILL).
func TerminatedAbnormally(job string, pid int, started time.Time, how string) Message {
	var b strings.Builder
	writeTitle(&b, SubjectTerminated)
	fmt.Fprintf(&b, "Job: %s (pid %d)\n", job, pid)
	if !started.IsZero() {
		fmt.Fprintf(&b, "Started: %s\n", started.Format(TimestampLayout))
	}
	fmt.Fprintf(&b, "Cause: %s\n", how)
	fmt.Fprintf(&b, "\nThe job stopped before it finished; its work may be incomplete.\n")
	fmt.Fprintf(&b, "It runs again at its next scheduled time; to run it now:\n  borgkit job %s\n", job)
	return Message{Subject: SubjectTerminated, Text: b.String()}
}

// SyncFailure is one repository a sync could not mirror.
type SyncFailure struct {
	Repo     string
	Target   string // "offsite-backup:john-ai/", "/mnt/nas/backups/"
	ExitCode int
	Output   string
}

// SyncReport is one sync run with failures.
type SyncReport struct {
	Started  time.Time
	Failures []SyncFailure
	LogPath  string
}

// SyncFailed names each repository and target that failed, so the mail
// says which copy is out of date.
func SyncFailed(r SyncReport) Message {
	var b strings.Builder
	writeTitle(&b, SubjectSyncFailed)
	writeTimestamp(&b, r.Started)
	for _, f := range r.Failures {
		writeSections(&b, []Section{{
			Name: fmt.Sprintf("%s -> %s", f.Repo, f.Target), Status: StatusFailed,
			ExitCode: f.ExitCode, Output: f.Output,
		}})
	}
	b.WriteString("\nThe copies named above are out of date until a sync succeeds.\n")
	b.WriteString("Check that each target is reachable, mounted and has space, then run:\n  borgkit job sync\n")
	writeLog(&b, r.LogPath)
	return Message{Subject: SubjectSyncFailed, Text: b.String()}
}

// RepoResult is one repository's outcome in a check.
type RepoResult struct {
	Repo     string
	Path     string
	Status   SectionStatus
	Duration time.Duration
	ExitCode int
	Output   string
}

// IntegrityReport is one borg check run over the repositories.
type IntegrityReport struct {
	// Check is the command as the mail shows it: "borg check
	// --repository-only" (weekly) or "borg check --verify-data" (monthly).
	Check   string
	Started time.Time
	Repos   []RepoResult
	LogPath string
}

// IntegrityFailed lists every repository checked, the good with the bad.
func IntegrityFailed(r IntegrityReport) Message {
	var b strings.Builder
	writeTitle(&b, SubjectIntegrityFailed)
	if r.Check != "" {
		fmt.Fprintf(&b, "Check: %s\n", r.Check)
	}
	writeTimestamp(&b, r.Started)
	for _, rr := range r.Repos {
		name := rr.Repo
		if rr.Path != "" {
			name = fmt.Sprintf("%s (%s)", rr.Repo, rr.Path)
		}
		writeSections(&b, []Section{{Name: name, Status: rr.Status, Duration: rr.Duration, ExitCode: rr.ExitCode, Output: rr.Output}})
	}
	b.WriteString("\nborg found damage in the repositories marked FAILED. The NAS and offsite\n")
	b.WriteString("mirrors may still hold intact copies until the next sync overwrites them.\n")
	b.WriteString("borg check --repair can lose data: copy the repository before running it.\n")
	writeLog(&b, r.LogPath)
	return Message{Subject: SubjectIntegrityFailed, Text: b.String()}
}

// RestoreTestReport is a monthly spot-check that failed.
type RestoreTestReport struct {
	Repo    string // repository path
	Archive string // the archive extracted from ("" if none was found)
	File    string // the file extracted and compared
	Started time.Time
	// Problem says what failed: "borg extract failed", "differs from the
	// live file", "the repository has no archive".
	Problem  string
	ExitCode int
	Output   string
	LogPath  string
}

// RestoreTestFailed says the latest archive could not be proven restorable.
func RestoreTestFailed(r RestoreTestReport) Message {
	var b strings.Builder
	writeTitle(&b, SubjectRestoreFailed)
	writeTimestamp(&b, r.Started)
	fmt.Fprintf(&b, "Repository: %s\n", r.Repo)
	if r.Archive != "" {
		fmt.Fprintf(&b, "Archive: %s\n", r.Archive)
	}
	if r.File != "" {
		fmt.Fprintf(&b, "File: %s\n", r.File)
	}
	fmt.Fprintf(&b, "\nProblem: %s\n", r.Problem)
	if r.ExitCode != 0 {
		fmt.Fprintf(&b, "Exit code: %d\n", r.ExitCode)
	}
	writeOutput(&b, r.Output)
	b.WriteString("\nThe latest archive is not proven restorable. Run borgkit job verify and\n")
	b.WriteString("try the extract by hand before relying on this repository.\n")
	writeLog(&b, r.LogPath)
	return Message{Subject: SubjectRestoreFailed, Text: b.String()}
}

func fullLine(mount string, percent int, used, size uint64) string {
	return fmt.Sprintf("%s is %d%% full (%s of %s used)\n", mount, percent, Size(used), Size(size))
}

// DiskSpaceWarning is the nightly's non-fatal warning once the backup disk
// passes its threshold; it is sent after a backup that succeeded.
func DiskSpaceWarning(mount string, percent int, used, size uint64) Message {
	var b strings.Builder
	writeTitle(&b, SubjectDiskSpace)
	b.WriteString(fullLine(mount, percent, used, size))
	b.WriteString("Backup completed successfully, but disk space is running low.\n")
	b.WriteString("Consider pruning older archives or replacing the disk.\n")
	return Message{Subject: SubjectDiskSpace, Text: b.String(), Severity: SeverityWarning}
}

// OffsiteDiskWarning is the watchdog's warning about its own disk, sent
// before a sync from source fails for lack of space.
func OffsiteDiskWarning(mount string, percent int, used, size uint64, source string) Message {
	var b strings.Builder
	writeTitle(&b, SubjectOffsiteDisk)
	b.WriteString(fullLine(mount, percent, used, size))
	fmt.Fprintf(&b, "The offsite mirror of %s is running low on space; a sync that needs\n", source)
	b.WriteString("more room will fail.\n")
	fmt.Fprintf(&b, "Prune archives on %s (the mirror follows at the next sync) or replace the disk.\n", source)
	return Message{Subject: SubjectOffsiteDisk, Text: b.String(), Severity: SeverityWarning}
}

// AgeCheck is one freshness the stale check measures.
type AgeCheck struct {
	// Name starts its line: "Nightly backup", "Offsite sync".
	Name string
	// Age is the time since the last success; Never says there was none.
	Age   time.Duration
	Never bool
	// Threshold is the age that raises the alert.
	Threshold time.Duration
	// Log is where to look when it is stale.
	Log string
	// Hint, when set, replaces "Check cron jobs and LOG." for a check
	// whose job is not this host's (the Proxmox server's backups).
	Hint string
	// Err says why the age could not be measured; the check is stale.
	Err string
	// Noun names it in the paragraph ("The NOUN has not completed ...");
	// default: Name in lower case.
	Noun string
	// Problem is what a fresh check reports besides its age (an offsite
	// watchdog that cannot mail); it raises the alert too.
	Problem string
}

// ClockSkew is how far in the future a time may lie before it is an
// alert: two clocks kept by NTP differ by far less, and a heartbeat or a
// last success dated hours ahead would hide a dead job for those hours.
const ClockSkew = 5 * time.Minute

// Stale reports whether the check raises the alert.
func (a AgeCheck) Stale() bool {
	return a.Err != "" || a.Never || a.Age > a.Threshold || a.Future() || a.Problem != ""
}

// Future reports a last success dated ahead of now by more than ClockSkew.
func (a AgeCheck) Future() bool { return !a.Never && a.Err == "" && a.Age < -ClockSkew }

// onlyProblem reports a check whose age is fine but that reports a
// Problem.
func (a AgeCheck) onlyProblem() bool {
	return a.Problem != "" && a.Err == "" && !a.Never && !a.Future() && a.Age <= a.Threshold
}

// Staleness is the stale check's mail: every age with its verdict, then a
// paragraph per stale one. Call it only when some check is Stale.
func Staleness(checks []AgeCheck) Message {
	var b strings.Builder
	writeTitle(&b, "BACKUP STALENESS ALERT")
	for _, c := range checks {
		if c.Err != "" {
			fmt.Fprintf(&b, "%s: cannot tell (%s)\n", c.Name, c.Err)
			continue
		}
		age := Age(c.Age)
		switch {
		case c.Never:
			age = "never"
		case c.Future():
			age = Age(-c.Age) + " in the future"
		}
		verdict := "OK"
		switch {
		case c.onlyProblem():
			verdict = "fresh, but see below"
		case c.Stale():
			verdict = "threshold: " + Limit(c.Threshold)
		}
		fmt.Fprintf(&b, "%s age: %s (%s)\n", c.Name, age, verdict)
	}
	for _, c := range checks {
		if !c.Stale() {
			continue
		}
		what := c.Noun
		if what == "" {
			what = strings.ToLower(c.Name)
		}
		switch {
		case c.Err != "":
			fmt.Fprintf(&b, "\nThe age of the %s cannot be read.\n", what)
		case c.onlyProblem():
			fmt.Fprintf(&b, "\nThe %s is fresh, but %s.\n", what, c.Problem)
			continue
		case c.Never:
			fmt.Fprintf(&b, "\nThe %s has never completed.\n", what)
		case c.Future():
			fmt.Fprintf(&b, "\nThe last success of the %s is dated %s in the future: a clock was wrong\n", what, Age(-c.Age))
			b.WriteString("when it was recorded or is wrong now, and its age cannot be told. Check the\n")
			b.WriteString("clock (timedatectl) and that the job still runs.\n")
			continue
		default:
			fmt.Fprintf(&b, "\nThe %s has not completed in over %s.\n", what, limitWords(c.Threshold))
		}
		if c.Hint != "" {
			b.WriteString(c.Hint + "\n")
		} else if c.Log != "" {
			fmt.Fprintf(&b, "Check cron jobs and %s.\n", c.Log)
		} else {
			b.WriteString("Check cron jobs.\n")
		}
	}
	return Message{Subject: SubjectStaleness, Text: b.String()}
}

// BundleOutOfDate is the stale check's alert for a recovery bundle whose
// secrets changed since it was written (or whose record cannot be read):
// the stick in the drawer no longer opens what it claims to.
func BundleOutOfDate(written time.Time, changes []string, recordErr string) Message {
	var b strings.Builder
	writeTitle(&b, SubjectBundleOutOfDate)
	if !written.IsZero() {
		fmt.Fprintf(&b, "Bundle written: %s\n", written.Format(TimestampLayout))
	}
	if recordErr != "" {
		fmt.Fprintf(&b, "\nThe bundle's fingerprint record cannot be read (%s), so\nwhether the bundle still matches this host's secrets cannot be told.\n", recordErr)
	}
	if len(changes) > 0 {
		b.WriteString("\nSince the bundle was written:\n")
		for _, c := range changes {
			fmt.Fprintf(&b, "- %s\n", c)
		}
	}
	b.WriteString("\nWrite a new bundle to a stick (borgkit recovery-bundle), check it with\n")
	b.WriteString("borgkit recovery-bundle verify, then destroy the old stick: it holds keys\n")
	b.WriteString("that no longer open the backups, or keys that are no longer meant to.\n")
	return Message{Subject: SubjectBundleOutOfDate, Text: b.String(), Severity: SeverityWarning}
}

// HeartbeatFuture is the watchdog's alert for a heartbeat dated ahead of
// its clock: a server clock set wrong (or a forged heartbeat) would
// otherwise keep the dead-man's switch quiet for as long.
func HeartbeatFuture(host string, ahead time.Duration, file string) Message {
	var b strings.Builder
	writeTitle(&b, host+" HEARTBEAT STALE")
	fmt.Fprintf(&b, "Last heartbeat: %s in the future\n", Age(ahead))
	fmt.Fprintf(&b, "Heartbeat file: %s\n", file)
	fmt.Fprintf(&b, "\nThe heartbeat of %s is dated %s ahead of this host's clock, so its age\n", host, Age(ahead))
	b.WriteString("cannot be told: one of the two clocks is wrong. Until it is fixed this\n")
	b.WriteString("watchdog cannot notice a server that stopped. Check both clocks (timedatectl).\n")
	return Message{Subject: SubjectHeartbeatStale, Text: b.String(), Host: host}
}

// HeartbeatStale is the offsite watchdog's dead-man's switch: host (the
// watched server, named in the subject) has not written its heartbeat file
// for age. A negative age means the file is missing.
func HeartbeatStale(host string, age, threshold time.Duration, file string) Message {
	var b strings.Builder
	writeTitle(&b, host+" HEARTBEAT STALE")
	if age < 0 {
		fmt.Fprintf(&b, "Last heartbeat: none (threshold: %s)\n", Limit(threshold))
	} else {
		fmt.Fprintf(&b, "Last heartbeat: %s ago (threshold: %s)\n", Age(age), Limit(threshold))
	}
	fmt.Fprintf(&b, "Heartbeat file: %s\n", file)
	if age < 0 {
		fmt.Fprintf(&b, "\n%s has not reported a successful backup here: the heartbeat file is missing.\n", host)
	} else {
		fmt.Fprintf(&b, "\n%s has not reported a successful backup in over %s.\n", host, limitWords(threshold))
	}
	b.WriteString("This could mean: powered off, cron dead, network down, or email broken.\n")
	return Message{Subject: SubjectHeartbeatStale, Text: b.String(), Host: host}
}

// Suspect is a night's archive that does not look like the recent ones.
type Suspect struct {
	Repo, Archive string
	// Reasons say what is off, in words, with the figures.
	Reasons []string
	// Tonight's figures and the medians over Nights recent archives.
	Files                               int64
	Bytes, New                          uint64
	MedianFiles, MedianBytes, MedianNew float64
	Nights                              int
}

// SuspiciousBackup reports archives that are far smaller, or add far more
// new data, than the recent nights': the backup ran, but what it saved may
// be the damage (a source gone, files encrypted).
func SuspiciousBackup(at time.Time, suspects []Suspect, logPath string) Message {
	var b strings.Builder
	writeTitle(&b, SubjectSuspicious)
	writeTimestamp(&b, at)
	for _, s := range suspects {
		fmt.Fprintf(&b, "\n--- %s: %s ---\n", s.Repo, s.Archive)
		for _, r := range s.Reasons {
			fmt.Fprintf(&b, "  %s\n", r)
		}
		fmt.Fprintf(&b, "  Tonight:               %d files, %s, %s new\n", s.Files, Size(s.Bytes), Size(s.New))
		fmt.Fprintf(&b, "  Median of %2d nights:   %.0f files, %s, %s new\n", s.Nights, s.MedianFiles, Size(uint64(s.MedianBytes)), Size(uint64(s.MedianNew)))
	}
	b.WriteString("\nThe archive was kept, and nothing was pruned or compacted in these repos\n")
	b.WriteString("tonight, so every older archive is still there. Look at the sources: a\n")
	b.WriteString("missing mount, deleted files, or files rewritten by ransomware. If the change\n")
	b.WriteString("is expected, nothing needs doing: the next nights judge against it.\n")
	writeLog(&b, logPath)
	return Message{Subject: SubjectSuspicious, Text: b.String()}
}

// Mismatch is one copy of a repo that differs from the repo.
type Mismatch struct {
	Copy, Repo string
	// Snapshots is a copy of the offsite snapshots: its files are named
	// SNAPSHOT/PATH, and the sync cannot send them again.
	Snapshots bool
	// Files name each file that differs, with how ("data/0/17: SHA-256
	// 1f2e… on the copy, 9a8b… in the repo").
	Files []string
}

// CopyMismatch says which copy of which repo holds which files that are
// not the repo's: found by the audit, hashing the files where they lie.
func CopyMismatch(at time.Time, ms []Mismatch, logPath string) Message {
	var b strings.Builder
	writeTitle(&b, SubjectCopyMismatch)
	writeTimestamp(&b, at)
	for _, m := range ms {
		fmt.Fprintf(&b, "\n--- copy %s, repo %s: %d files differ ---\n", m.Copy, m.Repo, len(m.Files))
		for i, f := range m.Files {
			if i == 50 {
				fmt.Fprintf(&b, "  ... and %d more (see the log)\n", len(m.Files)-i)
				break
			}
			fmt.Fprintf(&b, "  %s\n", f)
		}
	}
	b.WriteString("\nSegment files never change once borg wrote them, so a segment that differs\n")
	b.WriteString("is damage on one side: run borg check --repository-only on the repo. If the\n")
	b.WriteString("repo is sound, the copy is damaged: delete the files named above from the\n")
	b.WriteString("copy and the next sync sends them again.\n")
	if slices.ContainsFunc(ms, func(m Mismatch) bool { return m.Snapshots }) {
		b.WriteString("A snapshot's file (SNAPSHOT/PATH, the oldest snapshot holding it) was compared\n")
		b.WriteString("with the repo's, or, once compaction removed it there, with its SHA-256 when\n")
		b.WriteString("first seen. No sync sends it again, and the later snapshots share it (hard\n")
		b.WriteString("links): borgkit drill --snapshot NAME on the Pi shows which archives it damages.\n")
	}
	writeLog(&b, logPath)
	return Message{Subject: SubjectCopyMismatch, Text: b.String()}
}

// IntegrityNotRun is a check that could not run at all (the backup disk
// absent): no repo was found damaged, and none was proven sound.
func IntegrityNotRun(check, reason string, at time.Time, logPath string) Message {
	var b strings.Builder
	writeTitle(&b, SubjectIntegrityNotRun)
	fmt.Fprintf(&b, "Check: %s\n", check)
	writeTimestamp(&b, at)
	b.WriteString("\nThe check did not run:\n")
	indent(&b, reason)
	b.WriteString("\nNo repository was found damaged, and none was proven sound tonight. The\n")
	b.WriteString("results of the last check that ran still stand, for the sync too.\n")
	writeLog(&b, logPath)
	return Message{Subject: SubjectIntegrityNotRun, Text: b.String()}
}

// NotRun is a job that could not start: it could not load its config, or
// not write its record. reason says why; hint what to do.
func NotRun(subject, job, reason, hint string, at time.Time) Message {
	var b strings.Builder
	writeTitle(&b, subject)
	fmt.Fprintf(&b, "Job: %s\n", job)
	writeTimestamp(&b, at)
	b.WriteString("\nThe job did not run:\n")
	indent(&b, reason)
	if hint != "" {
		b.WriteString("\n" + hint + "\n")
	}
	return Message{Subject: subject, Text: b.String()}
}
