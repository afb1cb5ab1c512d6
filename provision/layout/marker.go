package layout

import (
	"bytes"
	"unicode"
	"unicode/utf8"
)

// MarkedBy reports whether content starts with marker: the first line,
// after blanks and a comment sign (#), must begin with it as a phrase of
// its own. Found anywhere else (a second line, inside a sentence, "Managed
// by borgkitten") it proves nothing: any file can quote it.
func MarkedBy(content []byte, marker string) bool {
	line, _, _ := bytes.Cut(content, []byte("\n"))
	line = bytes.TrimLeft(line, " \t")
	line = bytes.TrimLeft(bytes.TrimPrefix(line, []byte("#")), " \t")
	rest, ok := bytes.CutPrefix(line, []byte(marker))
	if !ok || marker == "" {
		return false
	}
	r, _ := utf8.DecodeRune(rest)
	return len(rest) == 0 || !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '-')
}
