package luks2

import (
	"fmt"
	"math"
	"syscall"
	"unsafe"
)

// argon2Memory is the KDF's working memory, mapped outside the Go heap:
// it is asked to use transparent huge pages (512 times fewer page faults,
// and the random reference blocks stop missing the TLB), the GC never
// scans or holds it, and it goes back to the system the moment the KDF
// ends, wiped by the unmap.
type argon2Memory struct {
	raw    []byte
	blocks []argon2Block
}

func newArgon2Memory(n int) (*argon2Memory, error) {
	blockSize := int(unsafe.Sizeof(argon2Block{}))
	if n > math.MaxInt/blockSize {
		return nil, fmt.Errorf("%w: %d KiB of KDF memory does not fit this machine's address space", ErrUnsupported, n)
	}
	size := n * blockSize
	raw, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("%w: mapping %d MiB of KDF memory: %w", ErrUnsupported, size>>20, err)
	}
	// Advice only: without THP the memory works the same, just slower.
	_ = syscall.Madvise(raw, syscall.MADV_HUGEPAGE)
	return &argon2Memory{raw: raw, blocks: unsafe.Slice((*argon2Block)(unsafe.Pointer(&raw[0])), n)}, nil
}

func (m *argon2Memory) free() {
	m.blocks = nil
	_ = syscall.Munmap(m.raw)
	m.raw = nil
}
