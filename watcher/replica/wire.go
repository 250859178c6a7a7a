package replica

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/tandemhost/tandem/conflict"
	"github.com/tandemhost/tandem/pipe"
	"github.com/tandemhost/tandem/watcher/index"
)

// Stream kinds.
const (
	kindFiles = "files"
	kindBulk  = "files-bulk"
)

// Frame types on the files stream.
const (
	typeOpen    uint8 = 1 // sender -> receiver: which root
	typeOpened  uint8 = 2 // receiver -> sender: watermark or refusal
	typeChange  uint8 = 3 // sender -> receiver: one record, maybe with content
	typeWant    uint8 = 4 // receiver -> sender: send this large file's content
	typeAck     uint8 = 5 // receiver -> sender: applied up to seq
	typeRange   uint8 = 6 // sender -> receiver on a bulk stream: part of a large file
	typeAbandon uint8 = 7 // sender -> receiver: that content is gone; a newer change follows
)

// Limits on what a peer may send.
const (
	maxPath      = 4096
	maxName      = 255
	maxTarget    = 4096
	maxNode      = 64
	maxVector    = 16
	maxRootName  = 4096
	maxErrorText = 4096
	// InlineMax is the largest file sent inside its Change, without a
	// round trip for the receiver's signature.
	InlineMax = 256 << 10
	// maxInlineWire bounds inline data on the wire (compressed or not).
	maxInlineWire = InlineMax + 4096
	// RangeSize is how much of a large file one Range carries.
	RangeSize = 4 << 20
	// maxRangeWire bounds one Range's delta on the wire.
	maxRangeWire = RangeSize + RangeSize/8 + 64<<10
	// maxSignature bounds an encoded signature (a 16 TiB file at the
	// largest block size stays well under it).
	maxSignature = 48 << 20

	filesMaxFrame = maxInlineWire + maxPath + maxTarget + 64<<10
	bulkMaxFrame  = maxRangeWire + maxRootName + 1024
	wantMaxFrame  = maxSignature + 1024
)

// Change flags.
const (
	flagInline uint8 = 1 << 0 // Data holds the whole content
	flagZstd   uint8 = 1 << 1 // Data is zstd-compressed
	flagLarge  uint8 = 1 << 2 // content follows on request (Want)
	// flagMore: the sender has more changes of the same batch right behind
	// this one. The receiver applies them together, so a rename (a delete
	// and a create the sender read from the index at once) is done from
	// the local copy instead of sent again. Receivers that do not know it
	// ignore it.
	flagMore uint8 = 1 << 3
)

// ErrBadPath is wrapped by every refusal of a path from the peer.
var ErrBadPath = errors.New("bad path from peer")

// CheckPath returns nil if p is a path a peer may name: relative,
// slash-separated, clean (no "", ".", ".." components, no double or
// trailing slash), valid UTF-8 without NUL, at most maxPath bytes with
// components of at most maxName bytes.
func CheckPath(p string) error {
	if p == "" {
		return fmt.Errorf("%w: empty", ErrBadPath)
	}
	if len(p) > maxPath {
		return fmt.Errorf("%w: %d bytes long", ErrBadPath, len(p))
	}
	if !utf8.ValidString(p) {
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrBadPath, p)
	}
	if strings.IndexByte(p, 0) >= 0 {
		return fmt.Errorf("%w: %q contains NUL", ErrBadPath, p)
	}
	if p[0] == '/' {
		return fmt.Errorf("%w: %q is absolute", ErrBadPath, p)
	}
	for _, c := range strings.Split(p, "/") {
		switch {
		case c == "" || c == ".":
			return fmt.Errorf("%w: %q is not clean", ErrBadPath, p)
		case c == "..":
			return fmt.Errorf("%w: %q climbs out of the root", ErrBadPath, p)
		case len(c) > maxName:
			return fmt.Errorf("%w: a component of %q is %d bytes long", ErrBadPath, p, len(c))
		}
	}
	return nil
}

func encodeRecord(e *pipe.Encoder, r *index.Record) {
	e.String(r.Path)
	e.Uint8(uint8(r.Type))
	e.Bool(r.Deleted)
	e.Varint(r.Size)
	e.Varint(r.MtimeNs)
	e.Uvarint(uint64(r.Mode))
	e.Uvarint(uint64(r.UID))
	e.Uvarint(uint64(r.GID))
	e.String(r.Target)
	e.Fixed(r.Hash[:])
	e.Uvarint(uint64(len(r.Vector)))
	for _, c := range r.Vector {
		e.String(c.Node)
		e.Uvarint(c.Value)
	}
	e.String(r.Origin)
}

// decodeRecord reads a record from the peer and checks it: the path, the
// type, sizes, the vector's canonical form. Local-only fields stay zero.
func decodeRecord(d *pipe.Decoder, r *index.Record) error {
	r.Path = d.String(maxPath)
	r.Type = index.Type(d.Uint8())
	r.Deleted = d.Bool()
	r.Size = d.Varint()
	r.MtimeNs = d.Varint()
	r.Mode = uint32(d.UvarintMax(uint64(index.ModeMask), "mode"))
	r.UID = uint32(d.UvarintMax(1<<32-1, "uid"))
	r.GID = uint32(d.UvarintMax(1<<32-1, "gid"))
	r.Target = d.String(maxTarget)
	copy(r.Hash[:], d.Fixed(32))
	n := d.Int(maxVector, "vector length")
	r.Vector = make(conflict.Vector, 0, n)
	for i := 0; i < n && d.Err() == nil; i++ {
		r.Vector = append(r.Vector, conflict.Counter{Node: d.String(maxNode), Value: d.Uvarint()})
	}
	r.Origin = d.String(maxNode)
	if err := d.Err(); err != nil {
		return err
	}
	if err := CheckPath(r.Path); err != nil {
		return err
	}
	switch r.Type {
	case index.File, index.Dir, index.Symlink:
	default:
		return fmt.Errorf("%w: unknown type %d for %q", pipe.ErrMalformed, r.Type, r.Path)
	}
	if r.Size < 0 {
		return fmt.Errorf("%w: negative size for %q", pipe.ErrMalformed, r.Path)
	}
	if r.Type == index.Symlink && !r.Deleted && r.Target == "" {
		return fmt.Errorf("%w: symlink %q without target", pipe.ErrMalformed, r.Path)
	}
	if strings.IndexByte(r.Target, 0) >= 0 {
		return fmt.Errorf("%w: symlink target of %q contains NUL", pipe.ErrMalformed, r.Path)
	}
	if !r.Vector.Valid() || len(r.Vector) == 0 {
		return fmt.Errorf("%w: vector %v of %q is not canonical", pipe.ErrMalformed, r.Vector, r.Path)
	}
	if r.Origin == "" {
		return fmt.Errorf("%w: %q has no origin", pipe.ErrMalformed, r.Path)
	}
	if err := r.Validate(); err != nil {
		return fmt.Errorf("%w: %v", pipe.ErrMalformed, err)
	}
	return nil
}

// Open asks the receiver for the watermark of one root.
type Open struct{ Root string }

func (*Open) Type() uint8              { return typeOpen }
func (m *Open) Encode(e *pipe.Encoder) { e.String(m.Root) }
func (m *Open) Decode(d *pipe.Decoder) { m.Root = d.String(maxRootName) }

// Opened answers Open: the highest seq of the sender's changes durably
// applied here, or why the root cannot be served.
type Opened struct {
	Watermark uint64
	Error     string
	// Empty: the receiver's copy of the tree holds nothing (no entry but
	// tandem's temp files), so a first sync sends small files with their
	// content instead of waiting for the receiver to ask for each. Absent
	// in frames from older peers (false).
	Empty bool
}

func (*Opened) Type() uint8 { return typeOpened }
func (m *Opened) Encode(e *pipe.Encoder) {
	e.Uvarint(m.Watermark)
	e.String(m.Error)
	e.Bool(m.Empty)
}
func (m *Opened) Decode(d *pipe.Decoder) {
	m.Watermark = d.Uvarint()
	m.Error = d.String(maxErrorText)
	if d.Remaining() > 0 {
		m.Empty = d.Bool()
	}
}

// Change carries one record and, for small files, the content.
type Change struct {
	Seq   uint64
	Rec   index.Record
	Flags uint8
	Data  []byte // aliases the frame buffer after Decode
	err   error
}

func (*Change) Type() uint8 { return typeChange }
func (m *Change) Encode(e *pipe.Encoder) {
	e.Uvarint(m.Seq)
	encodeRecord(e, &m.Rec)
	e.Uint8(m.Flags)
	e.Bytes(m.Data)
}
func (m *Change) Decode(d *pipe.Decoder) {
	m.Seq = d.Uvarint()
	m.err = decodeRecord(d, &m.Rec)
	m.Flags = d.Uint8()
	m.Data = d.Bytes(maxInlineWire)
}

// Want asks for a large file's content, as deltas against the receiver's
// copy described by Signature (empty: no basis, send everything).
type Want struct {
	Seq       uint64
	Signature []byte
}

func (*Want) Type() uint8 { return typeWant }
func (m *Want) Encode(e *pipe.Encoder) {
	e.Uvarint(m.Seq)
	e.Bytes(m.Signature)
}
func (m *Want) Decode(d *pipe.Decoder) {
	m.Seq = d.Uvarint()
	m.Signature = d.Bytes(maxSignature)
}

// Ack says every change up to Seq is durably applied.
type Ack struct{ Seq uint64 }

func (*Ack) Type() uint8              { return typeAck }
func (m *Ack) Encode(e *pipe.Encoder) { e.Uvarint(m.Seq) }
func (m *Ack) Decode(d *pipe.Decoder) { m.Seq = d.Uvarint() }

// Abandon says the content of change Seq can no longer be sent (the file
// changed or vanished); a newer change for the path follows.
type Abandon struct{ Seq uint64 }

func (*Abandon) Type() uint8              { return typeAbandon }
func (m *Abandon) Encode(e *pipe.Encoder) { e.Uvarint(m.Seq) }
func (m *Abandon) Decode(d *pipe.Decoder) { m.Seq = d.Uvarint() }

// Range carries bytes [Offset, Offset+Size) of a large file's new content,
// as a delta against the receiver's basis.
type Range struct {
	Root   string
	Seq    uint64
	Offset int64
	Size   int64
	Delta  []byte // aliases the frame buffer after Decode
}

func (*Range) Type() uint8 { return typeRange }
func (m *Range) Encode(e *pipe.Encoder) {
	e.String(m.Root)
	e.Uvarint(m.Seq)
	e.Varint(m.Offset)
	e.Varint(m.Size)
	e.Bytes(m.Delta)
}
func (m *Range) Decode(d *pipe.Decoder) {
	m.Root = d.String(maxRootName)
	m.Seq = d.Uvarint()
	m.Offset = d.Varint()
	m.Size = d.Varint()
	m.Delta = d.Bytes(maxRangeWire)
	if d.Err() == nil && (m.Offset < 0 || m.Size <= 0 || m.Size > RangeSize) {
		d.Fail("range [%d, +%d) out of bounds", m.Offset, m.Size)
	}
}

// decodeChange decodes a Change frame body and checks its record.
func decodeChange(body []byte) (*Change, error) {
	var m Change
	if err := pipe.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	if m.err != nil {
		return nil, m.err
	}
	if m.Flags&flagInline != 0 && (m.Rec.Type != index.File || m.Rec.Deleted || m.Rec.Size > InlineMax) {
		return nil, fmt.Errorf("%w: inline data for %q, which is not a small file", pipe.ErrMalformed, m.Rec.Path)
	}
	return &m, nil
}
