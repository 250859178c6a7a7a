package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"strings"

	"github.com/tandemhost/tandem/conflict"
)

// Type is the kind of filesystem object a record describes.
type Type uint8

// The zero Type is invalid, so a record whose type was never set is caught.
const (
	File Type = iota + 1
	Dir
	Symlink
)

func (t Type) String() string {
	switch t {
	case File:
		return "file"
	case Dir:
		return "dir"
	case Symlink:
		return "symlink"
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// ModeMask is the part of an fs.FileMode a Record keeps: permission bits and
// setuid, setgid and sticky, in Go's representation (os.Chmod takes it as is).
const ModeMask = uint32(fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)

// Limits the decoder enforces.
const (
	MaxPathLen   = 4096 // bytes of a path relative to the root (Linux PATH_MAX)
	maxNameLen   = 255  // bytes of one path component (Linux NAME_MAX)
	MaxTargetLen = 4096 // bytes of a symlink target
	maxNodeLen   = 255  // bytes of a node name
	maxCounters  = 64   // entries of a version vector
)

// Record is what the index knows about one path of a tree.
//
// A directory's size and mtime are always 0: they change with every entry
// added or removed, and replicating them would make each new file a change
// (and, with both nodes writing, a conflict) of its parent as well.
//
// A tombstone keeps the type and content fields (size, mtime, hash, target) of
// the version it deleted, so the peer can match a delete and a create with the
// same hash as a rename; its stat cache is zero.
type Record struct {
	Path    string // relative to the root, slash-separated, never "", "." or ".."
	Type    Type
	Deleted bool // tombstone: the path was deleted
	Size    int64
	MtimeNs int64
	Mode    uint32 // within ModeMask
	UID     uint32
	GID     uint32
	Target  string   // symlink target as read, never followed; "" for other types
	Hash    [32]byte // BLAKE3 of the content; files only
	Vector  conflict.Vector
	Origin  string // node that made this version
	// PeerHas says the peer holds this version's content already (a merge
	// of identical versions): the sender sends the record without it. Not
	// sent on the wire; a scan's new version clears it.
	PeerHas bool
	Seq     uint64 // local sequence number of the last change, assigned by the DB

	// Local stat cache, meaningless on another machine: what the path looked
	// like when this record was made. CtimeNs 0 means "do not trust the
	// cache": the file changed too recently to be sure a later write in the
	// same clock tick would show, so the next scan hashes it again.
	Ino     uint64
	Dev     uint64
	CtimeNs int64
}

// FileMode returns the record's mode as an fs.FileMode, with type bits.
func (r *Record) FileMode() fs.FileMode {
	m := fs.FileMode(r.Mode)
	switch r.Type {
	case Dir:
		m |= fs.ModeDir
	case Symlink:
		m |= fs.ModeSymlink
	}
	return m
}

// sameVersion reports whether a and b describe the same content and
// metadata, ignoring the version, sequence and stat cache.
func sameVersion(a, b *Record) bool {
	return a.Type == b.Type && a.Deleted == b.Deleted && a.Size == b.Size &&
		a.MtimeNs == b.MtimeNs && a.Mode == b.Mode && a.UID == b.UID &&
		a.GID == b.GID && a.Target == b.Target && a.Hash == b.Hash
}

// checkPath reports whether p is a canonical relative path: not empty, no
// leading, trailing or doubled slash, no "." or ".." component, no NUL.
func checkPath(p string) error {
	if p == "" {
		return errors.New("empty path")
	}
	if len(p) > MaxPathLen {
		return fmt.Errorf("path of %d bytes, over %d", len(p), MaxPathLen)
	}
	if strings.IndexByte(p, 0) >= 0 {
		return fmt.Errorf("path %q contains NUL", p)
	}
	for rest := p; ; {
		name, after, more := strings.Cut(rest, "/")
		if name == "" || name == "." || name == ".." || len(name) > maxNameLen {
			return fmt.Errorf("path %q is not canonical", p)
		}
		if !more {
			return nil
		}
		rest = after
	}
}

// validate checks the invariants every stored record satisfies.
// Validate checks the record's invariants (those UnmarshalBinary and the
// DB enforce), for records that come from elsewhere, such as the peer.
func (r *Record) Validate() error { return r.validate() }

func (r *Record) validate() error {
	if err := checkPath(r.Path); err != nil {
		return err
	}
	switch r.Type {
	case File, Dir, Symlink:
	default:
		return fmt.Errorf("%s: unknown type %d", r.Path, r.Type)
	}
	if r.Size < 0 {
		return fmt.Errorf("%s: negative size", r.Path)
	}
	if r.Mode&^ModeMask != 0 {
		return fmt.Errorf("%s: mode %#o has bits outside %#o", r.Path, r.Mode, ModeMask)
	}
	if r.Type != Symlink && r.Target != "" {
		return fmt.Errorf("%s: link target on a %s", r.Path, r.Type)
	}
	if len(r.Target) > MaxTargetLen || strings.IndexByte(r.Target, 0) >= 0 {
		return fmt.Errorf("%s: bad link target", r.Path)
	}
	if r.Type != File && r.Hash != ([32]byte{}) {
		return fmt.Errorf("%s: content hash on a %s", r.Path, r.Type)
	}
	if r.Type == Dir && (r.Size != 0 || r.MtimeNs != 0) {
		return fmt.Errorf("%s: directory with size or mtime", r.Path)
	}
	if len(r.Vector) > maxCounters || !r.Vector.Valid() {
		return fmt.Errorf("%s: invalid version vector %v", r.Path, r.Vector)
	}
	for _, c := range r.Vector {
		if len(c.Node) > maxNodeLen {
			return fmt.Errorf("%s: node name over %d bytes", r.Path, maxNodeLen)
		}
	}
	if len(r.Origin) > maxNodeLen {
		return fmt.Errorf("%s: origin over %d bytes", r.Path, maxNodeLen)
	}
	return nil
}

// Encoding. A record body is:
//
//	version byte (1)
//	flags byte: bits 0-1 type, bit 2 deleted, bit 3 peer has content
//	uvarint size, varint mtime, uvarint mode, uid, gid
//	uvarint len + target
//	32 bytes hash (files only)
//	uvarint counters, each uvarint len + node, uvarint value
//	uvarint len + origin
//	uvarint seq, ino, dev, varint ctime
//
// The store keeps the body under the path's key; MarshalBinary prefixes it
// with uvarint len + path.
const (
	recordVersion = 1
	flagTypeMask  = 0x03
	flagDeleted   = 0x04
	flagPeerHas   = 0x08
)

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendBody appends r's encoding without its path to b.
func appendBody(b []byte, r *Record) []byte {
	flags := byte(r.Type) & flagTypeMask
	if r.Deleted {
		flags |= flagDeleted
	}
	if r.PeerHas {
		flags |= flagPeerHas
	}
	b = append(b, recordVersion, flags)
	b = binary.AppendUvarint(b, uint64(r.Size))
	b = binary.AppendVarint(b, r.MtimeNs)
	b = binary.AppendUvarint(b, uint64(r.Mode))
	b = binary.AppendUvarint(b, uint64(r.UID))
	b = binary.AppendUvarint(b, uint64(r.GID))
	b = appendString(b, r.Target)
	if r.Type == File {
		b = append(b, r.Hash[:]...)
	}
	b = binary.AppendUvarint(b, uint64(len(r.Vector)))
	for _, c := range r.Vector {
		b = appendString(b, c.Node)
		b = binary.AppendUvarint(b, c.Value)
	}
	b = appendString(b, r.Origin)
	b = binary.AppendUvarint(b, r.Seq)
	b = binary.AppendUvarint(b, r.Ino)
	b = binary.AppendUvarint(b, r.Dev)
	b = binary.AppendVarint(b, r.CtimeNs)
	return b
}

// MarshalBinary encodes r, path and local stat cache included. It fails only
// for a record that breaks the invariants UnmarshalBinary checks.
func (r Record) MarshalBinary() ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 96+len(r.Path)+len(r.Target))
	b = appendString(b, r.Path)
	return appendBody(b, &r), nil
}

// UnmarshalBinary decodes a record MarshalBinary made. It validates what it
// decodes (known version and type, bounded lengths, canonical path and
// vector, no trailing bytes) and never panics, whatever the input.
func (r *Record) UnmarshalBinary(data []byte) error {
	d := decoder{b: data}
	path := d.string(MaxPathLen)
	if d.err != nil {
		return fmt.Errorf("decode record: %w", d.err)
	}
	return decodeBody(path, d.b, r)
}

// decodeBody decodes a stored body for path into r.
func decodeBody(path string, body []byte, r *Record) error {
	d := decoder{b: body}
	var out Record
	out.Path = path
	if v := d.byte(); d.err == nil && v != recordVersion {
		return fmt.Errorf("decode record %q: unknown encoding version %d", path, v)
	}
	flags := d.byte()
	if flags&^(flagTypeMask|flagDeleted|flagPeerHas) != 0 {
		d.fail("unknown flags %#x", flags)
	}
	out.Type = Type(flags & flagTypeMask)
	out.Deleted = flags&flagDeleted != 0
	out.PeerHas = flags&flagPeerHas != 0
	out.Size = int64(d.uvarint(math.MaxInt64))
	out.MtimeNs = d.varint()
	out.Mode = uint32(d.uvarint(uint64(ModeMask)))
	out.UID = uint32(d.uvarint(math.MaxUint32))
	out.GID = uint32(d.uvarint(math.MaxUint32))
	out.Target = d.string(MaxTargetLen)
	if out.Type == File {
		copy(out.Hash[:], d.bytes(32))
	}
	if n := d.uvarint(maxCounters); n > 0 && d.err == nil {
		out.Vector = make(conflict.Vector, n)
		for i := range out.Vector {
			out.Vector[i].Node = d.string(maxNodeLen)
			out.Vector[i].Value = d.uvarint(math.MaxUint64)
		}
	}
	out.Origin = d.string(maxNodeLen)
	out.Seq = d.uvarint(math.MaxUint64)
	out.Ino = d.uvarint(math.MaxUint64)
	out.Dev = d.uvarint(math.MaxUint64)
	out.CtimeNs = d.varint()
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return fmt.Errorf("decode record %q: %w", path, d.err)
	}
	if err := out.validate(); err != nil {
		return fmt.Errorf("decode record: %w", err)
	}
	*r = out
	return nil
}

// decoder reads from b; after the first error every read returns zero and
// err keeps the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint(max uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	if v > max {
		d.fail("value %d over %d", v, max)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.fail("truncated")
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) string(max int) string {
	n := d.uvarint(uint64(max))
	return string(d.bytes(int(n)))
}
