package luks2

import (
	"fmt"
	"strconv"
	"strings"
)

// validateMetadata applies the checks cryptsetup 2.6 makes before it
// loads a LUKS2 header, in its order: requirements, tokens, digests,
// segments, keyslots, config, keyslot areas, JSON size, then the luks2
// keyslot type's own checks. A header failing any of them is one cryptsetup
// refuses ("not a valid LUKS device"), so a key can never be good for it.
// jsonAreaSize is hdr_size minus the binary header.
func validateMetadata(root *jsonValue, jsonAreaSize uint64) error {
	// cryptsetup drops unknown kdf members when a first validation fails
	// and validates again; dropping them up front gives the same verdict.
	for _, m := range root.get("keyslots").objOrNil() {
		if m.val.get("type").cString() == "luks2" {
			repairKDF(m.val)
		}
	}
	for _, check := range []func(*jsonValue) error{
		checkRequirements, checkTokens, checkDigests, checkSegments,
		checkKeyslots, checkConfig, checkAreas,
	} {
		if err := check(root); err != nil {
			return err
		}
	}
	if err := checkJSONSize(root, jsonAreaSize); err != nil {
		return err
	}
	return checkKeyslotTypes(root)
}

// section returns a top-level member that must be an object.
func section(root *jsonValue, name string) (*jsonValue, error) {
	v := root.get(name)
	if v == nil {
		return nil, fmt.Errorf("missing %q section", name)
	}
	if v.kind != jsonObject {
		return nil, fmt.Errorf("%q is a %s, not an object", name, v.kind)
	}
	return v, nil
}

// field is cryptsetup's json_contains: a member of the given JSON type.
func field(obj *jsonValue, where, name string, kind jsonKind) (*jsonValue, error) {
	v := obj.get(name)
	if v == nil {
		return nil, fmt.Errorf("%s: missing %q (%s)", where, name, kind)
	}
	if v.kind != kind {
		return nil, fmt.Errorf("%s: %q is a %s, want %s", where, name, v.kind, kind)
	}
	return v, nil
}

// stringField is json_contains_string: a non-empty string member.
func stringField(obj *jsonValue, where, name string) (string, error) {
	v, err := field(obj, where, name, jsonString)
	if err != nil {
		return "", err
	}
	if v.str == "" {
		return "", fmt.Errorf("%s: %q is empty", where, name)
	}
	return v.str, nil
}

// uint64Field is a non-empty string member holding a decimal number
// (the spec stores 64-bit values as strings so JSON doubles cannot round
// them). numberedOnly adds cryptsetup's digits-only check, which it makes
// for offsets and sizes but not for the config sizes.
func uint64Field(obj *jsonValue, where, name string, numberedOnly bool) (uint64, error) {
	s, err := stringField(obj, where, name)
	if err != nil {
		return 0, err
	}
	if numberedOnly && !numbered(s) {
		return 0, fmt.Errorf("%s: %q is %q, not a decimal number", where, name, s)
	}
	n, ok := cStrtoull(s)
	if !ok {
		return 0, fmt.Errorf("%s: %q is %q, not an unsigned 64-bit number", where, name, s)
	}
	return n, nil
}

// uint32Int checks an integer member fits cryptsetup's uint32_t.
func uint32Int(v *jsonValue) bool {
	n, err := strconv.ParseInt(v.str, 10, 64)
	return err == nil && n >= 0 && n <= 1<<32-1
}

// stringArrayField checks an optional member is an array of strings.
func stringArrayField(obj *jsonValue, where, name string) error {
	if !obj.has(name) {
		return nil
	}
	arr, err := field(obj, where, name, jsonArray)
	if err != nil {
		return err
	}
	for i, el := range arr.arr {
		if el.kind != jsonString {
			return fmt.Errorf("%s: %s[%d] is a %s, not a string", where, name, i, el.kind)
		}
	}
	return nil
}

// refsExist checks an array of ids names existing members of target.
func refsExist(arr *jsonValue, where, what string, target *jsonValue) error {
	for i, el := range arr.arr {
		if el.kind != jsonString {
			return fmt.Errorf("%s: %s[%d] is a %s, not a string", where, what, i, el.kind)
		}
		ref := target.get(el.str)
		if ref == nil {
			return fmt.Errorf("%s references %s %q, which does not exist", where, strings.TrimSuffix(what, "s"), el.str)
		}
		if ref.kind != jsonObject {
			return fmt.Errorf("%s references %s %q, which is a %s, not an object", where, strings.TrimSuffix(what, "s"), el.str, ref.kind)
		}
	}
	return nil
}

func containsString(arr *jsonValue, s string) bool {
	if arr == nil || arr.kind != jsonArray {
		return false
	}
	for _, el := range arr.arr {
		if el.kind == jsonString && el.str == s {
			return true
		}
	}
	return false
}

func checkRequirements(root *jsonValue) error {
	config, err := section(root, "config")
	if err != nil {
		return err
	}
	if !config.has("requirements") {
		return nil
	}
	req, err := field(config, "config", "requirements", jsonObject)
	if err != nil {
		return err
	}
	if err := stringArrayField(req, "config.requirements", "mandatory"); err != nil {
		return err
	}
	online := 0
	for _, el := range req.get("mandatory").arrOrNil() {
		if reencryptFlag(el.str) {
			online++
		}
	}
	if online > 1 {
		return fmt.Errorf("config.requirements.mandatory names %d online-reencrypt requirements", online)
	}
	return nil
}

func (v *jsonValue) objOrNil() []jsonMember {
	if v == nil || v.kind != jsonObject {
		return nil
	}
	return v.obj
}

func (v *jsonValue) arrOrNil() []*jsonValue {
	if v == nil || v.kind != jsonArray {
		return nil
	}
	return v.arr
}

// reencryptFlag matches "online-reencrypt" and "online-reencrypt-vN".
func reencryptFlag(s string) bool {
	if s == "online-reencrypt" {
		return true
	}
	rest, ok := strings.CutPrefix(s, "online-reencrypt-v")
	return ok && rest != "" && numbered(rest)
}

func checkTokens(root *jsonValue) error {
	tokens, err := section(root, "tokens")
	if err != nil {
		return err
	}
	keyslots := root.get("keyslots")
	if keyslots == nil {
		return fmt.Errorf(`missing "keyslots" section`)
	}
	for _, m := range tokens.obj {
		where := fmt.Sprintf("token %q", m.key)
		if !numbered(m.key) {
			return fmt.Errorf("%s: id is not a number", where)
		}
		if _, err := stringField(m.val, where, "type"); err != nil {
			return err
		}
		arr, err := field(m.val, where, "keyslots", jsonArray)
		if err != nil {
			return err
		}
		if err := refsExist(arr, where, "keyslots", keyslots); err != nil {
			return err
		}
	}
	return nil
}

func checkDigests(root *jsonValue) error {
	digests, err := section(root, "digests")
	if err != nil {
		return err
	}
	keyslots, err := section(root, "keyslots")
	if err != nil {
		return err
	}
	segments, err := section(root, "segments")
	if err != nil {
		return err
	}
	for _, m := range digests.obj {
		where := fmt.Sprintf("digest %q", m.key)
		if !numbered(m.key) {
			return fmt.Errorf("%s: id is not a number", where)
		}
		if _, err := stringField(m.val, where, "type"); err != nil {
			return err
		}
		ks, err := field(m.val, where, "keyslots", jsonArray)
		if err != nil {
			return err
		}
		segs, err := field(m.val, where, "segments", jsonArray)
		if err != nil {
			return err
		}
		if err := refsExist(ks, where, "keyslots", keyslots); err != nil {
			return err
		}
		if err := refsExist(segs, where, "segments", segments); err != nil {
			return err
		}
	}
	return nil
}

// segmentIsBackup is json_segment_is_backup: a flag starting "backup-".
func segmentIsBackup(seg *jsonValue) bool {
	for _, f := range seg.get("flags").arrOrNil() {
		if f.kind == jsonString && strings.HasPrefix(f.str, "backup-") {
			return true
		}
	}
	return false
}

// segmentNumbers reads a segment's offset and size (0 for "dynamic")
// once checkSegments has accepted them.
func segmentNumbers(seg *jsonValue) (offset, size uint64) {
	offset, _ = cStrtoull(seg.get("offset").cString())
	if s := seg.get("size").cString(); s != "dynamic" {
		size, _ = cStrtoull(s)
	}
	return offset, size
}

func checkSegments(root *jsonValue) error {
	segments, err := section(root, "segments")
	if err != nil {
		return err
	}
	if len(segments.obj) == 0 {
		return fmt.Errorf("no segment: the header describes no data area")
	}
	digests := root.get("digests")
	firstBackup := -1
	for _, m := range segments.obj {
		where := fmt.Sprintf("segment %q", m.key)
		if !numbered(m.key) {
			return fmt.Errorf("%s: id is not a number", where)
		}
		seg := m.val
		typ, err := stringField(seg, where, "type")
		if err != nil {
			return err
		}
		offset, err := uint64Field(seg, where, "offset", true)
		if err != nil {
			return err
		}
		sizeText, err := stringField(seg, where, "size")
		if err != nil {
			return err
		}
		var size uint64
		if sizeText != "dynamic" {
			if size, err = uint64Field(seg, where, "size", true); err != nil {
				return err
			}
			if size == 0 {
				return fmt.Errorf("%s: size is 0", where)
			}
		}
		if offset%512 != 0 {
			return fmt.Errorf("%s: offset %d is not a multiple of 512", where, offset)
		}
		if size%512 != 0 {
			return fmt.Errorf("%s: size %d is not a multiple of 512", where, size)
		}
		if err := stringArrayField(seg, where, "flags"); err != nil {
			return err
		}
		id, ok := cAtoi(m.key)
		if !ok {
			return fmt.Errorf("%s: id out of range", where)
		}
		if segmentIsBackup(seg) {
			if firstBackup < 0 || id < firstBackup {
				firstBackup = id
			}
		} else if firstBackup >= 0 && id >= firstBackup {
			return fmt.Errorf("%s: a regular segment after backup segment %d", where, firstBackup)
		}
		if typ == "crypt" {
			if err := checkCryptSegment(seg, where, m.key, size, digests); err != nil {
				return err
			}
		}
	}
	count := len(segments.obj)
	if firstBackup == 0 {
		return fmt.Errorf("no regular segment: segment 0 is a backup segment")
	}
	if firstBackup >= count {
		return fmt.Errorf("gap between the regular segments and backup segment %d", firstBackup)
	}
	if firstBackup < 0 {
		firstBackup = count
	}
	type interval struct{ off, len uint64 } // len 0: dynamic, to the end of the device
	iv := make([]interval, firstBackup)
	for i := range iv {
		seg := segments.get(strconv.Itoa(i))
		if seg == nil {
			return fmt.Errorf("segments are not numbered 0..%d: segment %d is missing", count-1, i)
		}
		iv[i].off, iv[i].len = segmentNumbers(seg)
	}
	for i, a := range iv {
		if a.len == 0 && i != len(iv)-1 {
			return fmt.Errorf("segment %d has a dynamic size but is not the last regular segment", i)
		}
		for j, b := range iv {
			if i == j {
				continue
			}
			if b.len != 0 && b.off > ^uint64(0)-b.len {
				return fmt.Errorf("segment %d: offset + size overflows", j)
			}
			if a.off >= b.off && (b.len == 0 || a.off < b.off+b.len) {
				return fmt.Errorf("segments %d and %d overlap", i, j)
			}
		}
	}
	for i := firstBackup; i < count; i++ {
		if segments.get(strconv.Itoa(i)) == nil {
			return fmt.Errorf("segments are not numbered 0..%d: segment %d is missing", count-1, i)
		}
	}
	return nil
}

func checkCryptSegment(seg *jsonValue, where, key string, size uint64, digests *jsonValue) error {
	tweak, err := stringField(seg, where, "iv_tweak")
	if err != nil {
		return err
	}
	if _, err := stringField(seg, where, "encryption"); err != nil {
		return err
	}
	ss, err := field(seg, where, "sector_size", jsonInt)
	if err != nil {
		return err
	}
	if seg.has("integrity") {
		integ, err := field(seg, where, "integrity", jsonObject)
		if err != nil {
			return err
		}
		for _, name := range []string{"type", "journal_encryption", "journal_integrity"} {
			if _, err := stringField(integ, where+" integrity", name); err != nil {
				return err
			}
		}
	}
	if !uint32Int(ss) {
		return fmt.Errorf("%s: sector_size %s out of range", where, ss.str)
	}
	sectorSize, _ := strconv.ParseUint(ss.str, 10, 32)
	if sectorSize == 0 || sectorSize%512 != 0 {
		return fmt.Errorf("%s: sector_size %d is not a positive multiple of 512", where, sectorSize)
	}
	if !numbered(tweak) {
		return fmt.Errorf("%s: iv_tweak %q is not a decimal number", where, tweak)
	}
	if _, ok := cStrtoull(tweak); !ok {
		return fmt.Errorf("%s: iv_tweak %q is out of range", where, tweak)
	}
	if size%sectorSize != 0 {
		return fmt.Errorf("%s: size %d is not a multiple of sector_size %d", where, size, sectorSize)
	}
	for _, d := range digests.obj {
		if containsString(d.val.get("segments"), key) {
			return nil
		}
	}
	return fmt.Errorf("%s: crypt segment not assigned to any digest", where)
}

func checkKeyslots(root *jsonValue) error {
	keyslots, err := section(root, "keyslots")
	if err != nil {
		return err
	}
	for _, m := range keyslots.obj {
		where := fmt.Sprintf("keyslot %q", m.key)
		if !numbered(m.key) {
			return fmt.Errorf("%s: id is not a number", where)
		}
		if _, err := stringField(m.val, where, "type"); err != nil {
			return err
		}
		ks, err := field(m.val, where, "key_size", jsonInt)
		if err != nil {
			return err
		}
		if !uint32Int(ks) {
			return fmt.Errorf("%s: key_size %s out of range", where, ks.str)
		}
	}
	return nil
}

// allowedHeaderSizes are the metadata sizes (binary header plus JSON area)
// the spec allows; each is also where a secondary copy may start.
var allowedHeaderSizes = []uint64{
	0x4000, 0x8000, 0x10000, 0x20000, 0x40000, 0x80000, 0x100000, 0x200000, 0x400000,
}

func validHeaderSize(n uint64) bool {
	for _, v := range allowedHeaderSizes {
		if n == v {
			return true
		}
	}
	return false
}

// maxKeyslotsSize is cryptsetup's LUKS2_MAX_KEYSLOTS_SIZE (128 MiB).
const maxKeyslotsSize = 128 << 20

// minSegmentOffset is json_segments_get_minimal_offset: the lowest offset
// of the non-backup segments, 0 if any is at 0 (a detached header).
func minSegmentOffset(segments *jsonValue) uint64 {
	lowest := ^uint64(0)
	for _, m := range segments.obj {
		if segmentIsBackup(m.val) {
			continue
		}
		off, _ := segmentNumbers(m.val)
		if off == 0 {
			return 0
		}
		lowest = minU64(lowest, off)
	}
	return lowest
}

func minU64(a, b uint64) uint64 {
	if a < b {
		return a
	}
	return b
}

// configSizes reads config.json_size and config.keyslots_size once
// checkConfig accepted them.
func configSizes(root *jsonValue) (metadataSize, keyslotsSize uint64) {
	c := root.get("config")
	js, _ := cStrtoull(c.get("json_size").cString())
	ks, _ := cStrtoull(c.get("keyslots_size").cString())
	return js + binHeaderSize, ks
}

func checkConfig(root *jsonValue) error {
	config, err := section(root, "config")
	if err != nil {
		return err
	}
	jsonSize, err := uint64Field(config, "config", "json_size", false)
	if err != nil {
		return err
	}
	keyslotsSize, err := uint64Field(config, "config", "keyslots_size", false)
	if err != nil {
		return err
	}
	metadataSize := jsonSize + binHeaderSize
	if !validHeaderSize(metadataSize) {
		return fmt.Errorf("config.json_size %d: metadata size %d is not one the spec allows", jsonSize, metadataSize)
	}
	if keyslotsSize%4096 != 0 || keyslotsSize > maxKeyslotsSize {
		return fmt.Errorf("config.keyslots_size %d is not a multiple of 4096 up to %d", keyslotsSize, maxKeyslotsSize)
	}
	if segOff := minSegmentOffset(root.get("segments")); segOff != 0 &&
		(segOff < keyslotsSize || segOff-keyslotsSize < 2*metadataSize) {
		return fmt.Errorf("config.keyslots_size %d does not fit between the two metadata copies (%d bytes) and the data at offset %d",
			keyslotsSize, 2*metadataSize, segOff)
	}
	return stringArrayField(config, "config", "flags")
}

func checkAreas(root *jsonValue) error {
	keyslots := root.get("keyslots")
	metadataSize, keyslotsSize := configSizes(root)
	areasEnd := 2*metadataSize + keyslotsSize
	type interval struct {
		key      string
		off, len uint64
	}
	var iv []interval
	for _, m := range keyslots.obj {
		where := fmt.Sprintf("keyslot %q", m.key)
		area, err := field(m.val, where, "area", jsonObject)
		if err != nil {
			return err
		}
		if _, err := stringField(area, where+" area", "type"); err != nil {
			return err
		}
		off, err := uint64Field(area, where+" area", "offset", true)
		if err != nil {
			return err
		}
		size, err := uint64Field(area, where+" area", "size", true)
		if err != nil {
			return err
		}
		iv = append(iv, interval{m.key, off, size})
	}
	for _, a := range iv {
		switch {
		case a.off < 2*metadataSize:
			return fmt.Errorf("keyslot %q area offset %d lies inside the metadata copies (first %d bytes)", a.key, a.off, 2*metadataSize)
		case a.len == 0:
			return fmt.Errorf("keyslot %q area size is 0", a.key)
		case a.off > ^uint64(0)-a.len:
			return fmt.Errorf("keyslot %q area offset + size overflows", a.key)
		case a.off+a.len > areasEnd:
			return fmt.Errorf("keyslot %q area [%d, %d) extends past the keyslots area, which ends at %d", a.key, a.off, a.off+a.len, areasEnd)
		}
		for _, b := range iv {
			if a.key == b.key {
				continue
			}
			if a.off >= b.off && a.off < b.off+b.len {
				return fmt.Errorf("keyslot %q area [%d, %d) overlaps keyslot %q area [%d, %d)",
					a.key, a.off, a.off+a.len, b.key, b.off, b.off+b.len)
			}
		}
	}
	return nil
}

func checkJSONSize(root *jsonValue, jsonAreaSize uint64) error {
	jsonSize, _ := cStrtoull(root.get("config").get("json_size").cString())
	if jsonSize != jsonAreaSize {
		return fmt.Errorf("config.json_size %d does not match the binary header's JSON area of %d bytes", jsonSize, jsonAreaSize)
	}
	if n := serializedLen(root); uint64(n) > jsonAreaSize {
		return fmt.Errorf("the JSON metadata (%d bytes as cryptsetup writes it) does not fit the %d-byte JSON area", n, jsonAreaSize)
	}
	return nil
}

// serializedLen is the length of v as json-c writes it in compact form,
// which is how cryptsetup measures the metadata against json_size.
func serializedLen(v *jsonValue) int {
	switch v.kind {
	case jsonString:
		return escapedLen(v.str)
	case jsonInt:
		// json-c prints the value, dropping leading zeros.
		return len(strconv.FormatInt(v.cInt64(), 10))
	case jsonDouble, jsonNull:
		return len(v.cString())
	case jsonBool:
		return len(strconv.FormatBool(v.b))
	case jsonArray:
		n := 2 + max(len(v.arr)-1, 0)
		for _, el := range v.arr {
			n += serializedLen(el)
		}
		return n
	}
	n, members := 2, 0
	for _, m := range v.obj {
		members++
		n += escapedLen(m.key) + 1 + serializedLen(m.val)
	}
	return n + max(members-1, 0)
}

func escapedLen(s string) int {
	n := 2
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t':
			n += 2
		case c < 0x20:
			n += 6
		default:
			n++
		}
	}
	return n
}

// kdfMembers are the members a kdf object keeps after cryptsetup's repair;
// any others are dropped before validation (measured: an argon2 "time"
// left in a pbkdf2 kdf object still opens).
var kdfMembers = map[string][]string{
	"pbkdf2":   {"type", "salt", "hash", "iterations"},
	"argon2i":  {"type", "salt", "time", "memory", "cpus"},
	"argon2id": {"type", "salt", "time", "memory", "cpus"},
}

// repairKDF drops the members cryptsetup's keyslot repair drops.
func repairKDF(ks *jsonValue) {
	kdf := ks.get("kdf")
	if kdf == nil || kdf.kind != jsonObject {
		return
	}
	typ := kdf.get("type")
	if typ == nil || typ.kind != jsonString {
		return
	}
	keep, ok := kdfMembers[typ.str]
	if !ok {
		return
	}
	kept := kdf.obj[:0]
	for _, m := range kdf.obj {
		for _, k := range keep {
			if m.key == k {
				kept = append(kept, m)
				break
			}
		}
	}
	kdf.obj = kept
}

// validateLUKS2Keyslot is the luks2 keyslot type's own validation, run at
// load time and again before each open.
func validateLUKS2Keyslot(ks *jsonValue, where string) error {
	kdf, af, area := ks.get("kdf"), ks.get("af"), ks.get("area")
	switch {
	case kdf == nil:
		return fmt.Errorf("%s: missing kdf", where)
	case af == nil:
		return fmt.Errorf("%s: missing af", where)
	case area == nil:
		return fmt.Errorf("%s: missing area", where)
	}
	typ, err := field(kdf, where+" kdf", "type", jsonString)
	if err != nil {
		return err
	}
	want := map[string][]typedMember{
		"pbkdf2":   {{"hash", jsonString}, {"iterations", jsonInt}, {"salt", jsonString}},
		"argon2i":  {{"time", jsonInt}, {"memory", jsonInt}, {"cpus", jsonInt}, {"salt", jsonString}},
		"argon2id": {{"time", jsonInt}, {"memory", jsonInt}, {"cpus", jsonInt}, {"salt", jsonString}},
	}[typ.str]
	if want != nil && len(kdf.obj) != len(want)+1 {
		return fmt.Errorf("%s kdf: %s wants exactly type, %s", where, typ.str, memberNames(want))
	}
	for _, w := range want {
		if _, err := field(kdf, where+" kdf", w.name, w.kind); err != nil {
			return err
		}
	}
	afType := af.get("type")
	if afType == nil || afType.cString() != "luks1" {
		return fmt.Errorf("%s: af type %s is not luks1", where, describe(afType))
	}
	if _, err := field(af, where+" af", "hash", jsonString); err != nil {
		return err
	}
	if _, err := field(af, where+" af", "stripes", jsonInt); err != nil {
		return err
	}
	areaType := area.get("type")
	if areaType == nil || areaType.cString() != "raw" {
		return fmt.Errorf("%s: area type %s is not raw", where, describe(areaType))
	}
	for _, w := range []typedMember{{"encryption", jsonString}, {"key_size", jsonInt}, {"offset", jsonString}, {"size", jsonString}} {
		if _, err := field(area, where+" area", w.name, w.kind); err != nil {
			return err
		}
	}
	return nil
}

type typedMember struct {
	name string
	kind jsonKind
}

func memberNames(ws []typedMember) string {
	s := make([]string, len(ws))
	for i, w := range ws {
		s[i] = w.name
	}
	return strings.Join(s, ", ")
}

func describe(v *jsonValue) string {
	if v == nil {
		return "(missing)"
	}
	return strconv.Quote(v.cString())
}

// digestsOfKeyslot lists the digests whose keyslots name id, the way
// cryptsetup names a keyslot in them (its decimal number).
func digestsOfKeyslot(root *jsonValue, id int) []jsonMember {
	var out []jsonMember
	name := strconv.Itoa(id)
	for _, d := range root.get("digests").obj {
		if containsString(d.val.get("keyslots"), name) {
			out = append(out, d)
		}
	}
	return out
}

func checkKeyslotTypes(root *jsonValue) error {
	for _, m := range root.get("keyslots").obj {
		where := fmt.Sprintf("keyslot %q", m.key)
		switch m.val.get("type").cString() {
		case "luks2":
			if err := validateLUKS2Keyslot(m.val, where); err != nil {
				return err
			}
			id, ok := cAtoi(m.key)
			if !ok {
				return fmt.Errorf("%s: id out of range", where)
			}
			if n := len(digestsOfKeyslot(root, id)); n != 1 {
				return fmt.Errorf("%s is assigned to %d digests; a luks2 keyslot needs exactly one", where, n)
			}
		case "reencrypt":
			// Checked when a key is tried: this verifier does not handle
			// a reencryption in progress.
		}
	}
	return nil
}
