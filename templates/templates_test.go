package templates

import "testing"

func TestFstabEscapeRoundTrip(t *testing.T) {
	for _, tt := range []struct{ in, esc string }{
		{"/mnt/backup", "/mnt/backup"},
		{"/mnt/my disk", `/mnt/my\040disk`},
		{"a\tb\nc\\d", `a\011b\012c\134d`},
	} {
		if got := FstabEscape(tt.in); got != tt.esc {
			t.Errorf("FstabEscape(%q) = %q, want %q", tt.in, got, tt.esc)
		}
		if got := FstabUnescape(tt.esc); got != tt.in {
			t.Errorf("FstabUnescape(%q) = %q, want %q", tt.esc, got, tt.in)
		}
	}
	// A backslash not followed by three octal digits stays as it is.
	if got := FstabUnescape(`a\9b\`); got != `a\9b\` {
		t.Errorf("got %q", got)
	}
}

func TestEveryTemplateIsListed(t *testing.T) {
	names := Names()
	if len(names) < 10 {
		t.Fatalf("only %d templates: %v", len(names), names)
	}
	if _, err := Render("no-such-template", nil); err == nil {
		t.Fatal("rendering an unknown template did not fail")
	}
}
