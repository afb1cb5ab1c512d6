package luks2

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"sort"
	"strconv"
	"strings"
)

// Sentinel errors. Every error returned by this package wraps one of them
// (or an I/O error from the caller's reader), so callers can branch with errors.Is.
var (
	// ErrNotLUKS means no LUKS magic was found at any place a header may live.
	ErrNotLUKS = errors.New("luks2: not a LUKS device or header")
	// ErrUnsupported covers LUKS1 headers and LUKS2 features this verifier does not implement.
	ErrUnsupported = errors.New("luks2: unsupported")
	// ErrChecksum means a header copy had LUKS magic but its checksum did not match.
	ErrChecksum = errors.New("luks2: header checksum mismatch")
	// ErrMalformed means a header copy passed its checksum but its fields or JSON are invalid.
	ErrMalformed = errors.New("luks2: malformed header")
	// ErrTruncated means the file ends before data the header says is there.
	ErrTruncated = errors.New("luks2: file truncated")
	// ErrNoKeyslot means every keyslot that was tried rejected the key: the key is wrong.
	ErrNoKeyslot = errors.New("luks2: no keyslot opened with this key")
)

const (
	binHeaderSize = 4096
	magicLen      = 6
	offChecksum   = 448
	csumFieldLen  = 64

	// MaxKeyslots is LUKS2's fixed keyslot count (ids 0..31).
	MaxKeyslots = 32
)

var (
	magicPrimary   = []byte("LUKS\xba\xbe")
	magicSecondary = []byte("SKUL\xba\xbe")
)

// secondaryOffsets are the only places the spec allows a secondary header.
// They double as the set of valid hdr_size values, because the secondary
// copy always starts right after the primary one.
var secondaryOffsets = []uint64{
	0x4000, 0x8000, 0x10000, 0x20000, 0x40000, 0x80000, 0x100000, 0x200000, 0x400000,
}

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

	Keyslots []Keyslot // sorted by ID
	Tokens   []Token   // sorted by ID
	Segments []Segment // sorted by ID
	Digests  []Digest  // sorted by ID
	Config   Config

	// JSON is the raw metadata text (without the zero padding).
	JSON []byte
}

// Keyslot is one entry of the JSON "keyslots" object.
type Keyslot struct {
	ID       int
	Type     string // "luks2" for normal keyslots
	KeySize  int    // bytes of the volume key stored in this slot
	Priority int    // 0 ignore, 1 normal, 2 high (prefer)
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
	Stripes int
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

// DataSegment returns the lowest-numbered crypt segment, which is the one
// holding the filesystem on every header cryptsetup writes outside reencryption.
func (h *Header) DataSegment() (Segment, bool) {
	for _, s := range h.Segments {
		if s.Type == "crypt" {
			return s, true
		}
	}
	return Segment{}, false
}

// ReadHeader reads and validates a LUKS2 header from r, which may be the
// encrypted device/image itself or a luksHeaderBackup file. Like cryptsetup,
// it uses the primary copy unless that is damaged or older than the secondary.
func ReadHeader(r io.ReaderAt) (*Header, error) {
	primary, perr := readCopy(r, 0)
	if perr == nil {
		// The secondary sits right behind the primary; a newer secondary
		// means an update was interrupted after writing it, and cryptsetup
		// then trusts the secondary.
		secondary, serr := readCopy(r, primary.HeaderSize)
		if errors.Is(serr, errNoMagic) && !errors.Is(serr, ErrTruncated) {
			serr = fmt.Errorf("%w: no secondary header at %#x (magic missing)", ErrMalformed, primary.HeaderSize)
		}
		primary.SecondaryErr = serr
		if serr == nil && secondary.SeqID > primary.SeqID {
			secondary.Copy += " (newer seqid than primary)"
			return secondary, nil
		}
		return primary, nil
	}
	if errors.Is(perr, errLUKS1) {
		return nil, fmt.Errorf("%w: LUKS1 header: only LUKS2 is supported; convert with cryptsetup convert --type luks2", ErrUnsupported)
	}

	// The primary is unusable: scan every allowed secondary position, as
	// cryptsetup does, because the primary's hdr_size cannot be trusted.
	errs := []error{fmt.Errorf("primary: %w", perr)}
	for _, off := range secondaryOffsets {
		h, err := readCopy(r, off)
		if err == nil {
			h.PrimaryErr = perr
			return h, nil
		}
		if !errors.Is(err, errNoMagic) {
			errs = append(errs, fmt.Errorf("secondary at %#x: %w", off, err))
		}
	}
	if len(errs) == 1 && errors.Is(perr, errNoMagic) {
		return nil, fmt.Errorf("%w: no LUKS2 magic at offset 0 or at any secondary header offset", ErrNotLUKS)
	}
	return nil, fmt.Errorf("luks2: no valid header copy: %w", joinErrs(errs))
}

// Internal markers that ReadHeader turns into public errors; they stay
// unexported so the public sentinels keep a single meaning.
var (
	errNoMagic = errors.New("no LUKS2 magic")
	errLUKS1   = errors.New("LUKS1 header")
)

func copyName(off uint64) string {
	if off == 0 {
		return "primary"
	}
	return fmt.Sprintf("secondary at %#x", off)
}

// readCopy reads and fully validates one header copy at off.
func readCopy(r io.ReaderAt, off uint64) (*Header, error) {
	bin := make([]byte, binHeaderSize)
	n, err := r.ReadAt(bin, int64(off))
	if n < magicLen {
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("reading binary header at %#x: %w", off, err)
		}
		// Too short to even hold the magic: for the primary this reads as
		// "not LUKS", for a secondary as a cut-off file.
		return nil, fmt.Errorf("%w: file ends before the header copy at %#x (%w)", ErrTruncated, off, errNoMagic)
	}
	wantMagic := magicPrimary
	if off != 0 {
		wantMagic = magicSecondary
	}
	if !bytes.Equal(bin[:magicLen], wantMagic) {
		return nil, errNoMagic
	}
	if n < len(bin) {
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("reading binary header at %#x: %w", off, err)
		}
		return nil, fmt.Errorf("%w: binary header at %#x needs %d bytes, only %d present", ErrTruncated, off, len(bin), n)
	}

	version := binary.BigEndian.Uint16(bin[6:8])
	if version == 1 && off == 0 {
		return nil, errLUKS1
	}
	if version != 2 {
		return nil, fmt.Errorf("%w: version %d at %#x", ErrUnsupported, version, off)
	}

	h := &Header{
		Version:     version,
		HeaderSize:  binary.BigEndian.Uint64(bin[8:16]),
		SeqID:       binary.BigEndian.Uint64(bin[16:24]),
		Label:       cString(bin[24:72]),
		ChecksumAlg: cString(bin[72:104]),
		Salt:        bytes.Clone(bin[104:168]),
		UUID:        cString(bin[168:208]),
		Subsystem:   cString(bin[208:256]),
		Offset:      binary.BigEndian.Uint64(bin[256:264]),
		Copy:        copyName(off),
	}
	if !validHeaderSize(h.HeaderSize) {
		return nil, fmt.Errorf("%w: hdr_size %#x at %#x is not one of the sizes the spec allows", ErrMalformed, h.HeaderSize, off)
	}
	// hdr_offset pins a copy to its position so a stray copy (e.g. inside a
	// nested volume) cannot be mistaken for ours.
	if h.Offset != off {
		return nil, fmt.Errorf("%w: hdr_offset %#x does not match position %#x", ErrMalformed, h.Offset, off)
	}
	if off != 0 && h.HeaderSize != off {
		return nil, fmt.Errorf("%w: secondary at %#x has hdr_size %#x", ErrMalformed, off, h.HeaderSize)
	}

	newHash, err := hashByName(h.ChecksumAlg)
	if err != nil {
		return nil, fmt.Errorf("header checksum at %#x: %w", off, err)
	}

	// Probe the last byte first so a short file costs no multi-MiB allocation.
	var probe [1]byte
	if n, err := r.ReadAt(probe[:], int64(off+h.HeaderSize-1)); n != 1 {
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("reading JSON area at %#x: %w", off+binHeaderSize, err)
		}
		return nil, fmt.Errorf("%w: header copy at %#x needs %d bytes (hdr_size)", ErrTruncated, off, h.HeaderSize)
	}

	area := make([]byte, h.HeaderSize)
	copy(area, bin)
	jsonArea := area[binHeaderSize:]
	n, err = r.ReadAt(jsonArea, int64(off)+binHeaderSize)
	if n < len(jsonArea) {
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("reading JSON area at %#x: %w", off+binHeaderSize, err)
		}
		return nil, fmt.Errorf("%w: JSON area at %#x needs %d bytes, only %d present", ErrTruncated, off+binHeaderSize, len(jsonArea), n)
	}

	stored := bytes.Clone(area[offChecksum : offChecksum+csumFieldLen])
	clear(area[offChecksum : offChecksum+csumFieldLen])
	hf := newHash()
	if hf.Size() > csumFieldLen {
		return nil, fmt.Errorf("%w: checksum algorithm %q is longer than the csum field", ErrUnsupported, h.ChecksumAlg)
	}
	hf.Write(area)
	if subtle.ConstantTimeCompare(hf.Sum(nil), stored[:hf.Size()]) != 1 {
		return nil, fmt.Errorf("%w (%s over %d bytes)", ErrChecksum, h.ChecksumAlg, h.HeaderSize)
	}

	// The JSON text is NUL-terminated inside its zero-padded area.
	text := jsonArea
	if i := bytes.IndexByte(text, 0); i >= 0 {
		text = text[:i]
	}
	h.JSON = bytes.Clone(text)
	if err := h.parseJSON(); err != nil {
		return nil, fmt.Errorf("%w: JSON metadata: %w", ErrMalformed, err)
	}
	if h.Config.JSONSize != h.HeaderSize-binHeaderSize {
		return nil, fmt.Errorf("%w: config.json_size %d does not match hdr_size %d", ErrMalformed, h.Config.JSONSize, h.HeaderSize)
	}
	if err := h.validateAreas(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return h, nil
}

func validHeaderSize(n uint64) bool {
	for _, v := range secondaryOffsets {
		if n == v {
			return true
		}
	}
	return false
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// hashByName maps cryptsetup/libgcrypt hash names to Go implementations.
func hashByName(name string) (func() hash.Hash, error) {
	switch strings.ToLower(name) {
	case "sha1":
		return sha1.New, nil
	case "sha224":
		return sha256.New224, nil
	case "sha256":
		return sha256.New, nil
	case "sha384":
		return sha512.New384, nil
	case "sha512":
		return sha512.New, nil
	case "sha3-256":
		return func() hash.Hash { return sha3.New256() }, nil
	case "sha3-384":
		return func() hash.Hash { return sha3.New384() }, nil
	case "sha3-512":
		return func() hash.Hash { return sha3.New512() }, nil
	}
	return nil, fmt.Errorf("%w: hash %q", ErrUnsupported, name)
}

// u64String decodes the spec's string-encoded 64-bit integers; JSON numbers
// would lose precision above 2^53, which is why LUKS2 stores them as strings.
type u64String uint64

func (u *u64String) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a decimal string, got %s", truncateForError(b))
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("want a decimal string, got %q", s)
	}
	*u = u64String(v)
	return nil
}

func truncateForError(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

type jsonMetadata struct {
	Keyslots map[string]jsonKeyslot `json:"keyslots"`
	Tokens   map[string]jsonToken   `json:"tokens"`
	Segments map[string]jsonSegment `json:"segments"`
	Digests  map[string]jsonDigest  `json:"digests"`
	Config   *jsonConfig            `json:"config"`
}

type jsonKeyslot struct {
	Type     string `json:"type"`
	KeySize  int    `json:"key_size"`
	Priority *int   `json:"priority"`
	AF       struct {
		Type    string `json:"type"`
		Stripes int    `json:"stripes"`
		Hash    string `json:"hash"`
	} `json:"af"`
	Area struct {
		Type       string    `json:"type"`
		Offset     u64String `json:"offset"`
		Size       u64String `json:"size"`
		Encryption string    `json:"encryption"`
		KeySize    int       `json:"key_size"`
	} `json:"area"`
	KDF struct {
		Type       string `json:"type"`
		Hash       string `json:"hash"`
		Iterations int    `json:"iterations"`
		Time       int    `json:"time"`
		Memory     int    `json:"memory"`
		CPUs       int    `json:"cpus"`
		Salt       []byte `json:"salt"`
	} `json:"kdf"`
}

type jsonToken struct {
	Type     string   `json:"type"`
	Keyslots []string `json:"keyslots"`
}

type jsonSegment struct {
	Type       string    `json:"type"`
	Offset     u64String `json:"offset"`
	Size       string    `json:"size"`
	IVTweak    u64String `json:"iv_tweak"`
	Encryption string    `json:"encryption"`
	SectorSize int       `json:"sector_size"`
	Flags      []string  `json:"flags"`
}

type jsonDigest struct {
	Type       string   `json:"type"`
	Keyslots   []string `json:"keyslots"`
	Segments   []string `json:"segments"`
	Hash       string   `json:"hash"`
	Iterations int      `json:"iterations"`
	Salt       []byte   `json:"salt"`
	Digest     []byte   `json:"digest"`
}

type jsonConfig struct {
	JSONSize     u64String `json:"json_size"`
	KeyslotsSize u64String `json:"keyslots_size"`
	Flags        []string  `json:"flags"`
	Requirements *struct {
		Mandatory []string `json:"mandatory"`
	} `json:"requirements"`
}

// parseID parses an object key or a reference to one. The spec writes ids as
// decimal strings; the limit keeps a corrupt id from becoming a huge index.
func parseID(s string, limit int) (int, error) {
	if s == "" || len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("bad id %q", s)
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 || v >= limit {
		return 0, fmt.Errorf("bad id %q", s)
	}
	return v, nil
}

func parseIDs(ss []string, limit int) ([]int, error) {
	out := make([]int, 0, len(ss))
	for _, s := range ss {
		v, err := parseID(s, limit)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// maxSegments bounds segment ids; cryptsetup never writes more than a few
// (reencryption uses up to three), so anything large is corruption.
const maxSegments = 32

func (h *Header) parseJSON() error {
	var m jsonMetadata
	dec := json.NewDecoder(bytes.NewReader(h.JSON))
	if err := dec.Decode(&m); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	// Every top-level section is mandatory in the spec; missing ones mean
	// we are not looking at real LUKS2 metadata.
	switch {
	case m.Keyslots == nil:
		return errors.New(`missing "keyslots"`)
	case m.Tokens == nil:
		return errors.New(`missing "tokens"`)
	case m.Segments == nil:
		return errors.New(`missing "segments"`)
	case m.Digests == nil:
		return errors.New(`missing "digests"`)
	case m.Config == nil:
		return errors.New(`missing "config"`)
	}

	for k, js := range m.Keyslots {
		id, err := parseID(k, MaxKeyslots)
		if err != nil {
			return fmt.Errorf("keyslot: %w", err)
		}
		prio := 1
		if js.Priority != nil {
			prio = *js.Priority
		}
		if prio < 0 || prio > 2 {
			return fmt.Errorf("keyslot %d: priority %d out of range", id, prio)
		}
		if js.KeySize < 0 || js.Area.KeySize < 0 || js.AF.Stripes < 0 ||
			js.KDF.Iterations < 0 || js.KDF.Time < 0 || js.KDF.Memory < 0 || js.KDF.CPUs < 0 {
			return fmt.Errorf("keyslot %d: negative size or cost", id)
		}
		h.Keyslots = append(h.Keyslots, Keyslot{
			ID:       id,
			Type:     js.Type,
			KeySize:  js.KeySize,
			Priority: prio,
			KDF: KDF{
				Type: js.KDF.Type, Hash: js.KDF.Hash, Iterations: js.KDF.Iterations,
				Time: js.KDF.Time, Memory: js.KDF.Memory, CPUs: js.KDF.CPUs, Salt: js.KDF.Salt,
			},
			AF: AF{Type: js.AF.Type, Stripes: js.AF.Stripes, Hash: js.AF.Hash},
			Area: Area{
				Type: js.Area.Type, Offset: uint64(js.Area.Offset), Size: uint64(js.Area.Size),
				Encryption: js.Area.Encryption, KeySize: js.Area.KeySize,
			},
		})
	}
	sort.Slice(h.Keyslots, func(i, j int) bool { return h.Keyslots[i].ID < h.Keyslots[j].ID })

	for k, jt := range m.Tokens {
		id, err := parseID(k, MaxKeyslots)
		if err != nil {
			return fmt.Errorf("token: %w", err)
		}
		ks, err := parseIDs(jt.Keyslots, MaxKeyslots)
		if err != nil {
			return fmt.Errorf("token %d keyslots: %w", id, err)
		}
		h.Tokens = append(h.Tokens, Token{ID: id, Type: jt.Type, Keyslots: ks})
	}
	sort.Slice(h.Tokens, func(i, j int) bool { return h.Tokens[i].ID < h.Tokens[j].ID })

	for k, js := range m.Segments {
		id, err := parseID(k, maxSegments)
		if err != nil {
			return fmt.Errorf("segment: %w", err)
		}
		s := Segment{
			ID: id, Type: js.Type, Offset: uint64(js.Offset), IVTweak: uint64(js.IVTweak),
			Encryption: js.Encryption, SectorSize: js.SectorSize, Flags: js.Flags,
		}
		if js.Size == "dynamic" {
			s.DynamicSize = true
		} else if s.Size, err = strconv.ParseUint(js.Size, 10, 64); err != nil {
			return fmt.Errorf("segment %d: size %q is neither a number nor \"dynamic\"", id, js.Size)
		}
		h.Segments = append(h.Segments, s)
	}
	sort.Slice(h.Segments, func(i, j int) bool { return h.Segments[i].ID < h.Segments[j].ID })

	for k, jd := range m.Digests {
		id, err := parseID(k, MaxKeyslots)
		if err != nil {
			return fmt.Errorf("digest: %w", err)
		}
		ks, err := parseIDs(jd.Keyslots, MaxKeyslots)
		if err != nil {
			return fmt.Errorf("digest %d keyslots: %w", id, err)
		}
		segs, err := parseIDs(jd.Segments, maxSegments)
		if err != nil {
			return fmt.Errorf("digest %d segments: %w", id, err)
		}
		if jd.Iterations < 0 {
			return fmt.Errorf("digest %d: negative iterations", id)
		}
		h.Digests = append(h.Digests, Digest{
			ID: id, Type: jd.Type, Keyslots: ks, Segments: segs, Hash: jd.Hash,
			Iterations: jd.Iterations, Salt: jd.Salt, Digest: jd.Digest,
		})
	}
	sort.Slice(h.Digests, func(i, j int) bool { return h.Digests[i].ID < h.Digests[j].ID })

	h.Config = Config{
		JSONSize:     uint64(m.Config.JSONSize),
		KeyslotsSize: uint64(m.Config.KeyslotsSize),
		Flags:        m.Config.Flags,
	}
	if m.Config.Requirements != nil {
		h.Config.Requirements = m.Config.Requirements.Mandatory
	}
	return nil
}

// validateAreas applies the same bounds cryptsetup does: keyslot areas must
// lie inside the keyslots area after both metadata copies. Checking here
// means OpenKeyslot never reads outside the header's own region.
func (h *Header) validateAreas() error {
	start := 2 * h.HeaderSize
	end := start + h.Config.KeyslotsSize
	if end < start {
		return fmt.Errorf("config.keyslots_size %d overflows", h.Config.KeyslotsSize)
	}
	for _, ks := range h.Keyslots {
		if ks.Type != "luks2" {
			continue
		}
		a := ks.Area
		if a.Offset < start || a.Offset > end || a.Size > end-a.Offset {
			return fmt.Errorf("keyslot %d area [%d, +%d) lies outside the keyslots area [%d, %d)", ks.ID, a.Offset, a.Size, start, end)
		}
	}
	for _, d := range h.Digests {
		for _, id := range d.Keyslots {
			if _, ok := h.keyslot(id); !ok {
				return fmt.Errorf("digest %d references missing keyslot %d", d.ID, id)
			}
		}
	}
	return nil
}

func (h *Header) keyslot(id int) (Keyslot, bool) {
	for _, ks := range h.Keyslots {
		if ks.ID == id {
			return ks, true
		}
	}
	return Keyslot{}, false
}
