package bench

import (
	"bytes"
	"fmt"
	"os"
)

// The README's Performance section holds the latest table between these.
const (
	beginMarker = "<!-- bench:begin (written by make bench) -->"
	endMarker   = "<!-- bench:end -->"
)

// UpdateReadme replaces what stands between the markers in path with
// table, leaving every other byte as it was.
func UpdateReadme(path string, table []byte) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("readme: %w", err)
	}
	out, err := replaceBetween(b, table)
	if err != nil {
		return fmt.Errorf("readme %s: %w", path, err)
	}
	return os.WriteFile(path, out, 0o644)
}

func replaceBetween(doc, table []byte) ([]byte, error) {
	i := bytes.Index(doc, []byte(beginMarker))
	j := bytes.Index(doc, []byte(endMarker))
	if i < 0 || j < i {
		return nil, fmt.Errorf("no %q ... %q markers", beginMarker, endMarker)
	}
	var out bytes.Buffer
	out.Write(doc[:i+len(beginMarker)])
	out.WriteString("\n")
	out.Write(bytes.TrimSpace(table))
	out.WriteString("\n")
	out.Write(doc[j:])
	return out.Bytes(), nil
}
