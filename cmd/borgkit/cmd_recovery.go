package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/borgkit/borgkit/recovery/luks2"
)

// keyNotOpened is exit status 1 for check-key: the header was read, the key
// opens no keyslot.
type keyNotOpened struct{ error }

func newRecoveryCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "recovery-bundle",
		Short: "Write, verify and use the offline recovery bundle",
	}
	cmd.AddCommand(newCheckKeyCommand(g))
	return cmd
}

type checkKeyOptions struct {
	Header  string
	KeyFile string
}

func newCheckKeyCommand(g *globals) *cobra.Command {
	o := &checkKeyOptions{}
	cmd := &cobra.Command{
		Use:   "check-key --header FILE --key-file FILE",
		Short: "Check that a keyfile opens a LUKS2 header (backup), without root or device-mapper",
		Long: `Check that a keyfile opens a keyslot of a LUKS2 header or header backup. It
reads the header in Go, derives the keyslot key (argon2id, argon2i, pbkdf2),
decrypts the keyslot and checks the digest, as cryptsetup would; it needs no
root, no device-mapper and no cryptsetup.

EXIT STATUS
  0  the key opens a keyslot
  1  the key opens no keyslot
  2  the header cannot be read (not LUKS, LUKS1, damaged, unsupported), or bad usage
`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCheckKey(o, g, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&o.Header, "header", "", "LUKS2 header or header backup `FILE` (a disk image works too)")
	cmd.Flags().StringVar(&o.KeyFile, "key-file", "", "keyfile, used byte for byte as cryptsetup --key-file does")
	cmd.MarkFlagRequired("header")
	cmd.MarkFlagRequired("key-file")
	return cmd
}

func runCheckKey(o *checkKeyOptions, g *globals, out io.Writer) error {
	res, err := luks2.CheckKey(o.Header, o.KeyFile)
	if errors.Is(err, luks2.ErrNoKeyslot) {
		return keyNotOpened{err}
	}
	if err != nil {
		return usageError{fmt.Errorf("check-key: %w", err)}
	}
	if g.JSON {
		return writeJSON(out, res)
	}
	fmt.Fprintf(out, "%s: the key opens keyslot %d of LUKS2 UUID %s (%s, %s copy, %s)\n",
		o.Header, res.Slot, res.UUID, res.KDF, res.HeaderCopy, res.Duration.Round(1e6))
	return nil
}
