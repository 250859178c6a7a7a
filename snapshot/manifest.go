package snapshot

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// Type is the kind of a manifest entry.
type Type byte

// Entry types, as written in the manifest.
const (
	File    Type = 'f'
	Dir     Type = 'd'
	Symlink Type = 'l'
)

func (t Type) String() string {
	switch t {
	case File:
		return "file"
	case Dir:
		return "dir"
	case Symlink:
		return "symlink"
	}
	return fmt.Sprintf("Type(%q)", byte(t))
}

// Entry is one path of a snapshot, as it was in the live tree.
type Entry struct {
	Root    string // the [[sync]] name
	Path    string // relative to the root, slash-separated
	Type    Type
	Mode    fs.FileMode // permission, setuid, setgid and sticky bits
	UID     uint32
	GID     uint32
	Size    int64
	MtimeNs int64
	Hash    [32]byte // BLAKE3 of the content; files only
	Target  string   // symlink target
	// Ino and CtimeNs are the live file's, when it was recorded: the full
	// compare takes a live file whose stat still matches as unchanged.
	Ino     uint64
	CtimeNs int64
	// Changing says the file kept changing while it was copied: the copy
	// may mix old and new bytes (its Hash is of what was read).
	Changing bool

	// raw is the entry's manifest line when it was read lazily: only Root,
	// Path, Type and Size are set until parse fills the rest. Writing the
	// entry writes raw as it is.
	raw  string
	lazy bool
}

// parse fills the fields of a lazily read entry.
func (e *Entry) parse() error {
	if !e.lazy {
		return nil
	}
	full, err := parseEntry(e.raw)
	if err != nil {
		return fmt.Errorf("manifest entry %q: %w", e.Path, err)
	}
	full.Root, full.raw = e.Root, e.raw
	*e = full
	return nil
}

const manifestName = "manifest.tsv.zst"

// Manifest format: zstd-compressed text. A line "R\t<quoted root>" starts a
// root's section; then one line per entry, in tree pre-order:
//
//	type mode uid gid size mtime hash ino ctime flags quoted-path quoted-target
//
// separated by tabs; mode in octal, hash in hex ("-" for none), flags "-"
// or "c" (changing).

// manifestWriter writes a manifest.
type manifestWriter struct {
	f    *os.File
	zw   *zstd.Encoder
	bw   *bufio.Writer
	root string
	buf  []byte
}

func newManifestWriter(path string) (*manifestWriter, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create manifest: %w", err)
	}
	zw, err := zstd.NewWriter(f, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("create manifest: %w", err)
	}
	return &manifestWriter{f: f, zw: zw, bw: bufio.NewWriterSize(zw, 256<<10)}, nil
}

func (w *manifestWriter) add(e *Entry) error {
	b := w.buf[:0]
	if e.Root != w.root {
		b = append(b, "R\t"...)
		b = strconv.AppendQuote(b, e.Root)
		b = append(b, '\n')
		w.root = e.Root
	}
	if e.raw != "" {
		b = append(b, e.raw...)
		b = append(b, '\n')
		w.buf = b
		_, err := w.bw.Write(b)
		return err
	}
	b = append(b, byte(e.Type), '\t')
	b = strconv.AppendUint(b, uint64(e.Mode.Perm()|e.Mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)), 8)
	b = append(b, '\t')
	b = strconv.AppendUint(b, uint64(e.UID), 10)
	b = append(b, '\t')
	b = strconv.AppendUint(b, uint64(e.GID), 10)
	b = append(b, '\t')
	b = strconv.AppendInt(b, e.Size, 10)
	b = append(b, '\t')
	b = strconv.AppendInt(b, e.MtimeNs, 10)
	b = append(b, '\t')
	if e.Type == File {
		b = hex.AppendEncode(b, e.Hash[:])
	} else {
		b = append(b, '-')
	}
	b = append(b, '\t')
	b = strconv.AppendUint(b, e.Ino, 10)
	b = append(b, '\t')
	b = strconv.AppendInt(b, e.CtimeNs, 10)
	if e.Changing {
		b = append(b, "\tc\t"...)
	} else {
		b = append(b, "\t-\t"...)
	}
	b = strconv.AppendQuote(b, e.Path)
	b = append(b, '\t')
	b = strconv.AppendQuote(b, e.Target)
	b = append(b, '\n')
	w.buf = b
	_, err := w.bw.Write(b)
	return err
}

// close flushes and fsyncs the manifest.
func (w *manifestWriter) close() error {
	err := w.bw.Flush()
	if cerr := w.zw.Close(); err == nil {
		err = cerr
	}
	if serr := w.f.Sync(); err == nil {
		err = serr
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}

// abort closes the file without caring for errors.
func (w *manifestWriter) abort() {
	w.zw.Close()
	w.f.Close()
}

// readManifest calls fn for every entry of the manifest at path, in order.
// fn may keep the entry. It stops at fn's first error and returns it.
func readManifest(path string, fn func(*Entry) error) error {
	return scanManifest(path, false, fn)
}

// readManifestLazy is readManifest for entries that are mostly written
// back as they are: files and symlinks come with Path, Type and Size only
// (Entry.parse fills the rest); directories are parsed in full.
func readManifestLazy(path string, fn func(*Entry) error) error {
	return scanManifest(path, true, fn)
}

func scanManifest(path string, lazy bool, fn func(*Entry) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read manifest: %w", err)
	}
	defer f.Close()
	zr, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return fmt.Errorf("read manifest %s: %w", path, err)
	}
	defer zr.Close()
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 256<<10), 1<<20)
	root := ""
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if rest, ok := strings.CutPrefix(text, "R\t"); ok {
			r, err := strconv.Unquote(rest)
			if err != nil {
				return fmt.Errorf("manifest %s line %d: bad root: %w", path, line, err)
			}
			root = r
			continue
		}
		var e Entry
		var err error
		if lazy && len(text) > 0 && text[0] != byte(Dir) {
			e, err = parseLazy(text)
		} else {
			e, err = parseEntry(text)
		}
		if err != nil {
			return fmt.Errorf("manifest %s line %d: %w", path, line, err)
		}
		e.Root = root
		if err := fn(&e); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read manifest %s: %w", path, err)
	}
	return nil
}

var errEntry = errors.New("malformed entry")

// parseLazy reads the type, size and path of a manifest line.
func parseLazy(s string) (Entry, error) {
	e := Entry{raw: s, lazy: true}
	f := strings.SplitN(s, "\t", 12)
	if len(f) != 12 || len(f[0]) != 1 {
		return e, errEntry
	}
	e.Type = Type(f[0][0])
	if e.Type != File && e.Type != Symlink {
		return e, fmt.Errorf("%w: type %q", errEntry, f[0])
	}
	var err error
	if e.Size, err = strconv.ParseInt(f[4], 10, 64); err != nil {
		return e, fmt.Errorf("%w: %v", errEntry, err)
	}
	if e.Path, err = strconv.Unquote(f[10]); err != nil || !validRel(e.Path) {
		return e, fmt.Errorf("%w: path %s", errEntry, f[10])
	}
	return e, nil
}

func parseEntry(s string) (Entry, error) {
	var e Entry
	f := strings.SplitN(s, "\t", 12)
	if len(f) != 12 || len(f[0]) != 1 {
		return e, errEntry
	}
	e.Type = Type(f[0][0])
	if e.Type != File && e.Type != Dir && e.Type != Symlink {
		return e, fmt.Errorf("%w: type %q", errEntry, f[0])
	}
	var errs [8]error
	var mode, uid, gid uint64
	mode, errs[0] = strconv.ParseUint(f[1], 8, 32)
	uid, errs[1] = strconv.ParseUint(f[2], 10, 32)
	gid, errs[2] = strconv.ParseUint(f[3], 10, 32)
	e.Size, errs[3] = strconv.ParseInt(f[4], 10, 64)
	e.MtimeNs, errs[4] = strconv.ParseInt(f[5], 10, 64)
	e.Ino, errs[5] = strconv.ParseUint(f[7], 10, 64)
	e.CtimeNs, errs[6] = strconv.ParseInt(f[8], 10, 64)
	if e.Type == File {
		// Length first: hex.Decode writes past a too small destination.
		if len(f[6]) != 2*len(e.Hash) {
			errs[7] = errEntry
		} else {
			_, errs[7] = hex.Decode(e.Hash[:], []byte(f[6]))
		}
	}
	for _, err := range errs {
		if err != nil {
			return e, fmt.Errorf("%w: %v", errEntry, err)
		}
	}
	e.Mode = fs.FileMode(mode) & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	e.UID, e.GID = uint32(uid), uint32(gid)
	e.Changing = f[9] == "c"
	var err error
	if e.Path, err = strconv.Unquote(f[10]); err != nil || !validRel(e.Path) {
		return e, fmt.Errorf("%w: path %s", errEntry, f[10])
	}
	if e.Target, err = strconv.Unquote(f[11]); err != nil {
		return e, fmt.Errorf("%w: target %s", errEntry, f[11])
	}
	return e, nil
}

// validRel reports whether p is a clean relative slash path with no "."
// or ".." element: a manifest path that can be joined under a root
// without escaping it.
func validRel(p string) bool {
	if p == "" || strings.IndexByte(p, 0) >= 0 {
		return false
	}
	for _, el := range strings.Split(p, "/") {
		if el == "" || el == "." || el == ".." {
			return false
		}
	}
	return true
}

// pathLess orders paths in tree pre-order: '/' sorts before every other
// byte, so a directory's contents come right after it.
func pathLess(a, b string) bool { return pathCompare(a, b) < 0 }

func pathCompare(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		ca, cb := a[i], b[i]
		if ca == cb {
			continue
		}
		if ca == '/' {
			return -1
		}
		if cb == '/' {
			return 1
		}
		if ca < cb {
			return -1
		}
		return 1
	}
	switch {
	case len(a) < len(b):
		return -1
	case len(a) > len(b):
		return 1
	}
	return 0
}
