package borg

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// RepoConfig is what a repository's config file says about its identity
// and key, read without borg (no lock, no cache, no passphrase).
type RepoConfig struct {
	ID string
	// Key is the repokey blob (base64, whitespace removed); "" for a repo
	// without a key in its config: unencrypted, or keyfile mode.
	Key string
}

// ParseRepoConfig reads a repository's config file (INI, the key value
// continued on indented lines).
func ParseRepoConfig(data []byte) (RepoConfig, error) {
	if !IsRepoConfig(data) {
		return RepoConfig{}, fmt.Errorf("not a borg repository config (no [repository] section)")
	}
	var rc RepoConfig
	var cur *string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if cur != nil && (strings.HasPrefix(l, "\t") || strings.HasPrefix(l, " ")) {
			*cur += strings.TrimSpace(l)
			continue
		}
		cur = nil
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "id":
			rc.ID = strings.TrimSpace(v)
		case "key":
			rc.Key = strings.TrimSpace(v)
			cur = &rc.Key
		}
	}
	if rc.ID == "" {
		return rc, fmt.Errorf("borg repository config without an id")
	}
	return rc, sc.Err()
}

// KeyExport is a `borg key export` file (the plain format, not --paper
// or --qr-html): the repo id and the key blob.
type KeyExport struct {
	ID, Key string
}

// ParseKeyExport reads a plain key export ("BORG_KEY <id>" then the
// base64 blob over several lines).
func ParseKeyExport(data []byte) (KeyExport, error) {
	first, rest, _ := bytes.Cut(data, []byte("\n"))
	id, ok := strings.CutPrefix(strings.TrimSpace(string(first)), "BORG_KEY ")
	if !ok || id == "" {
		return KeyExport{}, fmt.Errorf("not a borg key export (it does not start with \"BORG_KEY <repo id>\"; a --paper or --qr-html export cannot be checked)")
	}
	return KeyExport{ID: strings.TrimSpace(id), Key: strings.Join(strings.Fields(string(rest)), "")}, nil
}

// Matches says why an export does not open the repo whose config is rc,
// "" when it does: same repo id and, for a repokey repo, the same key
// blob (a passphrase changed since the export re-encrypts the key, and an
// export from before it needs the old passphrase).
func (k KeyExport) Matches(rc RepoConfig) string {
	switch {
	case k.ID != rc.ID:
		return fmt.Sprintf("it is the key of repository %s, not of this one (%s)", short(k.ID), short(rc.ID))
	case rc.Key != "" && k.Key != rc.Key:
		return "its key differs from the one in the repository (the passphrase was changed after it was exported?)"
	}
	return ""
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12] + "…"
	}
	return id
}
