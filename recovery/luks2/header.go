package luks2

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Sentinel errors. Every error returned by this package wraps one of them
// (or an I/O error from the caller's reader, or the context's error), so
// callers can branch with errors.Is.
var (
	// ErrNotLUKS means no LUKS magic was found at any place a header may live.
	ErrNotLUKS = errors.New("luks2: not a LUKS device or header")
	// ErrUnsupported covers LUKS1 headers and LUKS2 features this verifier
	// does not implement; the key may or may not be good.
	ErrUnsupported = errors.New("luks2: unsupported")
	// ErrChecksum means a header copy had LUKS magic but its checksum did not match.
	ErrChecksum = errors.New("luks2: header checksum mismatch")
	// ErrMalformed means a header copy passed its checksum but its fields or
	// JSON break the rules cryptsetup enforces before loading a header.
	ErrMalformed = errors.New("luks2: malformed header")
	// ErrTruncated means the file ends before data the header says is there.
	ErrTruncated = errors.New("luks2: file truncated")
	// ErrNoKeyslot means no keyslot usable for the data segment opened with
	// this key: the key is wrong, or opens only an unbound or ignored slot.
	ErrNoKeyslot = errors.New("luks2: no keyslot opened with this key")
)

const (
	binHeaderSize = 4096
	magicLen      = 6
	offChecksum   = 448
	csumFieldLen  = 64

	// minHeaderSize and maxHeaderSize bound hdr_size before the checksum
	// is read, as cryptsetup does; the JSON checks then pin it to one of
	// allowedHeaderSizes.
	minHeaderSize = 0x4000
	maxHeaderSize = 0x400000
)

var (
	magicPrimary   = []byte("LUKS\xba\xbe")
	magicSecondary = []byte("SKUL\xba\xbe")
)

// Header is one validated LUKS2 header copy with its JSON metadata decoded.
type Header struct {
	Version     uint16
	HeaderSize  uint64 // hdr_size: binary header plus JSON area
	SeqID       uint64
	Label       string
	Subsystem   string
	ChecksumAlg string
	Salt        []byte
	UUID        string

	// Offset is where the copy in use starts; Copy describes it for humans:
	// "primary" or "secondary at 0x4000".
	Offset uint64
	Copy   string
	// PrimaryErr and SecondaryErr say why a copy was rejected (nil when it
	// was fine or was not examined), so a runbook can flag a damaged copy
	// even though the header as a whole was usable.
	PrimaryErr   error
	SecondaryErr error

	// The sections below are in the order the JSON lists them, which is
	// the order cryptsetup tries keyslots in.
	Keyslots []Keyslot
	Tokens   []Token
	Segments []Segment
	Digests  []Digest
	Config   Config

	// JSON is the raw metadata text (without the zero padding).
	JSON []byte

	meta *jsonValue // the metadata tree, for cryptsetup-order lookups
}

// Keyslot is one entry of the JSON "keyslots" object. Fields a keyslot of
// another type lacks are left zero.
type Keyslot struct {
	ID       int    // the member name as a number
	Type     string // "luks2" for normal keyslots
	KeySize  int    // bytes of the volume key stored in this slot
	Priority int    // 0 ignore, 1 normal, 2 prefer
	KDF      KDF
	AF       AF
	Area     Area
}

// KDF describes how the keyslot area key is derived from the passphrase.
type KDF struct {
	Type       string // pbkdf2, argon2i, argon2id
	Hash       string // pbkdf2 only
	Iterations int    // pbkdf2 only
	Time       int    // argon2 iterations
	Memory     int    // argon2 memory in KiB
	CPUs       int    // argon2 lanes
	Salt       []byte
}

// String gives a one-line summary suitable for a runbook.
func (k KDF) String() string {
	switch k.Type {
	case "pbkdf2":
		return fmt.Sprintf("pbkdf2-%s, %d iterations", k.Hash, k.Iterations)
	case "argon2i", "argon2id":
		return fmt.Sprintf("%s, time %d, memory %d KiB, %d threads", k.Type, k.Time, k.Memory, k.CPUs)
	}
	return k.Type
}

// AF is the anti-forensic splitter configuration.
type AF struct {
	Type    string // "luks1"
	Stripes int    // cryptsetup always uses 4000, whatever this says
	Hash    string
}

// Area is where the AF-split, encrypted key material lives on disk.
type Area struct {
	Type       string // "raw"
	Offset     uint64
	Size       uint64
	Encryption string // e.g. aes-xts-plain64
	KeySize    int    // bytes of the area encryption key
}

// Token is an entry of the JSON "tokens" object; only the common fields are decoded.
type Token struct {
	ID       int
	Type     string
	Keyslots []int
}

// Segment is an entry of the JSON "segments" object.
type Segment struct {
	ID          int
	Type        string // "crypt" for the encrypted data segment
	Offset      uint64
	Size        uint64 // meaningless when DynamicSize
	DynamicSize bool   // size "dynamic": up to the end of the device
	IVTweak     uint64
	Encryption  string
	SectorSize  int
	Flags       []string
}

// Digest is an entry of the JSON "digests" object.
type Digest struct {
	ID         int
	Type       string // "pbkdf2"
	Keyslots   []int
	Segments   []int
	Hash       string
	Iterations int
	Salt       []byte
	Digest     []byte
}

// Config is the JSON "config" object.
type Config struct {
	JSONSize     uint64
	KeyslotsSize uint64
	Flags        []string
	Requirements []string // config.requirements.mandatory
}

// DataSegment returns the segment cryptsetup opens: the one flagged
// "backup-final" during a reencryption, else segment 0.
func (h *Header) DataSegment() (Segment, bool) {
	id := h.defaultSegment()
	for _, s := range h.Segments {
		if s.ID == id {
			return s, true
		}
	}
	return Segment{}, false
}

// ReadHeader reads and validates a LUKS2 header from r, which may be the
// encrypted device/image itself or a luksHeaderBackup file. It picks the
// copy cryptsetup would: both copies are read, a copy counts only if its
// checksum and metadata are valid, and the one with the higher seqid wins
// (the primary on a tie). If the primary's binary header is unusable the
// secondary is searched for at every offset the spec allows; if only its
// metadata is bad, the secondary is looked for where the primary says.
func ReadHeader(r io.ReaderAt) (*Header, error) {
	var start [8]byte
	if n, err := r.ReadAt(start[:], 0); n == len(start) && bytes.Equal(start[:magicLen], magicPrimary) {
		switch v := binary.BigEndian.Uint16(start[6:8]); v {
		case 1:
			return nil, fmt.Errorf("%w: LUKS1 header: only LUKS2 is supported; convert with cryptsetup convert --type luks2", ErrUnsupported)
		case 2:
		default:
			// cryptsetup goes by the primary's version and gives up
			// here, even if a valid LUKS2 secondary follows.
			return nil, fmt.Errorf("%w: LUKS version %d in the primary header", ErrUnsupported, v)
		}
	} else if err != nil && err != io.EOF && n < len(start) {
		return nil, fmt.Errorf("luks2: reading the primary header: %w", err)
	}

	primary, pstage, perr := readCopy(r, 0)
	var secondary *Header
	var serr error
	if pstage == stageBinary {
		// The primary's hdr_size cannot be trusted: scan. The first
		// offset whose binary header and checksum pass decides, even if
		// its metadata then fails.
		found := false
		var scanErrs []error
		for _, off := range allowedHeaderSizes {
			h, stage, err := readCopy(r, off)
			if stage == stageBinary && !errors.Is(err, ErrUnsupported) {
				if !errors.Is(err, errNoMagic) {
					scanErrs = append(scanErrs, err)
				}
				continue
			}
			secondary, serr, found = h, err, true
			break
		}
		switch {
		case found:
		case len(scanErrs) > 0:
			serr = joinErrs(scanErrs)
		default:
			serr = fmt.Errorf("%w: no secondary header at any allowed offset", errNoMagic)
		}
	} else {
		secondary, _, serr = readCopy(r, primary.HeaderSize)
	}
	if errors.Is(perr, ErrUnsupported) || errors.Is(serr, ErrUnsupported) {
		// A copy we cannot verify might be the one cryptsetup uses.
		return nil, fmt.Errorf("luks2: %w", joinErrs(nonNil(perr, serr)))
	}

	switch {
	case perr == nil && serr == nil:
		primary.SecondaryErr = nil
		if secondary.SeqID > primary.SeqID {
			secondary.Copy += " (newer seqid than primary)"
			return secondary, nil
		}
		return primary, nil
	case perr == nil:
		primary.SecondaryErr = serr
		return primary, nil
	case serr == nil:
		secondary.PrimaryErr = perr
		return secondary, nil
	}
	if errors.Is(perr, errNoMagic) && errors.Is(serr, errNoMagic) {
		return nil, fmt.Errorf("%w: no LUKS2 magic at offset 0 or at any secondary header offset", ErrNotLUKS)
	}
	return nil, fmt.Errorf("luks2: no valid header copy: primary: %w; secondary: %w", perr, serr)
}

func nonNil(errs ...error) []error {
	var out []error
	for _, err := range errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

// errNoMagic is internal: ReadHeader turns it into ErrNotLUKS when no
// copy has magic at all.
var errNoMagic = errors.New("no LUKS2 magic")

// A copy fails either in its binary header or checksum (stageBinary),
// which makes cryptsetup search for the secondary, or in its metadata
// (stageJSON), which does not.
type readStage int

const (
	stageBinary readStage = iota
	stageJSON
	stageOK
)

func copyName(off uint64) string {
	if off == 0 {
		return "primary"
	}
	return fmt.Sprintf("secondary at %#x", off)
}

// readCopy reads and fully validates one header copy at off. The header
// is returned with an error when only its metadata is invalid.
func readCopy(r io.ReaderAt, off uint64) (*Header, readStage, error) {
	where := copyName(off)
	bin := make([]byte, binHeaderSize)
	n, err := r.ReadAt(bin, int64(off))
	if n < magicLen {
		if err != nil && err != io.EOF {
			return nil, stageBinary, fmt.Errorf("reading the %s header: %w", where, err)
		}
		return nil, stageBinary, fmt.Errorf("%w: the file ends before the %s header (%w)", ErrTruncated, where, errNoMagic)
	}
	wantMagic := magicPrimary
	if off != 0 {
		wantMagic = magicSecondary
	}
	if !bytes.Equal(bin[:magicLen], wantMagic) {
		return nil, stageBinary, fmt.Errorf("%s: %w", where, errNoMagic)
	}
	if n < len(bin) {
		if err != nil && err != io.EOF {
			return nil, stageBinary, fmt.Errorf("reading the %s header: %w", where, err)
		}
		return nil, stageBinary, fmt.Errorf("%w: the %s binary header needs %d bytes, only %d present", ErrTruncated, where, len(bin), n)
	}

	h := &Header{
		Version:     binary.BigEndian.Uint16(bin[6:8]),
		HeaderSize:  binary.BigEndian.Uint64(bin[8:16]),
		SeqID:       binary.BigEndian.Uint64(bin[16:24]),
		Label:       cString(bin[24:72]),
		ChecksumAlg: cString(bin[72:104]),
		Salt:        bytes.Clone(bin[104:168]),
		UUID:        cString(bin[168:208]),
		Subsystem:   cString(bin[208:256]),
		Offset:      binary.BigEndian.Uint64(bin[256:264]),
		Copy:        where,
	}
	switch {
	case h.Version != 2:
		return nil, stageBinary, fmt.Errorf("%w: %s: version %d", ErrMalformed, where, h.Version)
	case h.Offset != off:
		// hdr_offset pins a copy to its position so a stray copy (e.g.
		// inside a nested volume) cannot be mistaken for ours.
		return nil, stageBinary, fmt.Errorf("%w: %s: hdr_offset %#x does not match its position", ErrMalformed, where, h.Offset)
	case h.HeaderSize < minHeaderSize || h.HeaderSize > maxHeaderSize:
		return nil, stageBinary, fmt.Errorf("%w: %s: hdr_size %#x is outside [%#x, %#x]", ErrMalformed, where, h.HeaderSize, minHeaderSize, maxHeaderSize)
	case off != 0 && h.HeaderSize != off:
		return nil, stageBinary, fmt.Errorf("%w: %s: hdr_size %#x does not match its position", ErrMalformed, where, h.HeaderSize)
	}

	// Probe the last byte first so a short file costs no multi-MiB allocation.
	var probe [1]byte
	if n, err := r.ReadAt(probe[:], int64(off+h.HeaderSize-1)); n != 1 {
		if err != nil && err != io.EOF {
			return nil, stageBinary, fmt.Errorf("reading the %s JSON area: %w", where, err)
		}
		return nil, stageBinary, fmt.Errorf("%w: the %s needs %d bytes (hdr_size)", ErrTruncated, where, h.HeaderSize)
	}
	area := make([]byte, h.HeaderSize)
	copy(area, bin)
	jsonArea := area[binHeaderSize:]
	if n, err := r.ReadAt(jsonArea, int64(off)+binHeaderSize); n < len(jsonArea) {
		if err != nil && err != io.EOF {
			return nil, stageBinary, fmt.Errorf("reading the %s JSON area: %w", where, err)
		}
		return nil, stageBinary, fmt.Errorf("%w: the %s JSON area needs %d bytes, only %d present", ErrTruncated, where, len(jsonArea), n)
	}

	hashDef, err := lookupHash(h.ChecksumAlg)
	if err != nil {
		return nil, stageBinary, fmt.Errorf("%s: header checksum: %w", where, err)
	}
	stored := bytes.Clone(area[offChecksum : offChecksum+csumFieldLen])
	clear(area[offChecksum : offChecksum+csumFieldLen])
	hf := hashDef.new()
	hf.Write(area)
	if subtle.ConstantTimeCompare(hf.Sum(nil), stored[:hf.Size()]) != 1 {
		return nil, stageBinary, fmt.Errorf("%w: %s (%s over %d bytes)", ErrChecksum, where, h.ChecksumAlg, h.HeaderSize)
	}

	// From here on a failure still returns h: its hdr_size tells
	// ReadHeader where to look for the secondary.
	root, text, err := parseJSONArea(jsonArea)
	if err != nil {
		return h, stageJSON, fmt.Errorf("%w: %s: %w", ErrMalformed, where, err)
	}
	if err := validateMetadata(root, h.HeaderSize-binHeaderSize); err != nil {
		return h, stageJSON, fmt.Errorf("%w: %s: %w", ErrMalformed, where, err)
	}
	h.JSON = bytes.Clone(text)
	h.meta = root
	h.decode()
	return h, stageOK, nil
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// decode fills the typed view of the validated metadata. Values the
// checks did not pin down (a kdf of an unknown type, say) are decoded on a
// best-effort basis; OpenKeyslot reads the tree itself.
func (h *Header) decode() {
	root := h.meta
	for _, m := range root.get("keyslots").obj {
		id, _ := cAtoi(m.key)
		v := m.val
		ks := Keyslot{ID: id, Type: v.get("type").cString(), KeySize: int(v.get("key_size").cInt()), Priority: 1}
		if p := v.get("priority"); p != nil {
			ks.Priority = int(p.cInt())
		}
		if kdf := v.get("kdf"); kdf != nil {
			ks.KDF = KDF{
				Type: kdf.get("type").cString(), Hash: kdf.get("hash").cString(),
				Iterations: int(kdf.get("iterations").cInt()), Time: int(kdf.get("time").cInt()),
				Memory: int(kdf.get("memory").cInt()), CPUs: int(kdf.get("cpus").cInt()),
				Salt: decodeBase64(kdf.get("salt")),
			}
		}
		if af := v.get("af"); af != nil {
			ks.AF = AF{Type: af.get("type").cString(), Stripes: int(af.get("stripes").cInt()), Hash: af.get("hash").cString()}
		}
		if a := v.get("area"); a != nil {
			off, _ := cStrtoull(a.get("offset").cString())
			size, _ := cStrtoull(a.get("size").cString())
			ks.Area = Area{Type: a.get("type").cString(), Offset: off, Size: size,
				Encryption: a.get("encryption").cString(), KeySize: int(a.get("key_size").cInt())}
		}
		h.Keyslots = append(h.Keyslots, ks)
	}
	for _, m := range root.get("tokens").obj {
		id, _ := cAtoi(m.key)
		h.Tokens = append(h.Tokens, Token{ID: id, Type: m.val.get("type").cString(), Keyslots: ids(m.val.get("keyslots"))})
	}
	for _, m := range root.get("segments").obj {
		id, _ := cAtoi(m.key)
		v := m.val
		s := Segment{ID: id, Type: v.get("type").cString(), Encryption: v.get("encryption").cString(),
			SectorSize: int(v.get("sector_size").cInt())}
		s.Offset, s.Size = segmentNumbers(v)
		s.DynamicSize = v.get("size").cString() == "dynamic"
		s.IVTweak, _ = cStrtoull(v.get("iv_tweak").cString())
		for _, f := range v.get("flags").arrOrNil() {
			s.Flags = append(s.Flags, f.cString())
		}
		h.Segments = append(h.Segments, s)
	}
	for _, m := range root.get("digests").obj {
		id, _ := cAtoi(m.key)
		v := m.val
		h.Digests = append(h.Digests, Digest{
			ID: id, Type: v.get("type").cString(), Keyslots: ids(v.get("keyslots")), Segments: ids(v.get("segments")),
			Hash: v.get("hash").cString(), Iterations: int(v.get("iterations").cInt()),
			Salt: decodeBase64(v.get("salt")), Digest: decodeBase64(v.get("digest")),
		})
	}
	metadataSize, keyslotsSize := configSizes(root)
	c := root.get("config")
	h.Config = Config{JSONSize: metadataSize - binHeaderSize, KeyslotsSize: keyslotsSize}
	for _, f := range c.get("flags").arrOrNil() {
		h.Config.Flags = append(h.Config.Flags, f.cString())
	}
	for _, f := range c.get("requirements").get("mandatory").arrOrNil() {
		h.Config.Requirements = append(h.Config.Requirements, f.cString())
	}
}

func ids(arr *jsonValue) []int {
	var out []int
	for _, el := range arr.arrOrNil() {
		if id, ok := cAtoi(el.cString()); ok && numbered(el.cString()) {
			out = append(out, id)
		}
	}
	return out
}

func decodeBase64(v *jsonValue) []byte {
	if v == nil || v.kind != jsonString {
		return nil
	}
	b, err := base64.StdEncoding.DecodeString(v.str)
	if err != nil {
		return nil
	}
	return b
}

func idList(ids []int) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(id)
	}
	return strings.Join(s, ", ")
}
