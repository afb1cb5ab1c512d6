package status

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/roles/jobs/alert"
)

// JSON writes the dashboard as indented JSON: `borgkit status --json`.
func (d *Dashboard) JSON(w io.Writer) error {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return fmt.Errorf("encode status dashboard: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write status dashboard: %w", err)
	}
	return nil
}

// SubjectPrefix starts the weekly summary's subject text; the Mailer adds
// "[BACKUP] john-ai " before it.
const SubjectPrefix = "Weekly Summary — "

// maxSubjectIssue bounds the issue quoted in the subject: mail clients
// show a line, and the body has the whole text.
const maxSubjectIssue = 100

// Subject is the weekly summary's subject text: "Weekly Summary — All
// healthy", or the count of issues and the worst one.
func (d *Dashboard) Subject() string {
	switch n := len(d.Issues); n {
	case 0:
		return SubjectPrefix + "All healthy"
	case 1:
		return SubjectPrefix + "1 issue: " + clip(d.Issues[0].Text, maxSubjectIssue)
	default:
		return fmt.Sprintf("%s%d issues: %s", SubjectPrefix, n, clip(d.Issues[0].Text, maxSubjectIssue))
	}
}

func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return strings.TrimRight(string([]rune(s)[:n-1]), " ") + "…"
}

// SummaryMail is the weekly summary: the dashboard as plain text (what the
// terminal shows, without colour) with an HTML alternative of the same
// model. Should the HTML fail to render, the mail goes out as text alone:
// a summary that does not arrive would read as "all healthy".
func SummaryMail(d *Dashboard) alert.Message {
	var text, html bytes.Buffer
	d.Text(&text, false) // a bytes.Buffer takes every write
	msg := alert.Message{Subject: d.Subject(), Text: text.String(), Severity: alert.SeverityInfo}
	if len(d.Issues) > 0 {
		msg.Severity = alert.SeverityWarning
	}
	if d.HTML(&html) == nil {
		msg.HTML = html.String()
	}
	return msg
}

// Inline styles only: mail clients drop <style> blocks and external sheets.
const (
	colorOK      = "#1a7f37"
	colorWarning = "#9a6700"
	colorFailed  = "#cf222e"
)

func levelColor(l Level) string {
	switch l {
	case LevelOK:
		return colorOK
	case LevelWarning:
		return colorWarning
	case LevelFailed:
		return colorFailed
	}
	return ""
}

// cellStyle is trusted CSS: html/template would otherwise refuse a style
// value it cannot prove harmless; it comes from the constants above only.
func cellStyle(l Level) template.CSS {
	if c := levelColor(l); c != "" {
		return template.CSS("color:" + c + ";font-weight:bold;")
	}
	return ""
}

type htmlCell struct {
	Text  string
	Style template.CSS
}

type htmlSection struct {
	Title string
	Head  []string
	Rows  [][]htmlCell
}

type htmlIssue struct {
	Tag, Text string
	Style     template.CSS
}

type htmlPage struct {
	Title, Generated, Summary string
	SummaryStyle              template.CSS
	Issues                    []htmlIssue
	Sections                  []htmlSection
}

func cell(text string) htmlCell { return htmlCell{Text: text} }

func colored(l Level, text string) htmlCell { return htmlCell{Text: text, Style: cellStyle(l)} }

var page = template.Must(template.New("summary").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
</head>
<body style="margin:0;padding:16px;background:#f6f8fa;color:#1f2328;font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;font-size:14px;">
<h1 style="font-size:20px;margin:0 0 4px 0;">{{.Title}}</h1>
<p style="margin:0 0 16px 0;color:#59636e;">Generated: {{.Generated}}</p>
<p style="margin:0 0 8px 0;padding:8px 12px;background:#ffffff;border:1px solid #d0d7de;{{.SummaryStyle}}">{{.Summary}}</p>
{{- if .Issues}}
<ul style="margin:0 0 8px 0;padding:8px 12px 8px 32px;background:#ffffff;border:1px solid #d0d7de;">
{{- range .Issues}}
<li><span style="{{.Style}}">{{.Tag}}</span> {{.Text}}</li>
{{- end}}
</ul>
{{- end}}
{{- range .Sections}}
<h2 style="font-size:15px;margin:20px 0 6px 0;">{{.Title}}</h2>
<table style="border-collapse:collapse;width:100%;background:#ffffff;border:1px solid #d0d7de;">
<tr>{{range .Head}}<th style="text-align:left;padding:4px 8px;border-bottom:2px solid #d0d7de;">{{.}}</th>{{end}}</tr>
{{- range .Rows}}
<tr>{{range .}}<td style="padding:4px 8px;border-bottom:1px solid #eaeef2;{{.Style}}">{{.Text}}</td>{{end}}</tr>
{{- end}}
</table>
{{- end}}
</body>
</html>
`))

// HTML writes the dashboard as a self-contained HTML document: the weekly
// summary's HTML part. Every value goes through html/template's escaping.
func (d *Dashboard) HTML(w io.Writer) error {
	var b bytes.Buffer
	if err := page.Execute(&b, d.htmlPage()); err != nil {
		return fmt.Errorf("render status dashboard as HTML: %w", err)
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("write status dashboard HTML: %w", err)
	}
	return nil
}

func (d *Dashboard) htmlPage() htmlPage {
	p := htmlPage{
		Title:        d.Title(),
		Generated:    d.Generated.Format(GeneratedLayout),
		Summary:      d.Summary,
		SummaryStyle: cellStyle(d.worst()),
	}
	for _, i := range d.Issues {
		p.Issues = append(p.Issues, htmlIssue{Tag: tag(i.Level), Text: i.Text, Style: cellStyle(i.Level)})
	}
	add := func(s htmlSection) {
		if len(s.Rows) > 0 {
			p.Sections = append(p.Sections, s)
		}
	}

	st := htmlSection{Title: "STORAGE STATUS", Head: []string{"Storage", "State", "Size", "Used", "Available"}}
	for _, s := range d.Storage {
		row := []htmlCell{cell(fmt.Sprintf("%s (%s)", s.Label, s.Mount)), colored(mountLevel(s), s.state())}
		if s.hasFigures() {
			// Only a fill past the threshold is coloured, as in the text.
			used := cell(fmt.Sprintf("%s (%d%%)", alert.Size(s.Used), s.Percent))
			if s.Level == LevelWarning {
				used.Style = cellStyle(LevelWarning)
			}
			row = append(row, cell(alert.Size(s.Size)), used, cell(alert.Size(s.Avail)))
		} else {
			row = append(row, cell(""), cell(""), cell(""))
		}
		st.Rows = append(st.Rows, row)
	}
	add(st)

	if d.Role == config.RoleOffsite {
		hb := htmlSection{Title: "HEARTBEATS", Head: []string{"Host", "Heartbeat", "File"}}
		for _, h := range d.Heartbeats {
			hb.Rows = append(hb.Rows, []htmlCell{cell(h.Host), colored(h.Level, h.state()), cell(h.File)})
		}
		add(hb)
	}

	nb := htmlSection{Title: d.NightlyTitle(), Head: []string{"Repository", "Archives", "Last backup", "Last run", "Original", "Compressed", "Deduplicated"}}
	for _, r := range d.Repos {
		row := []htmlCell{cell(fmt.Sprintf("%s (%s)", r.Name, r.Path)), cell(r.archives()),
			colored(r.Level, r.lastBackup()), colored(r.Level, strings.ToUpper(r.Status))}
		if r.OriginalSize > 0 {
			row = append(row, cell(DecimalSize(r.OriginalSize)), cell(DecimalSize(r.CompressedSize)), cell(DecimalSize(r.DeduplicatedSize)))
		} else {
			row = append(row, cell(""), cell(""), cell(""))
		}
		nb.Rows = append(nb.Rows, row)
	}
	add(nb)

	mi := htmlSection{Title: "MIRRORS", Head: []string{"Mirror", "Target", "Status", "Repos mirrored", "Failed", "Audit"}}
	for _, m := range d.Mirrors {
		audit := cell("")
		if m.Audit != nil {
			audit = colored(m.Audit.Level, m.Audit.state())
		}
		if a := m.SnapshotsAudit; a != nil {
			text, level := "snapshots: "+a.state(), a.Level
			if m.Audit != nil {
				text = m.Audit.state() + "; " + text
				if level != LevelFailed && m.Audit.Level != LevelOK {
					level = m.Audit.Level
				}
			}
			audit = colored(level, text)
		}
		mi.Rows = append(mi.Rows, []htmlCell{cell(strings.ToUpper(m.Name)), cell(m.Target), colored(m.Level, m.state()),
			cell(strings.Join(m.Repos, ", ")), colored(LevelFailed, strings.Join(m.Failed, ", ")), audit})
	}
	add(mi)

	for _, box := range []struct {
		title, head string
		gs          []VM
	}{{"VM BACKUPS", "VM", d.VMs}, {"CONTAINER BACKUPS", "Container", d.Containers}} {
		sec := htmlSection{Title: box.title, Head: []string{box.head, "Repository", "Last backup", "Problem"}}
		for _, v := range box.gs {
			sec.Rows = append(sec.Rows, []htmlCell{cell(v.Name), cell(v.Repo), colored(v.Level, v.state()), cell(v.Problem)})
		}
		add(sec)
	}

	if px := d.Proxmox; px != nil {
		ps := htmlSection{Title: "PROXMOX BACKUPS (" + px.Dir + ")", Head: []string{"Guest", "Newest dump", "File"}}
		switch {
		case px.Error != "":
			ps.Rows = append(ps.Rows, []htmlCell{cell("All"), colored(LevelFailed, "Cannot list: "+px.Error), cell("")})
		case px.CheckedAt.IsZero():
			ps.Rows = append(ps.Rows, []htmlCell{cell("All"), colored(px.Level, "Not listed yet"), cell("")})
		}
		for _, g := range px.Guests {
			ps.Rows = append(ps.Rows, []htmlCell{cell(fmt.Sprintf("%s %d", kindWord(g.Kind), g.VMID)), colored(g.Level, g.state()), cell(g.File)})
		}
		add(ps)
	}

	mo := htmlSection{Title: d.MonitoringTitle(), Head: []string{"Check", "Status", "When"}}
	for _, c := range d.Monitoring {
		mo.Rows = append(mo.Rows, []htmlCell{cell(c.Name), colored(c.Level, c.Status), cell(c.Note)})
	}
	w, l := d.warnings()
	mo.Rows = append(mo.Rows, []htmlCell{cell("Warnings"), colored(l, w), cell("")})
	add(mo)
	return p
}
