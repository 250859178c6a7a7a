package replica

import (
	"errors"
	"math"
	"testing"

	"github.com/tandemhost/tandem/pipe"
	"github.com/tandemhost/tandem/watcher/index"
)

// newTransfer starts a transfer of a file of size bytes into a temp tree.
func newTransfer(t *testing.T, size int64) (*tree, *transfer) {
	t.Helper()
	tr, err := openTree(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	f, name, err := tr.createTemp("big.bin")
	if err != nil {
		t.Fatal(err)
	}
	x := &transfer{c: &Change{Rec: index.Record{Path: "big.bin", Type: index.File, Size: size}}, tmp: f, name: name}
	t.Cleanup(func() { x.close(tr) })
	return tr, x
}

func TestTransferPutBounds(t *testing.T) {
	const size = 1000
	tests := []struct {
		name         string
		offset, size int64
		data         int // bytes the delta produces
		ok           bool
	}{
		{"whole file", 0, size, size, true},
		{"last byte", size - 1, 1, 1, true},
		{"past the end", size - 10, 100, 100, false},
		{"beyond the end", size, 1, 1, false},
		{"delta longer than announced", 0, 10, 11, false},
		{"delta shorter than announced", 0, 10, 9, false},
		{"offset near MaxInt64", math.MaxInt64 - 10, 100, 100, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, x := newTransfer(t, size)
			err := x.put(&Range{Offset: tt.offset, Size: tt.size, Delta: literalDelta(t, randomBytes(tt.data))})
			if (err == nil) != tt.ok {
				t.Fatalf("put([%d, +%d) of %d bytes) = %v, want ok %v", tt.offset, tt.size, tt.data, err, tt.ok)
			}
			if err != nil && x.got != 0 {
				t.Errorf("a refused range counts %d bytes as received", x.got)
			}
		})
	}
}

// TestTransferPutOverflow: a range whose end overflows int64 is refused by
// the bounds check as malformed, not by the kernel.
func TestTransferPutOverflow(t *testing.T) {
	_, x := newTransfer(t, 1000)
	err := x.put(&Range{Offset: math.MaxInt64 - 10, Size: 100, Delta: literalDelta(t, randomBytes(100))})
	if !errors.Is(err, pipe.ErrMalformed) {
		t.Errorf("put(range ending past MaxInt64) = %v, want pipe.ErrMalformed", err)
	}
}
