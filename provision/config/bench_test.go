package config

import (
	"fmt"
	"strings"
	"testing"
)

// manyRepos is a server with n repos that share one anchored list of
// sources and one of excludes, k entries each: every source contains every
// repo, and no exclude covers one, so the repo-inside-a-source check has
// the most to do. The file grows linearly in n.
func manyRepos(n, k int) []byte {
	var b strings.Builder
	b.WriteString(withHeader(
		"  - name: srv",
		"    role: server",
		"    address: 100.64.0.1",
		"    disks: [{name: usb, uuid: 3f9c2d4e-8b1a-4c6f-9e2d-7a5b1c3d9e0f, mountpoint: /mnt/backup, backup: true}]",
		"    repos:",
	))
	src := strings.Repeat("/mnt, ", k-1) + "/mnt"
	var ex []string
	for i := range k {
		ex = append(ex, fmt.Sprintf("/mnt/backup/r%d/x", i))
	}
	fmt.Fprintf(&b, "      - {name: r0, path: /mnt/backup/r0, sources: &src [%s], excludes: &ex [%s, /mnt/backup/]}\n", src, strings.Join(ex, ", "))
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "      - {name: r%d, path: /mnt/backup/r%d, sources: *src, excludes: *ex}\n", i, i)
	}
	return []byte(b.String())
}

// BenchmarkParseRepos parses sites of 100, 400 and 1000 repos; ns/repo
// must stay flat across the sizes (it grew 10x from 100 to 400 repos
// while the check compared every source with every repo and exclude).
func BenchmarkParseRepos(b *testing.B) {
	for _, n := range []int{100, 400, 1000} {
		data := manyRepos(n, 20)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := Parse("bench.yaml", data); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/repo")
		})
	}
}
