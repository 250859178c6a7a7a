package index

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

var (
	// ErrLocked is returned by Open when another process holds the index.
	ErrLocked = errors.New("index is locked by another tandem")
	// ErrWatermark is returned by Apply for a peer sequence below the
	// watermark already stored: the batch was applied before.
	ErrWatermark = errors.New("peer sequence below the stored watermark")
)

// lockTimeout is how long Open waits for the file lock.
var lockTimeout = 2 * time.Second

const (
	formatVersion = 1
	chunk         = 512 // records per read transaction in Walk and Since
)

var (
	bucketMeta  = []byte("meta")
	bucketRoots = []byte("roots")
	bucketPaths = []byte("paths")
	bucketSeqs  = []byte("seqs")
	bucketPeers = []byte("peers")
	keyFormat   = []byte("format")
	keyCounts   = []byte("counts")
)

// DB is the index of every synced tree, stored in one bbolt file. Trees are
// named by a root ID (the sync path). Its methods are safe for concurrent
// use; writes are serialized by bbolt, one fsync per call, so batch records
// into one Put or Apply where you can.
type DB struct {
	bolt *bbolt.DB
	log  *zap.Logger

	mu   sync.Mutex                // guards held
	held map[string]map[string]int // root -> path -> number of holders
}

// Open opens (or creates, mode 0600) the index file at path. If another
// process has it open, Open gives up after a few seconds with an error
// wrapping ErrLocked that names that process. A nil log discards logs.
func Open(path string, log *zap.Logger) (*DB, error) {
	if log == nil {
		log = zap.NewNop()
	}
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout:        lockTimeout,
		FreelistType:   bbolt.FreelistMapType,
		NoFreelistSync: true, // rebuilt on open; saves a write per commit
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open index %s: %w (%s): stop it, or give this one its own state_dir",
			path, ErrLocked, lockHolder(path))
	}
	if err != nil {
		return nil, fmt.Errorf("open index %s: %w", path, err)
	}
	err = b.Update(func(tx *bbolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if v := meta.Get(keyFormat); v == nil {
			if err := meta.Put(keyFormat, be64(formatVersion)); err != nil {
				return err
			}
		} else if len(v) != 8 || binary.BigEndian.Uint64(v) != formatVersion {
			return fmt.Errorf("index format %x is not %d: it was written by another tandem version; upgrade tandem or move the file away to rebuild it", v, formatVersion)
		}
		_, err = tx.CreateBucketIfNotExists(bucketRoots)
		return err
	})
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("open index %s: %w", path, err)
	}
	return &DB{bolt: b, log: log.Named("index"), held: map[string]map[string]int{}}, nil
}

// lockHolder names the process holding a flock on path, from /proc/locks.
func lockHolder(path string) string {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "pid unknown"
	}
	want := fmt.Sprintf("%02x:%02x:%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	f, err := os.Open("/proc/locks")
	if err != nil {
		return "pid unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"; waiters have "->" after the number.
		fields := strings.Fields(sc.Text())
		if len(fields) > 1 && fields[1] == "->" {
			continue
		}
		if len(fields) >= 6 && fields[1] == "FLOCK" && strings.EqualFold(fields[5], want) {
			if pid, err := strconv.Atoi(fields[4]); err == nil {
				return "pid " + strconv.Itoa(pid)
			}
		}
	}
	return "pid unknown"
}

// Close closes the file. The DB must not be used afterwards.
func (db *DB) Close() error {
	if err := db.bolt.Close(); err != nil {
		return fmt.Errorf("close index: %w", err)
	}
	return nil
}

// Counts are a tree's totals, kept up to date by every write.
type Counts struct {
	Files, Dirs, Symlinks int64 // live records of each type
	Bytes                 int64 // total size of live files
	Tombstones            int64
}

// Live is the number of live records.
func (c Counts) Live() int64 { return c.Files + c.Dirs + c.Symlinks }

func (c *Counts) add(r *Record, sign int64) {
	if r.Deleted {
		c.Tombstones += sign
		return
	}
	switch r.Type {
	case File:
		c.Files += sign
		c.Bytes += sign * r.Size
	case Dir:
		c.Dirs += sign
	case Symlink:
		c.Symlinks += sign
	}
}

func (c *Counts) encode() []byte {
	b := make([]byte, 0, 40)
	for _, v := range []int64{c.Files, c.Dirs, c.Symlinks, c.Bytes, c.Tombstones} {
		b = binary.BigEndian.AppendUint64(b, uint64(v))
	}
	return b
}

func decodeCounts(b []byte) Counts {
	var v [5]int64
	for i := range v {
		if len(b) >= 8*(i+1) {
			v[i] = int64(binary.BigEndian.Uint64(b[8*i:]))
		}
	}
	return Counts{Files: v[0], Dirs: v[1], Symlinks: v[2], Bytes: v[3], Tombstones: v[4]}
}

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// pathKey is a path's key: '/' becomes 0x00 so key order is tree pre-order
// and a subtree is one key range.
func pathKey(p string) []byte {
	k := []byte(p)
	for i, c := range k {
		if c == '/' {
			k[i] = 0
		}
	}
	return k
}

func keyPath(k []byte) string {
	p := bytes.Clone(k)
	for i, c := range p {
		if c == 0 {
			p[i] = '/'
		}
	}
	return string(p)
}

// inSubtree reports whether key k is prefix's key pk or below it.
func inSubtree(k, pk []byte) bool {
	if len(pk) == 0 {
		return true
	}
	return bytes.HasPrefix(k, pk) && (len(k) == len(pk) || k[len(pk)] == 0)
}

// tree is one root's buckets within a transaction.
type tree struct {
	paths, seqs, peers *bbolt.Bucket
	root               *bbolt.Bucket
	counts             Counts
}

// readTree returns root's buckets, or nil when nothing was ever stored.
func readTree(tx *bbolt.Tx, root string) *tree {
	rb := tx.Bucket(bucketRoots).Bucket([]byte(root))
	if rb == nil {
		return nil
	}
	return &tree{
		root:   rb,
		paths:  rb.Bucket(bucketPaths),
		seqs:   rb.Bucket(bucketSeqs),
		peers:  rb.Bucket(bucketPeers),
		counts: decodeCounts(rb.Get(keyCounts)),
	}
}

// writeTree returns root's buckets, creating them.
func writeTree(tx *bbolt.Tx, root string) (*tree, error) {
	if root == "" {
		return nil, errors.New("empty root ID")
	}
	rb, err := tx.Bucket(bucketRoots).CreateBucketIfNotExists([]byte(root))
	if err != nil {
		return nil, fmt.Errorf("root %s: %w", root, err)
	}
	t := &tree{root: rb, counts: decodeCounts(rb.Get(keyCounts))}
	for _, s := range []struct {
		b    **bbolt.Bucket
		name []byte
	}{{&t.paths, bucketPaths}, {&t.seqs, bucketSeqs}, {&t.peers, bucketPeers}} {
		if *s.b, err = rb.CreateBucketIfNotExists(s.name); err != nil {
			return nil, fmt.Errorf("root %s: %w", root, err)
		}
	}
	t.seqs.FillPercent = 0.9 // keys are appended in order
	return t, nil
}

func (t *tree) get(path string) (Record, bool, error) {
	v := t.paths.Get(pathKey(path))
	if v == nil {
		return Record{}, false, nil
	}
	var r Record
	if err := decodeBody(path, v, &r); err != nil {
		return Record{}, false, err
	}
	return r, true, nil
}

// store writes r over whatever path had. With bump it gets the tree's next
// sequence number; without, it keeps the stored record's (which must exist).
func (t *tree) store(r Record, bump bool) (Record, error) {
	old, had, err := t.get(r.Path)
	if err != nil {
		return Record{}, err
	}
	if bump {
		seq, err := t.seqs.NextSequence()
		if err != nil {
			return Record{}, err
		}
		if had {
			if err := t.seqs.Delete(be64(old.Seq)); err != nil {
				return Record{}, err
			}
		}
		if err := t.seqs.Put(be64(seq), []byte(r.Path)); err != nil {
			return Record{}, err
		}
		r.Seq = seq
	} else {
		if !had {
			return Record{}, fmt.Errorf("%s: stat cache update of a missing record", r.Path)
		}
		r.Seq = old.Seq
	}
	if err := t.paths.Put(pathKey(r.Path), appendBody(nil, &r)); err != nil {
		return Record{}, err
	}
	if had {
		t.counts.add(&old, -1)
	}
	t.counts.add(&r, 1)
	return r, nil
}

func (t *tree) remove(r *Record) error {
	if err := t.seqs.Delete(be64(r.Seq)); err != nil {
		return err
	}
	if err := t.paths.Delete(pathKey(r.Path)); err != nil {
		return err
	}
	t.counts.add(r, -1)
	return nil
}

// finish stores the counters; call it before the transaction commits.
func (t *tree) finish() error {
	return t.root.Put(keyCounts, t.counts.encode())
}

func validateAll(recs []Record) error {
	for i := range recs {
		if err := recs[i].validate(); err != nil {
			return err
		}
	}
	return nil
}

// Put stores local changes in one transaction. Each record replaces the one
// at its path and gets the tree's next sequence number, in argument order;
// the caller sets everything else (Vector, Origin, stat cache). It returns
// the stored records with their Seq. Nothing is stored if it fails.
func (db *DB) Put(root string, recs ...Record) ([]Record, error) {
	if err := validateAll(recs); err != nil {
		return nil, fmt.Errorf("put: %w", err)
	}
	out := make([]Record, 0, len(recs))
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		t, err := writeTree(tx, root)
		if err != nil {
			return err
		}
		for _, r := range recs {
			s, err := t.store(r, true)
			if err != nil {
				return err
			}
			out = append(out, s)
		}
		return t.finish()
	})
	if err != nil {
		return nil, fmt.Errorf("put in %s: %w", root, err)
	}
	return out, nil
}

// Apply stores records received from peer and sets peer's watermark to
// peerSeq (the highest of the peer's sequence numbers they cover) in the same
// transaction, so after a crash either both are durable or neither is. Each
// record gets a new local Seq like a local change (Since yields it too: a
// sender skips records whose Origin is the node it sends to). Records may be
// empty, to move the watermark past changes that were decided away. A peerSeq
// below the stored watermark is refused with ErrWatermark.
func (db *DB) Apply(root, peer string, peerSeq uint64, recs ...Record) ([]Record, error) {
	if peer == "" {
		return nil, errors.New("apply: empty peer name")
	}
	if err := validateAll(recs); err != nil {
		return nil, fmt.Errorf("apply from %s: %w", peer, err)
	}
	out := make([]Record, 0, len(recs))
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		t, err := writeTree(tx, root)
		if err != nil {
			return err
		}
		if v := t.peers.Get([]byte(peer)); len(v) == 8 && binary.BigEndian.Uint64(v) > peerSeq {
			return fmt.Errorf("%w: %d < %d", ErrWatermark, peerSeq, binary.BigEndian.Uint64(v))
		}
		for _, r := range recs {
			s, err := t.store(r, true)
			if err != nil {
				return err
			}
			out = append(out, s)
		}
		// Every intent was for this batch: recorded now, or decided
		// against (the receiver applies one batch at a time).
		if t.root.Bucket(bucketIntents) != nil {
			if err := t.root.DeleteBucket(bucketIntents); err != nil {
				return err
			}
		}
		if err := t.peers.Put([]byte(peer), be64(peerSeq)); err != nil {
			return err
		}
		return t.finish()
	})
	if err != nil {
		return nil, fmt.Errorf("apply from %s in %s: %w", peer, root, err)
	}
	return out, nil
}

// Watermark returns the highest of peer's sequence numbers durably applied
// to root (0 if none): on reconnect, ask the peer for everything above it.
func (db *DB) Watermark(root, peer string) (uint64, error) {
	var wm uint64
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		if t := readTree(tx, root); t != nil {
			if v := t.peers.Get([]byte(peer)); len(v) == 8 {
				wm = binary.BigEndian.Uint64(v)
			}
		}
		return nil
	})
	return wm, err
}

// Get returns the record at path, tombstones included; ok is false when the
// index has none.
func (db *DB) Get(root, path string) (r Record, ok bool, err error) {
	err = db.bolt.View(func(tx *bbolt.Tx) error {
		if t := readTree(tx, root); t != nil {
			r, ok, err = t.get(path)
		}
		return err
	})
	if err != nil {
		return Record{}, false, fmt.Errorf("get %s in %s: %w", path, root, err)
	}
	return r, ok, nil
}

// Seq returns root's highest sequence number (0 for an empty tree).
func (db *DB) Seq(root string) (uint64, error) {
	var seq uint64
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		if t := readTree(tx, root); t != nil {
			seq = t.seqs.Sequence()
		}
		return nil
	})
	return seq, err
}

// Count returns root's totals. It reads counters, not records.
func (db *DB) Count(root string) (Counts, error) {
	var c Counts
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		if t := readTree(tx, root); t != nil {
			c = t.counts
		}
		return nil
	})
	return c, err
}

// Walk calls fn for the record at prefix and every record below it ("" for
// the whole tree), tombstones included, in tree pre-order: a directory before
// its contents. fn runs outside any transaction and may use the DB; records
// changed during the walk may be seen in either version. Walk stops at the
// first error fn returns and returns it.
func (db *DB) Walk(root, prefix string, fn func(Record) error) error {
	if prefix != "" {
		if err := checkPath(prefix); err != nil {
			return fmt.Errorf("walk: %w", err)
		}
	}
	pk := pathKey(prefix)
	var after []byte // last key handed out
	for {
		batch := make([]Record, 0, chunk)
		err := db.bolt.View(func(tx *bbolt.Tx) error {
			t := readTree(tx, root)
			if t == nil {
				return nil
			}
			c := t.paths.Cursor()
			var k, v []byte
			if after == nil {
				k, v = c.Seek(pk)
			} else if k, v = c.Seek(after); bytes.Equal(k, after) {
				k, v = c.Next()
			}
			for ; k != nil && inSubtree(k, pk) && len(batch) < chunk; k, v = c.Next() {
				var r Record
				if err := decodeBody(keyPath(k), v, &r); err != nil {
					return err
				}
				batch = append(batch, r)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("walk %s in %s: %w", prefix, root, err)
		}
		for _, r := range batch {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(batch) < chunk {
			return nil
		}
		after = pathKey(batch[len(batch)-1].Path)
	}
}

// Since calls fn, in sequence order, for every record of root whose Seq is
// above seq and at most the tree's Seq when Since was called. fn runs outside
// any transaction; a record changed during the iteration is seen once, in
// its newer version if its new Seq is within range. Since stops at the first
// error fn returns and returns it.
func (db *DB) Since(root string, seq uint64, fn func(Record) error) error {
	end := uint64(0)
	first := true
	for seq < math.MaxUint64 {
		batch := make([]Record, 0, chunk)
		err := db.bolt.View(func(tx *bbolt.Tx) error {
			t := readTree(tx, root)
			if t == nil {
				return nil
			}
			if first {
				end, first = t.seqs.Sequence(), false
			}
			c := t.seqs.Cursor()
			for k, v := c.Seek(be64(seq + 1)); k != nil && len(batch) < chunk; k, v = c.Next() {
				s := binary.BigEndian.Uint64(k)
				if s > end {
					break
				}
				r, ok, err := t.get(string(v))
				if err != nil {
					return err
				}
				if !ok || r.Seq != s {
					return fmt.Errorf("seq %d names %q, which has seq %d: index inconsistent", s, v, r.Seq)
				}
				batch = append(batch, r)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("since %d in %s: %w", seq, root, err)
		}
		for _, r := range batch {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(batch) < chunk {
			return nil
		}
		seq = batch[len(batch)-1].Seq
	}
	return nil
}

// PurgeTombstones deletes root's tombstones with Seq at most olderThanSeq and
// returns how many it deleted. A tombstone the peer has not applied yet must
// not be purged, or the delete never replicates: pass a sequence number the
// peer has acknowledged.
func (db *DB) PurgeTombstones(root string, olderThanSeq uint64) (int, error) {
	purged := 0
	next, done := uint64(1), olderThanSeq == 0
	for !done {
		err := db.bolt.Update(func(tx *bbolt.Tx) error {
			t := readTree(tx, root)
			if t == nil {
				done = true
				return nil
			}
			var dead []Record
			c := t.seqs.Cursor()
			k, v := c.Seek(be64(next))
			for visited := 0; ; k, v = c.Next() {
				if k == nil || binary.BigEndian.Uint64(k) > olderThanSeq {
					done = true
					break
				}
				if visited++; visited > 4*chunk {
					next = binary.BigEndian.Uint64(k)
					break
				}
				r, ok, err := t.get(string(v))
				if err != nil {
					return err
				}
				if ok && r.Deleted {
					dead = append(dead, r)
				}
			}
			for i := range dead {
				if err := t.remove(&dead[i]); err != nil {
					return err
				}
			}
			purged += len(dead)
			return t.finish()
		})
		if err != nil {
			return purged, fmt.Errorf("purge tombstones in %s: %w", root, err)
		}
	}
	return purged, nil
}

// isHeld reports whether path of root is held.
func (db *DB) isHeld(root, path string) bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.held[root][path] > 0
}

// Hold marks paths of root as being written by the receiver until the
// returned function is called. A scan that looked at a held path before the
// receiver recorded its new state (with Apply) drops what it saw instead of
// storing it as a local change: the receiver's own write must not come back
// as a change, nor as a conflict. Hold before the file is replaced, release
// after Apply.
func (db *DB) Hold(root string, paths ...string) (release func()) {
	db.mu.Lock()
	m := db.held[root]
	if m == nil {
		m = map[string]int{}
		db.held[root] = m
	}
	for _, p := range paths {
		m[p]++
	}
	db.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			db.mu.Lock()
			defer db.mu.Unlock()
			for _, p := range paths {
				if m[p]--; m[p] <= 0 {
					delete(m, p)
				}
			}
		})
	}
}

// change is one thing a scan saw: rec replaces the record whose Seq was base
// (0: no record) when the scan looked.
type change struct {
	rec       Record
	base      uint64
	cacheOnly bool // same version, new stat cache: keep Seq, replicate nothing
	adopted   bool // the peer's version, from an intent (see Intend)
}

// commitScan stores a scan's changes in one transaction and returns the new
// versions it stored. A change is dropped when its path changed since the
// scan looked (another writer got there first) or is held by the receiver.
func (db *DB) commitScan(root string, changes []change) ([]Record, error) {
	var out []Record
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		out = out[:0]
		t, err := writeTree(tx, root)
		if err != nil {
			return err
		}
		db.mu.Lock()
		held := db.held[root]
		defer db.mu.Unlock()
		for _, ch := range changes {
			cur, had, err := t.get(ch.rec.Path)
			if err != nil {
				return err
			}
			if held[ch.rec.Path] > 0 || (had && cur.Seq != ch.base) || (!had && ch.base != 0) {
				db.log.Debug("scan result superseded", zap.String("root", root), zap.String("path", ch.rec.Path))
				continue
			}
			s, err := t.store(ch.rec, !ch.cacheOnly)
			if err != nil {
				return err
			}
			if ch.adopted {
				if err := t.clearIntents(ch.rec.Path); err != nil {
					return err
				}
			}
			if !ch.cacheOnly {
				out = append(out, s)
				if ce := db.log.Check(zap.DebugLevel, "local change"); ce != nil {
					ce.Write(zap.String("root", root), zap.String("path", s.Path), zap.Stringer("type", s.Type),
						zap.Bool("deleted", s.Deleted), zap.Uint64("seq", s.Seq), zap.Bool("had", had), zap.Bool("was_deleted", had && cur.Deleted))
				}
			}
		}
		return t.finish()
	})
	if err != nil {
		return nil, fmt.Errorf("store scan of %s: %w", root, err)
	}
	return out, nil
}

// children returns the records directly inside directory dir ("" for the
// root) by name, and the names that have records below them but none of
// their own (orphans, e.g. from a peer that sent a file before its parent).
func (db *DB) children(root, dir string) (map[string]Record, map[string]bool, error) {
	kids := map[string]Record{}
	var orphans map[string]bool
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		t := readTree(tx, root)
		if t == nil {
			return nil
		}
		var pre []byte
		if dir != "" {
			pre = append(pathKey(dir), 0)
		}
		c := t.paths.Cursor()
		for k, v := c.Seek(pre); k != nil && bytes.HasPrefix(k, pre); {
			name := k[len(pre):]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				// Below child name[:i]: skip its subtree.
				top := string(name[:i])
				if _, ok := kids[top]; !ok {
					if orphans == nil {
						orphans = map[string]bool{}
					}
					orphans[top] = true
				}
				skip := append(append(bytes.Clone(pre), name[:i]...), 1)
				k, v = c.Seek(skip)
				continue
			}
			var r Record
			if err := decodeBody(keyPath(k), v, &r); err != nil {
				return err
			}
			kids[string(name)] = r
			k, v = c.Next()
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list %q in %s: %w", dir, root, err)
	}
	return kids, orphans, nil
}
