package steps

import (
	"bytes"
	"fmt"

	"github.com/borgkit/borgkit/provision/layout"
)

// ForeignUnlessMarked is the ownership rule of a file borgkit writes whole:
// one whose first line is not marker's is someone else's.
func ForeignUnlessMarked(marker string) func(old []byte) string {
	return func(old []byte) string {
		if layout.MarkedBy(old, marker) {
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
