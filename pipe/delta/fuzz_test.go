package delta

import (
	"bytes"
	"io"
	"testing"
)

func FuzzReadSignature(f *testing.F) {
	for _, n := range []int{0, 1, 63, 64, 65, 1000} {
		var b bytes.Buffer
		if _, err := signOld(f, randBytes(uint64(n), n), 64).WriteTo(&b); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
	}
	f.Add([]byte("TDSG\x01"))
	f.Fuzz(func(t *testing.T, enc []byte) {
		r := bytes.NewReader(enc)
		sig, err := ReadSignature(r, 1<<24)
		if err != nil {
			return
		}
		// A signature that decodes encodes to exactly the bytes read.
		used := enc[:len(enc)-r.Len()]
		var again bytes.Buffer
		if _, err := sig.WriteTo(&again); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again.Bytes(), used) {
			t.Fatalf("ReadSignature(%x) then WriteTo = %x", used, again.Bytes())
		}
		// Diff must cope with whatever signature decodes.
		if _, err := Diff(sig, bytes.NewReader(used), io.Discard); err != nil {
			t.Fatalf("Diff: %v", err)
		}
	})
}

func FuzzApply(f *testing.F) {
	old, _, enc := sample(f)
	f.Add(old, enc)
	small := randBytes(21, 1000)
	f.Add(small, newDelta(1000, 128).raw(opCopy).uv(7).uv(1).raw(opCopy).uv(0).uv(2).raw(opLiteral).uv(2).raw('h', 'i').end(nil))
	f.Add(small, newDelta(1000, 64).raw(opZstd).uv(100).uv(9).raw(0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0, 0).end(nil))
	f.Add([]byte{}, newDelta(0, 64).end(nil))
	f.Fuzz(func(t *testing.T, old, delta []byte) {
		const max = 1 << 20
		var out bytes.Buffer
		st, err := Apply(bytes.NewReader(old), bytes.NewReader(delta), &out, Limits{MaxNewSize: max})
		if out.Len() > max || st.NewSize != int64(out.Len()) {
			t.Fatalf("Apply wrote %d bytes, stats say %d, limit %d", out.Len(), st.NewSize, max)
		}
		if err == nil && (st.CopiedBytes+st.LiteralBytes != st.NewSize || st.DeltaBytes > int64(len(delta))) {
			t.Fatalf("Apply stats inconsistent: %+v", st)
		}
	})
}

// FuzzRoundTrip checks that Apply(Diff(Sign(old), new)) is new for any old
// and new content and block size.
func FuzzRoundTrip(f *testing.F) {
	old, new, _ := sample(f)
	f.Add(old, new, uint16(64))
	f.Add([]byte("hello world, hello world, hello world"), []byte("hello world, hello there, hello world"), uint16(0))
	f.Add([]byte{}, []byte("new"), uint16(3))
	f.Fuzz(func(t *testing.T, old, new []byte, bs uint16) {
		roundTrip(t, old, new, MinWireBlockSize+int(bs%512), nil)
	})
}
