package pipe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

// ErrMalformed is wrapped by every decoding error: the bytes are not a valid
// message. A peer that sends one is buggy or hostile; the stream is closed.
var ErrMalformed = errors.New("malformed message")

// Encoder appends message fields to a byte slice. The zero value is ready to
// use. Fields are written in the order the message defines; there are no tags,
// so a message's layout is part of the protocol version.
type Encoder struct {
	buf []byte
}

// Reset empties the encoder, keeping its buffer.
func (e *Encoder) Reset() { e.buf = e.buf[:0] }

// Buf returns the encoded bytes. They stay valid until the next call on e.
func (e *Encoder) Buf() []byte { return e.buf }

// Uint8 appends one byte.
func (e *Encoder) Uint8(v uint8) { e.buf = append(e.buf, v) }

// Bool appends a bool as one byte, 0 or 1.
func (e *Encoder) Bool(v bool) {
	if v {
		e.buf = append(e.buf, 1)
	} else {
		e.buf = append(e.buf, 0)
	}
}

// Uvarint appends an unsigned varint.
func (e *Encoder) Uvarint(v uint64) { e.buf = binary.AppendUvarint(e.buf, v) }

// Varint appends a signed (zig-zag) varint.
func (e *Encoder) Varint(v int64) { e.buf = binary.AppendVarint(e.buf, v) }

// Uint64 appends 8 bytes big-endian.
func (e *Encoder) Uint64(v uint64) { e.buf = binary.BigEndian.AppendUint64(e.buf, v) }

// Bytes appends a length-prefixed byte string.
func (e *Encoder) Bytes(b []byte) {
	e.Uvarint(uint64(len(b)))
	e.buf = append(e.buf, b...)
}

// String appends a length-prefixed string.
func (e *Encoder) String(s string) {
	e.Uvarint(uint64(len(s)))
	e.buf = append(e.buf, s...)
}

// Fixed appends b with no length prefix; the decoder must know its size.
func (e *Encoder) Fixed(b []byte) { e.buf = append(e.buf, b...) }

// Decoder reads message fields from a byte slice. The first error sticks:
// later reads return zero values and Err reports the first problem, so a
// message's decode function can read every field and check once at the end.
// Every length is checked against both an explicit maximum and the bytes
// left before anything is allocated.
type Decoder struct {
	buf []byte
	off int
	err error
}

// NewDecoder returns a decoder reading b. The decoder does not copy b; the
// byte slices it returns from Bytes alias b.
func NewDecoder(b []byte) *Decoder { return &Decoder{buf: b} }

// Err returns the first decoding error, or nil.
func (d *Decoder) Err() error { return d.err }

// Finish returns the first decoding error, or an error when bytes are left
// over: a message must be consumed exactly.
func (d *Decoder) Finish() error {
	if d.err == nil && d.off != len(d.buf) {
		d.fail("%d trailing bytes", len(d.buf)-d.off)
	}
	return d.err
}

// Remaining returns how many bytes are left.
func (d *Decoder) Remaining() int { return len(d.buf) - d.off }

// Fail records a decoding error found by the caller (a field out of range,
// fields that contradict each other), unless an earlier one is recorded.
func (d *Decoder) Fail(format string, args ...any) { d.fail(format, args...) }

func (d *Decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: at byte %d: %s", ErrMalformed, d.off, fmt.Sprintf(format, args...))
	}
}

// Uint8 reads one byte.
func (d *Decoder) Uint8() uint8 {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.buf) {
		d.fail("truncated")
		return 0
	}
	v := d.buf[d.off]
	d.off++
	return v
}

// Bool reads a bool; any byte other than 0 or 1 is an error.
func (d *Decoder) Bool() bool {
	switch d.Uint8() {
	case 0:
		return false
	case 1:
		return true
	default:
		d.fail("bool out of range")
		return false
	}
}

// Uvarint reads an unsigned varint.
func (d *Decoder) Uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf[d.off:])
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.off += n
	return v
}

// Varint reads a signed varint.
func (d *Decoder) Varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.buf[d.off:])
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.off += n
	return v
}

// Uint64 reads 8 bytes big-endian.
func (d *Decoder) Uint64() uint64 {
	b := d.Fixed(8)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// UvarintMax reads an unsigned varint that must be at most max.
func (d *Decoder) UvarintMax(max uint64, what string) uint64 {
	v := d.Uvarint()
	if v > max {
		d.fail("%s %d exceeds limit %d", what, v, max)
		return 0
	}
	return v
}

// Int reads an unsigned varint that must fit in a non-negative int and be at
// most max.
func (d *Decoder) Int(max int, what string) int {
	return int(d.UvarintMax(uint64(min(max, math.MaxInt)), what))
}

// Bytes reads a length-prefixed byte string of at most max bytes. The result
// aliases the decoder's input.
func (d *Decoder) Bytes(max int) []byte {
	n := d.Uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(max) {
		d.fail("length %d exceeds limit %d", n, max)
		return nil
	}
	if n > uint64(len(d.buf)-d.off) {
		d.fail("length %d exceeds the %d bytes left", n, len(d.buf)-d.off)
		return nil
	}
	b := d.buf[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return b
}

// String reads a length-prefixed string of at most max bytes that must be
// valid UTF-8 with no NUL byte.
func (d *Decoder) String(max int) string {
	b := d.Bytes(max)
	if d.err != nil {
		return ""
	}
	if !utf8.Valid(b) {
		d.fail("string is not valid UTF-8")
		return ""
	}
	for _, c := range b {
		if c == 0 {
			d.fail("string contains NUL")
			return ""
		}
	}
	return string(b)
}

// Fixed reads exactly n bytes. The result aliases the decoder's input.
func (d *Decoder) Fixed(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.buf)-d.off {
		d.fail("truncated: want %d bytes, %d left", n, len(d.buf)-d.off)
		return nil
	}
	b := d.buf[d.off : d.off+n : d.off+n]
	d.off += n
	return b
}
