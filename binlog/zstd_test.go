package binlog

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/tandemhost/tandem/pipe"
)

// FuzzTxnsZstd feeds arbitrary frameTxnsZstd bodies to the receiver's
// decompressor: it must never panic or give out more than zstdBatchMax,
// and whatever frames it gives, compressed again, must come back the same.
func FuzzTxnsZstd(f *testing.F) {
	c := newTxnsCompressor()
	var frames []byte
	for _, w := range sysbenchTxns(2) {
		frames = pipe.AppendFrame(frames, frameTxn, w)
	}
	good, ok := c.compress(frames)
	if !ok {
		f.Fatal("sysbench transactions did not compress")
	}
	f.Add(bytes.Clone(good))
	f.Add(binary.AppendUvarint(nil, zstdBatchMax+1))
	f.Add([]byte{0})
	f.Add(append(binary.AppendUvarint(nil, 10), 0x28, 0xb5, 0x2f, 0xfd))
	d := newTxnsDecompressor()
	defer d.close()
	f.Fuzz(func(t *testing.T, body []byte) {
		var got []byte
		err := d.each(body, func(txn []byte) error {
			got = pipe.AppendFrame(got, frameTxn, txn)
			return nil
		})
		if len(got) > zstdBatchMax {
			t.Fatalf("%d bytes of frames out of one batch, limit %d", len(got), zstdBatchMax)
		}
		if err != nil || len(got) == 0 {
			return
		}
		again, ok := c.compress(got)
		if !ok {
			return // does not shrink: sent as it is
		}
		var back []byte
		if err := d.each(again, func(txn []byte) error {
			back = pipe.AppendFrame(back, frameTxn, txn)
			return nil
		}); err != nil || !bytes.Equal(back, got) {
			t.Fatalf("round trip: %v; %d bytes back for %d", err, len(back), len(got))
		}
	})
}
