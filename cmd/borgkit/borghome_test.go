package main

import (
	"testing"

	"github.com/borgkit/borgkit/testing/borghome"
)

// The tests run borg for real; its state stays out of the real home.
func TestMain(m *testing.M) { borghome.Main(m) }
