package progress

import (
	"bytes"
	"sync"
	"testing"
)

func TestLine(t *testing.T) {
	var b bytes.Buffer
	p := New(&b, false)
	p.Status("phase %d", 1)
	p.Tick("file %d/%d", 1, 2)
	p.Done()
	if b.String() != "phase 1\n" {
		t.Errorf("log progress %q", b.String())
	}
	b.Reset()
	p = New(&b, true)
	p.Status("a")
	p.Tick("b")
	p.Done()
	p.Done()
	if b.String() != "\r\033[Ka\r\033[Kb\r\033[K" {
		t.Errorf("tty progress %q", b.String())
	}
	var nilp *Line
	nilp.Status("x") // no writer, no panic
	nilp.Done()
	if w := nilp.Writer(&b); w != &b {
		t.Error("a nil line wraps its writer")
	}
}

// TestWriterClearsTheLine: output through the line's writer never lands
// inside the redrawn line, also from many goroutines at once.
func TestWriterClearsTheLine(t *testing.T) {
	var b bytes.Buffer
	p := New(&b, true)
	log := p.Writer(&b)
	p.Status("checking 1/3")
	log.Write([]byte("borg said something\n"))
	if b.String() != "\r\033[Kchecking 1/3\r\033[Kborg said something\n" {
		t.Fatalf("%q", b.String())
	}
	b.Reset()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				p.Tick("x")
				log.Write([]byte("line\n"))
			}
		}()
	}
	wg.Wait()
	if n := bytes.Count(b.Bytes(), []byte("line\n")); n != 800 {
		t.Fatalf("%d whole lines of 800", n)
	}
}
