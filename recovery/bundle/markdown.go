package bundle

import (
	"html"
	"regexp"
	"strconv"
	"strings"
)

// markdownToHTML turns the runbook's Markdown into HTML. It knows exactly
// the subset the runbook template uses — ATX headings, fenced code blocks,
// pipe tables, "-" and "1." lists, paragraphs, `code` and **bold** — and
// escapes everything else, so a value from the config can never become
// markup. A full Markdown library is not worth a dependency for one page.
func markdownToHTML(md []byte) string {
	lines := strings.Split(strings.ReplaceAll(string(md), "\r\n", "\n"), "\n")
	var b strings.Builder
	var para []string
	list := "" // "ul" or "ol" while a list is open
	flushPara := func() {
		if len(para) > 0 {
			b.WriteString("<p>" + inline(strings.Join(para, " ")) + "</p>\n")
			para = nil
		}
	}
	closeList := func() {
		if list != "" {
			b.WriteString("</" + list + ">\n")
			list = ""
		}
	}
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		trim := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trim, "```"):
			flushPara()
			closeList()
			lang := strings.TrimSpace(strings.TrimPrefix(trim, "```"))
			var code []string
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
				code = append(code, lines[i])
			}
			cls := ""
			if lang != "" {
				cls = ` class="language-` + html.EscapeString(lang) + `"`
			}
			b.WriteString("<pre><code" + cls + ">" + html.EscapeString(strings.Join(code, "\n")) + "</code></pre>\n")
		case trim == "":
			flushPara()
			closeList()
		case headingRE.MatchString(trim):
			flushPara()
			closeList()
			m := headingRE.FindStringSubmatch(trim)
			n := strconv.Itoa(len(m[1]))
			b.WriteString("<h" + n + ` id="` + anchor(m[2]) + `">` + inline(m[2]) + "</h" + n + ">\n")
		case strings.HasPrefix(trim, "|"):
			flushPara()
			closeList()
			var rows [][]string
			for ; i < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i]), "|"); i++ {
				rows = append(rows, tableCells(lines[i]))
			}
			i--
			writeTable(&b, rows)
		case bulletRE.MatchString(line):
			flushPara()
			if list != "ul" {
				closeList()
				b.WriteString("<ul>\n")
				list = "ul"
			}
			b.WriteString("<li>" + inline(bulletRE.FindStringSubmatch(line)[1]) + "</li>\n")
		case orderedRE.MatchString(line):
			flushPara()
			m := orderedRE.FindStringSubmatch(line)
			if list != "ol" {
				closeList()
				start := ""
				if m[1] != "1" {
					start = ` start="` + m[1] + `"`
				}
				b.WriteString("<ol" + start + ">\n")
				list = "ol"
			}
			b.WriteString("<li>" + inline(m[2]) + "</li>\n")
		default:
			if list != "" && strings.HasPrefix(line, "  ") {
				// A wrapped list item: join it to the item just written.
				s := b.String()
				if j := strings.LastIndex(s, "</li>\n"); j >= 0 && j == len(s)-len("</li>\n") {
					b.Reset()
					b.WriteString(s[:j] + " " + inline(trim) + "</li>\n")
					continue
				}
			}
			closeList()
			para = append(para, trim)
		}
	}
	flushPara()
	closeList()
	return b.String()
}

var (
	headingRE = regexp.MustCompile(`^(#{1,4}) +(.+?) *#*$`)
	bulletRE  = regexp.MustCompile(`^- +(.*)$`)
	orderedRE = regexp.MustCompile(`^([0-9]+)\. +(.*)$`)
	inlineRE  = regexp.MustCompile("`[^`]+`|\\*\\*[^*]+\\*\\*")
	anchorRE  = regexp.MustCompile(`[^a-z0-9]+`)
)

func anchor(s string) string {
	return strings.Trim(anchorRE.ReplaceAllString(strings.ToLower(strings.ReplaceAll(s, "`", "")), "-"), "-")
}

// inline escapes text and renders `code` and **bold** spans.
func inline(s string) string {
	var b strings.Builder
	last := 0
	for _, loc := range inlineRE.FindAllStringIndex(s, -1) {
		b.WriteString(html.EscapeString(s[last:loc[0]]))
		tok := s[loc[0]:loc[1]]
		if strings.HasPrefix(tok, "`") {
			b.WriteString("<code>" + html.EscapeString(tok[1:len(tok)-1]) + "</code>")
		} else {
			b.WriteString("<strong>" + html.EscapeString(tok[2:len(tok)-2]) + "</strong>")
		}
		last = loc[1]
	}
	b.WriteString(html.EscapeString(s[last:]))
	return b.String()
}

// tableCells splits a pipe-table row; "\|" is a literal pipe in a cell.
func tableCells(line string) []string {
	s := strings.TrimSpace(line)
	s = strings.TrimPrefix(s, "|")
	s = strings.TrimSuffix(s, "|")
	s = strings.ReplaceAll(s, `\|`, "\x00")
	parts := strings.Split(s, "|")
	for i := range parts {
		parts[i] = strings.TrimSpace(strings.ReplaceAll(parts[i], "\x00", "|"))
	}
	return parts
}

var separatorRE = regexp.MustCompile(`^:?-+:?$`)

func writeTable(b *strings.Builder, rows [][]string) {
	b.WriteString("<table>\n")
	body := rows
	if len(rows) >= 2 && allMatch(rows[1], separatorRE) {
		b.WriteString("<thead><tr>")
		for _, c := range rows[0] {
			b.WriteString("<th>" + inline(c) + "</th>")
		}
		b.WriteString("</tr></thead>\n")
		body = rows[2:]
	}
	b.WriteString("<tbody>\n")
	for _, r := range body {
		b.WriteString("<tr>")
		for _, c := range r {
			b.WriteString("<td>" + inline(c) + "</td>")
		}
		b.WriteString("</tr>\n")
	}
	b.WriteString("</tbody>\n</table>\n")
}

func allMatch(cells []string, re *regexp.Regexp) bool {
	for _, c := range cells {
		if !re.MatchString(c) {
			return false
		}
	}
	return len(cells) > 0
}

func escapeHTML(s string) string { return html.EscapeString(s) }
