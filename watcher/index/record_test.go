package index

import (
	"bytes"
	"encoding/binary"
	"io/fs"
	"math"
	"reflect"
	"testing"

	"github.com/tandemhost/tandem/conflict"
)

func sampleRecords() []Record {
	return []Record{
		{
			Path: "www/index.php", Type: File, Size: 1234, MtimeNs: 1_700_000_000_123_456_789,
			Mode: 0o644, UID: 33, GID: 33, Hash: [32]byte{1, 2, 3, 31: 9},
			Vector: vec("alpha", 3).With("beta", 7), Origin: "beta", Seq: 42,
			Ino: 987654321, Dev: 0x803, CtimeNs: 1_700_000_001_000_000_000,
		},
		{Path: "www", Type: Dir, Mode: uint32(0o775 | fs.ModeSetgid | fs.ModeSticky), Vector: vec("alpha", 1), Origin: "alpha", Seq: 1},
		{Path: "www/current", Type: Symlink, Size: 12, Target: "releases/v42", MtimeNs: -5, Mode: 0o777, Seq: 9},
		{Path: "gone/file", Type: File, Deleted: true, Size: 10, Hash: [32]byte{7}, Vector: vec("beta", math.MaxUint64), Origin: "beta", Seq: math.MaxUint64},
		{Path: "x", Type: File, Mode: uint32(fs.ModeSetuid | 0o4755&0o777), UID: math.MaxUint32, GID: math.MaxUint32, Size: math.MaxInt64, MtimeNs: math.MinInt64, CtimeNs: math.MaxInt64, Ino: math.MaxUint64, Dev: math.MaxUint64},
		{Path: "dir with spaces/ünïcode name\x01\xff", Type: File},
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for _, want := range sampleRecords() {
		b, err := want.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary(%+v): %v", want, err)
		}
		var got Record
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("UnmarshalBinary(MarshalBinary(%+v)): %v", want, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("round trip of %s:\n got %+v\nwant %+v", want.Path, got, want)
		}
	}
}

func TestRecordEncodingIsCompact(t *testing.T) {
	r := Record{Path: "a/b.txt", Type: File, Size: 100, MtimeNs: 1_700_000_000_000_000_000, Mode: 0o644,
		Vector: vec("alpha", 2), Origin: "alpha", Seq: 1000, Ino: 1 << 20, Dev: 2049, CtimeNs: 1_700_000_000_000_000_000}
	b, _ := r.MarshalBinary()
	if len(b) > 100 {
		t.Errorf("encoding of a small file record is %d bytes, want at most 100", len(b))
	}
}

func TestMarshalRefusesInvalid(t *testing.T) {
	valid := Record{Path: "a", Type: File}
	tests := []struct {
		name   string
		change func(*Record)
	}{
		{"empty path", func(r *Record) { r.Path = "" }},
		{"absolute path", func(r *Record) { r.Path = "/a" }},
		{"dot dot", func(r *Record) { r.Path = "a/../b" }},
		{"dot", func(r *Record) { r.Path = "./a" }},
		{"trailing slash", func(r *Record) { r.Path = "a/" }},
		{"double slash", func(r *Record) { r.Path = "a//b" }},
		{"NUL", func(r *Record) { r.Path = "a\x00b" }},
		{"long name", func(r *Record) { r.Path = string(bytes.Repeat([]byte("n"), 256)) }},
		{"type 0", func(r *Record) { r.Type = 0 }},
		{"type 4", func(r *Record) { r.Type = 4 }},
		{"negative size", func(r *Record) { r.Size = -1 }},
		{"type bits in mode", func(r *Record) { r.Mode = uint32(fs.ModeDir | 0o755) }},
		{"target on a file", func(r *Record) { r.Target = "x" }},
		{"hash on a dir", func(r *Record) { r.Type, r.Hash = Dir, [32]byte{1} }},
		{"dir with size", func(r *Record) { r.Type, r.Size = Dir, 4096 }},
		{"unsorted vector", func(r *Record) { r.Vector = conflict.Vector{{Node: "beta", Value: 1}, {Node: "alpha", Value: 1}} }},
		{"zero counter", func(r *Record) { r.Vector = vec("alpha", 0) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := valid
			tt.change(&r)
			if _, err := r.MarshalBinary(); err == nil {
				t.Errorf("MarshalBinary(%+v) succeeded, want an error", r)
			}
		})
	}
}

func TestUnmarshalRejects(t *testing.T) {
	good, err := Record{Path: "a", Type: File, Vector: vec("alpha", 1)}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	bodyAt := 2 // uvarint len(path)=1, "a"
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"path only", good[:bodyAt]},
		{"truncated", good[:len(good)-1]},
		{"trailing byte", append(bytes.Clone(good), 0)},
		{"unknown version", edit(func(b []byte) []byte { b[bodyAt] = 2; return b })},
		{"type 0", edit(func(b []byte) []byte { b[bodyAt+1] = 0; return b })},
		{"unknown flag", edit(func(b []byte) []byte { b[bodyAt+1] |= 0x80; return b })},
		{"huge path length", binary.AppendUvarint(nil, 1<<40)},
		{"bad path", edit(func(b []byte) []byte { b[1] = '/'; return b })},
		{"overlong varint", append([]byte{1, 'a', 1, 1}, bytes.Repeat([]byte{0xff}, 11)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Record
			if err := r.UnmarshalBinary(tt.data); err == nil {
				t.Errorf("UnmarshalBinary(%x) = %+v, want an error", tt.data, r)
			}
		})
	}
}

func FuzzDecodeRecord(f *testing.F) {
	for _, r := range sampleRecords() {
		b, err := r.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{1, 'a', 1, 2, 0, 0, 0, 0, 0, 0, 2, 1, 'z', 1, 1, 'y', 1, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Record
		if err := r.UnmarshalBinary(data); err != nil {
			return
		}
		if err := r.validate(); err != nil {
			t.Fatalf("decoded an invalid record %+v: %v", r, err)
		}
		b, err := r.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary of decoded %+v: %v", r, err)
		}
		var again Record
		if err := again.UnmarshalBinary(b); err != nil {
			t.Fatalf("re-decoding %+v: %v", r, err)
		}
		if !reflect.DeepEqual(again, r) {
			t.Fatalf("re-decoded %+v, want %+v", again, r)
		}
	})
}
