package host

import (
	"archive/tar"
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/borgkit/borgkit/provision/tools"
)

// Want names a path a plan's checks will look at.
type Want struct {
	Path string
	// Content asks for a regular file's content too (its SHA-256, from
	// DigestAbove bytes on), not only its metadata. A secret's check wants
	// only its metadata: its content never needs to cross the link.
	Content bool
	// List asks for a directory's entries too, as ReadDir gives them; an
	// Lstat of a path in the directory is then answered from them, so a
	// path it lacks costs nothing either (a program looked up in a bin
	// directory). With Content too, each entry that is a regular file
	// below DigestAbove bytes, or a symlink to one, comes with its
	// content: the files of a directory whose names are known only once
	// it is listed (cron.d, the systemd units).
	List bool
	// Run, when set, is instead a program the check runs that only reads
	// (mountpoint -q, findmnt, dpkg-query): the survey runs it too, in
	// its own program, and a Run of exactly this argv (no stdin, env or
	// directory) is answered with what it printed and its exit status.
	// Path, Content and List are then unused. Never a program that changes
	// anything: the survey runs it whether or not the check would.
	Run []string
	// Guard, with Run, is the SHA-256 (lowercase hex) the program Run[0]
	// must have for the survey to run it: a file borgkit installed, which
	// the check runs only once its content is known to be borgkit's own
	// (a program of someone else's at that path is never run). Otherwise
	// the survey leaves it out, and the check's Run goes to the host.
	Guard string
}

// DigestAbove is the size from which Survey returns a regular file's
// SHA-256 instead of its content: a large file is recognised by its digest
// (the 12 MB borgkit binary), and only read when it differs.
const DigestAbove = 1 << 20

// Survey returns a view of h in which Lstat, ReadFile and Digest of the
// wanted paths are answered from what one exchange with the host found;
// every other call, and every path not wanted, goes to h. Over SSH that
// turns a plan's checks, dozens of SFTP requests each waiting for the one
// before, into a single remote program. A host where that gains nothing
// (this machine, a tree under --root) is returned as it is.
//
// The view is for checks, which change nothing: a file operation through
// it that changes the host empties it, so a later read is not stale.
func Survey(ctx context.Context, h Host, wants []Want) (Host, error) {
	if p, ok := h.(*prefetched); ok {
		return p.survey(ctx, wants)
	}
	if len(wants) == 0 || !surveys(h) {
		return h, nil
	}
	// One entry a path, wanting its content if any step does.
	var batch []Want
	at := map[string]int{}
	for _, w := range wants {
		if len(w.Run) > 0 {
			k := runKey(w.Run)
			if i, ok := at[k]; ok {
				// Guarded if any asker guards it.
				batch[i].Guard = cmp.Or(batch[i].Guard, w.Guard)
				continue
			}
			at[k] = len(batch)
			batch = append(batch, Want{Run: w.Run, Guard: w.Guard})
			continue
		}
		if !path.IsAbs(w.Path) {
			continue // the host refuses it with its own error
		}
		w.Path = path.Clean(w.Path)
		if i, ok := at[w.Path]; ok {
			batch[i].Content = batch[i].Content || w.Content
			batch[i].List = batch[i].List || w.List
			continue
		}
		at[w.Path] = len(batch)
		batch = append(batch, w)
	}
	found := make(map[string]*surveyed, len(batch))
	ran := map[string]Result{}
	// A few hundred paths a program keep its argv far below ARG_MAX.
	for len(batch) > 0 {
		n := min(len(batch), surveyBatch)
		got, results, err := survey(ctx, h, batch[:n])
		if err != nil {
			return h, fmt.Errorf("survey %d paths on %s: %w", n, h.Name(), err)
		}
		for p, s := range got {
			found[p] = s
		}
		for k, r := range results {
			ran[k] = r
		}
		batch = batch[n:]
	}
	return newSurveyView(h, found, ran), nil
}

// runKey is the key of a program's argv among the survey's results.
func runKey(argv []string) string { return "\x00run\x00" + strings.Join(argv, "\x00") }

// queryLine renders a Want's program for `sh -c` in the survey: the words
// quoted as Run quotes them, the survey's LC_ALL taken away again. A
// guarded program whose file has another digest is "not found" (127),
// which the survey's answers leave out.
func queryLine(w Want) string {
	var b strings.Builder
	if w.Guard != "" {
		// The survey's own digest of the file when it took one (the file
		// is wanted, and large), else one taken here.
		b.WriteString(`case "$BORGKIT_SUMS" in *` + shellQuote("\n"+w.Guard+" *"+w.Run[0]+"\n") + `*) ;; ` +
			`*) [ "$(sha256sum -b <` + shellQuote(w.Run[0]) + ` 2>/dev/null)" = ` + shellQuote(w.Guard+" *-") + " ] || exit 127;; esac; ")
	}
	b.WriteString("unset LC_ALL BORGKIT_SUMS; exec")
	for _, a := range w.Run {
		b.WriteString(" " + shellQuote(a))
	}
	return b.String()
}

const surveyBatch = 256

// Unwrapper is a Host that adds to another (Logged); Survey looks through
// it for what the innermost host is.
type Unwrapper interface{ Unwrap() Host }

// surveys reports whether h is reached over a link where one program
// beats many requests.
func surveys(h Host) bool {
	for {
		switch x := h.(type) {
		case *sshHost:
			return true
		case Unwrapper:
			h = x.Unwrap()
		default:
			return false
		}
	}
}

// surveyed is what the survey found at one path.
type surveyed struct {
	missing bool // lstat said ENOENT (or ENOTDIR)
	info    FileInfo
	content []byte // a small regular file's bytes, when wanted and read
	// followed is set when content is a symlink's target's, read as
	// ReadFile reads it: the entry of a directory listed with its content.
	followed bool
	digest   string // a large regular file's SHA-256, when wanted and read
	listed   bool   // entries holds the directory's every entry
	entries  []FileInfo
}

// surveyScript answers for every path in a fixed handful of processes,
// whatever their number: on a small, busy host each process costs more
// than a round trip (a fleet's hosts share the lab's two cores, and a Pi's
// fork and exec are slow), so each record is find's own -printf, never a
// stat per directory, and the programs' output lengths are one stat and
// their output one cat. Its arguments are the size threshold, the number
// of directories to list, how many of them (the first) come with their
// files' contents, those directories, the paths whose metadata is
// wanted, "//" (which no cleaned path is), the paths whose content is
// wanted too, and "//" again; before them all, the number of programs
// to run (Want.Run) and their command lines. It prints, in this order:
//
//   - sha256sum's line for each wanted regular file of DigestAbove bytes or
//     more, then a line "--";
//   - for each program, "EXIT OUTLEN ERRLEN\0"; then, program by program,
//     what it printed on stdout and on stderr;
//   - for each directory to list, its name and a NUL, a record (as
//     below) for each of its entries, a NUL, and find's exit status and a
//     NUL (0: every entry is there);
//   - one record a path, "NAME\0TYPE PERM UID GID SIZE MTIME\0" (find's
//     %y and %m, which has the set-id and sticky bits, and mtime in
//     seconds with a fraction; find does not follow a symlink it is
//     given), then a NUL; a path find cannot reach has no record, and its
//     reason is on stderr;
//   - a tar archive (absolute names) of the wanted regular files below
//     it, and of the small files (symlinks followed) in the directories
//     listed with their contents; each stored whole, never as a link to
//     an earlier member (a file named twice, two symlinks to one unit).
//
// Three things go at once: the digests, the listings and reads (into a
// file), and, once the digests are in, the programs, each in the
// background. A guarded program's guard (queryLine) finds its file's
// digest in BORGKIT_SUMS instead of reading the 20 MB borgkit binary a
// second time. On a host with cores to spare (a Pi has four) the survey
// so takes about as long as the digests and the slowest program. The
// directories listed with their contents are moved to the end of the
// arguments as they are listed, after the second "//". Nothing of the
// paths is ever part of the script.
const surveyScript = `big=$1; q=$2; shift 2
sums() {
  while [ $# -gt 0 ]; do a=$1; shift; [ "$a" = // ] && break; done
  find "$@" -maxdepth 0 -type f -size +$((big-1))c -exec sha256sum -b -- {} + 2>/dev/null
}
rest() {
  shift "$q"
  f='%p\0%y %m %U %G %s %T@\0'
  n=$1; k=$2; shift 2
  while [ "$n" -gt 0 ]; do
    printf '%s\0' "$1"
    find "$1" -mindepth 1 -maxdepth 1 -printf "$f" 2>/dev/null
    printf '\0%s\0' "$?"
    [ "$k" -gt 0 ] && set -- "$@" "$1"
    shift; n=$((n-1)); k=$((k-1))
  done
  find "$@" -maxdepth 0 -printf "$f"
  printf '\0'
  while [ $# -gt 0 ]; do a=$1; shift; [ "$a" = // ] && break; done
  { find "$@" -maxdepth 0 -type f -size -"$big"c -print0
    while [ $# -gt 0 ]; do a=$1; shift; [ "$a" = // ] && break; done
    if [ $# -gt 0 ]; then find -L "$@" -mindepth 1 -maxdepth 1 -type f -size -"$big"c -print0; fi
  } 2>/dev/null | tar -chPf - --hard-dereference --no-recursion --null -T - 2>/dev/null
}
survey() {
  t=$(mktemp -d) || { echo "survey: mktemp -d failed" >&2; exit 1; }
  sums "$@" >"$t/d" &
  s=$!
  rest "$@" >"$t/r" &
  r=$!
  wait "$s"
  d=
  while IFS= read -r l; do d="$d
$l"; done <"$t/d"
  i=0
  while [ "$i" -lt "$q" ]; do
    BORGKIT_SUMS="$d
" sh -c "$1" </dev/null >"$t/o$i" 2>"$t/e$i" &
    eval "p$i=\$!"
    shift; i=$((i+1))
  done
  [ -z "$d" ] || printf '%s\n' "${d#?}"
  echo --
  set --
  i=0
  while [ "$i" -lt "$q" ]; do
    eval "wait \$p$i; x$i=\$?"
    set -- "$@" "$t/o$i" "$t/e$i"
    i=$((i+1))
  done
  if [ "$q" -gt 0 ]; then
    z=$(stat -c %s -- "$@") || { echo "survey: the programs' output is not all there" >&2; exit 1; }
    i=0; o=
    for n in $z; do
      if [ -z "$o" ]; then o=$n; continue; fi
      eval "e=\$x$i"
      printf '%s %s %s\0' "$e" "$o" "$n"
      o=; i=$((i+1))
    done
  fi
  wait "$r"
  cat -- "$@" "$t/r"
  rm -rf -- "$t"
}
if command -v gzip >/dev/null 2>&1; then survey "$@" | gzip -1; else survey "$@"; fi
`

func survey(ctx context.Context, h Host, wants []Want) (map[string]*surveyed, map[string]Result, error) {
	var runs []Want
	wants = slices.DeleteFunc(slices.Clone(wants), func(w Want) bool {
		if len(w.Run) > 0 {
			runs = append(runs, w)
		}
		return len(w.Run) > 0
	})
	// The directories wanted with their files' contents are listed first
	// (see surveyScript); parseSurvey reads the listings in this order.
	slices.SortStableFunc(wants, func(a, b Want) int { return cmp.Compare(listOrder(a), listOrder(b)) })
	var lists, content []string
	withContent := 0
	for _, w := range wants {
		if w.List {
			lists = append(lists, w.Path)
			if w.Content {
				withContent++
			}
		}
	}
	args := []string{"-c", surveyScript, "sh", strconv.Itoa(DigestAbove), strconv.Itoa(len(runs))}
	argvs := make([][]string, len(runs))
	for i, r := range runs {
		args = append(args, queryLine(r))
		argvs[i] = r.Run
	}
	args = append(append(args, strconv.Itoa(len(lists)), strconv.Itoa(withContent)), lists...)
	for _, w := range wants {
		if w.Content {
			content = append(content, w.Path)
		} else {
			args = append(args, w.Path)
		}
	}
	args = append(append(append(args, "//"), content...), "//")
	res, err := h.Run(ctx, Cmd{Argv: tools.Argv(tools.Sh, args...), Env: []string{"LC_ALL=C"}})
	if err != nil {
		return nil, nil, err
	}
	// The script's own complaints ("survey: ...") say why an answer is
	// cut short; gzip's exit status, the pipeline's, does not.
	why := func(err error) error {
		for _, l := range strings.Split(string(res.Stderr), "\n") {
			if strings.HasPrefix(l, "survey: ") {
				return fmt.Errorf("%w (%s)", err, l)
			}
		}
		return err
	}
	stdout, err := gunzipped(res.Stdout)
	if err != nil {
		return nil, nil, why(err)
	}
	digests, out, err := parseDigests(stdout)
	if err != nil {
		return nil, nil, why(err)
	}
	results, out, err := parseRuns(out, argvs)
	if err != nil {
		return nil, nil, why(err)
	}
	found, err := parseSurvey(out, res.Stderr, wants, digests)
	return found, results, err
}

// parseRuns reads the programs' records (see surveyScript): every
// program's "EXIT OUTLEN ERRLEN", then their outputs in the same order. A
// program the shell could not find (exit 127) is left out: Run gives the
// host's own error for it.
func parseRuns(out []byte, runs [][]string) (map[string]Result, []byte, error) {
	heads := make([][3]int, len(runs))
	for i, argv := range runs {
		head, rest, ok := bytes.Cut(out, []byte{0})
		f := strings.Fields(string(head))
		var err error
		if !ok || len(f) != 3 {
			err = errors.New("no record")
		}
		for j := range heads[i] {
			if err == nil {
				heads[i][j], err = strconv.Atoi(f[j])
			}
		}
		if err == nil && (heads[i][1] < 0 || heads[i][2] < 0) {
			err = errors.New("a negative length")
		}
		if err != nil {
			// Not the record itself: were the answer out of step, it
			// could be a program's output (a shadow line).
			return nil, nil, fmt.Errorf("%s: a record of %d bytes: %w", QuoteArgv(argv), len(head), err)
		}
		out = rest
	}
	results := make(map[string]Result, len(runs))
	for i, argv := range runs {
		n := heads[i]
		if n[1] > len(out) || n[2] > len(out)-n[1] {
			return nil, nil, fmt.Errorf("%s: %d and %d bytes of output, %d left: the record is longer than the output", QuoteArgv(argv), n[1], n[2], len(out))
		}
		if n[0] != 127 {
			results[runKey(argv)] = Result{ExitCode: n[0], Stdout: bytes.Clone(out[:n[1]]), Stderr: bytes.Clone(out[n[1] : n[1]+n[2]])}
		}
		out = out[n[1]+n[2]:]
	}
	return results, out, nil
}

// gunzipped is the survey's output as it printed it: compressed on the
// wire where the host has gzip (about a sixth of the bytes: tar's padding
// and text files), so that it fits in the few packets TCP sends before it
// waits for an acknowledgement, a round trip over a slow link. What the
// script printed itself never begins with gzip's magic bytes.
func gunzipped(b []byte) ([]byte, error) {
	if !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
		return b, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("the survey's output: %w", err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, maxSurvey+1))
	if err == nil && len(out) > maxSurvey {
		err = fmt.Errorf("more than %d bytes", maxSurvey)
	}
	if err != nil {
		return nil, fmt.Errorf("the survey's output: %w", err)
	}
	return out, nil
}

// maxSurvey bounds the survey's output once uncompressed: some hundred
// paths, each file below DigestAbove, are far less; a host that sends more
// is not believed.
const maxSurvey = 256 << 20

// parseDigests reads sha256sum's lines up to "--": each file's digest
// by its name. A name sha256sum had to escape is left to the host.
func parseDigests(out []byte) (map[string]string, []byte, error) {
	digests := map[string]string{}
	for {
		line, rest, ok := bytes.Cut(out, []byte("\n"))
		if !ok {
			return nil, nil, errors.New("the digests end early")
		}
		out = rest
		if string(line) == "--" {
			return digests, out, nil
		}
		// "HASH *NAME"
		if len(line) > 66 && line[0] != '\\' && string(line[64:66]) == " *" {
			digests[string(line[66:])] = string(line[:64])
		}
	}
}

// listOrder puts the directories listed with their contents first, then
// the others listed, then the rest.
func listOrder(w Want) int {
	switch {
	case w.List && w.Content:
		return 0
	case w.List:
		return 1
	}
	return 2
}

// onlyMissing reports whether stat's complaints all say "no such file": a
// path without a record is then missing, as sftp-server would say (a path
// below a file, ENOTDIR, counts as missing there too).
func onlyMissing(stderr []byte) bool {
	for _, l := range strings.Split(strings.TrimSpace(string(stderr)), "\n") {
		if l != "" && !strings.HasSuffix(l, ": No such file or directory") && !strings.HasSuffix(l, ": Not a directory") {
			return false
		}
	}
	return true
}

// parseSurvey reads what follows the programs' records (see surveyScript),
// with the digests read before them.
func parseSurvey(out, stderr []byte, wants []Want, digests map[string]string) (map[string]*surveyed, error) {
	listings := map[string][]FileInfo{}
	for _, w := range wants {
		if !w.List {
			continue
		}
		dir, rest, ok := bytes.Cut(out, []byte{0})
		if !ok || string(dir) != w.Path {
			return nil, fmt.Errorf("the listing of %s is missing", w.Path)
		}
		stats, rest, err := statRecords(rest)
		if err != nil {
			return nil, fmt.Errorf("the listing of %s: %w", w.Path, err)
		}
		status, rest, ok := bytes.Cut(rest, []byte{0})
		if !ok {
			return nil, fmt.Errorf("the listing of %s ends early", w.Path)
		}
		out = rest
		if string(status) != "0" {
			continue // not every entry could be read: the host answers
		}
		ents := []FileInfo{}
		for p, fi := range stats {
			if path.Dir(p) == w.Path {
				ents = append(ents, fi)
			}
		}
		sort.Slice(ents, func(i, j int) bool { return ents[i].Name < ents[j].Name })
		listings[w.Path] = ents
	}
	stats, out, err := statRecords(out)
	if err != nil {
		return nil, err
	}
	contents := map[string][]byte{}
	if len(out) > 0 {
		tr := tar.NewReader(bytes.NewReader(out))
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("contents: %w", err)
			}
			if hdr.Typeflag != tar.TypeReg {
				continue // not content: the host answers
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				return nil, fmt.Errorf("contents: %w", err)
			}
			contents[hdr.Name] = b
		}
	}
	missing := onlyMissing(stderr)
	found := make(map[string]*surveyed, len(wants))
	for _, w := range wants {
		fi, ok := stats[w.Path]
		if !ok {
			if missing {
				found[w.Path] = &surveyed{missing: true}
			}
			continue // stat failed otherwise: the host answers itself
		}
		s := &surveyed{info: fi}
		if ents, ok := listings[w.Path]; ok && fi.Mode.IsDir() {
			s.listed, s.entries = true, ents
		}
		if w.Content && fi.Mode.IsRegular() {
			if fi.Size >= DigestAbove {
				s.digest = digests[w.Path]
			} else if b, ok := contents[w.Path]; ok && int64(len(b)) == fi.Size {
				s.content = b
			}
			// Neither: the file changed between stat and read, or could
			// not be read; the host answers for it.
		}
		found[w.Path] = s
	}
	for _, w := range wants {
		if d := found[w.Path]; w.List && d != nil && d.listed {
			entriesFound(found, w, d.entries, contents)
		}
	}
	return found, nil
}

// entriesFound adds what the listing of w says of each entry not wanted
// itself: its metadata, and with w.Content its content as tar read it
// (through a symlink: as ReadFile would).
func entriesFound(found map[string]*surveyed, w Want, entries []FileInfo, contents map[string][]byte) {
	for _, e := range entries {
		p := path.Join(w.Path, e.Name)
		if _, ok := found[p]; ok {
			continue
		}
		s := &surveyed{info: e}
		if b, ok := contents[p]; ok && w.Content {
			switch {
			case e.Mode.IsRegular() && int64(len(b)) == e.Size:
				s.content = b
			case e.Mode&fs.ModeSymlink != 0:
				s.content, s.followed = b, true
			}
		}
		found[p] = s
	}
}

// statRecords reads stat records up to the empty name that ends them.
func statRecords(out []byte) (map[string]FileInfo, []byte, error) {
	stats := map[string]FileInfo{}
	for {
		name, rest, ok := bytes.Cut(out, []byte{0})
		if !ok {
			return nil, nil, errors.New("the stat records end early")
		}
		out = rest
		if len(name) == 0 {
			return stats, out, nil
		}
		fields, rest, ok := bytes.Cut(out, []byte{0})
		if !ok {
			return nil, nil, errors.New("the stat records end early")
		}
		out = rest
		fi, err := parseStat(path.Base(string(name)), string(fields))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		stats[string(name)] = fi
	}
}

// parseStat reads find -printf '%y %m %U %G %s %T@'.
func parseStat(name, s string) (FileInfo, error) {
	f := strings.Fields(s)
	if len(f) != 6 || len(f[0]) != 1 {
		return FileInfo{}, fmt.Errorf("find printed %q", s)
	}
	perm, err := strconv.ParseUint(f[1], 8, 32)
	if err == nil && perm > 0o7777 {
		err = errors.New("permissions out of range")
	}
	var n [4]int64
	for i := range n {
		v := f[i+2]
		if i == 3 {
			v, _, _ = strings.Cut(v, ".") // whole seconds, as stat's %Y
		}
		if err == nil {
			n[i], err = strconv.ParseInt(v, 10, 64)
		}
	}
	if err != nil {
		return FileInfo{}, fmt.Errorf("find printed %q: %w", s, err)
	}
	typ, ok := fileType[f[0][0]]
	mode := unixMode(typ | uint32(perm))
	if !ok {
		mode |= fs.ModeIrregular
	}
	return FileInfo{Name: name, Mode: mode, UID: int(n[0]), GID: int(n[1]), Size: n[2], ModTime: time.Unix(n[3], 0)}, nil
}

// fileType is the S_IFMT bits of find's %y letters; a letter not here (a
// Solaris door, "U" for unknown) reads as ModeIrregular, as os.Lstat has
// it.
var fileType = map[byte]uint32{
	'f': syscall.S_IFREG, 'd': syscall.S_IFDIR, 'l': syscall.S_IFLNK, 'p': syscall.S_IFIFO,
	's': syscall.S_IFSOCK, 'c': syscall.S_IFCHR, 'b': syscall.S_IFBLK,
}

// unixMode turns st_mode into an fs.FileMode, as os.Lstat does.
func unixMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & syscall.S_IFMT {
	case syscall.S_IFDIR:
		mode |= fs.ModeDir
	case syscall.S_IFLNK:
		mode |= fs.ModeSymlink
	case syscall.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case syscall.S_IFSOCK:
		mode |= fs.ModeSocket
	case syscall.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFBLK:
		mode |= fs.ModeDevice
	}
	if m&syscall.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&syscall.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&syscall.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// surveyView answers from a survey; see Survey.
type surveyView struct {
	changing
	mu    sync.Mutex
	found map[string]*surveyed
	ran   map[string]Result // by runKey
}

func newSurveyView(h Host, found map[string]*surveyed, ran map[string]Result) *surveyView {
	v := &surveyView{found: found, ran: ran}
	v.changing = changing{Host: h, changed: v.forget}
	return v
}

func (v *surveyView) Unwrap() Host { return v.Host }

func (v *surveyView) lookup(p string) *surveyed {
	if !path.IsAbs(p) {
		return nil
	}
	p = path.Clean(p)
	v.mu.Lock()
	defer v.mu.Unlock()
	if s := v.found[p]; s != nil {
		return s
	}
	// Not in its directory's listing: missing, as far as the survey knows.
	if d := v.found[path.Dir(p)]; d != nil && d.listed {
		return &surveyed{missing: true}
	}
	return nil
}

// forget empties the view: the host is being changed.
func (v *surveyView) forget() {
	v.mu.Lock()
	v.found, v.ran = nil, nil
	v.mu.Unlock()
}

// Run answers a program the survey ran (Want.Run) as the host would
// have: a non-zero exit is an *ExitError with the Result.
func (v *surveyView) Run(ctx context.Context, c Cmd) (Result, error) {
	if c.Stdin == nil && len(c.Env) == 0 && len(c.Unset) == 0 && c.Dir == "" {
		v.mu.Lock()
		res, ok := v.ran[runKey(c.Argv)]
		v.mu.Unlock()
		if ok {
			res.Stdout, res.Stderr = bytes.Clone(res.Stdout), bytes.Clone(res.Stderr)
			if res.ExitCode != 0 {
				return res, &ExitError{Host: v.Name(), Argv: c.Argv, ExitCode: res.ExitCode, Stderr: res.Stderr}
			}
			return res, nil
		}
	}
	return v.Host.Run(ctx, c)
}

// notExist is the error the hosts give for a missing path.
func (v *surveyView) notExist(op, p string) error {
	return wrapOp(op, p, v.Name(), &fs.PathError{Op: op, Path: p, Err: fs.ErrNotExist})
}

func (v *surveyView) Lstat(ctx context.Context, p string) (FileInfo, error) {
	s := v.lookup(p)
	switch {
	case s == nil:
		return v.Host.Lstat(ctx, p)
	case s.missing:
		return FileInfo{}, v.notExist("lstat", p)
	}
	return s.info, nil
}

// ReadFile and Digest follow a symlink; the survey did not, so only a
// regular file (or a missing path) is answered here, and a listed
// directory's symlink whose target's content came with the listing.
func (v *surveyView) ReadFile(ctx context.Context, p string) ([]byte, error) {
	s := v.lookup(p)
	switch {
	case s == nil:
	case s.missing:
		return nil, v.notExist("read", p)
	case s.content != nil && (s.info.Mode.IsRegular() || s.followed):
		return bytes.Clone(s.content), nil
	}
	return v.Host.ReadFile(ctx, p)
}

// ReadDir answers for a directory listed as it is (a symlink to one is
// left to the host, which follows it).
func (v *surveyView) ReadDir(ctx context.Context, p string) ([]FileInfo, error) {
	s := v.lookup(p)
	switch {
	case s == nil:
	case s.missing:
		return nil, v.notExist("readdir", p)
	case s.listed:
		return slices.Clone(s.entries), nil
	}
	return v.Host.ReadDir(ctx, p)
}

func (v *surveyView) Digest(ctx context.Context, p string) (string, error) {
	s := v.lookup(p)
	switch {
	case s == nil:
	case s.missing:
		return "", v.notExist("digest", p)
	case s.digest != "" && s.info.Mode.IsRegular():
		return s.digest, nil
	}
	return v.Host.Digest(ctx, p)
}
