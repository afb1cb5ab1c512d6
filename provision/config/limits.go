package config

import (
	"fmt"
	"io"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/scanner"
	"github.com/goccy/go-yaml/token"
)

// Limits on what a config may be. A site's file is a few kilobytes; these
// are orders of magnitude above it and far below what would exhaust the
// machine. The YAML library's parser is superlinear in nesting depth (a
// 100 KB file of 50,000 nested "- " took 48 s and 3.8 GB), so depth is
// checked on the tokens before the parser sees them.
const (
	// MaxSize is the largest config file borgkit reads, in bytes.
	MaxSize = 1 << 20
	// MaxDepth is how deeply collections may nest; the schema itself
	// needs 7 levels (hosts, a host, repos, a repo, retention, ...).
	MaxDepth = 64
	// MaxExpanded bounds the document once its aliases are expanded,
	// counted as one unit per node plus its scalar's bytes: aliases may
	// share a list, not make the config larger than a file may be.
	MaxExpanded = MaxSize
	// MaxKey is the longest mapping key: field names are short, a ZFS
	// property name is at most 255 bytes.
	MaxKey = 1024
	// maxPathBytes bounds what the parser spends naming the nodes: the
	// sum, over the tokens, of the keys above each (about 100 KB for a
	// site's config).
	maxPathBytes = 64 << 20
)

// checkSize refuses a file over MaxSize before anything parses it.
func (ix *srcIndex) checkSize(data []byte) *Problem {
	if len(data) <= MaxSize {
		return nil
	}
	return tooLarge(ix.file, int64(len(data)))
}

// checkDepth scans the tokens, without parsing, and refuses the first one
// that nests deeper than MaxDepth, a key longer than MaxKey, or a file
// whose nodes, each named by the keys above it, add up to more than
// maxPathBytes: the parser spells out that name for every node, so long
// keys over a long list cost their length times the list's. Flow
// collections ([ and {) count each bracket; block collections count each
// deeper indentation of a "- " or a "key:", so "- - - x" on one line is
// three levels, as the parser sees it.
func (ix *srcIndex) checkDepth(data []byte) *Problem {
	if p := ix.checkRuns(data); p != nil {
		return p
	}
	type level struct {
		col  int // column of a block collection; -1 for a flow one
		key  int // length of the key being read at this level
		flow bool
	}
	var (
		s      scanner.Scanner
		levels []level
		prev   *token.Token
		work   int
	)
	s.Init(string(data))
	flows := func() int {
		n := 0
		for _, l := range levels {
			if l.flow {
				n++
			}
		}
		return n
	}
	indent := func(col int) {
		if flows() > 0 {
			return
		}
		for len(levels) > 0 && levels[len(levels)-1].col > col {
			levels = levels[:len(levels)-1]
		}
		if len(levels) == 0 || levels[len(levels)-1].col < col {
			levels = append(levels, level{col: col})
		}
	}
	for {
		tks, err := s.Scan()
		if err == io.EOF {
			return nil
		}
		// A token error is the parser's to report, with its own message;
		// the scan goes on as the parser's own tokenizer does.
		for _, tk := range tks {
			if tk == nil || tk.Position == nil {
				continue
			}
			switch tk.Type {
			case token.SequenceStartType, token.MappingStartType:
				levels = append(levels, level{col: -1, flow: true})
			case token.SequenceEndType, token.MappingEndType:
				for len(levels) > 0 {
					l := levels[len(levels)-1]
					levels = levels[:len(levels)-1]
					if l.flow {
						break
					}
				}
			case token.SequenceEntryType, token.MappingKeyType:
				indent(tk.Position.Column)
			case token.MappingValueType:
				if prev != nil && prev.Position != nil {
					if flows() == 0 && prev.Position.Line == tk.Position.Line {
						indent(prev.Position.Column)
					}
					if len(prev.Value) > MaxKey {
						return ix.problemAt(tokPos(prev), "", ErrLimit,
							fmt.Sprintf("a key of %d bytes: keys are field and property names, at most %d bytes", len(prev.Value), MaxKey))
					}
					if len(levels) > 0 {
						levels[len(levels)-1].key = len(prev.Value)
					}
				}
			}
			if len(levels) > MaxDepth {
				at := tk // the key, not its colon, opens a block mapping
				if tk.Type == token.MappingValueType && prev != nil {
					at = prev
				}
				return ix.problemAt(tokPos(at), "", ErrLimit,
					fmt.Sprintf("collections nest more than %d deep here: a config needs about 7 levels", MaxDepth))
			}
			for _, l := range levels {
				work += l.key + 8
			}
			if work > maxPathBytes {
				return ix.problemAt(tokPos(tk), "", ErrLimit,
					"too many values under long keys: each value is named by the keys above it, and these names add up past 64 MiB")
			}
			prev = tk
		}
	}
}

// checkRuns refuses, in one pass over the bytes, a file that nests far
// past MaxDepth: brackets open more than 16 times MaxDepth, counted as if
// no string held one, or a line with as many "- " in a row. No config
// comes near that, and the scanner that checkDepth uses costs a second or
// two on such a megabyte, which this spares.
func (ix *srcIndex) checkRuns(data []byte) *Problem {
	const far = 16 * MaxDepth
	open, dashes, line, col := 0, 0, 1, 0
	for i, c := range data {
		if c&0xC0 != 0x80 { // columns count runes, as the parser's do
			col++
		}
		switch c {
		case '[', '{':
			open++
		case ']', '}':
			open = max(0, open-1)
		case '-':
			if i+1 < len(data) && data[i+1] == ' ' && (i == 0 || data[i-1] == ' ' || data[i-1] == '\n') {
				dashes++
			}
		case ' ':
		case '\n':
			line, col, dashes = line+1, 0, 0
			continue
		default:
			dashes = 0
		}
		if open > far || dashes > far {
			return ix.problemAt(position{line, col}, "", ErrLimit,
				fmt.Sprintf("collections nest more than %d deep here (the limit is %d): a config needs about 7 levels", far, MaxDepth))
		}
	}
	return nil
}

// checkExpansion refuses a document whose aliases expand it past
// MaxExpanded, at the alias that crosses the limit. It counts, never
// expands: an anchor's size is known when its alias is met, so nested
// aliases (the "billion laughs") cost one pass over the nodes as written.
func (ix *srcIndex) checkExpansion(body ast.Node) *Problem {
	e := expansion{anchors: map[string]int{}}
	e.size(body, 0)
	if e.over == nil {
		return nil
	}
	name := ""
	if e.over.Value != nil && e.over.Value.GetToken() != nil {
		name = e.over.Value.GetToken().Value
	}
	return ix.problemAt(nodePos(e.over), "", ErrLimit,
		fmt.Sprintf("alias *%s expands the config past %d units (1 MiB as written): anchors may share a list, not multiply the file", name, MaxExpanded))
}

type expansion struct {
	anchors map[string]int // expanded size of each anchor, once it is complete
	total   int            // running size of the document, in file order
	over    *ast.AliasNode // the alias that crossed MaxExpanded
}

// size returns n's expanded size and adds what n itself writes to the
// running total; it stops counting once the limit is crossed.
func (e *expansion) size(n ast.Node, depth int) int {
	if n == nil || e.over != nil || depth > 4*MaxDepth {
		return 0
	}
	own := func(k int) int { e.total += k; return k }
	switch t := n.(type) {
	case *ast.AliasNode:
		k := 0
		if t.Value != nil && t.Value.GetToken() != nil {
			k = e.anchors[t.Value.GetToken().Value]
		}
		own(k)
		if e.total > MaxExpanded {
			e.over = t
		}
		return k
	case *ast.AnchorNode:
		k := own(1) + e.size(t.Value, depth+1)
		if t.Name != nil && t.Name.GetToken() != nil {
			e.anchors[t.Name.GetToken().Value] = k
		}
		return k
	case *ast.TagNode:
		return own(1) + e.size(t.Value, depth+1)
	case *ast.MappingNode:
		k := own(1)
		for _, mv := range t.Values {
			k += e.size(mv, depth+1)
		}
		return k
	case *ast.MappingValueNode:
		return e.size(t.Key, depth+1) + e.size(t.Value, depth+1)
	case *ast.SequenceNode:
		k := own(1)
		for _, v := range t.Values {
			k += e.size(v, depth+1)
		}
		return k
	}
	k := 1
	if lit, ok := n.(*ast.LiteralNode); ok && lit.Value != nil {
		k += len(lit.Value.Value)
	} else if tk := n.GetToken(); tk != nil {
		k += len(tk.Value)
	}
	return own(k)
}
