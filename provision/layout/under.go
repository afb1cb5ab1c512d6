package layout

import (
	"path"
	"strings"
)

// Under reports whether p is dir or inside it, comparing cleaned absolute
// paths component by component ("/mnt/backup2" is not under "/mnt/backup").
func Under(p, dir string) bool {
	p, dir = path.Clean(p), path.Clean(dir)
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

// Mountpoint is the entry of mounts that p lives on: the longest one it is
// under, "" when none is.
func Mountpoint(p string, mounts []string) string {
	best := ""
	for _, m := range mounts {
		if m != "" && Under(p, m) && len(path.Clean(m)) > len(best) {
			best = path.Clean(m)
		}
	}
	return best
}

// UnderDataset reports whether ZFS dataset ds is parent or below it
// ("tank/a/b" is under "tank/a"; "tank/ab" is not).
func UnderDataset(ds, parent string) bool {
	return ds == parent || strings.HasPrefix(ds, parent+"/")
}
