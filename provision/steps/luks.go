package steps

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/borgkit/borgkit/provision/host"
	"github.com/borgkit/borgkit/provision/plan"
	"github.com/borgkit/borgkit/provision/tools"
)

// LUKSFormat puts a LUKS2 header on a disk — the one step in borgkit that
// destroys data, so it runs only when the user named this exact device with
// --format and the device carries no signature of any kind. The key comes
// from the server through stdin; it is never written on the offsite host.
type LUKSFormat struct {
	Device string
	// Allowed is true when --format named Device.
	Allowed bool
	// Wipe is true when the user named Device a second time to erase what
	// it carries (a new USB stick's FAT filesystem or partition table, an
	// old stick's LUKS header): without it any signature is a refusal.
	Wipe bool
	// Key returns the keyfile bytes; an error explains where they are.
	Key func(ctx context.Context) ([]byte, error)
	// KeyFrom names the keyfile for messages: "john-ai:/root/.luks/x.key".
	KeyFrom string
	// HeaderBackup receives the luksHeaderBackup image, for the server and
	// the recovery bundle.
	HeaderBackup func(ctx context.Context, img []byte) error
	// Extra luksFormat arguments (cheaper KDF settings in test labs).
	FormatArgs []string
	// FSType, when set, gets a filesystem made inside the new volume, with
	// FSUUID as its UUID so fstab, the unlock job and the runbook can name
	// it before it exists. Opening the volume needs device-mapper.
	FSType string
	FSUUID string
	// Mapper is the /dev/mapper name used while making the filesystem.
	Mapper string
}

func (l *LUKSFormat) ID() string { return "luks." + l.Device }

func (l *LUKSFormat) keyFrom() string {
	if l.KeyFrom == "" {
		return "borgkit's own"
	}
	return l.KeyFrom
}

// probe says what is on the device: "" for nothing borgkit can see.
func (l *LUKSFormat) probe(ctx context.Context, h host.Host) (string, error) {
	if _, err := h.Run(ctx, host.Command(tools.Cryptsetup, "isLuks", l.Device)); err == nil {
		return "luks", nil
	}
	res, err := h.Run(ctx, host.Command(tools.Blkid, "-p", "-o", "export", l.Device))
	switch {
	case err == nil:
		return "a signature (" + strings.Join(strings.Fields(string(res.Stdout)), " ") + ")", nil
	case res.ExitCode != 2: // 2: blkid found nothing
		return "", fmt.Errorf("blkid %s: %w", l.Device, err)
	}
	// wipefs knows signatures blkid's probe may not report (partition
	// tables at the end of the disk, RAID superblocks).
	res, err = h.Run(ctx, host.Command(tools.Wipefs, "--no-act", "--noheadings", "--output", "TYPE,OFFSET", l.Device))
	if err != nil {
		return "", fmt.Errorf("wipefs -n %s: %w", l.Device, err)
	}
	if s := strings.TrimSpace(string(res.Stdout)); s != "" {
		return "a signature (" + strings.Join(strings.Fields(s), " ") + ")", nil
	}
	return "", nil
}

func (l *LUKSFormat) opens(ctx context.Context, h host.Host) (bool, error) {
	key, err := l.Key(ctx)
	if err != nil {
		return false, err
	}
	c := host.Command(tools.Cryptsetup, "open", "--test-passphrase", "--key-file", "-", l.Device)
	c.Stdin = bytes.NewReader(key)
	_, err = h.Run(ctx, c)
	return err == nil, nil
}

func (l *LUKSFormat) Check(ctx context.Context, h host.Host) (plan.Check, error) {
	if !h.Live() {
		return plan.Skipped("--root does not touch block devices"), nil
	}
	if _, err := h.Lstat(ctx, l.Device); err != nil {
		return plan.Conflicts(fmt.Sprintf("%s is not present: %v", l.Device, err)), nil
	}
	what, err := l.probe(ctx, h)
	if err != nil {
		return plan.Check{}, err
	}
	if what == "luks" {
		// Formatted already (by an earlier run): done when the key opens it.
		if ok, err := l.opens(ctx, h); err == nil && ok {
			return plan.Satisfied(), nil
		}
	}
	if what != "" && l.Wipe && l.Allowed {
		if _, err := l.Key(ctx); err != nil {
			return plan.Conflicts(err.Error()), nil
		}
		return plan.Creates(fmt.Sprintf("wipefs --all and cryptsetup luksFormat --type luks2 (erases %s, which carries %s, named to be wiped)", l.Device, what)), nil
	}
	switch what {
	case "luks":
		ok, err := l.opens(ctx, h)
		if err != nil {
			return plan.Conflicts(fmt.Sprintf("%s has a LUKS header but its key cannot be read here: %v", l.Device, err)), nil
		}
		if !ok {
			// A disk made by hand (adopted) is opened by the keyfile it was
			// made with: the message names the one borgkit tried.
			return plan.Conflicts(fmt.Sprintf("%s has a LUKS header that borgkit's key does not open (the keyfile %s); borgkit will not reformat it: name the keyfile the disk was made with in its luks.keyfile", l.Device, l.keyFrom())), nil
		}
		return plan.Satisfied(), nil
	case "":
		if !l.Allowed {
			return plan.Conflicts(fmt.Sprintf("%s is blank; pass --format %s to let borgkit put LUKS2 on it", l.Device, l.Device)), nil
		}
		if _, err := l.Key(ctx); err != nil {
			return plan.Conflicts(err.Error()), nil
		}
		return plan.Creates("cryptsetup luksFormat --type luks2 (erases " + l.Device + ", named by --format)"), nil
	default:
		return plan.Conflicts(fmt.Sprintf("%s carries %s; borgkit never formats over existing data", l.Device, what)), nil
	}
}

func (l *LUKSFormat) Apply(ctx context.Context, h host.Host) error {
	// Re-probe: the device may have changed since the plan was shown.
	what, err := l.probe(ctx, h)
	if err != nil || what != "" && !l.Wipe || !l.Allowed {
		return fmt.Errorf("refusing to format %s: probe says %q, --format given: %v (%v)", l.Device, what, l.Allowed, err)
	}
	key, err := l.Key(ctx)
	if err != nil {
		return err
	}
	if what != "" {
		if _, err := h.Run(ctx, host.Command(tools.Wipefs, "--all", l.Device)); err != nil {
			return fmt.Errorf("wipefs --all %s: %w", l.Device, err)
		}
	}
	args := append([]string{"luksFormat", "--type", "luks2", "--batch-mode", "--key-file", "-"}, l.FormatArgs...)
	c := host.Command(tools.Cryptsetup, append(args, l.Device)...)
	c.Stdin = bytes.NewReader(key)
	if _, err := h.Run(ctx, c); err != nil {
		return fmt.Errorf("luksFormat %s: %w", l.Device, err)
	}
	if l.HeaderBackup != nil {
		img, err := headerBackup(ctx, h, l.Device)
		if err != nil {
			return err
		}
		if err := l.HeaderBackup(ctx, img); err != nil {
			return err
		}
	}
	if l.FSType == "" {
		return nil
	}
	return l.mkfs(ctx, h, key)
}

// mkfs opens the fresh volume, makes the filesystem and closes it again;
// the unlock job opens it for good at boot.
func (l *LUKSFormat) mkfs(ctx context.Context, h host.Host, key []byte) error {
	c := host.Command(tools.Cryptsetup, "open", "--key-file", "-", l.Device, l.Mapper)
	c.Stdin = bytes.NewReader(key)
	if _, err := h.Run(ctx, c); err != nil {
		return fmt.Errorf("open %s to make its filesystem: %w", l.Device, err)
	}
	defer h.Run(context.WithoutCancel(ctx), host.Command(tools.Cryptsetup, "close", l.Mapper))
	args := []string{"-t", l.FSType, "-q"}
	if l.FSUUID != "" {
		args = append(args, "-U", l.FSUUID)
	}
	if _, err := h.Run(ctx, host.Command(tools.Mkfs, append(args, "/dev/mapper/"+l.Mapper)...)); err != nil {
		return fmt.Errorf("mkfs inside %s: %w", l.Device, err)
	}
	return nil
}

// headerBackup has cryptsetup write the header to a private temporary file
// on the host, reads it back and removes it: a header is not secret without
// the key, but it has no business lying around on the offsite host.
func headerBackup(ctx context.Context, h host.Host, dev string) ([]byte, error) {
	res, err := h.Run(ctx, host.Command(tools.Mktemp, "-d", "/run/borgkit-header.XXXXXX"))
	if err != nil {
		return nil, fmt.Errorf("temporary directory for the header backup: %w", err)
	}
	dir := strings.TrimSpace(string(res.Stdout))
	file := dir + "/header.img"
	defer func() { _ = h.Remove(ctx, file); _ = h.Remove(ctx, dir) }()
	if _, err := h.Run(ctx, host.Command(tools.Cryptsetup, "luksHeaderBackup", dev, "--header-backup-file", file)); err != nil {
		return nil, fmt.Errorf("luksHeaderBackup %s: %w", dev, err)
	}
	return h.ReadFile(ctx, file)
}
