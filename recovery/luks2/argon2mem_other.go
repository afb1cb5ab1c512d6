//go:build !linux

package luks2

// argon2Memory is plain heap memory where mmap hints are not available.
type argon2Memory struct {
	blocks []argon2Block
}

func newArgon2Memory(n int) (*argon2Memory, error) {
	return &argon2Memory{blocks: make([]argon2Block, n)}, nil
}

func (m *argon2Memory) free() {
	clear(m.blocks)
	m.blocks = nil
}
