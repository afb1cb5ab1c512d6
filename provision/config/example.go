package config

import (
	_ "embed"
	"slices"
)

//go:embed example.yaml
var example []byte

// Example is the commented example config "borgkit config example" prints:
// the first seed's server and offsite Pi, and the second seed's archive.
// It is a fresh copy on every call.
func Example() []byte { return slices.Clone(example) }
