package steps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/plan"
)

// Block markers: borgkit owns the lines between them in a file that others
// edit too (fstab, authorized_keys, ssh config); every other byte stays.
const (
	BlockBegin = "# BEGIN borgkit"
	BlockEnd   = "# END borgkit"
)

// Block is borgkit's marked block inside a shared file.
type Block struct {
	Path string
	// Lines go between the markers; a trailing newline is added if missing.
	Lines []byte
	// Mode and Owner apply when the file has to be created; an existing
	// file keeps its own.
	Mode  fs.FileMode
	Owner host.Owner
	// Note follows the begin marker, e.g. "(managed from /etc/borgkit/borgkit.yaml)".
	Note string
	// Outside, when set, inspects the file's lines outside the block and
	// returns a reason to conflict ("/mnt/backup is already in fstab line 7").
	Outside func(outside []string) string
	// Vet, when set, judges a change before anything is written: at plan
	// time, so the plan shows the refusal provisioning would meet, and
	// again just before the write. others is the file as it is with
	// borgkit's block blanked (line numbers stay the file's), lines the new
	// block. refuse makes the step conflict; warnings are about lines
	// borgkit leaves alone (findmnt --verify for fstab).
	Vet func(ctx context.Context, h host.Host, others, lines []byte) (refuse string, warnings []string, err error)
	// Secret hides the lines from diffs.
	Secret bool
	// LinesFrom, when set, computes Lines from the host at check and apply
	// time: an authorized_keys line needs a public key that an earlier step
	// of the same run generates. It returns ErrNotYet while that input is
	// missing.
	LinesFrom func(ctx context.Context, h host.Host) ([]byte, error)
	// Pending describes the change while LinesFrom says ErrNotYet.
	Pending string
	// TakeOver, when set, sees the file as Vet does (borgkit's block
	// blanked, line numbers the file's) and names the lines the block
	// takes over — an old fstab line for a mountpoint the block now
	// mounts — with what each becomes: the line commented out under a
	// marker saying why, so the change is undone by hand. A reason instead
	// refuses the whole change. Vet then judges the file as rewritten.
	TakeOver func(ctx context.Context, h host.Host, others []byte) (repl map[int]string, refuse string, err error)
	// DropEmpty removes the block, markers and all, when it has no lines,
	// and then creates no file: what borgkit used to put in a file it no
	// longer does (the offsite push key, once in root's authorized_keys).
	DropEmpty bool
}

// takeOver is old with the lines TakeOver takes over rewritten, what Vet
// is to judge (others with those lines blanked, so line numbers stay the
// file's as the user has it), and how many were taken over.
func (b *Block) takeOver(ctx context.Context, h host.Host, old []byte) (cur, rest []byte, taken int, refuse string, err error) {
	rest = others(old)
	if b.TakeOver == nil {
		return old, rest, 0, "", nil
	}
	repl, refuse, err := b.TakeOver(ctx, h, rest)
	if err != nil || refuse != "" || len(repl) == 0 {
		return old, rest, 0, refuse, err
	}
	lines := strings.Split(string(old), "\n")
	blank := strings.Split(string(rest), "\n")
	for n, r := range repl {
		if n >= 1 && n <= len(lines) && n <= len(blank) {
			lines[n-1], blank[n-1] = r, ""
		}
	}
	return []byte(strings.Join(lines, "\n")), []byte(strings.Join(blank, "\n")), len(repl), "", nil
}

// ErrNotYet says a step's input is made by an earlier step of this run.
var ErrNotYet = errors.New("input not made yet")

func (b *Block) lines(ctx context.Context, h host.Host) ([]byte, error) {
	if b.LinesFrom == nil {
		return b.Lines, nil
	}
	return b.LinesFrom(ctx, h)
}

func (b *Block) ID() string { return "block." + b.Path }

func (b *Block) Reads() []host.Want { return []host.Want{{Path: b.Path, Content: true}} }

// splitBlock cuts content into what stands before, inside (markers
// excluded) and after borgkit's block. found is false when there is none.
func splitBlock(content []byte) (before, inside, after []byte, found bool, err error) {
	lines := bytes.SplitAfter(content, []byte("\n"))
	begin, end := -1, -1
	for i, l := range lines {
		t := string(bytes.TrimRight(l, "\r\n"))
		switch {
		case t == BlockBegin || strings.HasPrefix(t, BlockBegin+" "):
			if begin >= 0 {
				return nil, nil, nil, false, fmt.Errorf("line %d: a second %q", i+1, BlockBegin)
			}
			begin = i
		case t == BlockEnd:
			if begin < 0 || end >= 0 {
				return nil, nil, nil, false, fmt.Errorf("line %d: %q without a matching begin", i+1, BlockEnd)
			}
			end = i
		}
	}
	if begin < 0 {
		return content, nil, nil, false, nil
	}
	if end < 0 {
		return nil, nil, nil, false, fmt.Errorf("line %d: %q without %q", begin+1, BlockBegin, BlockEnd)
	}
	join := func(ls [][]byte) []byte { return bytes.Join(ls, nil) }
	return join(lines[:begin]), join(lines[begin+1 : end]), join(lines[end+1:]), true, nil
}

// others is content with borgkit's block (markers included) turned into
// empty lines: what the file holds that is not borgkit's, at its own line
// numbers.
func others(content []byte) []byte {
	before, inside, after, found, err := splitBlock(content)
	if err != nil || !found {
		return content
	}
	n := bytes.Count(inside, []byte("\n")) + 2 // and the two markers
	return append(append(append([]byte{}, before...), bytes.Repeat([]byte("\n"), n)...), after...)
}

// candidate is the file as it will be: the old bytes with the block put in
// place, or appended when there was none.
func (b *Block) candidate(old, lines []byte) ([]byte, []string, error) {
	before, _, after, found, err := splitBlock(old)
	if err != nil {
		return nil, nil, err
	}
	if b.DropEmpty && len(bytes.TrimSpace(lines)) == 0 {
		return append(append([]byte{}, before...), after...), strings.Split(string(before)+string(after), "\n"), nil
	}
	if len(lines) > 0 && lines[len(lines)-1] != '\n' {
		lines = append(append([]byte{}, lines...), '\n')
	}
	head := BlockBegin
	if b.Note != "" {
		head += " " + b.Note
	}
	var out bytes.Buffer
	out.Write(before)
	if !found && len(before) > 0 && before[len(before)-1] != '\n' {
		out.WriteByte('\n')
	}
	out.WriteString(head + "\n")
	out.Write(lines)
	out.WriteString(BlockEnd + "\n")
	out.Write(after)
	outside := strings.Split(string(before)+string(after), "\n")
	return out.Bytes(), outside, nil
}

func (b *Block) Check(ctx context.Context, h host.Host) (plan.Check, error) {
	old, err := h.ReadFile(ctx, b.Path)
	exists := err == nil
	if err != nil && !host.IsNotExist(err) {
		return plan.Check{}, err
	}
	lines, err := b.lines(ctx, h)
	if errors.Is(err, ErrNotYet) {
		return plan.Modifies(b.Pending), nil
	}
	if err != nil {
		return plan.Check{}, err
	}
	cur, rest, taken, refuse, err := b.takeOver(ctx, h, old)
	if err != nil {
		return plan.Check{}, fmt.Errorf("%s: %w", b.Path, err)
	}
	if refuse != "" {
		return plan.Conflicts(refuse), nil
	}
	next, outside, err := b.candidate(cur, lines)
	if err != nil {
		return plan.Conflicts(fmt.Sprintf("%s: %v; fix the markers by hand", b.Path, err)), nil
	}
	if b.Outside != nil {
		if why := b.Outside(outside); why != "" {
			return plan.Conflicts(why), nil
		}
	}
	if bytes.Equal(old, next) {
		return plan.Satisfied(), nil // a dropped block of a file that is not there
	}
	var warnings []string
	if b.Vet != nil {
		refuse, w, err := b.Vet(ctx, h, rest, lines)
		if err != nil {
			return plan.Check{}, fmt.Errorf("%s: %w", b.Path, err)
		}
		if refuse != "" {
			return plan.Conflicts(refuse).WithWarnings(w), nil
		}
		warnings = w
	}
	diff := ""
	if !b.Secret {
		diff = plan.UnifiedDiff(b.Path, old, next)
	}
	if !exists {
		return plan.Creates("create with borgkit block").WithDiff(diff).WithWarnings(warnings), nil
	}
	if taken > 0 {
		return plan.Modifies(fmt.Sprintf("take over %d line(s) into the borgkit block, the old ones commented out", taken)).WithDiff(diff).WithWarnings(warnings), nil
	}
	return plan.Modifies("update borgkit block").WithDiff(diff).WithWarnings(warnings), nil
}

func (b *Block) Apply(ctx context.Context, h host.Host) error {
	// Both at once: over a slow link they share their round trip.
	var fi host.FileInfo
	var serr error
	stat := make(chan struct{})
	go func() { fi, serr = h.Lstat(ctx, b.Path); close(stat) }()
	old, err := h.ReadFile(ctx, b.Path)
	<-stat
	mode, owner := b.Mode, b.Owner
	if err == nil {
		// Keep an existing file's own mode and owner: it is not ours.
		if serr == nil {
			mode, owner = fi.Mode.Perm(), host.Owner{UID: fi.UID, GID: fi.GID}
		}
	} else if !host.IsNotExist(err) {
		return err
	}
	lines, err := b.lines(ctx, h)
	if err != nil {
		return fmt.Errorf("%s: %w", b.Path, err)
	}
	cur, rest, _, refuse, err := b.takeOver(ctx, h, old)
	if err == nil && refuse != "" {
		err = errors.New(refuse)
	}
	if err != nil {
		return fmt.Errorf("%s rejected, left unchanged: %w", b.Path, err)
	}
	next, _, err := b.candidate(cur, lines)
	if err != nil {
		return fmt.Errorf("%s: %w", b.Path, err)
	}
	if b.Vet != nil {
		refuse, _, err := b.Vet(ctx, h, rest, lines)
		if err == nil && refuse != "" {
			err = errors.New(refuse)
		}
		if err != nil {
			return fmt.Errorf("%s rejected, left unchanged: %w", b.Path, err)
		}
	}
	return writeFile(ctx, h, b.Path, next, mode, owner)
}
