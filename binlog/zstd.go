package binlog

import (
	"encoding/binary"
	"fmt"

	"github.com/klauspost/compress/zstd"

	"github.com/tandemhost/tandem/pipe"
)

// txnsCompressor makes the frameTxnsZstd bodies of a rows-zstd sender.
type txnsCompressor struct {
	enc *zstd.Encoder
	out []byte
}

func newTxnsCompressor() *txnsCompressor {
	// The fastest level: a sysbench catch-up's frames shrink to a third
	// at about 280 MB/s (5 µs a transaction); the default level gains
	// nothing, at half the speed.
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
	if err != nil {
		panic(fmt.Sprintf("binlog: zstd encoder: %v", err)) // the options are constant
	}
	return &txnsCompressor{enc: enc}
}

// compress returns the frameTxnsZstd body carrying frames (frameTxn frames
// made by pipe.AppendFrame), valid until the next call, or false when z is
// nil, frames are over zstdBatchMax or compressing does not make them
// smaller: then they go as they are.
func (z *txnsCompressor) compress(frames []byte) ([]byte, bool) {
	if z == nil || len(frames) > zstdBatchMax {
		return nil, false
	}
	z.out = binary.AppendUvarint(z.out[:0], uint64(len(frames)))
	z.out = z.enc.EncodeAll(frames, z.out)
	if len(z.out) >= len(frames) {
		return nil, false
	}
	return z.out, true
}

// txnsDecompressor reads the frameTxnsZstd bodies of a rows-zstd stream.
type txnsDecompressor struct {
	dec *zstd.Decoder
	buf []byte
}

func newTxnsDecompressor() *txnsDecompressor {
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(zstdBatchMax),
		zstd.WithDecoderMaxWindow(zstdBatchMax), zstd.WithDecodeAllCapLimit(true))
	if err != nil {
		panic(fmt.Sprintf("binlog: zstd decoder: %v", err)) // the options are constant
	}
	return &txnsDecompressor{dec: dec}
}

func (z *txnsDecompressor) close() { z.dec.Close() }

// each decompresses a frameTxnsZstd body and calls fn with the body of each
// frameTxn frame in it, in order; a body is valid only during its call.
// The length announced first bounds what is decompressed (at most
// zstdBatchMax), and must be exactly what comes out.
func (z *txnsDecompressor) each(body []byte, fn func(txn []byte) error) error {
	n, k := binary.Uvarint(body)
	if k <= 0 || n == 0 || n > zstdBatchMax {
		return fmt.Errorf("%w: compressed transactions of %d bytes (limit %d)", pipe.ErrMalformed, n, zstdBatchMax)
	}
	if uint64(cap(z.buf)) < n {
		z.buf = make([]byte, 0, n) // bounded by zstdBatchMax, checked above
	}
	// DecodeAll stops at the capacity given (WithDecodeAllCapLimit).
	frames, err := z.dec.DecodeAll(body[k:], z.buf[:0:n])
	if err != nil {
		return fmt.Errorf("%w: compressed transactions: %v", pipe.ErrMalformed, err)
	}
	if uint64(len(frames)) != n {
		return fmt.Errorf("%w: compressed transactions: %d bytes, %d announced", pipe.ErrMalformed, len(frames), n)
	}
	for len(frames) > 0 {
		typ, txn, rest, err := pipe.NextFrame(frames, rowsMaxFrame)
		if err != nil {
			return fmt.Errorf("compressed transactions: %w", err)
		}
		if typ != frameTxn {
			return fmt.Errorf("%w: compressed transactions: frame type %d", pipe.ErrMalformed, typ)
		}
		if err := fn(txn); err != nil {
			return err
		}
		frames = rest
	}
	return nil
}
