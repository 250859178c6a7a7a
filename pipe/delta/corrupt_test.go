package delta

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/zeebo/blake3"
)

// sample returns an old file, a new one and the delta between them, with
// copy ops, a compressed literal and a stored one.
func sample(t testing.TB) (old, new, enc []byte) {
	t.Helper()
	const bs = 128
	old = randBytes(11, 20*bs+30)
	text := bytes.Repeat([]byte("compressible "), 40)
	new = cat(old[:5*bs], text, old[5*bs:12*bs], randBytes(12, 50), old[13*bs:])
	enc, st := diff(t, signOld(t, old, bs), bytes.NewReader(new))
	if st.CopyOps < 2 || st.LiteralOps < 2 {
		t.Fatalf("sample delta has too few ops: %+v", st)
	}
	return old, new, enc
}

// deltaBuilder writes deltas by hand, valid or not.
type deltaBuilder struct{ b []byte }

func newDelta(oldSize, blockSize uint64) *deltaBuilder {
	d := &deltaBuilder{b: append([]byte("TDDL"), version)}
	return d.uv(oldSize).uv(blockSize)
}

func (d *deltaBuilder) uv(v uint64) *deltaBuilder {
	d.b = binary.AppendUvarint(d.b, v)
	return d
}

func (d *deltaBuilder) raw(p ...byte) *deltaBuilder {
	d.b = append(d.b, p...)
	return d
}

func (d *deltaBuilder) end(content []byte) []byte {
	h := blake3.Sum256(content)
	d.raw(opEnd).uv(uint64(len(content))).raw(h[:]...)
	return d.b
}

func TestApplyRejects(t *testing.T) {
	old := randBytes(21, 1000) // 8 blocks of 128 bytes
	zbomb := literalEncoder().EncodeAll(make([]byte, 1<<20), nil)
	zshort := literalEncoder().EncodeAll(make([]byte, 1000), nil)
	tests := []struct {
		name  string
		delta []byte
		max   int64
		want  error
	}{
		{"empty", nil, 0, ErrCorrupt},
		{"bad magic", append([]byte("TDSG"), version), 0, ErrCorrupt},
		{"version 2", append([]byte("TDDL"), 2), 0, ErrVersion},
		{"header only", newDelta(1000, 128).b, 0, ErrCorrupt},
		{"block size 0", newDelta(1000, 0).end(nil), 0, ErrCorrupt},
		{"block size too small", newDelta(1000, MinWireBlockSize-1).end(nil), 0, ErrCorrupt},
		{"block size too big", newDelta(1000, MaxBlockSize+1).end(nil), 0, ErrCorrupt},
		{"old size too big", newDelta(uint64(MaxFileSize)+1, MaxBlockSize).end(nil), 0, ErrCorrupt},
		{"too many blocks", newDelta(MaxBlocks*64+1, 64).end(nil), 0, ErrCorrupt},
		{"varint overflow", append([]byte("TDDL"), version, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), 0, ErrCorrupt},
		{"padded varint", append([]byte("TDDL"), version, 0x80, 0x00), 0, ErrCorrupt},
		{"unknown op", newDelta(1000, 128).raw(0x7f).b, 0, ErrCorrupt},
		{"copy from empty old", newDelta(0, 128).raw(opCopy).uv(0).uv(1).end(nil), 0, ErrCorrupt},
		{"copy past the end", newDelta(1000, 128).raw(opCopy).uv(8).uv(1).end(nil), 0, ErrCorrupt},
		{"copy run past the end", newDelta(1000, 128).raw(opCopy).uv(7).uv(2).end(nil), 0, ErrCorrupt},
		{"copy huge run", newDelta(1000, 128).raw(opCopy).uv(1).uv(1 << 62).end(nil), 0, ErrCorrupt},
		{"copy zero blocks", newDelta(1000, 128).raw(opCopy).uv(0).uv(0).end(nil), 0, ErrCorrupt},
		{"copy truncated", newDelta(1000, 128).raw(opCopy).uv(0).b, 0, ErrCorrupt},
		{"copy beyond MaxNewSize", newDelta(1000, 128).raw(opCopy).uv(0).uv(8).end(old), 999, ErrTooLarge},
		{"literal empty", newDelta(1000, 128).raw(opLiteral).uv(0).end(nil), 0, ErrCorrupt},
		{"literal too long", newDelta(1000, 128).raw(opLiteral).uv(MaxLiteralChunk + 1).end(nil), 0, ErrCorrupt},
		{"literal truncated", newDelta(1000, 128).raw(opLiteral).uv(10).raw(1, 2, 3).b, 0, ErrCorrupt},
		{"literal beyond MaxNewSize", newDelta(1000, 128).raw(opLiteral).uv(3).raw(1, 2, 3).end([]byte{1, 2, 3}), 2, ErrTooLarge},
		{"zstd garbage", newDelta(1000, 128).raw(opZstd).uv(3).uv(3).raw(1, 2, 3).end([]byte{1, 2, 3}), 0, ErrCorrupt},
		{"zstd too long", newDelta(1000, 128).raw(opZstd).uv(3).uv(MaxLiteralChunk + 1).end(nil), 0, ErrCorrupt},
		{"zstd decodes longer", newDelta(1000, 128).raw(opZstd).uv(100).uv(uint64(len(zbomb))).raw(zbomb...).end(nil), 0, ErrCorrupt},
		{"zstd decodes shorter", newDelta(1000, 128).raw(opZstd).uv(2000).uv(uint64(len(zshort))).raw(zshort...).end(make([]byte, 2000)), 0, ErrCorrupt},
		{"no end", newDelta(1000, 128).raw(opCopy).uv(0).uv(1).b, 0, ErrCorrupt},
		{"end size wrong", newDelta(1000, 128).raw(opCopy).uv(0).uv(1).end(old[:127]), 0, ErrCorrupt},
		{"end truncated hash", newDelta(1000, 128).raw(opEnd).uv(0).raw(1, 2).b, 0, ErrCorrupt},
		{"hash wrong", newDelta(1000, 128).raw(opCopy).uv(0).uv(1).end(old[128:256]), 0, ErrHashMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Apply(bytes.NewReader(old), bytes.NewReader(tt.delta), io.Discard, Limits{MaxNewSize: tt.max})
			if !errors.Is(err, tt.want) {
				t.Fatalf("Apply = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestApplyHandBuilt(t *testing.T) {
	old := randBytes(21, 1000)
	new := cat(old[896:], old[:256], []byte("hi"))
	d := newDelta(1000, 128).raw(opCopy).uv(7).uv(1).raw(opCopy).uv(0).uv(2).raw(opLiteral).uv(2).raw('h', 'i').end(new)
	var out bytes.Buffer
	if _, err := Apply(bytes.NewReader(old), bytes.NewReader(d), &out, Limits{MaxNewSize: int64(len(new))}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if !bytes.Equal(out.Bytes(), new) {
		t.Fatalf("Apply wrote %q, want %q", out.Bytes(), new)
	}
}

// TestApplyTruncated cuts a valid delta at every length: each cut is
// corrupt, never a success.
func TestApplyTruncated(t *testing.T) {
	old, _, enc := sample(t)
	for n := range len(enc) {
		_, err := Apply(bytes.NewReader(old), bytes.NewReader(enc[:n]), io.Discard, Limits{})
		if !errors.Is(err, ErrCorrupt) || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("Apply of %d of %d bytes = %v, want ErrCorrupt and io.ErrUnexpectedEOF", n, len(enc), err)
		}
	}
}

// TestApplyBitFlips flips every bit of a valid delta: the result is an
// error or, where the bit means nothing (zstd has a few such), the right
// content; never a wrong file.
func TestApplyBitFlips(t *testing.T) {
	old, new, enc := sample(t)
	harmless := 0
	for i := range len(enc) * 8 {
		bad := bytes.Clone(enc)
		bad[i/8] ^= 1 << (i % 8)
		var out bytes.Buffer
		if _, err := Apply(bytes.NewReader(old), bytes.NewReader(bad), &out, Limits{}); err == nil {
			if !bytes.Equal(out.Bytes(), new) {
				t.Fatalf("Apply with bit %d flipped succeeded with the wrong content", i)
			}
			harmless++
		}
	}
	if harmless > 8 {
		t.Errorf("%d of %d bit flips went unnoticed", harmless, len(enc)*8)
	}
}

func TestApplyOldChanged(t *testing.T) {
	old, _, enc := sample(t)
	changed := bytes.Clone(old)
	changed[300] ^= 1
	if _, err := Apply(bytes.NewReader(changed), bytes.NewReader(enc), io.Discard, Limits{}); !errors.Is(err, ErrHashMismatch) {
		t.Errorf("Apply to a changed old copy = %v, want ErrHashMismatch", err)
	}
	if _, err := Apply(bytes.NewReader(old[:1000]), bytes.NewReader(enc), io.Discard, Limits{}); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Apply to a shortened old copy = %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestApplyWriteError(t *testing.T) {
	old, _, enc := sample(t)
	boom := errors.New("disk full")
	_, err := Apply(bytes.NewReader(old), bytes.NewReader(enc), errWriter{boom}, Limits{})
	if !errors.Is(err, boom) {
		t.Errorf("Apply to a failing writer = %v, want %v", err, boom)
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

// TestNoOverRead checks that the decoders stop at the end of their encoding,
// with and without an io.ByteReader underneath.
func TestNoOverRead(t *testing.T) {
	old, new, enc := sample(t)
	var sigEnc bytes.Buffer
	if _, err := signOld(t, old, 128).WriteTo(&sigEnc); err != nil {
		t.Fatal(err)
	}
	trailer := []byte("next message")
	for _, wrap := range []func(io.Reader) io.Reader{
		func(r io.Reader) io.Reader { return r },
		iotest.OneByteReader, // not an io.ByteReader
	} {
		r := bytes.NewReader(cat(sigEnc.Bytes(), trailer))
		if _, err := ReadSignature(wrap(r), 1<<20); err != nil {
			t.Fatalf("ReadSignature: %v", err)
		}
		if rest, _ := io.ReadAll(r); !bytes.Equal(rest, trailer) {
			t.Errorf("after ReadSignature %q is left, want %q", rest, trailer)
		}
		r = bytes.NewReader(cat(enc, trailer))
		var out bytes.Buffer
		st, err := Apply(bytes.NewReader(old), wrap(r), &out, Limits{})
		if err != nil || !bytes.Equal(out.Bytes(), new) {
			t.Fatalf("Apply: %v", err)
		}
		if rest, _ := io.ReadAll(r); !bytes.Equal(rest, trailer) || st.DeltaBytes != int64(len(enc)) {
			t.Errorf("after Apply %q is left (read %d of %d), want %q", rest, st.DeltaBytes, len(enc), trailer)
		}
	}
}

func TestReadSignatureRejects(t *testing.T) {
	valid := func() []byte {
		var b bytes.Buffer
		if _, err := signOld(t, randBytes(5, 1000), 128).WriteTo(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}()
	hdr := func(size, bs uint64) []byte {
		b := append([]byte("TDSG"), version)
		b = binary.AppendUvarint(b, size)
		b = binary.AppendUvarint(b, bs)
		return append(b, make([]byte, 8)...)
	}
	tests := []struct {
		name string
		enc  []byte
		max  int64
		want error
	}{
		{"empty", nil, 1 << 20, ErrCorrupt},
		{"delta magic", append([]byte("TDDL"), version), 1 << 20, ErrCorrupt},
		{"version 0", append([]byte("TDSG"), 0), 1 << 20, ErrVersion},
		{"over maxFileSize", valid, 999, ErrTooLarge},
		{"block size too small", hdr(1000, 63), 1 << 20, ErrCorrupt},
		{"block size too big", hdr(1000, MaxBlockSize+1), 1 << 20, ErrCorrupt},
		{"too many blocks", hdr(MaxBlocks*64+1, 64), MaxFileSize, ErrCorrupt},
		{"file over MaxFileSize", hdr(uint64(MaxFileSize)+1, MaxBlockSize), MaxFileSize * 2, ErrCorrupt},
		// A header promising a million blocks and sending none must fail
		// without allocating for a million.
		{"blocks missing", hdr(MaxBlocks*64, 64), MaxFileSize, ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			alloc := allocated(func() { _, err = ReadSignature(bytes.NewReader(tt.enc), tt.max) })
			if !errors.Is(err, tt.want) {
				t.Fatalf("ReadSignature = %v, want %v", err, tt.want)
			}
			if alloc > 1<<20 {
				t.Errorf("ReadSignature allocated %d bytes", alloc)
			}
		})
	}
	for n := range len(valid) {
		if _, err := ReadSignature(bytes.NewReader(valid[:n]), 1<<20); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("ReadSignature of %d of %d bytes = %v, want io.ErrUnexpectedEOF", n, len(valid), err)
		}
	}
}

// TestDiffReadError checks that a failing new file fails Diff.
func TestDiffReadError(t *testing.T) {
	boom := errors.New("io error")
	sig := signOld(t, randBytes(1, 5000), 128)
	r := io.MultiReader(bytes.NewReader(randBytes(1, 3000)), iotest.ErrReader(boom))
	if _, err := Diff(sig, r, io.Discard); !errors.Is(err, boom) {
		t.Errorf("Diff = %v, want %v", err, boom)
	}
	if _, err := Diff(sig, bytes.NewReader(nil), errWriter{boom}); !errors.Is(err, boom) {
		t.Errorf("Diff to a failing writer = %v, want %v", err, boom)
	}
	// A failed write stops Diff early rather than after the whole file.
	r2 := bytes.NewReader(randBytes(2, 10<<20))
	if _, err := Diff(sig, r2, errWriter{boom}); !errors.Is(err, boom) {
		t.Errorf("Diff to a failing writer = %v, want %v", err, boom)
	}
	if read := 10<<20 - r2.Len(); read > 1<<20 {
		t.Errorf("Diff read %d bytes after its writer failed", read)
	}
	if _, err := Diff(nil, bytes.NewReader(nil), io.Discard); err == nil {
		t.Error("Diff(nil signature) succeeded")
	}
}
