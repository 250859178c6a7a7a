package snapshot

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
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
// root's section; then one line per entry, in tree pre-order (pathLess):
//
//	type mode uid gid size mtime hash ino ctime flags quoted-path quoted-target
//
// separated by tabs; mode in octal, hash in hex ("-" for none), flags "-"
// or "c" (changing).
//
// A delta manifest starts with "P\t<quoted parent ID>": it holds only what
// differs from the parent snapshot's manifest. Every root of the snapshot
// that has entries has its R line (a root not listed has none); under it,
// the entries that are new or changed, and "-\t<quoted path>" for each path
// the parent had and this snapshot has not, in pre-order. The parent's own
// manifest file is in the same snapshot directory as a hard link named
// manifest-<parent ID>.tsv.zst (a delta too, or the full manifest that ends
// the chain), so a snapshot's manifest stays readable when the snapshots
// it was built from are pruned: the link keeps the file.

// deleted is the Type of a delta's line for a path the parent had and the
// snapshot has not; it is never in a resolved manifest.
const deleted Type = '-'

// manifestChainMax is how many delta manifests may lead from a snapshot to
// the full manifest its chain ends at; the next snapshot writes a full one.
// A chain also ends once its deltas add up to half the full manifest's
// size (and manifestChainSmall). With 1% of the files changing per snapshot, a delta is about 1% of
// a full manifest, and a snapshot costs about (full/32 + delta) of
// manifest instead of a full one; a chain part lost costs at most 32
// snapshots' manifests.
const manifestChainMax = 32

// manifestChainSmall is what the deltas of a chain may add up to whatever
// the full manifest's size: for a small tree, a full manifest costs no
// more than a delta.
const manifestChainSmall = 64 << 10

// manifestReadMax bounds the chain a reader follows (a loop, a corrupted
// store), well above what manifestChainMax writes.
const manifestReadMax = 1024

// chainPartName is the file name of snapshot id's own manifest file when
// linked into another snapshot's directory.
func chainPartName(id string) string { return "manifest-" + id + ".tsv.zst" }

// manifestWriter writes a manifest, in full or (with a parent) as a delta.
// Entries must come per root, each root once, in pre-order.
type manifestWriter struct {
	f    *os.File
	zw   *zstd.Encoder
	bw   *bufio.Writer
	buf  []byte
	root string
	// started says an entry of root was added; last is its path. done
	// lists the roots begun.
	started bool
	last    string
	done    []string

	// parent is the snapshot a delta is against ("": a full manifest), prev
	// its entries by root. An entry added that is the very same *Entry as
	// prev's (the builder passes prev's own), or parsed and equal to it, is
	// unchanged.
	parent string
	prev   map[string][]Entry
	base   []Entry // prev's entries of root
	next   int     // base[next:] are not yet matched
}

// newManifestWriter creates the manifest at path: a delta against the
// snapshot parent, whose entries are prev, or with parent "" a full one.
func newManifestWriter(path, parent string, prev map[string][]Entry) (*manifestWriter, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create manifest: %w", err)
	}
	zw, err := zstd.NewWriter(f, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("create manifest: %w", err)
	}
	w := &manifestWriter{f: f, zw: zw, bw: bufio.NewWriterSize(zw, 256<<10), parent: parent, prev: prev}
	if parent != "" {
		b := append([]byte("P\t"), strconv.Quote(parent)...)
		if _, err := w.bw.Write(append(b, '\n')); err != nil {
			w.abort()
			return nil, fmt.Errorf("create manifest: %w", err)
		}
	}
	return w, nil
}

var errOrder = errors.New("manifest entries out of order")

func (w *manifestWriter) add(e *Entry) error {
	newRoot := !w.started || e.Root != w.root
	if newRoot {
		if slices.Contains(w.done, e.Root) {
			return fmt.Errorf("%w: root %q again", errOrder, e.Root)
		}
		if err := w.endRoot(); err != nil {
			return err
		}
	}
	b := w.buf[:0]
	if newRoot {
		b = append(b, "R\t"...)
		b = strconv.AppendQuote(b, e.Root)
		b = append(b, '\n')
		w.root, w.started, w.last = e.Root, true, ""
		w.done = append(w.done, e.Root)
		if w.parent != "" {
			w.base, w.next = w.prev[e.Root], 0
		}
	} else if pathCompare(w.last, e.Path) >= 0 {
		return fmt.Errorf("%w: %q after %q", errOrder, e.Path, w.last)
	}
	w.last = e.Path
	if w.parent != "" {
		for w.next < len(w.base) && pathLess(w.base[w.next].Path, e.Path) {
			b = appendDeleted(b, w.base[w.next].Path)
			w.next++
		}
		if w.next < len(w.base) && w.base[w.next].Path == e.Path {
			same := e == &w.base[w.next] || sameEntry(e, &w.base[w.next])
			w.next++
			if same {
				return w.write(b)
			}
		}
	}
	if e.raw != "" {
		b = append(b, e.raw...)
		b = append(b, '\n')
		return w.write(b)
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
	return w.write(b)
}

func (w *manifestWriter) write(b []byte) error {
	w.buf = b
	if len(b) == 0 {
		return nil
	}
	_, err := w.bw.Write(b)
	return err
}

// sameEntry reports whether two parsed entries say the same.
func sameEntry(a, b *Entry) bool {
	return !a.lazy && !b.lazy && a.Type == b.Type && a.Mode == b.Mode && a.UID == b.UID && a.GID == b.GID &&
		a.Size == b.Size && a.MtimeNs == b.MtimeNs && a.Hash == b.Hash && a.Target == b.Target &&
		a.Ino == b.Ino && a.CtimeNs == b.CtimeNs && a.Changing == b.Changing
}

func appendDeleted(b []byte, p string) []byte {
	b = append(b, byte(deleted), '\t')
	b = strconv.AppendQuote(b, p)
	return append(b, '\n')
}

// endRoot writes, in a delta, the deletions of the current root's paths
// that no entry matched.
func (w *manifestWriter) endRoot() error {
	if w.parent == "" || !w.started {
		return nil
	}
	b := w.buf[:0]
	for ; w.next < len(w.base); w.next++ {
		b = appendDeleted(b, w.base[w.next].Path)
	}
	w.base = nil
	return w.write(b)
}

// close flushes and fsyncs the manifest.
func (w *manifestWriter) close() error {
	err := w.endRoot()
	if ferr := w.bw.Flush(); err == nil {
		err = ferr
	}
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

// manifest is a snapshot's manifest, resolved: its entries by root.
type manifest struct {
	roots   []string // in the order written
	entries map[string][]Entry
	// chain is the files read: the snapshot's own first, then its
	// parents' (linked into its directory), the last one full.
	chain []chainPart
}

type chainPart struct {
	name string // file name in the snapshot's directory
	size int64
}

// deltaBytes is what the chain's deltas weigh, full the full manifest.
func (m *manifest) deltaBytes() (deltas, full int64) {
	for _, p := range m.chain[:len(m.chain)-1] {
		deltas += p.size
	}
	return deltas, m.chain[len(m.chain)-1].size
}

// readManifest calls fn for every entry of the manifest of the snapshot in
// dir, root by root, each in pre-order. fn may keep the entry. It stops at
// fn's first error and returns it.
func readManifest(dir string, fn func(*Entry) error) error {
	m, err := loadManifest(dir, false)
	if err != nil {
		return err
	}
	for _, r := range m.roots {
		ents := m.entries[r]
		for i := range ents {
			if err := fn(&ents[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

// loadManifest reads the manifest of the snapshot in dir, following its
// chain of deltas. lazy is for entries that are mostly written back as
// they are: files and symlinks come with Path, Type and Size only
// (Entry.parse fills the rest); directories are parsed in full.
func loadManifest(dir string, lazy bool) (*manifest, error) {
	var parts []*manifestPart
	m := &manifest{}
	name := manifestName
	for {
		p := filepath.Join(dir, name)
		text, size, err := readManifestFile(p)
		if err != nil {
			return nil, err
		}
		part, err := decodeManifest(text, lazy)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", p, err)
		}
		parts = append(parts, part)
		m.chain = append(m.chain, chainPart{name: name, size: size})
		if part.parent == "" {
			break
		}
		if len(parts) > manifestReadMax {
			return nil, fmt.Errorf("manifest %s: a chain of more than %d deltas", p, manifestReadMax)
		}
		name = chainPartName(part.parent)
		for _, c := range m.chain {
			if c.name == name {
				return nil, fmt.Errorf("manifest %s: the chain of deltas loops at %s", p, part.parent)
			}
		}
	}
	slices.Reverse(parts)
	m.roots, m.entries = resolveManifest(parts)
	return m, nil
}

func readManifestFile(p string) (text string, size int64, err error) {
	raw, err := os.ReadFile(p)
	if err != nil {
		return "", 0, fmt.Errorf("read manifest: %w", err)
	}
	zr, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return "", 0, fmt.Errorf("read manifest %s: %w", p, err)
	}
	defer zr.Close()
	data, err := zr.DecodeAll(raw, make([]byte, 0, 4*len(raw)))
	if err != nil {
		return "", 0, fmt.Errorf("read manifest %s: %w", p, err)
	}
	return string(data), int64(len(raw)), nil
}

// manifestPart is one manifest file, decoded.
type manifestPart struct {
	parent  string // "" for a full manifest
	roots   []string
	entries map[string][]Entry // a delta's may be deleted
}

// decodeManifest decodes a manifest file's text. Entries keep substrings
// of text.
func decodeManifest(text string, lazy bool) (*manifestPart, error) {
	m := &manifestPart{entries: map[string][]Entry{}}
	all := make([]Entry, 0, strings.Count(text, "\n")+1)
	root, start, inRoot := "", 0, false
	endRoot := func() {
		if !inRoot {
			return
		}
		sec := all[start:len(all):len(all)]
		if prev, ok := m.entries[root]; ok {
			m.entries[root] = append(slices.Clip(prev), sec...)
		} else {
			m.entries[root] = sec
			m.roots = append(m.roots, root)
		}
	}
	for n := 1; len(text) > 0; n++ {
		line := text
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = ""
		}
		if rest, ok := strings.CutPrefix(line, "P\t"); ok {
			if n != 1 {
				return nil, fmt.Errorf("line %d: parent not on the first line", n)
			}
			p, err := strconv.Unquote(rest)
			if err != nil || !validID(p) {
				return nil, fmt.Errorf("line %d: bad parent %s", n, rest)
			}
			m.parent = p
			continue
		}
		if rest, ok := strings.CutPrefix(line, "R\t"); ok {
			r, err := strconv.Unquote(rest)
			if err != nil {
				return nil, fmt.Errorf("line %d: bad root: %w", n, err)
			}
			endRoot()
			root, start, inRoot = r, len(all), true
			continue
		}
		var e Entry
		var err error
		switch {
		case len(line) > 0 && line[0] == byte(deleted):
			if m.parent == "" {
				return nil, fmt.Errorf("line %d: a deletion in a full manifest", n)
			}
			e, err = parseDeleted(line)
		case lazy && len(line) > 0 && line[0] != byte(Dir):
			e, err = parseLazy(line)
		default:
			e, err = parseEntry(line)
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if m.parent != "" && len(all) > start && pathCompare(all[len(all)-1].Path, e.Path) >= 0 {
			return nil, fmt.Errorf("line %d: %w", n, errOrder)
		}
		e.Root = root
		inRoot = true
		all = append(all, e)
	}
	endRoot()
	return m, nil
}

func parseDeleted(s string) (Entry, error) {
	e := Entry{Type: deleted}
	q, ok := strings.CutPrefix(s, string(deleted)+"\t")
	var err error
	if !ok {
		return e, errEntry
	}
	if e.Path, err = strconv.Unquote(q); err != nil || !validRel(e.Path) {
		return e, fmt.Errorf("%w: path %s", errEntry, q)
	}
	return e, nil
}

// resolveManifest applies the deltas parts[1:], oldest first, to the full
// manifest parts[0].
func resolveManifest(parts []*manifestPart) (roots []string, entries map[string][]Entry) {
	base := parts[0]
	if len(parts) == 1 {
		return base.roots, base.entries
	}
	// Fold the deltas into one, newer over older, then apply it once: a
	// delta is small, the full manifest is not.
	ops := map[string][]Entry{}
	dropped := map[string]bool{}
	live := base.roots
	for _, d := range parts[1:] {
		for _, r := range live {
			if _, ok := d.entries[r]; !ok {
				dropped[r] = true // no longer in the snapshot
				delete(ops, r)
			}
		}
		for _, r := range d.roots {
			ops[r] = mergeSorted(ops[r], d.entries[r], false)
		}
		live = d.roots
	}
	entries = make(map[string][]Entry, len(live))
	for _, r := range live {
		var b []Entry
		if !dropped[r] {
			b = base.entries[r]
		}
		entries[r] = mergeSorted(b, ops[r], true)
	}
	return live, entries
}

// mergeSorted merges two lists in pre-order; on the same path, newer's
// entry wins. With apply, newer's deletions remove the path.
func mergeSorted(older, newer []Entry, apply bool) []Entry {
	if len(newer) == 0 {
		return older
	}
	if len(older) == 0 && !apply {
		return newer
	}
	out := make([]Entry, 0, len(older)+len(newer))
	i, j := 0, 0
	for i < len(older) || j < len(newer) {
		var e *Entry
		switch {
		case j == len(newer) || (i < len(older) && pathLess(older[i].Path, newer[j].Path)):
			e = &older[i]
			i++
		default:
			if i < len(older) && older[i].Path == newer[j].Path {
				i++
			}
			e = &newer[j]
			j++
		}
		if apply && e.Type == deleted {
			continue
		}
		out = append(out, *e)
	}
	return out
}

var errEntry = errors.New("malformed entry")

// fields splits a manifest line into its 12 tab-separated fields (the last
// one takes the rest), without allocating.
func fields(s string, f *[12]string) bool {
	for i := 0; i < 11; i++ {
		j := strings.IndexByte(s, '\t')
		if j < 0 {
			return false
		}
		f[i], s = s[:j], s[j+1:]
	}
	f[11] = s
	return true
}

// parseLazy reads the type, size and path of a manifest line.
func parseLazy(s string) (Entry, error) {
	e := Entry{raw: s, lazy: true}
	var f [12]string
	if !fields(s, &f) || len(f[0]) != 1 {
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
	var f [12]string
	if !fields(s, &f) || len(f[0]) != 1 {
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
