package stick

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"unicode/utf16"

	"github.com/google/uuid"
)

// The stick's partition table is written here, in Go, rather than by
// sfdisk or sgdisk: neither is on a minimal Debian (sfdisk is in the
// non-essential fdisk package), and the layout is fixed: two partitions,
// MiB-aligned, the kit first.

// Partition type GUIDs: Linux filesystem data for the kit, and the
// Discoverable Partitions Specification's "Linux LUKS" for the bundle, so
// a partitioning tool shows what each one is.
var (
	typeLinuxFS = uuid.MustParse("0fc63daf-8483-4772-8e79-3d69d8477de4")
	typeLUKS    = uuid.MustParse("ca7d7ccb-63ed-4c53-861c-1742536059cc")
)

const (
	gptEntries    = 128
	gptEntrySize  = 128
	gptHeaderSize = 92
	mib           = 1 << 20
)

// part is one GPT partition, in bytes from the device's start.
type part struct {
	Type, UUID  uuid.UUID
	Name        string
	Start, Size int64
}

// gptLayout is the table written on a stick: where each part lies, and
// the bytes of the primary table (from offset 0) and of the backup table
// (from BackupAt).
type gptLayout struct {
	Disk            uuid.UUID
	Parts           []part
	Primary, Backup []byte
	BackupAt        int64
}

// errTooSmall is wrapped when the stick cannot hold the kit and the bundle.
var errTooSmall = errors.New("the stick is too small")

// minLUKS is the smallest bundle partition: LUKS2's 16 MiB header and a
// filesystem with room for the secrets and the runbook.
const minLUKS = 32 * mib

// layoutGPT lays out a device of size bytes with logical sector ss: the
// kit partition of kitSize bytes (rounded up to a MiB) from 1 MiB, and the
// LUKS partition on the rest, up to the last whole MiB before the backup
// table.
func layoutGPT(size int64, ss int, kitSize int64, disk, kitUUID, luksUUID uuid.UUID) (*gptLayout, error) {
	if ss != 512 && ss != 4096 {
		return nil, fmt.Errorf("logical sector size %d: want 512 or 4096", ss)
	}
	sectors := size / int64(ss)
	arrSectors := int64(gptEntries * gptEntrySize / ss)
	lastLBA := sectors - 1
	lastUsable := lastLBA - 1 - arrSectors
	kitSize = (kitSize + mib - 1) / mib * mib
	kitStart := int64(mib)
	luksStart := kitStart + kitSize
	luksEnd := (lastUsable + 1) * int64(ss) / mib * mib // exclusive, MiB-aligned
	if luksEnd-luksStart < minLUKS {
		return nil, fmt.Errorf("%w: %d MiB holds a %d MiB kit partition and a bundle partition of %d MiB at least", errTooSmall, size/mib, kitSize/mib, minLUKS/mib)
	}
	l := &gptLayout{Disk: disk, Parts: []part{
		{Type: typeLinuxFS, UUID: kitUUID, Name: KitLabel, Start: kitStart, Size: kitSize},
		{Type: typeLUKS, UUID: luksUUID, Name: "BORGKIT-BUNDLE", Start: luksStart, Size: luksEnd - luksStart},
	}}
	arr := make([]byte, gptEntries*gptEntrySize)
	for i, p := range l.Parts {
		e := arr[i*gptEntrySize:]
		copy(e[0:16], mixedEndian(p.Type))
		copy(e[16:32], mixedEndian(p.UUID))
		binary.LittleEndian.PutUint64(e[32:], uint64(p.Start/int64(ss)))
		binary.LittleEndian.PutUint64(e[40:], uint64((p.Start+p.Size)/int64(ss)-1))
		for j, c := range utf16.Encode([]rune(p.Name)) {
			binary.LittleEndian.PutUint16(e[56+2*j:], c)
		}
	}
	arrCRC := crc32.ChecksumIEEE(arr)
	header := func(my, alt, entries int64) []byte {
		h := make([]byte, ss)
		copy(h, "EFI PART")
		binary.LittleEndian.PutUint32(h[8:], 0x00010000)
		binary.LittleEndian.PutUint32(h[12:], gptHeaderSize)
		binary.LittleEndian.PutUint64(h[24:], uint64(my))
		binary.LittleEndian.PutUint64(h[32:], uint64(alt))
		binary.LittleEndian.PutUint64(h[40:], uint64(2+arrSectors))
		binary.LittleEndian.PutUint64(h[48:], uint64(lastUsable))
		copy(h[56:72], mixedEndian(disk))
		binary.LittleEndian.PutUint64(h[72:], uint64(entries))
		binary.LittleEndian.PutUint32(h[80:], gptEntries)
		binary.LittleEndian.PutUint32(h[84:], gptEntrySize)
		binary.LittleEndian.PutUint32(h[88:], arrCRC)
		binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:gptHeaderSize]))
		return h
	}
	// The protective MBR: one partition of type 0xEE over the disk, so
	// MBR-only tools see the disk as used.
	mbr := make([]byte, ss)
	pe := mbr[446:]
	copy(pe, []byte{0x00, 0x00, 0x02, 0x00, 0xee, 0xff, 0xff, 0xff})
	binary.LittleEndian.PutUint32(pe[8:], 1)
	n := lastLBA
	if n > 0xffffffff {
		n = 0xffffffff
	}
	binary.LittleEndian.PutUint32(pe[12:], uint32(n))
	mbr[510], mbr[511] = 0x55, 0xaa

	var prim bytes.Buffer
	prim.Write(mbr)
	prim.Write(header(1, lastLBA, 2))
	prim.Write(arr)
	l.Primary = prim.Bytes()
	l.Backup = append(append([]byte(nil), arr...), header(lastLBA, 1, lastLBA-arrSectors)...)
	l.BackupAt = (lastLBA - arrSectors) * int64(ss)
	return l, nil
}

// mixedEndian is a GUID as GPT stores it: the first three fields little
// endian, the rest as written.
func mixedEndian(u uuid.UUID) []byte {
	b := u
	b[0], b[1], b[2], b[3] = u[3], u[2], u[1], u[0]
	b[4], b[5] = u[5], u[4]
	b[6], b[7] = u[7], u[6]
	return b[:]
}
