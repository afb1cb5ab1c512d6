package status

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/roles/jobs/alert"
)

// Width is the dashboard's width in columns: every box fits an 80-column
// terminal. (The seed's boxes are 81 and 82 wide, by hand-drawing.)
const Width = 80

// maxLine is the widest a line inside a box gets: the box's right edge
// stays clear, since the seed leaves the lines open on the right.
const maxLine = Width - 1

// ANSI colours for status words; only used when the caller says the output
// is a terminal, so pipes and mails get plain text.
const (
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiRed    = "\x1b[31m"
	ansiReset  = "\x1b[0m"
)

// GeneratedLayout is the "Generated:" line's time format, as in the seed.
const GeneratedLayout = alert.TimestampLayout

// Title is the dashboard's heading: "JOHN-AI BACKUP STATUS DASHBOARD".
func (d *Dashboard) Title() string {
	return strings.ToUpper(d.Host) + " BACKUP STATUS DASHBOARD"
}

type textWriter struct {
	b     bytes.Buffer
	color bool
}

func (t *textWriter) paint(l Level, s string) string {
	if !t.color {
		return s
	}
	switch l {
	case LevelOK:
		return ansiGreen + s + ansiReset
	case LevelWarning:
		return ansiYellow + s + ansiReset
	case LevelFailed:
		return ansiRed + s + ansiReset
	}
	return s
}

func (t *textWriter) open(title string) {
	n := Width - 5 - utf8.RuneCountInString(title)
	fmt.Fprintf(&t.b, "┌─ %s %s┐\n", title, strings.Repeat("─", max(n, 1)))
}

func (t *textWriter) close() {
	fmt.Fprintf(&t.b, "└%s┘\n\n", strings.Repeat("─", Width-2))
}

func (t *textWriter) line(s string) {
	t.b.WriteString(strings.TrimRight("│ "+s, " "))
	t.b.WriteByte('\n')
}

// wrapped writes prefix+text broken at spaces so no line passes maxLine,
// continuation lines indented under the text, as the seed wraps its list
// of mirrored repos. paintPrefix colours the prefix on the first line only
// after the wrapping is measured on plain text.
func (t *textWriter) wrapped(prefix, text string, paintPrefix func(string) string) {
	lines := wrap(prefix, text, maxLine-2)
	for i, l := range lines {
		if i == 0 && paintPrefix != nil {
			l = paintPrefix(prefix) + l[len(prefix):]
		}
		t.line(l)
	}
}

// wrap breaks prefix+text into lines of at most width runes at spaces, the
// prefix (with its own trailing space) on the first line and its width in
// spaces on the others; a word longer than a line is left whole, not cut.
func wrap(prefix, text string, width int) []string {
	hang := strings.Repeat(" ", utf8.RuneCountInString(prefix))
	var lines []string
	cur := prefix
	empty := true
	for _, w := range strings.Fields(text) {
		if !empty && utf8.RuneCountInString(cur)+1+utf8.RuneCountInString(w) > width {
			lines = append(lines, cur)
			cur, empty = hang, true
		}
		if !empty {
			cur += " "
		}
		cur += w
		empty = false
	}
	return append(lines, cur)
}

// pad left-aligns labels to one column, as the seed aligns
// "Last nightly:        SUCCESS" under "Last integrity check: OK".
func pad(labels []string) []string {
	w := 0
	for _, l := range labels {
		w = max(w, utf8.RuneCountInString(l))
	}
	out := make([]string, len(labels))
	for i, l := range labels {
		out[i] = l + strings.Repeat(" ", w-utf8.RuneCountInString(l)+1)
	}
	return out
}

// Text writes the dashboard as the seed's backup-status draws it. color
// adds ANSI colours to status words; pass it only for a terminal.
func (d *Dashboard) Text(w io.Writer, color bool) error {
	t := &textWriter{color: color}
	title := d.Title()
	inner := Width - 2
	left := max((inner-utf8.RuneCountInString(title))/2, 0)
	right := max(inner-left-utf8.RuneCountInString(title), 0)
	fmt.Fprintf(&t.b, "╔%s╗\n", strings.Repeat("═", inner))
	fmt.Fprintf(&t.b, "║%s%s%s║\n", strings.Repeat(" ", left), title, strings.Repeat(" ", right))
	fmt.Fprintf(&t.b, "╚%s╝\n", strings.Repeat("═", inner))
	fmt.Fprintf(&t.b, "Generated: %s\n\n", d.Generated.Format(GeneratedLayout))

	d.textStorage(t)
	if d.Role == config.RoleOffsite {
		d.textHeartbeats(t)
	} else {
		d.textRepos(t)
		d.textMirrors(t)
		d.textVMs(t)
		d.textProxmox(t)
	}
	d.textMonitoring(t)
	d.textSummary(t)

	out := bytes.TrimSuffix(t.b.Bytes(), []byte("\n")) // no blank line after the last box
	if _, err := w.Write(out); err != nil {
		return fmt.Errorf("write status dashboard: %w", err)
	}
	return nil
}

// storageState is the word after a mount's label and its level.
func (s Storage) state() string {
	var st string
	switch {
	case s.Source == SourceNone:
		return "UNKNOWN (not measured)"
	case s.Mounted:
		st = "MOUNTED"
	default:
		st = "NOT MOUNTED"
	}
	if s.Source == SourceRecorded {
		st += fmt.Sprintf(" (recorded %s ago)", ago(s.AgeSeconds))
	}
	return st
}

// hasFigures reports whether there are sizes worth a line.
func (s Storage) hasFigures() bool { return s.Mounted && s.Size > 0 }

func (d *Dashboard) textStorage(t *textWriter) {
	t.open("STORAGE STATUS")
	var labels []string
	for _, s := range d.Storage {
		labels = append(labels, fmt.Sprintf("%s (%s):", s.Label, s.Mount))
	}
	if len(d.Storage) == 0 {
		t.line("No disks or shares configured")
	}
	for i, s := range d.Storage {
		t.line(pad(labels)[i] + t.paint(mountLevel(s), s.state()))
		if s.hasFigures() {
			pct := fmt.Sprintf("(%d%%)", s.Percent)
			if s.Level == LevelWarning {
				pct = t.paint(LevelWarning, pct)
			}
			t.line(fmt.Sprintf("  Size: %s | Used: %s %s | Available: %s",
				alert.Size(s.Size), alert.Size(s.Used), pct, alert.Size(s.Avail)))
		}
	}
	t.close()
}

// mountLevel colours the MOUNTED word by the mount alone: a full disk is
// still mounted, and its percentage carries the warning.
func mountLevel(s Storage) Level {
	switch {
	case s.Source == SourceNone:
		return LevelUnknown
	case s.Mounted:
		return LevelOK
	}
	return s.Level
}

// NightlyTitle is the nightly section's title: the seed says "(USB)" for
// its USB disk; other media are not named.
func (d *Dashboard) NightlyTitle() string {
	for _, s := range d.Storage {
		if s.Kind == KindBackup && strings.HasPrefix(s.Label, "USB ") {
			return "NIGHTLY BACKUP (USB)"
		}
	}
	return "NIGHTLY BACKUP"
}

// lastBackup is "6h", "34h (STALE)", "never".
func (r Repo) lastBackup() string {
	switch {
	case r.LastBackup.IsZero():
		return "never"
	case r.Level == LevelFailed && r.Status != "failed":
		return ago(r.AgeSeconds) + " (STALE)"
	}
	return ago(r.AgeSeconds)
}

// archives is the count, or "-" when the nightly recorded none.
func (r Repo) archives() string {
	if r.Status == "" {
		return "-"
	}
	return fmt.Sprint(r.Archives)
}

func (d *Dashboard) textRepos(t *textWriter) {
	if len(d.Repos) == 0 {
		return
	}
	t.open(d.NightlyTitle())
	for _, r := range d.Repos {
		t.line(fmt.Sprintf("%s (%s):", r.Name, r.Path))
		l := fmt.Sprintf("  Archives: %s | Last backup: %s", r.archives(), t.paint(r.Level, r.lastBackup()))
		switch r.Status {
		case "failed", "skipped":
			l += " | Last run: " + t.paint(r.Level, strings.ToUpper(r.Status))
		}
		t.line(l)
		if r.Server != "" {
			t.line(fmt.Sprintf("  Borg server: %s | Last archive: %s", r.Server, orNone(r.LastArchive)))
		}
		if r.OriginalSize > 0 {
			t.line(fmt.Sprintf("  Original: %s | Compressed: %s | Deduplicated: %s",
				DecimalSize(r.OriginalSize), DecimalSize(r.CompressedSize), DecimalSize(r.DeduplicatedSize)))
		}
	}
	t.close()
}

// state is "Synced 4h ago", "FAILED 2h ago", "Never synced".
func (m Mirror) state() string {
	switch {
	case m.LastRun.IsZero():
		return "Never synced"
	case m.Status == "ok" && len(m.Failed) == 0 && m.Level == LevelFailed:
		return fmt.Sprintf("STALE, synced %s ago", ago(m.AgeSeconds))
	case m.Status == "ok" && len(m.Failed) == 0:
		return fmt.Sprintf("Synced %s ago", ago(m.AgeSeconds))
	case m.Status == "ok":
		return fmt.Sprintf("PARTIAL %s ago", ago(m.AgeSeconds))
	case m.Status == "running":
		return fmt.Sprintf("RUNNING (started %s ago)", ago(m.AgeSeconds))
	}
	return fmt.Sprintf("%s %s ago", strings.ToUpper(m.Status), ago(m.AgeSeconds))
}

// state is "98% compared within 30d (oldest 12d ago), no mismatch".
func (a *CopyAudit) state() string {
	s := fmt.Sprintf("%.0f%% of %s compared within %dd (oldest %s ago)", 100*a.Covered, DecimalSize(a.Bytes), a.CoverDays, ago(a.OldestSeconds))
	switch {
	case a.Status == "failed":
		return "FAILED " + ago(a.AgeSeconds) + " ago; " + s
	case !a.LastMismatch.IsZero():
		return fmt.Sprintf("%s; MISMATCH %s ago: %s", s, ago(a.MismatchAgeSeconds), strings.Join(a.LastMismatchFiles, ", "))
	}
	return s + "; no mismatch"
}

func (d *Dashboard) textMirrors(t *textWriter) {
	for _, m := range d.Mirrors {
		t.open(strings.ToUpper(m.Name) + " MIRROR")
		t.line(fmt.Sprintf("Status: %s (to %s)", t.paint(m.Level, m.state()), m.Target))
		if len(m.Repos) > 0 {
			t.wrapped("Repos mirrored: ", strings.Join(m.Repos, ", "), nil)
		}
		if len(m.Failed) > 0 {
			t.wrapped("Failed: ", strings.Join(m.Failed, ", "), func(string) string { return t.paint(LevelFailed, "Failed:") + " " })
		}
		if a := m.Audit; a != nil {
			t.wrapped("Audit: ", a.state(), func(string) string { return t.paint(a.Level, "Audit:") + " " })
		}
		if a := m.SnapshotsAudit; a != nil {
			t.wrapped("Snapshots audit: ", a.state(), func(string) string { return t.paint(a.Level, "Snapshots audit:") + " " })
		}
		t.close()
	}
}

func (v VM) state() string {
	if v.LastBackup.IsZero() {
		return v.Health
	}
	return fmt.Sprintf("%s (%s)", ago(v.AgeSeconds), v.Health)
}

func (d *Dashboard) textVMs(t *textWriter) {
	textGuests(t, "VM BACKUPS", d.VMs)
	textGuests(t, "CONTAINER BACKUPS", d.Containers)
}

// textGuests is one box of guests, a line each, as the seed's dashboard
// shows them; a guest's problem follows its line.
func textGuests(t *textWriter, title string, gs []VM) {
	if len(gs) == 0 {
		return
	}
	t.open(title)
	var labels []string
	for _, v := range gs {
		labels = append(labels, v.Name+":")
	}
	for i, v := range gs {
		t.line(pad(labels)[i] + t.paint(v.Level, v.state()))
		if v.Problem != "" && v.Level != LevelOK {
			t.wrapped("  ", v.Problem, nil)
		}
	}
	t.close()
}

func (g ProxmoxGuest) state() string {
	if g.File == "" {
		return "no dump"
	}
	return fmt.Sprintf("%s ago, %s", ago(g.AgeSeconds), alert.Size(uint64(g.Bytes)))
}

func (d *Dashboard) textProxmox(t *textWriter) {
	p := d.Proxmox
	if p == nil {
		return
	}
	t.open("PROXMOX BACKUPS")
	t.line("Dumps: " + p.Dir)
	switch {
	case p.Error != "":
		t.line(t.paint(LevelFailed, "Cannot list: "+p.Error))
	case p.CheckedAt.IsZero():
		t.line(t.paint(p.Level, "Not listed yet (the stale check lists them)"))
	}
	var labels []string
	for _, g := range p.Guests {
		labels = append(labels, fmt.Sprintf("%s %d:", kindWord(g.Kind), g.VMID))
	}
	for i, g := range p.Guests {
		t.line(pad(labels)[i] + t.paint(g.Level, g.state()))
	}
	t.close()
}

// kindWord names a vzdump kind as Proxmox's interface does.
func kindWord(kind string) string {
	switch kind {
	case "qemu":
		return "VM"
	case "lxc":
		return "CT"
	}
	return "Guest"
}

func (h Heartbeat) state() string {
	switch {
	case h.At.IsZero():
		return "MISSING"
	case h.Level == LevelFailed:
		return fmt.Sprintf("STALE (%s ago)", ago(h.AgeSeconds))
	}
	return fmt.Sprintf("Fresh (%s ago)", ago(h.AgeSeconds))
}

func (d *Dashboard) textHeartbeats(t *textWriter) {
	t.open("HEARTBEATS")
	if len(d.Heartbeats) == 0 {
		t.line("No heartbeats recorded")
	}
	var labels []string
	for _, h := range d.Heartbeats {
		labels = append(labels, h.Host+":")
	}
	for i, h := range d.Heartbeats {
		t.line(pad(labels)[i] + t.paint(h.Level, h.state()))
		t.line("  File: " + h.File)
	}
	t.close()
}

// MonitoringTitle is the SELF-MONITORING section's title; an offsite host
// runs no integrity checks.
func (d *Dashboard) MonitoringTitle() string {
	if d.Role == config.RoleOffsite {
		return "SELF-MONITORING"
	}
	return "SELF-MONITORING & INTEGRITY"
}

// warnings is the SELF-MONITORING "Warnings:" value.
func (d *Dashboard) warnings() (string, Level) {
	switch n := len(d.Issues); n {
	case 0:
		return "None", LevelOK
	case 1:
		return "1 (see SUMMARY)", d.worst()
	default:
		return fmt.Sprintf("%d (see SUMMARY)", n), d.worst()
	}
}

func (d *Dashboard) worst() Level {
	l := LevelOK
	for _, i := range d.Issues {
		if rank(i.Level) < rank(l) {
			l = i.Level
		}
	}
	return l
}

func (d *Dashboard) textMonitoring(t *textWriter) {
	t.open(d.MonitoringTitle())
	var labels []string
	for _, c := range d.Monitoring {
		labels = append(labels, c.Name+":")
	}
	labels = pad(append(labels, "Warnings:"))
	for i, c := range d.Monitoring {
		l := labels[i] + t.paint(c.Level, c.Status)
		if c.Note != "" {
			l += " (" + c.Note + ")"
		}
		t.line(l)
	}
	w, lvl := d.warnings()
	t.line(labels[len(labels)-1] + t.paint(lvl, w))
	t.close()
}

// tag marks an issue's severity in the text and HTML lists.
func tag(l Level) string {
	if l == LevelFailed {
		return "[FAIL]"
	}
	return "[WARN]"
}

func (d *Dashboard) textSummary(t *textWriter) {
	t.open("SUMMARY")
	t.line(t.paint(d.worst(), d.Summary))
	for _, i := range d.Issues {
		lvl := i.Level
		t.wrapped("  "+tag(lvl)+" ", i.Text, func(string) string { return "  " + t.paint(lvl, tag(lvl)) + " " })
	}
	t.close()
}

// DecimalSize formats a byte count as borg reports repository sizes and
// the seed quotes them: decimal units, three significant digits ("2.88 TB",
// "132 GB", "45.3 MB"). Storage uses alert.Size, df -h's binary units.
func DecimalSize(n uint64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB", "EB"}
	v := float64(n)
	u := 0
	for v >= 999.5 && u < len(units)-1 {
		v /= 1000
		u++
	}
	switch {
	case u == 0:
		return fmt.Sprintf("%d B", n)
	case v < 9.995:
		return fmt.Sprintf("%.2f %s", v, units[u])
	case v < 99.95:
		return fmt.Sprintf("%.1f %s", v, units[u])
	}
	return fmt.Sprintf("%.0f %s", v, units[u])
}

func orNone(s string) string {
	if s == "" {
		return "none this run"
	}
	return s
}
