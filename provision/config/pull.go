package config

// PullServer is the server host an archive host's pull: names, when
// pull.host is the name of a host in this file rather than an address.
// Only then does borgkit provision the live server's side of the pull: the
// archive's key, restricted to `borgkit job pull-guard`.
func (c *Config) PullServer(h *Host) (*Host, bool) {
	if h == nil || h.Pull == nil {
		return nil, false
	}
	s, ok := c.Host(h.Pull.Host)
	if !ok || s == h {
		return nil, false
	}
	return s, true
}

// Pullers are the archive hosts whose pull: names server s, in file order.
func (c *Config) Pullers(s *Host) []*Host {
	var out []*Host
	for _, a := range c.HostsByRole(RoleArchive) {
		if srv, ok := c.PullServer(a); ok && srv == s {
			out = append(out, a)
		}
	}
	return out
}

// PullAddress is what syncoid connects to: the named server's address, or
// pull.host itself.
func (c *Config) PullAddress(h *Host) string {
	if s, ok := c.PullServer(h); ok {
		return s.Address
	}
	if h == nil || h.Pull == nil {
		return ""
	}
	return h.Pull.Host
}

// PullPort is the live server's SSH port (22 unless a named server sets
// its own).
func (c *Config) PullPort(h *Host) int {
	if s, ok := c.PullServer(h); ok {
		return s.SSH.PortOrDefault()
	}
	return DefaultSSHPort
}
