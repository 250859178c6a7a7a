package delta

import (
	"fmt"
	"io"

	"github.com/zeebo/blake3"
)

// Limits bound what Apply accepts beyond the encoding's own limits.
type Limits struct {
	// MaxNewSize is the largest result Apply writes: it stops with
	// ErrTooLarge before writing more. Set it to the size the new file was
	// announced with. Zero means MaxFileSize.
	MaxNewSize int64
}

// copyBufSize is how much of the old copy Apply reads at a time.
const copyBufSize = 256 << 10

// Apply reads a delta made by Diff from delta, rebuilds the new content from
// it and the old copy, which must be the content the delta's signature was
// made from, and writes it to out in order.
//
// Apply streams: out receives the content before it is verified. Only a nil
// error means out got exactly the content the sender hashed; otherwise the
// caller must discard what was written (write to a temp file, rename on
// success). Errors: ErrCorrupt for a malformed or truncated delta,
// ErrVersion, ErrTooLarge past limits, ErrHashMismatch when the delta decodes
// but the result differs (the old copy changed since signing); errors from
// old, delta and out are returned with context. Apply reads exactly the
// delta's bytes from delta and no more. Its memory is bounded as described in
// the package documentation.
func Apply(old io.ReaderAt, delta io.Reader, out io.Writer, limits Limits) (Stats, error) {
	a := applier{r: newWireReader(delta), old: old, out: out, h: blake3.New(), maxNew: limits.MaxNewSize}
	if a.maxNew <= 0 || a.maxNew > MaxFileSize {
		a.maxNew = MaxFileSize
	}
	err := a.run()
	a.stats.DeltaBytes = a.r.n
	return a.stats, err
}

type applier struct {
	r      *wireReader
	old    io.ReaderAt
	out    io.Writer
	h      *blake3.Hasher // of everything written
	maxNew int64
	stats  Stats

	oldSize   int64
	blockSize int
	blocks    int

	copyBuf, zbuf, rawBuf []byte
}

func (a *applier) run() error {
	if err := a.r.readHeader(deltaMagic, "delta"); err != nil {
		return err
	}
	var err error
	a.oldSize, a.blockSize, a.blocks, err = a.r.readGeometry("delta", MaxFileSize)
	if err != nil {
		return err
	}
	for {
		op, err := a.r.ReadByte()
		if err != nil {
			return readErr("op", err)
		}
		switch op {
		case opCopy:
			err = a.copyOp()
		case opZstd, opLiteral:
			err = a.literalOp(op)
		case opEnd:
			return a.endOp()
		default:
			err = fmt.Errorf("%w: unknown op 0x%02x at byte %d", ErrCorrupt, op, a.r.n-1)
		}
		if err != nil {
			return err
		}
	}
}

// emit writes p to out and the hash, within MaxNewSize.
func (a *applier) emit(p []byte) error {
	if _, err := a.out.Write(p); err != nil {
		return fmt.Errorf("write result at %d: %w", a.stats.NewSize, err)
	}
	a.h.Write(p)
	a.stats.NewSize += int64(len(p))
	return nil
}

// room checks that n more bytes fit the result.
func (a *applier) room(n int64) error {
	if n > a.maxNew-a.stats.NewSize {
		return fmt.Errorf("%w: the result would exceed %d bytes", ErrTooLarge, a.maxNew)
	}
	return nil
}

func (a *applier) copyOp() error {
	if a.blocks == 0 {
		return fmt.Errorf("%w: copy op, but the old copy is empty", ErrCorrupt)
	}
	first, err := a.r.uvarint("copy first block", 0, uint64(a.blocks)-1)
	if err != nil {
		return err
	}
	count, err := a.r.uvarint("copy block count", 1, uint64(a.blocks)-first)
	if err != nil {
		return err
	}
	off := int64(first) * int64(a.blockSize)
	total := min(a.oldSize, int64(first+count)*int64(a.blockSize)) - off
	if err := a.room(total); err != nil {
		return err
	}
	if a.copyBuf == nil {
		a.copyBuf = make([]byte, min(copyBufSize, a.oldSize))
	}
	for n := total; n > 0; {
		p := a.copyBuf[:min(n, int64(len(a.copyBuf)))]
		got, err := a.old.ReadAt(p, off)
		if got < len(p) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF // shorter than when it was signed
			}
			return fmt.Errorf("read old copy at %d: %w", off+int64(got), err)
		}
		if err := a.emit(p); err != nil {
			return err
		}
		off += int64(len(p))
		n -= int64(len(p))
	}
	a.stats.CopyOps++
	a.stats.CopiedBytes += total
	return nil
}

func (a *applier) literalOp(op byte) error {
	rawLen, err := a.r.uvarint("literal length", 1, MaxLiteralChunk)
	if err != nil {
		return err
	}
	if err := a.room(int64(rawLen)); err != nil {
		return err
	}
	a.rawBuf = grow(a.rawBuf, int(rawLen))
	raw := a.rawBuf[:rawLen]
	if op == opLiteral {
		if err := a.r.readFull(raw); err != nil {
			return readErr("literal data", err)
		}
	} else {
		zLen, err := a.r.uvarint("compressed literal length", 1, MaxLiteralChunk)
		if err != nil {
			return err
		}
		a.zbuf = grow(a.zbuf, int(zLen))
		z := a.zbuf[:zLen]
		if err := a.r.readFull(z); err != nil {
			return readErr("compressed literal data", err)
		}
		// The cap limits decoding to the stated length.
		got, err := literalDecoder().DecodeAll(z, raw[:0:rawLen])
		if err != nil {
			return fmt.Errorf("%w: literal of %d bytes: zstd: %w", ErrCorrupt, rawLen, err)
		}
		if len(got) != int(rawLen) {
			return fmt.Errorf("%w: literal decodes to %d bytes, not %d", ErrCorrupt, len(got), rawLen)
		}
		raw = got
	}
	if err := a.emit(raw); err != nil {
		return err
	}
	a.stats.LiteralOps++
	a.stats.LiteralBytes += int64(rawLen)
	return nil
}

func (a *applier) endOp() error {
	size, err := a.r.uvarint("new file size", 0, uint64(MaxFileSize))
	if err != nil {
		return err
	}
	var want [32]byte
	if err := a.r.readFull(want[:]); err != nil {
		return readErr("new file hash", err)
	}
	if int64(size) != a.stats.NewSize {
		return fmt.Errorf("%w: the ops make %d bytes, the end says %d", ErrCorrupt, a.stats.NewSize, size)
	}
	a.h.Sum(a.stats.Hash[:0])
	if a.stats.Hash != want {
		return fmt.Errorf("%w: got %x, want %x", ErrHashMismatch, a.stats.Hash[:8], want[:8])
	}
	return nil
}

// grow returns b with room for n bytes, reusing it when it has.
func grow(b []byte, n int) []byte {
	if cap(b) >= n {
		return b
	}
	return make([]byte, n)
}
