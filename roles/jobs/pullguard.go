package jobs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/borgkit/borgkit/provision/config"
	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/tools"
)

// The pull guard is the forced command of an archive host's pull key on the
// live server (`borgkit job pull-guard ARCHIVE`). syncoid sends its
// source-side commands as shell strings over SSH; the guard reads each from
// SSH_ORIGINAL_COMMAND, splits it into words without a shell, allows only
// what a pull of the archive's configured dataset runs, and execs that argv.
//
// The pull job runs syncoid with --no-sync-snap --no-resume --compress=none
// --no-privilege-elevation (see pullArgs), so on the source side syncoid
// (Debian 12's 2.1.0) runs only:
//
//	exit                                          the ControlMaster session
//	echo -n                                       its connection test
//	command -v mbuffer                            answered "absent": no source buffer
//	zfs get -H syncoid:sync DS                    whether the dataset opts out
//	zfs get -Hpd 1 -t snapshot guid,creation DS   the snapshots to match
//	zfs get -Hpd 1 type,guid,creation DS          the same, for older zfs
//	zfs get -Hpd 1 -t bookmark guid,creation DS   bookmarks, when no snapshot matches
//	zfs send -nvP [-I|-i FROM] DS@SNAP            the size estimate
//	zfs send [-I|-i FROM] DS@SNAP                 the stream
//
// No snapshot is created or destroyed (the live server snapshots itself,
// with sanoid), no resume token is sent, nothing is piped: the key can read
// the configured dataset's snapshots and nothing else.

// pullRequest is one allowed command: the zfs argv to run, or, for the
// probes syncoid makes around it, the exit status to answer without
// running anything.
type pullRequest struct {
	argv   []string // zfs arguments; nil for an answered probe
	answer string   // why the probe is answered instead (log, stderr)
	exit   int      // the probe's exit status
}

// ErrNotOffered answers `command -v PROGRAM`: the program is not offered
// through the pull key (so syncoid leaves mbuffer and compressors out of
// the source side).
var ErrNotOffered = errors.New("not offered through the pull key")

// errRefused marks a command the guard does not run.
var errRefused = errors.New("refused")

// pullChar reports the only characters syncoid's source commands for a
// valid dataset contain (names, options, its single quotes). Anything else
// (; | & $ ` \ < > ( ) globs, line breaks) is an attempt at a shell the
// guard does not have, and is refused before any parsing.
func pullChar(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune(" \t/@#:,._'\"-", r)
}

// snapNameRE is a snapshot or bookmark name: what sanoid and syncoid make
// (autosnap_2025-01-02_00:00:01_daily), no spaces, no paths.
var snapNameRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)

// parsePullCommand decides on one SSH_ORIGINAL_COMMAND for a pull of
// datasets. It never runs anything.
func parsePullCommand(original string, datasets []string) (pullRequest, error) {
	if original == "" {
		return pullRequest{}, fmt.Errorf("%w: no command: a shell is not offered through the pull key", errRefused)
	}
	if i := strings.IndexFunc(original, func(r rune) bool { return !pullChar(r) }); i >= 0 {
		c, _ := utf8.DecodeRuneInString(original[i:])
		return pullRequest{}, fmt.Errorf("%w: character %q is not allowed (no shell runs here)", errRefused, c)
	}
	w, err := shellWords(original)
	if err != nil {
		return pullRequest{}, fmt.Errorf("%w: %v", errRefused, err)
	}
	switch {
	case len(w) == 0:
		return pullRequest{}, fmt.Errorf("%w: no command: a shell is not offered through the pull key", errRefused)
	case slices.Equal(w, []string{"exit"}):
		return pullRequest{answer: "ssh master connection"}, nil
	case slices.Equal(w, []string{"echo", "-n"}):
		return pullRequest{answer: "connection test"}, nil
	case len(w) == 3 && w[0] == "command" && w[1] == "-v" && snapNameRE.MatchString(w[2]):
		return pullRequest{answer: w[2], exit: 1}, nil
	case len(w) >= 2 && w[0] == "zfs" && w[1] == "get":
		return zfsGet(w[2:], datasets)
	case len(w) >= 2 && w[0] == "zfs" && w[1] == "send":
		return zfsSend(w[2:], datasets)
	}
	return pullRequest{}, fmt.Errorf("%w: %q is not a command the pull needs (only zfs get and zfs send of %s)", errRefused, w[0], strings.Join(datasets, ", "))
}

// shellWords splits s as sh would split it into words when s has only
// blanks, words and '...' or "..." quoting (the caller has refused every
// other special character, so there is nothing to expand or escape).
func shellWords(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ', '\t':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		case '\'', '"':
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				return nil, fmt.Errorf("unterminated %c quote", c)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

// getopt reads a cluster of one-letter options the way zfs's getopt does:
// flags in noArg, letters in withArg take the rest of the word or the next
// word. It stops at the first word that is not an option and returns the
// remaining words; options must come first, so an option after the dataset
// (which glibc would permute into effect) is an extra operand and refused.
func getopt(args []string, noArg, withArg string, opt func(c byte, val string) error) ([]string, error) {
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		a := args[0]
		args = args[1:]
		if a == "-" || strings.HasPrefix(a, "--") {
			return nil, fmt.Errorf("%w: option %q is not allowed", errRefused, a)
		}
		for k := 1; k < len(a); k++ {
			c := a[k]
			switch {
			case strings.IndexByte(noArg, c) >= 0:
				if err := opt(c, ""); err != nil {
					return nil, err
				}
			case strings.IndexByte(withArg, c) >= 0:
				val := a[k+1:]
				if val == "" {
					if len(args) == 0 {
						return nil, fmt.Errorf("%w: option -%c needs a value", errRefused, c)
					}
					val, args = args[0], args[1:]
				}
				if err := opt(c, val); err != nil {
					return nil, err
				}
				k = len(a)
			default:
				return nil, fmt.Errorf("%w: option -%c is not allowed", errRefused, c)
			}
		}
	}
	return args, nil
}

// getProps are the properties syncoid reads on the source.
var getProps = []string{"syncoid:sync", "guid", "creation", "createtxg", "type"}

// getTypes are the dataset types its snapshot and bookmark listings name.
var getTypes = []string{"snapshot", "bookmark", "filesystem", "volume"}

// zfsGet allows a read of syncoid's properties of one configured dataset,
// itself or one level of its snapshots or bookmarks (-d 1).
func zfsGet(args []string, datasets []string) (pullRequest, error) {
	ops, err := getopt(args, "Hp", "dt", func(c byte, val string) error {
		switch c {
		case 'd':
			if val != "1" {
				return fmt.Errorf("%w: zfs get -d %q: only depth 1 (the dataset's own snapshots)", errRefused, val)
			}
		case 't':
			for _, t := range strings.Split(val, ",") {
				if !slices.Contains(getTypes, t) {
					return fmt.Errorf("%w: zfs get -t %q is not allowed", errRefused, t)
				}
			}
		}
		return nil
	})
	if err != nil {
		return pullRequest{}, err
	}
	if len(ops) != 2 {
		return pullRequest{}, fmt.Errorf("%w: zfs get takes one property list and one dataset here, got %q", errRefused, ops)
	}
	for _, p := range strings.Split(ops[0], ",") {
		if !slices.Contains(getProps, p) {
			return pullRequest{}, fmt.Errorf("%w: zfs get of property %q is not allowed", errRefused, p)
		}
	}
	if !slices.Contains(datasets, ops[1]) {
		return pullRequest{}, fmt.Errorf("%w: dataset %q is not the pulled dataset (%s)", errRefused, ops[1], strings.Join(datasets, ", "))
	}
	return pullRequest{argv: append([]string{"get"}, args...)}, nil
}

// zfsSend allows a full or incremental stream (or its -nvP estimate) of a
// snapshot of one configured dataset, from a snapshot or bookmark of the
// same dataset. No -R (children, properties), -p, -w, -c, -t (resume
// token), -o, nor any other option.
func zfsSend(args []string, datasets []string) (pullRequest, error) {
	var from string
	ops, err := getopt(args, "nvP", "iI", func(c byte, val string) error {
		if c == 'i' || c == 'I' {
			if from != "" {
				return fmt.Errorf("%w: zfs send takes one incremental source", errRefused)
			}
			from = val
		}
		return nil
	})
	if err != nil {
		return pullRequest{}, err
	}
	if len(ops) != 1 {
		return pullRequest{}, fmt.Errorf("%w: zfs send takes one snapshot here, got %q", errRefused, ops)
	}
	ds, err := snapshotOf(ops[0], "@", datasets)
	if err != nil {
		return pullRequest{}, err
	}
	if from != "" {
		sep := "@"
		if strings.Contains(from, "#") {
			sep = "#"
		}
		fds, err := snapshotOf(from, sep, datasets)
		if err != nil {
			return pullRequest{}, err
		}
		if fds != ds {
			return pullRequest{}, fmt.Errorf("%w: incremental source %q is not of %s", errRefused, from, ds)
		}
	}
	return pullRequest{argv: append([]string{"send"}, args...)}, nil
}

// snapshotOf checks that s is DATASET<sep>NAME with DATASET one of
// datasets, and returns the dataset.
func snapshotOf(s, sep string, datasets []string) (string, error) {
	ds, name, ok := strings.Cut(s, sep)
	if !ok || strings.ContainsAny(name, "@#") {
		return "", fmt.Errorf("%w: %q is not a snapshot (DATASET%sNAME)", errRefused, s, sep)
	}
	if !slices.Contains(datasets, ds) {
		return "", fmt.Errorf("%w: dataset %q is not the pulled dataset (%s)", errRefused, ds, strings.Join(datasets, ", "))
	}
	if name == "." || name == ".." || !snapNameRE.MatchString(name) {
		return "", fmt.Errorf("%w: snapshot name %q is not allowed", errRefused, name)
	}
	return ds, nil
}

// PullGuard serves one SSH session of an archive host's pull key.
type PullGuard struct {
	Cfg *config.Config
	// Self is this host's config name: the live server.
	Self string
	// Log receives one line per decision: the session's client, the
	// command as sent (quoted, so it cannot forge lines) and the verdict.
	Log io.Writer
	Now func() time.Time
	// Exec replaces this process with argv (ExecProgram in real runs), so
	// zfs send streams straight into the SSH channel.
	Exec func(argv []string) error
}

// Serve decides on command, the SSH_ORIGINAL_COMMAND of a session of
// archive's pull key from client (SSH_CLIENT), and runs it or refuses it.
// archive comes from authorized_keys, never from the client; it must still
// be an archive host pulling from this one.
func (g *PullGuard) Serve(archive, command, client string) error {
	r, err := g.decide(archive, command)
	if err != nil {
		g.logf(archive, client, command, "REFUSED: %v", err)
		return fmt.Errorf("pull-guard %s: %q %w", archive, command, err)
	}
	if r.argv == nil {
		g.logf(archive, client, command, "answered (%s)", r.answer)
		if r.exit != 0 {
			return fmt.Errorf("pull-guard %s: %s: %w", archive, r.answer, ErrNotOffered)
		}
		return nil
	}
	c := host.Command(tools.Zfs, r.argv...)
	g.logf(archive, client, command, "allowed: %s", c)
	if err := g.Exec(c.Argv); err != nil {
		return fmt.Errorf("pull-guard %s: %s: %w", archive, c, err)
	}
	return nil
}

func (g *PullGuard) decide(archive, command string) (pullRequest, error) {
	datasets, err := g.datasets(archive)
	if err != nil {
		return pullRequest{}, err
	}
	return parsePullCommand(command, datasets)
}

func (g *PullGuard) datasets(archive string) ([]string, error) {
	a, ok := g.Cfg.Host(archive)
	if ok && a.Role == config.RoleArchive {
		if s, ok := g.Cfg.PullServer(a); ok && s.Name == g.Self {
			return []string{a.Pull.Source}, nil
		}
	}
	return nil, fmt.Errorf("%w: %s is not an archive host pulling from %s in %s", errRefused, archive, g.Self, g.Cfg.File)
}

func (g *PullGuard) logf(archive, client, command, format string, args ...any) {
	if g.Log == nil {
		return
	}
	now := time.Now
	if g.Now != nil {
		now = g.Now
	}
	from, _, _ := strings.Cut(client, " ")
	fmt.Fprintf(g.Log, "%s pull-guard %s from %s: %q %s\n", now().Format(time.RFC3339), archive, from, command, fmt.Sprintf(format, args...))
}

// ExecProgram replaces this process with argv[0], found on PATH (sshd sets
// it for the session; the client cannot), keeping the environment.
func ExecProgram(argv []string) error {
	p, err := exec.LookPath(argv[0])
	if err != nil {
		return err
	}
	return syscall.Exec(p, argv, os.Environ())
}
