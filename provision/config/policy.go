package config

import (
	"time"
)

// The rolling audit, the borg timeouts and the suspicious-night check:
// their defaults and their validation.

// Defaults of the audit and of the suspicious-night check.
const (
	DefaultAuditCoverDays  = 30
	DefaultAuditVerifyDays = 30
	DefaultDropPercent     = 50
	DefaultNewFactor       = 10
	DefaultNewPercent      = 25
	DefaultSuspectNights   = 14
	DefaultSuspectMin      = 5
)

// CoverDaysOrDefault is the audit's cover period in days.
func (a *Audit) CoverDaysOrDefault() int {
	if a == nil || a.CoverDays <= 0 {
		return DefaultAuditCoverDays
	}
	return a.CoverDays
}

// VerifyDaysOrDefault is the rolling --verify-data period in days.
func (a *Audit) VerifyDaysOrDefault() int {
	if a == nil || a.VerifyDays <= 0 {
		return DefaultAuditVerifyDays
	}
	return a.VerifyDays
}

// Borg operations a timeout applies to.
const (
	OpCreate  = "create"
	OpPrune   = "prune"
	OpCompact = "compact"
	OpCheck   = "check"
	OpVerify  = "verify"
	OpList    = "list"
	OpExtract = "extract"
)

var defaultTimeouts = map[string]time.Duration{
	OpCreate:  20 * time.Hour,
	OpPrune:   time.Hour,
	OpCompact: 4 * time.Hour,
	OpCheck:   12 * time.Hour,
	OpVerify:  48 * time.Hour,
	OpList:    15 * time.Minute,
	OpExtract: 2 * time.Hour,
}

func (t *Timeouts) field(op string) string {
	if t == nil {
		return ""
	}
	switch op {
	case OpCreate:
		return t.Create
	case OpPrune:
		return t.Prune
	case OpCompact:
		return t.Compact
	case OpCheck:
		return t.Check
	case OpVerify:
		return t.Verify
	case OpList:
		return t.List
	case OpExtract:
		return t.Extract
	}
	return ""
}

// BorgTimeout bounds one borg run of kind op on h for repo r (nil for
// none): the repo's own timeout for its create, else the host's, else the
// default.
func (h *Host) BorgTimeout(op string, r *Repo) time.Duration {
	if op == OpCreate && r != nil {
		if d := r.TimeoutDuration(); d > 0 {
			return d
		}
	}
	def, ok := defaultTimeouts[op]
	if !ok {
		def = 24 * time.Hour // a kind of run the table does not name yet
	}
	return durationOr(h.Timeouts.field(op), def)
}

// MaxParallel bounds nightly.parallel and per_disk: each repo at once is a
// borg process of its own, with its memory and its cache.
const MaxParallel = 32

// NightlyWindow is how many repos h's nightly backs up at once: at most
// total (0: no bound but the disks') and at most perDisk on one disk.
func (h *Host) NightlyWindow() (total, perDisk int) {
	perDisk = 1
	if n := h.Nightly; n != nil {
		total = n.Parallel
		switch {
		case n.PerDisk > 0:
			perDisk = n.PerDisk
		case n.Parallel > 0:
			perDisk = n.Parallel
		}
	}
	return total, perDisk
}

// SuspiciousOrDefault is the suspicious-night check with its defaults.
func (t Thresholds) SuspiciousOrDefault() Suspicious {
	s := Suspicious{}
	if t.Suspicious != nil {
		s = *t.Suspicious
	}
	if s.DropPercent == 0 {
		s.DropPercent = DefaultDropPercent
	}
	if s.NewFactor == 0 {
		s.NewFactor = DefaultNewFactor
	}
	if s.NewPercent == 0 {
		s.NewPercent = DefaultNewPercent
	}
	if s.Nights == 0 {
		s.Nights = DefaultSuspectNights
	}
	if s.MinNights == 0 {
		s.MinNights = DefaultSuspectMin
	}
	return s
}

func (v *validator) policy(p string, h *Host) {
	if h.Role == RoleOffsite {
		// The Pi runs no borg and audits nothing: its server does.
		if h.Audit != nil {
			v.add(p+".audit", ErrRoleMismatch, "an offsite host's copy is audited by its server: audit belongs on the server")
		}
		if h.Timeouts != nil {
			v.add(p+".timeouts", ErrRoleMismatch, "an offsite host runs no borg: timeouts belong on a server or archive host")
		}
		if h.Nightly != nil {
			v.add(p+".nightly", ErrRoleMismatch, "an offsite host runs no nightly backup: nightly belongs on a server or archive host")
		}
	}
	if n := h.Nightly; n != nil {
		v.intRange(p+".nightly.parallel", "parallel", n.Parallel, 1, MaxParallel)
		v.intRange(p+".nightly.per_disk", "per_disk", n.PerDisk, 1, MaxParallel)
		if n.Parallel > 0 && n.PerDisk > n.Parallel {
			v.add(p+".nightly.per_disk", ErrBadValue, "per_disk %d is more than parallel %d", n.PerDisk, n.Parallel)
		}
	}
	if a := h.Audit; a != nil {
		v.intRange(p+".audit.cover_days", "cover_days", a.CoverDays, 1, 366)
		v.intRange(p+".audit.verify_days", "verify_days", a.VerifyDays, 1, 366)
	}
	if t := h.Timeouts; t != nil {
		for _, op := range []string{OpCreate, OpPrune, OpCompact, OpCheck, OpVerify, OpList, OpExtract} {
			v.duration(p+".timeouts."+op, op, t.field(op))
		}
	}
	if s := h.Thresholds.Suspicious; s != nil {
		sp := p + ".thresholds.suspicious"
		v.intRange(sp+".drop_percent", "drop_percent", s.DropPercent, 1, 99)
		v.intRange(sp+".new_factor", "new_factor", s.NewFactor, 1, 1000)
		v.intRange(sp+".new_percent", "new_percent", s.NewPercent, 1, 100)
		v.intRange(sp+".nights", "nights", s.Nights, 3, 366)
		v.intRange(sp+".min_nights", "min_nights", s.MinNights, 1, 366)
		if s.Nights != 0 && s.MinNights > s.Nights {
			v.add(sp+".min_nights", ErrBadValue, "min_nights %d is more than nights %d", s.MinNights, s.Nights)
		}
	}
}

// intRange checks a number that is optional (0: the default) but, when
// written, within lo..hi.
func (v *validator) intRange(path, what string, n, lo, hi int) {
	if n == 0 && !v.present(path) {
		return
	}
	if n < lo || n > hi {
		v.add(path, ErrBadValue, "%s %d is out of range %d..%d", what, n, lo, hi)
	}
}
