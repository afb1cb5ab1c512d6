package steps

import (
	"bytes"
	"fmt"
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

// ForeignUnlessMarked is the ownership rule of a file borgkit writes whole:
// one whose first line is not marker's is someone else's.
func ForeignUnlessMarked(marker string) func(old []byte) string {
	return func(old []byte) string {
		if MarkedBy(old, marker) {
			return ""
		}
		return fmt.Sprintf("it was not written by borgkit (its first line does not start with %q)", marker)
	}
}

// ForeignUnlessBuiltFrom is the ownership rule of a program borgkit installs,
// which has no first line to mark: an ELF binary built from module.
func ForeignUnlessBuiltFrom(module string) func(old []byte) string {
	return func(old []byte) string {
		if bytes.HasPrefix(old, []byte("\x7fELF")) && bytes.Contains(old, []byte(module)) {
			return ""
		}
		return fmt.Sprintf("it is not a program built from %s", module)
	}
}
