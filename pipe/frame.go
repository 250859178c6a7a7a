package pipe

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Frame limits.
const (
	// frameHeader is the uint32 length plus the type byte.
	frameHeader = 5
	// DefaultMaxFrame bounds a frame's type+body on a stream unless the stream
	// kind asks for more. Control messages are tiny.
	DefaultMaxFrame = 1 << 20
	// LimitMaxFrame is the largest frame any stream may accept.
	LimitMaxFrame = 64 << 20
)

// ErrFrameTooLarge is returned when a frame's announced length exceeds the
// stream's limit. Nothing is allocated for such a frame.
var ErrFrameTooLarge = errors.New("frame too large")

// FrameReader reads frames: uint32 big-endian length of (type + body), one
// type byte, body.
type FrameReader struct {
	r   *bufio.Reader
	max int
	buf []byte
}

// NewFrameReader reads frames of at most max bytes (type + body) from r.
func NewFrameReader(r io.Reader, max int) *FrameReader {
	if max <= 0 || max > LimitMaxFrame {
		max = DefaultMaxFrame
	}
	return &FrameReader{r: bufio.NewReaderSize(r, 64<<10), max: max}
}

// Read returns the next frame. body is valid only until the next call to
// Read: copy it to keep it. A stream that ends cleanly between frames returns
// io.EOF; one that ends inside a frame returns io.ErrUnexpectedEOF.
func (f *FrameReader) Read() (typ uint8, body []byte, err error) {
	var hdr [frameHeader]byte
	if _, err := io.ReadFull(f.r, hdr[:4]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n == 0 {
		return 0, nil, fmt.Errorf("%w: zero-length frame", ErrMalformed)
	}
	if uint64(n) > uint64(f.max) {
		return 0, nil, fmt.Errorf("%w: %d bytes announced, limit %d", ErrFrameTooLarge, n, f.max)
	}
	if cap(f.buf) < int(n) {
		// Bounded by f.max, checked above.
		f.buf = make([]byte, n)
	}
	buf := f.buf[:n]
	if _, err := io.ReadFull(f.r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return buf[0], buf[1:], nil
}

// FrameWriter writes frames. It is safe for concurrent use: each frame is
// written whole, never interleaved with another.
type FrameWriter struct {
	mu  sync.Mutex // guards w and buf
	w   io.Writer
	buf []byte
	max int
}

// NewFrameWriter writes frames of at most max bytes (type + body) to w.
func NewFrameWriter(w io.Writer, max int) *FrameWriter {
	if max <= 0 || max > LimitMaxFrame {
		max = DefaultMaxFrame
	}
	return &FrameWriter{w: w, max: max}
}

// AppendFrame appends one frame of typ and body to dst, as Write would
// send it, for WriteFrames to send several at once.
func AppendFrame(dst []byte, typ uint8, body []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(1+len(body)))
	dst = append(dst, typ)
	return append(dst, body...)
}

// NextFrame splits the first of frames (made by AppendFrame) off: its type,
// its body (a part of frames) and what follows it. A frame longer than max
// (type + body) is ErrFrameTooLarge; an empty one, or one longer than what
// frames holds, is malformed.
func NextFrame(frames []byte, max int) (typ uint8, body, rest []byte, err error) {
	if len(frames) < frameHeader {
		return 0, nil, nil, fmt.Errorf("%w: %d bytes left of a frame header", ErrMalformed, len(frames))
	}
	n := binary.BigEndian.Uint32(frames)
	switch {
	case n == 0:
		return 0, nil, nil, fmt.Errorf("%w: zero-length frame", ErrMalformed)
	case uint64(n) > uint64(max):
		return 0, nil, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, max)
	case uint64(n) > uint64(len(frames)-4):
		return 0, nil, nil, fmt.Errorf("%w: a frame of %d bytes with %d left", ErrMalformed, n, len(frames)-4)
	}
	return frames[4], frames[5 : 4+n], frames[4+n:], nil
}

// Write sends one frame. The body is copied before Write returns.
func (f *FrameWriter) Write(typ uint8, body []byte) error {
	n := 1 + len(body)
	if n > f.max {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, f.max)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.buf = AppendFrame(f.buf[:0], typ, body)
	_, err := f.w.Write(f.buf)
	if cap(f.buf) > 1<<20 {
		f.buf = nil // don't pin one large frame's buffer forever
	}
	return err
}

// WriteFrames sends frames made by AppendFrame in one write: one SSH
// packet and one system call for many small frames. Each frame is checked
// against the limit first; on an error nothing is sent.
func (f *FrameWriter) WriteFrames(frames []byte) error {
	for rest := frames; len(rest) > 0; {
		var err error
		if _, _, rest, err = NextFrame(rest, f.max); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	_, err := f.w.Write(frames)
	return err
}
