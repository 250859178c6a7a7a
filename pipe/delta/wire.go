package delta

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Limits of the encodings. See the package documentation.
const (
	// MinBlockSize is the smallest block size BlockSize chooses.
	MinBlockSize = 2 << 10
	// MinWireBlockSize is the smallest block size the decoders accept. It is
	// below MinBlockSize so that tests (and a future BlockSize) can use small
	// blocks; the block count limit still bounds the signature.
	MinWireBlockSize = 64
	// MaxBlockSize is the largest block size anywhere.
	MaxBlockSize = 16 << 20
	// MaxBlocks is the most blocks a signature may have.
	MaxBlocks = 1 << 20
	// MaxFileSize is the largest old or new file a signature or delta may
	// describe: 16 TiB.
	MaxFileSize = int64(MaxBlocks) * MaxBlockSize
	// MaxLiteralChunk is the most raw bytes, and the most wire bytes, one
	// literal op may carry. Diff emits chunks of at most literalChunk.
	MaxLiteralChunk = 1 << 20
)

const (
	// strongLen is how many bytes of a block's BLAKE3-256 digest a signature
	// keeps. 128 bits make an accidental match of two different blocks
	// negligible; the whole-file hash catches one anyway.
	strongLen = 16
	// sqrtMaxBlockSize caps the square-root rule of BlockSize.
	sqrtMaxBlockSize = 128 << 10
	// literalChunk is the most raw bytes Diff puts in one literal op: one
	// zstd block, big enough for a good ratio, small enough to stream.
	literalChunk = 128 << 10

	version = 1

	opEnd     = 0x00
	opCopy    = 0x01
	opZstd    = 0x02
	opLiteral = 0x03
)

var (
	sigMagic   = [4]byte{'T', 'D', 'S', 'G'}
	deltaMagic = [4]byte{'T', 'D', 'D', 'L'}
)

var (
	// ErrCorrupt means a signature or delta is malformed or truncated.
	// Retrying with the same bytes cannot help.
	ErrCorrupt = errors.New("delta: corrupt encoding")
	// ErrVersion means the encoding has a version this build does not speak.
	ErrVersion = errors.New("delta: unsupported encoding version")
	// ErrTooLarge means a file is beyond a limit (MaxFileSize, the caller's
	// maximum, Limits.MaxNewSize). Send such a file whole, or raise the limit.
	ErrTooLarge = errors.New("delta: file too large")
	// ErrHashMismatch means a delta decoded cleanly but the result is not the
	// content the sender hashed: the old copy changed since it was signed (or
	// is not the copy the signature was made from). Discard the result and
	// retry with a fresh signature or the whole file.
	ErrHashMismatch = errors.New("delta: result does not match the sender's hash")
)

// wireReader reads an encoding exactly, byte by byte where needed, so that a
// decoder never consumes bytes past the end of what it decodes. It counts
// what it read.
type wireReader struct {
	r   io.Reader
	br  io.ByteReader // r, when it is one
	n   int64
	one [1]byte
}

func newWireReader(r io.Reader) *wireReader {
	w := &wireReader{r: r}
	w.br, _ = r.(io.ByteReader)
	return w
}

func (w *wireReader) ReadByte() (byte, error) {
	if w.br != nil {
		c, err := w.br.ReadByte()
		if err == nil {
			w.n++
		}
		return c, err
	}
	n, err := io.ReadFull(w.r, w.one[:])
	w.n += int64(n)
	return w.one[0], err
}

// readFull fills p; running out of input is an ErrUnexpectedEOF.
func (w *wireReader) readFull(p []byte) error {
	n, err := io.ReadFull(w.r, p)
	w.n += int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// uvarint reads a varint that must lie in [lo, hi]; what names it in errors.
func (w *wireReader) uvarint(what string, lo, hi uint64) (uint64, error) {
	var v uint64
	for i := 0; ; i++ {
		c, err := w.ReadByte()
		if err != nil {
			return 0, readErr(what, err)
		}
		if i == binary.MaxVarintLen64-1 && c > 1 {
			return 0, fmt.Errorf("%w: %s overflows 64 bits", ErrCorrupt, what)
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			if c == 0 && i > 0 {
				// Only the shortest encoding is valid, so that every
				// value has exactly one encoding.
				return 0, fmt.Errorf("%w: %s has a padded varint", ErrCorrupt, what)
			}
			break
		}
	}
	if v < lo || v > hi {
		return 0, fmt.Errorf("%w: %s %d not in [%d, %d]", ErrCorrupt, what, v, lo, hi)
	}
	return v, nil
}

// readErr labels running out of input as a corrupt (truncated) encoding and
// passes other read errors through with context.
func readErr(what string, err error) error {
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return fmt.Errorf("%w: truncated at %s: %w", ErrCorrupt, what, io.ErrUnexpectedEOF)
	default:
		return fmt.Errorf("read %s: %w", what, err)
	}
}

// readHeader reads and checks magic and version.
func (w *wireReader) readHeader(magic [4]byte, what string) error {
	var h [5]byte
	if err := w.readFull(h[:]); err != nil {
		return readErr(what+" header", err)
	}
	if [4]byte(h[:4]) != magic {
		return fmt.Errorf("%w: not a %s (magic %q)", ErrCorrupt, what, h[:4])
	}
	if h[4] != version {
		return fmt.Errorf("%w: %s version %d, this build speaks %d", ErrVersion, what, h[4], version)
	}
	return nil
}

// readGeometry reads the file size and block size that a signature and a
// delta both start with, and returns the block count.
func (w *wireReader) readGeometry(what string, maxFileSize int64) (size int64, blockSize, blocks int, err error) {
	s, err := w.uvarint(what+" file size", 0, uint64(MaxFileSize))
	if err != nil {
		return 0, 0, 0, err
	}
	if int64(s) > maxFileSize {
		return 0, 0, 0, fmt.Errorf("%w: %s names a file of %d bytes, the limit is %d", ErrTooLarge, what, s, maxFileSize)
	}
	bs, err := w.uvarint(what+" block size", MinWireBlockSize, MaxBlockSize)
	if err != nil {
		return 0, 0, 0, err
	}
	n := (s + bs - 1) / bs
	if n > MaxBlocks {
		return 0, 0, 0, fmt.Errorf("%w: %s has %d blocks of %d bytes, at most %d allowed", ErrCorrupt, what, n, bs, MaxBlocks)
	}
	return int64(s), int(bs), int(n), nil
}

// countWriter counts what goes through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
