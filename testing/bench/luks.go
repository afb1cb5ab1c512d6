package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
)

// luksRows is item 5: the recovery bundle's pure-Go LUKS2 key check
// against cryptsetup open --test-passphrase, on the same header backup
// and keyfile, for time and peak memory. The header uses argon2id with
// cryptsetup's memory cost for a real disk (256 MiB) and a fixed time cost
// of 4, so the work does not hang on cryptsetup's CPU benchmark.
func luksRows(ctx context.Context, s *Site, runs int) ([]Row, error) {
	dir := s.path("luks")
	img, key, hdr := s.path("luks", "disk.img"), s.path("luks", "disk.key"), s.path("luks", "header.img")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	k := make([]byte, 64)
	rand.Read(k)
	if err := os.WriteFile(key, k, 0o400); err != nil {
		return nil, err
	}
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		return nil, err
	}
	if err := os.Truncate(img, 32<<20); err != nil {
		return nil, err
	}
	for _, argv := range [][]string{
		{"cryptsetup", "luksFormat", "--type", "luks2", "--pbkdf", "argon2id", "--pbkdf-memory", "262144",
			"--pbkdf-force-iterations", "4", "--batch-mode", "--key-file", key, img},
		{"cryptsetup", "luksHeaderBackup", img, "--header-backup-file", hdr},
	} {
		if _, err := (Cmd{Argv: argv}).Run(ctx); err != nil {
			return nil, fmt.Errorf("LUKS2 fixture: %w", err)
		}
	}
	kit := s.borgkit("recovery-bundle", "check-key", "--header", hdr, "--key-file", key)
	cs := Cmd{Argv: []string{"cryptsetup", "open", "--test-passphrase", "--key-file", key, "--header", hdr, hdr}}
	kr, cr, err := pairs(ctx, runs,
		func(ctx context.Context) (Result, error) { return kit.RunPeak(ctx, dir) },
		func(ctx context.Context) (Result, error) { return cs.RunPeak(ctx, dir) })
	if err != nil {
		return nil, fmt.Errorf("LUKS2 key check: %w", err)
	}
	kt, ct := seconds(kr), seconds(cr)
	km, cm := peaks(kr), peaks(cr)
	// Issue 19's goals: no slower than cryptsetup, and about its memory
	// (the Argon2 memory itself, plus a Go runtime's few MiB).
	return []Row{
		{Item: "5", What: "LUKS2 key check, time: `borgkit recovery-bundle check-key` (Go) / `cryptsetup open --test-passphrase`",
			Kit: Seconds(Summarize(kt).Median), Peer: Seconds(Summarize(ct).Median), Ratio: Summarize(Ratios(kt, ct)), Goal: Goal{"<=", 1.0}},
		{Item: "5", What: "LUKS2 key check, peak memory (RSS): Go / cryptsetup",
			Kit: Bytes(Summarize(km).Median), Peer: Bytes(Summarize(cm).Median), Ratio: Summarize(Ratios(km, cm)),
			Goal: Goal{"<=", 1.05}, GoalText: "≈ 1 (≤ 1.05)"},
	}, nil
}
