package delta

import (
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// The zstd coders are shared: EncodeAll and DecodeAll are safe for
// concurrent use, keep their state per call, and start no goroutines. Making
// one costs far more than a small delta, so they are made once.
var (
	literalEncoder = sync.OnceValue(func() *zstd.Encoder {
		e, err := zstd.NewWriter(nil,
			zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
			zstd.WithEncoderLevel(zstd.SpeedDefault),
			// The whole-file BLAKE3 hash checks the result.
			zstd.WithEncoderCRC(false),
		)
		if err != nil {
			panic("delta: zstd encoder: " + err.Error())
		}
		return e
	})
	literalDecoder = sync.OnceValue(func() *zstd.Decoder {
		d, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)),
			zstd.WithDecoderMaxMemory(MaxLiteralChunk),
			zstd.WithDecoderMaxWindow(MaxLiteralChunk),
			// Decode no more than the op's stated raw length (the cap of
			// the destination): a frame cannot balloon.
			zstd.WithDecodeAllCapLimit(true),
		)
		if err != nil {
			panic("delta: zstd decoder: " + err.Error())
		}
		return d
	})
)
