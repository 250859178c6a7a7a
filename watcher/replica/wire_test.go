package replica

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/zeebo/blake3"

	"github.com/tandemhost/tandem/conflict"
	"github.com/tandemhost/tandem/pipe"
	"github.com/tandemhost/tandem/watcher/index"
)

func TestCheckPath(t *testing.T) {
	tests := []struct {
		name string
		path string
		ok   bool
	}{
		{"one name", "a", true},
		{"nested", "a/b.txt", true},
		{"non-ASCII", "ü/ñ", true},
		{"dot file", ".hidden", true},
		{"dots inside a name", "a/..b/c..", true},
		{"longest path", strings.Repeat("a/", maxPath/2-1) + "bb", true},
		{"longest component", strings.Repeat("x", maxName), true},

		{"empty", "", false},
		{"absolute", "/etc/passwd", false},
		{"parent", "..", false},
		{"climbs out", "../x", false},
		{"climbs out from inside", "a/../../x", false},
		{"parent at the end", "a/..", false},
		{"dot", ".", false},
		{"double slash", "a//b", false},
		{"dot component", "a/./b", false},
		{"leading dot component", "./a", false},
		{"trailing slash", "a/", false},
		{"NUL", "a\x00b", false},
		{"invalid UTF-8", "a/\xff\xfe", false},
		{"truncated UTF-8", "caf\xc3", false},
		{"5000 bytes", strings.Repeat("a/", 2499) + "aa", false},
		{"one byte too long", strings.Repeat("a/", maxPath/2) + "b", false},
		{"300-byte component", "a/" + strings.Repeat("x", 300) + "/b", false},
		{"256-byte component", strings.Repeat("x", maxName+1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckPath(tt.path)
			if (err == nil) != tt.ok {
				t.Fatalf("CheckPath(%.40q) = %v, want ok %v", tt.path, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadPath) {
				t.Errorf("CheckPath(%.40q) = %v, which does not wrap ErrBadPath", tt.path, err)
			}
		})
	}
}

// testChange returns a well-formed Change of a small file with its content
// inline.
func testChange(seq uint64, path, content string) *Change {
	data := []byte(content)
	return &Change{
		Seq: seq,
		Rec: index.Record{
			Path:    path,
			Type:    index.File,
			Size:    int64(len(data)),
			MtimeNs: 1_700_000_000_000_000_000,
			Mode:    0o644,
			Hash:    blake3.Sum256(data),
			Vector:  conflict.Vector{{Node: "alpha", Value: max(seq, 1)}},
			Origin:  "alpha",
		},
		Flags: flagInline,
		Data:  data,
	}
}

func encode(m pipe.Message) []byte {
	var e pipe.Encoder
	m.Encode(&e)
	return bytes.Clone(e.Buf())
}

func TestChangeRoundTrip(t *testing.T) {
	dir := &Change{Seq: 2, Rec: index.Record{Path: "d", Type: index.Dir, Mode: 0o755,
		Vector: conflict.Vector{{Node: "alpha", Value: 1}, {Node: "beta", Value: 4}}, Origin: "beta"}}
	link := &Change{Seq: 3, Rec: index.Record{Path: "d/l", Type: index.Symlink, Size: 3, Target: "../x",
		Vector: conflict.Vector{{Node: "alpha", Value: 9}}, Origin: "alpha"}}
	gone := &Change{Seq: 4, Rec: index.Record{Path: "d/f", Type: index.File, Deleted: true,
		Vector: conflict.Vector{{Node: "alpha", Value: 10}}, Origin: "alpha"}}
	large := &Change{Seq: 5, Rec: index.Record{Path: "big", Type: index.File, Size: 1 << 30, Mode: 0o600,
		UID: 1000, GID: 1000, MtimeNs: -5, Vector: conflict.Vector{{Node: "alpha", Value: 1}}, Origin: "alpha"},
		Flags: flagLarge}
	for _, want := range []*Change{testChange(1, "ü/ñ.txt", "hello"), dir, link, gone, large} {
		got, err := decodeChange(encode(want))
		if err != nil {
			t.Errorf("decodeChange(encoded %q) = %v", want.Rec.Path, err)
			continue
		}
		if len(want.Data) == 0 {
			want.Data = got.Data // nil and empty both decode as empty
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("decodeChange(encoded %+v) = %+v", want, got)
		}
	}
}

// TestDecodeChangeRefuses covers what decodeRecord and decodeChange check
// beyond the path.
func TestDecodeChangeRefuses(t *testing.T) {
	tests := []struct {
		name string
		mod  func(c *Change)
	}{
		{"unknown type", func(c *Change) { c.Rec.Type = 9 }},
		{"type zero", func(c *Change) { c.Rec.Type = 0 }},
		{"negative size", func(c *Change) { c.Rec.Size = -1; c.Flags = flagLarge }},
		{"symlink without target", func(c *Change) { c.Rec.Type = index.Symlink; c.Flags = 0; c.Data = nil }},
		{"empty vector", func(c *Change) { c.Rec.Vector = nil }},
		{"unsorted vector", func(c *Change) {
			c.Rec.Vector = conflict.Vector{{Node: "beta", Value: 1}, {Node: "alpha", Value: 1}}
		}},
		{"zero counter", func(c *Change) { c.Rec.Vector = conflict.Vector{{Node: "alpha", Value: 0}} }},
		{"duplicate node", func(c *Change) {
			c.Rec.Vector = conflict.Vector{{Node: "alpha", Value: 1}, {Node: "alpha", Value: 2}}
		}},
		{"no origin", func(c *Change) { c.Rec.Origin = "" }},
		{"inline data for a directory", func(c *Change) { c.Rec.Type = index.Dir; c.Rec.Size = 0; c.Rec.Hash = [32]byte{} }},
		{"inline data for a delete", func(c *Change) { c.Rec.Deleted = true }},
		{"inline data for a large file", func(c *Change) { c.Rec.Size = InlineMax + 1 }},
		{"inline data too long", func(c *Change) { c.Data = make([]byte, maxInlineWire+1) }},
		{"mode beyond 07777", func(c *Change) { c.Rec.Mode = 0o17777 }},
		{"too many counters", func(c *Change) {
			c.Rec.Vector = nil
			for i := range maxVector + 1 {
				c.Rec.Vector = append(c.Rec.Vector, conflict.Counter{Node: string(rune('a' + i)), Value: 1})
			}
		}},
		{"long node name", func(c *Change) { c.Rec.Origin = strings.Repeat("n", maxNode+1) }},
		{"long target", func(c *Change) {
			c.Rec.Type, c.Flags, c.Data, c.Rec.Target = index.Symlink, 0, nil, strings.Repeat("t", maxTarget+1)
		}},
		{"bad path", func(c *Change) { c.Rec.Path = "a/../../x" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testChange(1, "f.txt", "content")
			tt.mod(c)
			if got, err := decodeChange(encode(c)); err == nil {
				t.Fatalf("decodeChange accepted %+v", got)
			} else if !errors.Is(err, pipe.ErrMalformed) && !errors.Is(err, ErrBadPath) {
				t.Errorf("decodeChange = %v, which wraps neither pipe.ErrMalformed nor ErrBadPath", err)
			}
		})
	}
	t.Run("trailing bytes", func(t *testing.T) {
		if _, err := decodeChange(append(encode(testChange(1, "f", "x")), 0)); err == nil {
			t.Error("decodeChange accepted a Change with a trailing byte")
		}
	})
	t.Run("every truncation", func(t *testing.T) {
		b := encode(testChange(7, "a/b", "some content"))
		for n := range len(b) {
			if c, err := decodeChange(b[:n]); err == nil {
				t.Fatalf("decodeChange(first %d of %d bytes) = %+v, want an error", n, len(b), c)
			}
		}
	})
}

// TestDecodeChangeOnlyStorable: whatever decodeChange accepts, the index
// must accept too. The receiver writes a change to disk before it stores
// its record, so a record the index refuses leaves the tree changed and
// unrecorded (and the next scan sends it back as this node's change).
func TestDecodeChangeOnlyStorable(t *testing.T) {
	db, err := index.Open(t.TempDir()+"/index.db", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tests := []struct {
		name string
		mod  func(c *Change)
	}{
		{"setuid file", func(c *Change) { c.Rec.Mode = 0o4755 }},
		{"target on a file", func(c *Change) { c.Rec.Target = "elsewhere" }},
		{"hash on a directory", func(c *Change) {
			c.Rec.Type, c.Flags, c.Data, c.Rec.Size, c.Rec.MtimeNs = index.Dir, 0, nil, 0, 0
		}},
		{"directory with size and mtime", func(c *Change) {
			c.Rec.Type, c.Flags, c.Data, c.Rec.Hash = index.Dir, 0, nil, [32]byte{}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testChange(1, "f", "content")
			tt.mod(c)
			got, err := decodeChange(encode(c))
			if err != nil {
				return // refused on the wire: fine
			}
			if _, err := db.Apply(rootName, "alpha", 0, got.Rec); err != nil {
				t.Errorf("decodeChange accepted %+v, which the index refuses: %v", got.Rec, err)
			}
		})
	}
}

func FuzzDecodeChange(f *testing.F) {
	f.Add(encode(testChange(1, "a/b.txt", "hello")))
	f.Add(encode(&Change{Seq: 3, Rec: index.Record{Path: "d/l", Type: index.Symlink, Target: "/etc",
		Vector: conflict.Vector{{Node: "alpha", Value: 9}, {Node: "beta", Value: 1}}, Origin: "beta"}}))
	f.Add(encode(&Change{Seq: 1 << 40, Rec: index.Record{Path: "big", Type: index.File, Size: 1 << 40,
		Vector: conflict.Vector{{Node: "alpha", Value: 1}}, Origin: "alpha"}, Flags: flagLarge}))
	f.Add(encode(&Change{Seq: 2, Rec: index.Record{Path: "gone", Type: index.Dir, Deleted: true,
		Vector: conflict.Vector{{Node: "alpha", Value: 1}}, Origin: "alpha"}}))
	z := testChange(4, "z", strings.Repeat("compressible ", 100))
	z.Flags |= flagZstd
	z.Data = zenc.EncodeAll(z.Data, nil)
	f.Add(encode(z))
	f.Add([]byte{})
	f.Add([]byte{0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := decodeChange(body)
		if err != nil {
			if c != nil {
				t.Fatalf("decodeChange returned %+v with error %v", c, err)
			}
			return
		}
		r := &c.Rec
		if err := CheckPath(r.Path); err != nil {
			t.Fatalf("decoded path fails CheckPath: %v", err)
		}
		if !r.Vector.Valid() || len(r.Vector) == 0 || len(r.Vector) > maxVector {
			t.Fatalf("decoded vector %v is not valid", r.Vector)
		}
		if r.Type != index.File && r.Type != index.Dir && r.Type != index.Symlink {
			t.Fatalf("decoded type %d", r.Type)
		}
		if r.Size < 0 || r.Origin == "" || r.Mode > 0o7777 {
			t.Fatalf("decoded record %+v out of range", r)
		}
		if r.Type == index.Symlink && !r.Deleted && r.Target == "" {
			t.Fatalf("decoded symlink %q without target", r.Path)
		}
		if strings.IndexByte(r.Target, 0) >= 0 || len(r.Target) > maxTarget {
			t.Fatalf("decoded target %q", r.Target)
		}
		if c.Flags&flagInline != 0 && (r.Type != index.File || r.Deleted || r.Size > InlineMax) {
			t.Fatalf("inline data accepted for %+v", r)
		}
		if len(c.Data) > maxInlineWire {
			t.Fatalf("%d bytes of inline data", len(c.Data))
		}
		// What decodes encodes back to the same Change.
		again, err := decodeChange(encode(c))
		if err != nil {
			t.Fatalf("re-decoding %+v: %v", c, err)
		}
		if len(c.Data) == 0 {
			c.Data = again.Data
		}
		if !reflect.DeepEqual(again, c) {
			t.Fatalf("round trip changed %+v into %+v", c, again)
		}
	})
}

func FuzzDecodeRange(f *testing.F) {
	f.Add(encode(&Range{Root: "data", Seq: 1, Offset: 0, Size: RangeSize, Delta: []byte("delta")}))
	f.Add(encode(&Range{Root: "/srv/www", Seq: 1 << 50, Offset: 1 << 40, Size: 1}))
	f.Add(encode(&Range{Root: "r", Seq: 2, Offset: math.MaxInt64 - 1, Size: 10}))
	f.Add(encode(&Range{Root: "r", Seq: 2, Offset: -1, Size: 10}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		var m Range
		if err := pipe.Unmarshal(body, &m); err != nil {
			if !errors.Is(err, pipe.ErrMalformed) {
				t.Fatalf("Unmarshal = %v, which does not wrap pipe.ErrMalformed", err)
			}
			return
		}
		if m.Offset < 0 || m.Size <= 0 || m.Size > RangeSize {
			t.Fatalf("decoded range [%d, +%d) out of bounds", m.Offset, m.Size)
		}
		if len(m.Delta) > maxRangeWire || len(m.Root) > maxRootName {
			t.Fatalf("decoded %d bytes of delta, %d of root", len(m.Delta), len(m.Root))
		}
		var again Range
		if err := pipe.Unmarshal(encode(&m), &again); err != nil {
			t.Fatalf("re-decoding %+v: %v", m, err)
		}
		if len(m.Delta) == 0 {
			m.Delta = again.Delta
		}
		if !reflect.DeepEqual(again, m) {
			t.Fatalf("round trip changed %+v into %+v", m, again)
		}
	})
}

// TestDecodeChangeAcceptsScannedRecords: every record the local scanner
// stores must survive the wire, or the receiver refuses the stream and
// replication of the tree stops at that record.
func TestDecodeChangeAcceptsScannedRecords(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []struct {
		name string
		mode os.FileMode
	}{{"shared", 0o2775 | os.ModeSetgid}, {"tmp", 0o777 | os.ModeSticky}} {
		if err := os.Mkdir(filepath.Join(dir, d.name), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, d.name), d.mode); err != nil {
			t.Fatal(err)
		}
	}
	// A name that is not UTF-8 is skipped by the scanner (with a warning):
	// it never reaches the wire.
	writeFile(t, filepath.Join(dir, "caf\xe9.txt"), "latin-1 name")
	db, err := index.Open(filepath.Join(t.TempDir(), "index.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	changed, err := index.Scan(context.Background(), db, rootName, dir, "alpha", index.ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 2 {
		t.Fatalf("scan stored %d records, want the 2 directories", len(changed))
	}
	for _, rec := range changed {
		if _, err := decodeChange(encode(&Change{Seq: rec.Seq, Rec: rec})); err != nil {
			t.Errorf("scanned record %q (mode %#o) does not decode: %v", rec.Path, rec.Mode, err)
		}
	}
}

// TestOpenedEmpty: Empty round-trips, and an Opened from a peer that
// predates it (no trailing byte) decodes as not empty.
func TestOpenedEmpty(t *testing.T) {
	for _, want := range []Opened{{Watermark: 7}, {Empty: true}, {Error: "halted"}} {
		var got Opened
		if err := pipe.Unmarshal(encode(&want), &got); err != nil || got != want {
			t.Errorf("Opened %+v decoded as %+v, %v", want, got, err)
		}
	}
	var e pipe.Encoder
	e.Uvarint(9)
	e.String("")
	var old Opened
	if err := pipe.Unmarshal(e.Buf(), &old); err != nil || old != (Opened{Watermark: 9}) {
		t.Errorf("an Opened without Empty decoded as %+v, %v; want watermark 9, not empty", old, err)
	}
}
