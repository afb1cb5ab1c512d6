package config

import "strings"

// pathTree is a set of absolute paths kept as a tree of their components,
// so "which of these is p under" and "is any of these under d" cost one
// walk down p or d, however many paths the set holds. The checks between
// repos, sources, excludes, disks and mirrors ask these questions for every
// pair of entries; a loop over pairs made validation quadratic in the file.
type pathTree struct{ root pathNode }

type pathNode struct {
	name  string
	kids  map[string]*pathNode
	order []*pathNode // kids in insertion order: answers do not depend on map order
	// member is 1+ the index of the first path added that ends here, 0 if none.
	member int
	// first is 1+ the smallest index added at or below this node.
	first int
	// all and below mark an exclude: it covers this node and everything
	// under it (all), or only what is under it (below).
	all, below bool
}

// components splits a clean absolute path: "/" has none.
func components(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// add puts p, the i-th path of its list, into the tree and returns its node.
func (t *pathTree) add(p string, i int) *pathNode {
	n := &t.root
	n.seen(i)
	for _, c := range components(p) {
		k := n.kids[c]
		if k == nil {
			if n.kids == nil {
				n.kids = map[string]*pathNode{}
			}
			k = &pathNode{name: c}
			n.kids[c] = k
			n.order = append(n.order, k)
		}
		k.seen(i)
		n = k
	}
	if n.member == 0 {
		n.member = i + 1
	}
	return n
}

func (n *pathNode) seen(i int) {
	if n.first == 0 || i+1 < n.first {
		n.first = i + 1
	}
}

// find is p's node, or nil when no path at or under p was added.
func (t *pathTree) find(p string) *pathNode {
	n := &t.root
	for _, c := range components(p) {
		if n = n.kids[c]; n == nil {
			return nil
		}
	}
	return n
}

// ancestor is the index of the deepest path added that p is under (p itself
// counts when self is true), or -1.
func (t *pathTree) ancestor(p string, self bool) int {
	n, best := &t.root, -1
	cs := components(p)
	for i := 0; ; i++ {
		if n.member > 0 && (self || i < len(cs)) {
			best = n.member - 1
		}
		if i == len(cs) {
			return best
		}
		if n = n.kids[cs[i]]; n == nil {
			return best
		}
	}
}

// firstUnder is the smallest index added at or under d, or -1.
func (t *pathTree) firstUnder(d string) int {
	if n := t.find(d); n != nil {
		return n.first - 1
	}
	return -1
}

// uncovered looks for a path added under d that the exclude tree x does
// not cover, and returns its index, or -1. It walks only where x has
// excludes: a subtree x says nothing about is uncovered as a whole.
func (t *pathTree) uncovered(d string, x *pathTree) int {
	n, e := &t.root, &x.root
	cs := components(d)
	for _, c := range cs {
		if e != nil && (e.all || e.below) {
			return -1
		}
		if n = n.kids[c]; n == nil {
			return -1
		}
		if e != nil {
			e = e.kids[c]
		}
	}
	if e != nil && e.all {
		return -1
	}
	return n.uncoveredBelow(e)
}

func (n *pathNode) uncoveredBelow(e *pathNode) int {
	if e == nil {
		return n.first - 1
	}
	if e.all {
		return -1
	}
	if n.member > 0 {
		return n.member - 1
	}
	if e.below {
		return -1
	}
	// Each kid either has excludes under it (at most len(e.kids) of them)
	// or is uncovered whole: the walk is bounded by the excludes.
	for _, k := range n.order {
		if i := k.uncoveredBelow(e.kids[k.name]); i >= 0 {
			return i
		}
	}
	return -1
}
