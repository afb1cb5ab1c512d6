package config

import (
	"fmt"
	"regexp"
	"strings"
)

// Guests: libvirt domains and systemd-nspawn machines. A guest's name ends
// up in a virsh or machine path argument, a file name (NAME.xml, NAME.raw,
// NAME.nspawn), a borg archive name and a --glob-archives pattern, so it is
// held to the narrowest of those grammars.

// maxGuestName keeps NAME.nspawn and NAME.xml within a file name's 255
// bytes and machinectl's 64-character host name limit.
const maxGuestName = 64

var (
	// vmNameRE is the part of libvirt's domain names (anything but '/' and
	// a line break) that borg's archive names and glob patterns also take:
	// no ':' (the guest archive separator), no glob metacharacters.
	vmNameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._+-]*$`)
	// machineLabelRE is one dot-separated label of a machine name, as
	// systemd's hostname_is_valid takes it.
	machineLabelRE = regexp.MustCompile(`^[A-Za-z0-9-]+$`)
	uuidRE         = regexp.MustCompile(`^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$`)
	digitsRE       = regexp.MustCompile(`^[0-9]+$`)
)

// vmName says what is wrong with a VM name, "" when nothing.
func vmName(s string) string {
	switch {
	case s == "":
		return "is empty"
	case len(s) > maxGuestName:
		return fmt.Sprintf("is longer than %d characters", maxGuestName)
	case !vmNameRE.MatchString(s):
		return "must be letters, digits and . _ + -, starting with a letter, digit or '_' (it names a file, a virsh argument and borg archives)"
	case digitsRE.MatchString(s):
		return "is all digits: virsh would take it for a domain ID"
	case uuidRE.MatchString(s):
		return "looks like a UUID: virsh would take it for a domain UUID"
	}
	return ""
}

// machineName says what is wrong with an nspawn machine name, "" when
// nothing: systemd's host name grammar (dot-separated labels of letters,
// digits and '-'), without a leading '-' (an argv option) and not .host.
func machineName(s string) string {
	switch {
	case s == "":
		return "is empty"
	case len(s) > maxGuestName:
		return fmt.Sprintf("is longer than %d characters", maxGuestName)
	case strings.HasPrefix(s, "-"):
		return "starts with '-'"
	}
	for _, l := range strings.Split(s, ".") {
		if !machineLabelRE.MatchString(l) {
			return "must be dot-separated labels of letters, digits and '-' (systemd's machine name grammar)"
		}
	}
	return ""
}

// guests checks each repo's VMs and containers: their names, each guest
// backed up by one repo only, and a repo prefix that would take the
// guests' archives for its own at prune time.
func (v *validator) guests(p string, h *Host) {
	kinds := []struct {
		field, what string
		check       func(string) string
		seen        map[string]string
		names       func(r *Repo) []string
	}{
		{"vms", "VM", vmName, map[string]string{}, func(r *Repo) []string { return r.VMs }},
		{"containers", "container", machineName, map[string]string{}, func(r *Repo) []string { return r.Containers }},
	}
	for j := range h.Repos {
		r := &h.Repos[j]
		rp := fmt.Sprintf("%s.repos[%d]", p, j)
		for _, kind := range kinds {
			for k, n := range kind.names(r) {
				at := fmt.Sprintf("%s.%s[%d]", rp, kind.field, k)
				if why := kind.check(n); why != "" {
					v.add(at, ErrBadName, "%s name %q %s", kind.what, n, why)
					continue
				}
				v.unique(kind.seen, at, kind.what, n)
			}
		}
		prefix := r.ArchivePrefixOrDefault()
		for _, g := range r.Guests() {
			if gp := g.ArchivePrefix(); strings.HasPrefix(gp, prefix) {
				v.add(rp+".archive_prefix", ErrBadValue, "archive_prefix %q matches the archives of %s %s (%s...): prune of the repo's own archives would count them", prefix, g.Kind, g.Name, gp)
				break
			}
		}
	}
}
