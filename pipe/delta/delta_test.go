package delta

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/zeebo/blake3"
)

// randBytes returns n pseudo-random bytes from seed.
func randBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

// cat joins byte slices into a new one.
func cat(parts ...[]byte) []byte {
	return bytes.Join(parts, nil)
}

// signOld signs old with block size bs (BlockSize when 0) and passes the
// signature through its encoding.
func signOld(t testing.TB, old []byte, bs int) *Signature {
	t.Helper()
	if bs == 0 {
		bs = BlockSize(int64(len(old)))
	}
	sig, err := sign(bytes.NewReader(old), int64(len(old)), bs, 0x5eed)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	var enc bytes.Buffer
	n, err := sig.WriteTo(&enc)
	if err != nil || n != int64(enc.Len()) {
		t.Fatalf("WriteTo = %d, %v; wrote %d", n, err, enc.Len())
	}
	got, err := ReadSignature(&enc, int64(len(old)))
	if err != nil {
		t.Fatalf("ReadSignature: %v", err)
	}
	if enc.Len() != 0 {
		t.Fatalf("ReadSignature left %d bytes", enc.Len())
	}
	return got
}

// diff returns the encoded delta from sig to new.
func diff(t testing.TB, sig *Signature, new io.Reader) ([]byte, Stats) {
	t.Helper()
	var enc bytes.Buffer
	st, err := Diff(sig, new, &enc)
	if err != nil {
		t.Fatalf("Diff: %v", err)
	}
	if st.DeltaBytes != int64(enc.Len()) {
		t.Fatalf("Diff stats say %d delta bytes, wrote %d", st.DeltaBytes, enc.Len())
	}
	return enc.Bytes(), st
}

// roundTrip signs old, diffs new against it, applies the delta and checks
// that the result is new and that both sides agree on the stats.
func roundTrip(t testing.TB, old, new []byte, bs int, newReader func(io.Reader) io.Reader) Stats {
	t.Helper()
	sig := signOld(t, old, bs)
	var r io.Reader = bytes.NewReader(new)
	if newReader != nil {
		r = newReader(r)
	}
	enc, ds := diff(t, sig, r)
	if want := blake3.Sum256(new); ds.Hash != want || ds.NewSize != int64(len(new)) {
		t.Fatalf("Diff stats: size %d hash %x, want %d %x", ds.NewSize, ds.Hash[:8], len(new), want[:8])
	}
	var out bytes.Buffer
	as, err := Apply(bytes.NewReader(old), bytes.NewReader(enc), &out, Limits{MaxNewSize: int64(len(new))})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if !bytes.Equal(out.Bytes(), new) {
		t.Fatalf("Apply wrote %d bytes that differ from the %d new bytes", out.Len(), len(new))
	}
	if as != ds {
		t.Fatalf("Apply stats %+v, Diff stats %+v", as, ds)
	}
	if ds.CopiedBytes+ds.LiteralBytes != ds.NewSize {
		t.Fatalf("copied %d + literal %d != new size %d", ds.CopiedBytes, ds.LiteralBytes, ds.NewSize)
	}
	return ds
}

func TestBlockSize(t *testing.T) {
	tests := []struct {
		size int64
		want int
	}{
		{-1, MinBlockSize},
		{0, MinBlockSize},
		{1, MinBlockSize},
		{4 << 20, MinBlockSize},
		{10 << 20, 4 << 10},
		{64 << 20, 8 << 10},
		{1 << 30, 32 << 10},
		{16 << 30, 128 << 10},
		{128 << 30, 128 << 10},
		{128<<30 + 1, 129 << 10},
		{1 << 40, 1 << 20},
		{MaxFileSize, MaxBlockSize},
		{MaxFileSize * 2, MaxBlockSize},
	}
	for _, tt := range tests {
		if got := BlockSize(tt.size); got != tt.want {
			t.Errorf("BlockSize(%d) = %d, want %d", tt.size, got, tt.want)
		}
	}
	for size := int64(1); size <= MaxFileSize; size = size*3 + 7 {
		bs := BlockSize(size)
		if n := (size + int64(bs) - 1) / int64(bs); n > MaxBlocks || bs < MinBlockSize || bs > MaxBlockSize || bs%1024 != 0 {
			t.Errorf("BlockSize(%d) = %d: %d blocks", size, bs, n)
		}
	}
}

func TestWeakRolls(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	tab := newWeakTable(r.Uint64())
	data := randBytes(3, 4096)
	for _, n := range []int{1, 2, 3, 4, 5, 7, 64, 1000} {
		a, b := tab.sums(data[:n])
		for pos := 1; pos+n <= len(data); pos++ {
			out, in := tab[data[pos-1]], tab[data[pos-1+n]]
			a += in - out
			b += a - uint32(n)*out
			if wa, wb := tab.sums(data[pos : pos+n]); a != wa || b != wb {
				t.Fatalf("n=%d pos=%d: rolled (%d, %d), computed (%d, %d)", n, pos, a, b, wa, wb)
			}
		}
	}
}

func TestRoundTrip(t *testing.T) {
	const bs = 256
	base := randBytes(1, 40*bs+100) // 40 full blocks and a short one
	text := bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog\n"), 300)
	mod := func(b []byte, at int) []byte {
		b = bytes.Clone(b)
		b[at] ^= 0xff
		return b
	}
	tests := []struct {
		name     string
		old, new []byte
		// maxLiteral bounds the literal bytes of the delta; -1: no bound.
		maxLiteral int64
		maxOps     int
	}{
		{"identical", base, base, 0, 1},
		{"identical, whole blocks", base[:40*bs], base[:40*bs], 0, 1},
		{"modify first byte", base, mod(base, 0), bs, 2},
		{"modify middle byte", base, mod(base, 20*bs+7), bs, 3},
		{"modify last byte", base, mod(base, len(base)-1), 100, 2},
		{"modify in short last block", base, mod(base, 40*bs+50), 100, 2},
		{"insert", base, cat(base[:1000], []byte("inserted"), base[1000:]), bs + 8, 3},
		{"insert at block boundary", base, cat(base[:10*bs], randBytes(2, 3000), base[10*bs:]), 3000, 3},
		{"delete", base, cat(base[:1000], base[1500:]), 2 * bs, 3},
		{"delete whole blocks", base, cat(base[:5*bs], base[9*bs:]), 0, 2},
		{"append", base, cat(base, randBytes(3, 777)), 777 + 100, 2},
		{"append to whole blocks", base[:40*bs], cat(base[:40*bs], randBytes(3, 777)), 777, 2},
		{"prepend", base, cat([]byte("hello"), base), 5, 2},
		{"truncate", base, base[:len(base)/2], bs, 2},
		{"truncate to a block boundary", base, base[:7*bs], 0, 1},
		{"move blocks", base, cat(base[20*bs:30*bs], base[:20*bs], base[30*bs:]), 0, 3},
		{"repeat blocks", base, cat(base[:3*bs], base[:3*bs], base[:3*bs]), 0, 3},
		{"empty old", nil, base, -1, -1},
		{"empty new", base, nil, 0, 0},
		{"both empty", nil, nil, 0, 0},
		{"old shorter than a block", base[:100], base[:100], 0, 1},
		{"old shorter than a block, new longer", base[:100], base[:5000], 5000, 1},
		{"old shorter than a block, changed", base[:100], mod(base[:100], 3), 100, 1},
		{"new shorter than a block", base, base[:100], 100, 1},
		{"all different", base, randBytes(9, len(base)), -1, -1},
		{"zeros", make([]byte, 100*bs), make([]byte, 100*bs), 0, 1},
		{"zeros grown", make([]byte, 100*bs), make([]byte, 150*bs+3), 3, 4},
		{"text edit", text, bytes.Replace(text, []byte("lazy dog\nthe quick"), []byte("lazy cat\nthe quick"), 1), bs, -1},
	}
	readers := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"bytes", nil},
		{"one byte reads", iotest.OneByteReader},
		{"half reads", iotest.HalfReader},
		{"EOF with data", iotest.DataErrReader},
	}
	for _, tt := range tests {
		for _, rd := range readers {
			t.Run(tt.name+"/"+rd.name, func(t *testing.T) {
				st := roundTrip(t, tt.old, tt.new, bs, rd.wrap)
				if tt.maxLiteral >= 0 && st.LiteralBytes > tt.maxLiteral {
					t.Errorf("literal bytes = %d, want at most %d (%+v)", st.LiteralBytes, tt.maxLiteral, st)
				}
				if ops := st.CopyOps + st.LiteralOps; tt.maxOps >= 0 && ops > tt.maxOps {
					t.Errorf("%d ops, want at most %d (%+v)", ops, tt.maxOps, st)
				}
			})
		}
	}
}

// TestRoundTripRandomEdits applies random edit scripts to random files and
// checks that every delta reproduces the new file and stays small.
func TestRoundTripRandomEdits(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for i := range 300 {
		bs := MinWireBlockSize + r.IntN(1024)
		var old []byte
		switch r.IntN(4) {
		case 0: // compressible
			old = bytes.Repeat(randBytes(uint64(i), 1+r.IntN(50)), 1+r.IntN(2000))
		default:
			old = randBytes(uint64(i), r.IntN(64*bs))
		}
		new := bytes.Clone(old)
		edits := r.IntN(6)
		var inserted int
		for range edits {
			at := 0
			if len(new) > 0 {
				at = r.IntN(len(new) + 1)
			}
			n := 1 + r.IntN(2*bs)
			switch r.IntN(4) {
			case 0: // insert
				new = cat(new[:at], randBytes(r.Uint64(), n), new[at:])
				inserted += n
			case 1: // delete
				new = cat(new[:at], new[min(at+n, len(new)):])
			case 2: // overwrite
				for j := at; j < min(at+n, len(new)); j++ {
					new[j] = byte(r.Uint32())
				}
				inserted += n
			case 3: // move a range to the front
				end := min(at+n, len(new))
				new = cat(new[at:end], new[:at], new[end:])
			}
		}
		name := fmt.Sprintf("%d/bs=%d/old=%d/new=%d/edits=%d", i, bs, len(old), len(new), edits)
		st := roundTrip(t, old, new, bs, nil)
		// Each edit makes at most three places where the new content
		// jumps to another offset of the old, each costing less than two
		// blocks of literal, plus its own new bytes; a short last block
		// may go literal as well.
		if limit := int64(inserted + edits*6*bs + bs); edits > 0 && st.LiteralBytes > limit {
			t.Errorf("%s: %d literal bytes, want at most %d", name, st.LiteralBytes, limit)
		}
		if edits == 0 && st.LiteralBytes != 0 {
			t.Errorf("%s: identical files gave %d literal bytes", name, st.LiteralBytes)
		}
	}
}

// TestSignBlockSizes signs with the real block size rule at the sizes where
// the block count changes.
func TestSignRealBlockSize(t *testing.T) {
	for _, n := range []int{1, MinBlockSize - 1, MinBlockSize, MinBlockSize + 1, 3 << 20, 5<<20 + 1} {
		old := randBytes(uint64(n), n)
		new := cat(old[:n/2], []byte("x"), old[n/2:])
		st := roundTrip(t, old, new, 0, nil)
		if st.LiteralBytes > int64(2*BlockSize(int64(n))) {
			t.Errorf("size %d: %d literal bytes for a 1-byte insertion", n, st.LiteralBytes)
		}
	}
}

func TestSignShortInput(t *testing.T) {
	_, err := Sign(bytes.NewReader(make([]byte, 100)), 101)
	if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Sign of 100 bytes as 101 = %v, want io.ErrUnexpectedEOF", err)
	}
	_, err = Sign(bytes.NewReader(nil), MaxFileSize+1)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Sign(MaxFileSize+1) = %v, want ErrTooLarge", err)
	}
	// Sign reads no more than size bytes.
	r := bytes.NewReader(make([]byte, 10000))
	if _, err := Sign(r, 5000); err != nil || r.Len() != 5000 {
		t.Fatalf("Sign(5000) = %v, left %d of 10000 bytes", err, r.Len())
	}
}

const big = 64 << 20

// bigFile returns the 64 MiB test file, made once.
var bigFile = sync.OnceValue(func() []byte { return randBytes(64, big) })

// bigSig returns bigFile's signature, made once.
var bigSig = sync.OnceValues(func() (*Signature, error) { return Sign(bytes.NewReader(bigFile()), big) })

func TestBig(t *testing.T) {
	old := bigFile()
	sig, err := bigSig()
	if err != nil {
		t.Fatal(err)
	}
	var sigEnc bytes.Buffer
	if _, err := sig.WriteTo(&sigEnc); err != nil {
		t.Fatal(err)
	}
	t.Logf("64 MiB: block size %d, %d blocks, signature %d bytes", sig.BlockSize(), sig.Blocks(), sigEnc.Len())

	oneByte := bytes.Clone(old)
	oneByte[big/2+12345] ^= 1
	inserted := cat(old[:big/2], randBytes(99, 1<<20), old[big/2:])
	tests := []struct {
		name     string
		new      []byte
		maxDelta int
	}{
		{"identical", old, 1 << 10},
		{"one byte edit", oneByte, 256 << 10},
		{"1 MiB insertion", inserted, 1<<20 + 64<<10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, st := diff(t, sig, bytes.NewReader(tt.new))
			t.Logf("delta %d bytes: %+v", len(enc), st)
			if len(enc) >= tt.maxDelta {
				t.Errorf("delta is %d bytes, want less than %d", len(enc), tt.maxDelta)
			}
			if want := blake3.Sum256(tt.new); st.Hash != want {
				t.Fatalf("Diff hashed the new file as %x, want %x", st.Hash, want)
			}
			// Apply checks its result against that hash.
			if _, err := Apply(bytes.NewReader(old), bytes.NewReader(enc), io.Discard, Limits{}); err != nil {
				t.Fatalf("Apply: %v", err)
			}
		})
	}
}

// TestStreamingMemory checks that Diff and Apply of a 64 MiB file hold a
// window, not the file.
func TestStreamingMemory(t *testing.T) {
	old := bigFile()
	sig, err := bigSig()
	if err != nil {
		t.Fatal(err)
	}
	// The old file with 4 MiB of new data in the middle, read piece by
	// piece from the old file and a generator, never held whole.
	newFile := func() io.Reader {
		return io.MultiReader(
			bytes.NewReader(old[:big/2]),
			io.LimitReader(rand.NewChaCha8([32]byte{1}), 4<<20),
			bytes.NewReader(old[big/2:]))
	}
	// Make the shared zstd coders before measuring.
	literalEncoder()
	literalDecoder()

	var enc bytes.Buffer
	enc.Grow(5 << 20)
	alloc := allocated(func() {
		if _, err := Diff(sig, newFile(), &enc); err != nil {
			t.Fatal(err)
		}
	})
	if alloc > 8<<20 {
		t.Errorf("Diff of 64 MiB allocated %d bytes", alloc)
	}
	alloc = allocated(func() {
		if _, err := Apply(bytes.NewReader(old), bytes.NewReader(enc.Bytes()), io.Discard, Limits{}); err != nil {
			t.Fatal(err)
		}
	})
	if alloc > 8<<20 {
		t.Errorf("Apply of 64 MiB allocated %d bytes", alloc)
	}
}

func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}
