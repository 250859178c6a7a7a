package index

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/zeebo/blake3"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/tandemhost/tandem/conflict"
)

// ErrRootVanished is returned by Scan when a tree's root directory is
// missing or empty while the index still has live records for it, or when a
// directory that was a mount point is now empty: most likely a disk that is
// not mounted. Scan then changes nothing there, so the peer's copy is not
// deleted; an operator must mount the disk, or confirm that the tree was
// emptied on purpose (ScanOptions.AllowEmptyRoot).
var ErrRootVanished = errors.New("sync root vanished")

// TmpPrefix starts the names of the receiver's temporary files, which scans
// ignore.
const TmpPrefix = ".tandem-tmp-"

const (
	// racyWindow: a file whose ctime is this close to the time it was hashed
	// may be written again within the same timestamp tick without its stat
	// changing, so its stat cache is not trusted (CtimeNs 0) and the next
	// scan hashes it again.
	racyWindow = 2 * time.Second
	// flushEvery is how many changes a scan stores per transaction.
	flushEvery = 4096
	// maxQueuedHashes per worker; beyond it a lister hashes files itself,
	// which bounds memory and open directories on huge directories.
	maxQueuedHashes = 64
	maxSpecialWarns = 10
	maxPathErrors   = 20
)

// ScanOptions tune a Scan.
type ScanOptions struct {
	// Paths to look at, relative to the root; nil scans the whole tree. A path
	// that is a directory is scanned with its subtree; a path that no longer
	// exists is tombstoned with everything under it. A path whose parent
	// directories are not in the index yet is widened to the highest of them.
	Paths []string
	// Excluded reports paths not to sync (nil: none); it is called from
	// several goroutines at once. An excluded path is neither recorded nor
	// descended into, and its existing records are left alone (not
	// tombstoned): excluding a path must not delete it on the peer.
	Excluded func(rel string, isDir bool) bool
	// Workers lists directories and hashes files in parallel; 0 means
	// GOMAXPROCS.
	Workers int
	// Progress, if set, is added to as the scan goes.
	Progress *Progress
	// AllowEmptyRoot lets a scan tombstone everything when the root is empty
	// (never when it is missing): the operator's answer to ErrRootVanished.
	AllowEmptyRoot bool
	// Now is the clock (nil: time.Now), to tell recently changed files.
	Now func() time.Time
}

// Progress counts a scan's work. Its fields may be read at any time, from
// any goroutine, while a scan adds to them.
type Progress struct {
	Dirs        atomic.Int64 // directories listed
	Files       atomic.Int64 // files and symlinks looked at
	Hashed      atomic.Int64 // files hashed
	HashedBytes atomic.Int64 // bytes hashed
}

// Scan brings root's records in db up to date with the directory tree at dir
// (absolute), on behalf of node (this node's name), and returns the new
// versions it stored, in Seq order: what the peer must be sent.
//
// Only paths whose lstat differs from their record's stat cache are looked at
// closer, and only files among them are hashed (BLAKE3, by opts.Workers
// goroutines). A path whose content and metadata turn out unchanged only gets
// its stat cache refreshed: no new version, nothing to send. A changed path
// gets a new record with the old vector updated for node and Origin node; a
// recorded path that is gone becomes a tombstone. Symlinks are recorded, never
// followed; fifos, sockets and devices are skipped with a warning and their
// records left alone; so are names starting with TmpPrefix.
//
// Scan stores changes in batches as it goes. A change to a path that someone
// else (Apply, Put, another scan) changed since the scan looked, or that is
// held (DB.Hold), is dropped: the newer state wins and the next event or scan
// sees the disk again. A path that cannot be read is left as it is in the
// index and reported in the returned error after the rest of the tree is
// scanned; on any error, changed holds what was stored before it (Since
// yields those records as well).
//
// If dir is missing or empty but the index has live records for root, Scan
// returns ErrRootVanished and changes nothing (see ErrRootVanished).
func Scan(ctx context.Context, db *DB, root, dir, node string, opts ScanOptions) (changed []Record, err error) {
	if node == "" {
		return nil, errors.New("scan: empty node name")
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.Progress == nil {
		opts.Progress = new(Progress)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Excluded == nil {
		opts.Excluded = func(string, bool) bool { return false }
	}
	s := &scanner{db: db, log: db.log.Named("scan"), root: root, node: node, opts: opts}
	s.cond = sync.NewCond(&s.mu)

	rootfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == nil {
		defer unix.Close(rootfd)
	}
	if err := s.checkRoot(dir, rootfd, err); err != nil {
		return nil, err
	}
	s.rootfd = rootfd

	var jobs []walkJob
	if opts.Paths == nil {
		jobs = []walkJob{{rel: ""}}
	} else if jobs, err = s.pathJobs(opts.Paths); err != nil {
		return nil, err
	}
	if len(jobs) == 0 {
		return nil, nil
	}

	s.ctx, s.cancel = context.WithCancelCause(ctx)
	defer s.cancel(nil)
	stopWake := context.AfterFunc(s.ctx, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer stopWake()

	s.out = make(chan change, 1024)
	s.walkQ = slices.Clone(jobs)
	s.active = len(jobs)
	var wg sync.WaitGroup
	for range opts.Workers {
		wg.Go(s.work)
	}
	go func() {
		wg.Wait()
		close(s.out)
	}()

	// This goroutine alone writes: changes are stored in arrival order, so a
	// directory gets a lower Seq than its new contents, and the contents of a
	// removed directory lower ones than the directory.
	var batch []change
	var storeErr error
	flush := func() {
		if len(batch) == 0 || storeErr != nil {
			return
		}
		recs, err := db.commitScan(root, batch)
		if err != nil {
			storeErr = err
			s.cancel(err)
		}
		changed = append(changed, recs...)
		batch = batch[:0]
	}
	for ch := range s.out {
		if batch = append(batch, ch); len(batch) >= flushEvery {
			flush()
		}
	}
	flush()
	s.drain()

	if storeErr != nil {
		return changed, storeErr
	}
	if err := context.Cause(s.ctx); err != nil {
		return changed, fmt.Errorf("scan %s: %w", dir, err)
	}
	if s.specials > maxSpecialWarns {
		s.log.Warn("skipped special files", zap.String("root", root), zap.Int("count", s.specials))
	}
	if len(s.pathErrs) > 0 {
		errs := s.pathErrs
		if s.lostErrs > 0 {
			errs = append(errs, fmt.Errorf("and %d more", s.lostErrs))
		}
		return changed, fmt.Errorf("scan %s: %w", dir, errors.Join(errs...))
	}
	return changed, nil
}

type scanner struct {
	db     *DB
	log    *zap.Logger
	root   string
	node   string
	opts   ScanOptions
	rootfd int
	ctx    context.Context
	cancel context.CancelCauseFunc // ends the scan; the first cause wins
	out    chan change             // to the writer

	mu       sync.Mutex // guards the fields below
	cond     *sync.Cond // signalled on queue changes, on active reaching 0, on ctx end
	hashQ    []hashJob  // served first, so open directories are closed soon
	walkQ    []walkJob
	active   int // jobs queued or running
	pathErrs []error
	lostErrs int // path errors beyond maxPathErrors
	specials int
}

// walkJob is a directory to list or, in a Paths scan, a path to look at.
type walkJob struct {
	rel   string
	entry bool    // rel is a path to look at (Paths), not a directory to list
	cur   *Record // the directory as its parent's listing saw it (nil: the root)
	old   *Record // its record (nil: none)
}

// hashJob is a file whose lstat differs from its record.
type hashJob struct {
	dir  *dirHandle
	name string
	rel  string
	old  *Record
}

// checkRoot refuses to scan a root that vanished while the index has live
// records for it. openErr is the error opening dir.
func (s *scanner) checkRoot(dir string, rootfd int, openErr error) error {
	counts, err := s.db.Count(s.root)
	if err != nil {
		return fmt.Errorf("scan %s: %w", dir, err)
	}
	vanished := func(how string) error {
		return fmt.Errorf("scan %s: %w: the directory is %s but the index has %d entries for it; "+
			"if it is on a disk that is not mounted, mount it; nothing was changed", dir, ErrRootVanished, how, counts.Live())
	}
	if openErr != nil {
		if counts.Live() > 0 && gone(openErr) {
			return vanished("missing")
		}
		return fmt.Errorf("scan %s: %w", dir, openErr)
	}
	if counts.Live() == 0 || s.opts.AllowEmptyRoot {
		return nil
	}
	found := false
	err = eachName(rootfd, func(name string) bool {
		var st unix.Stat_t
		if strings.HasPrefix(name, TmpPrefix) || unix.Fstatat(rootfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
			return true
		}
		t := typeOf(st.Mode)
		found = t != 0 && !s.opts.Excluded(name, t == Dir)
		return !found
	})
	if err != nil {
		return fmt.Errorf("scan %s: %w", dir, err)
	}
	if !found {
		return vanished("empty")
	}
	return nil
}

// pathJobs turns the paths of a Paths scan into jobs: checked, excluded ones
// dropped, widened to the highest ancestor not recorded as a live directory,
// and without paths already covered by another.
func (s *scanner) pathJobs(paths []string) ([]walkJob, error) {
	isDir := map[string]bool{} // ancestor -> recorded as a live directory
	var rels []string
next:
	for _, p := range paths {
		if err := checkPath(p); err != nil {
			return nil, fmt.Errorf("scan: %w", err)
		}
		for i := 0; i <= len(p); i++ {
			if i < len(p) && p[i] != '/' {
				continue
			}
			start := strings.LastIndexByte(p[:i], '/') + 1
			if strings.HasPrefix(p[start:i], TmpPrefix) || s.opts.Excluded(p[:i], i < len(p)) {
				continue next
			}
		}
		rel := p
		for i := 0; i < len(p); i++ {
			if p[i] != '/' {
				continue
			}
			anc := p[:i]
			ok, seen := isDir[anc]
			if !seen {
				r, found, err := s.db.Get(s.root, anc)
				if err != nil {
					return nil, fmt.Errorf("scan: %w", err)
				}
				ok = found && !r.Deleted && r.Type == Dir
				isDir[anc] = ok
			}
			if !ok {
				rel = anc
				break
			}
		}
		rels = append(rels, rel)
	}
	slices.Sort(rels)
	var jobs []walkJob
	for _, rel := range rels {
		if n := len(jobs); n > 0 {
			last := jobs[n-1].rel
			if rel == last || strings.HasPrefix(rel, last+"/") {
				continue
			}
		}
		jobs = append(jobs, walkJob{rel: rel, entry: true})
	}
	return jobs, nil
}

// work runs jobs until there are none left or the scan is cancelled.
func (s *scanner) work() {
	hasher := blake3.New()
	buf := make([]byte, 256<<10)
	for {
		s.mu.Lock()
		for len(s.hashQ) == 0 && len(s.walkQ) == 0 && s.active > 0 && s.ctx.Err() == nil {
			s.cond.Wait()
		}
		if s.active == 0 || s.ctx.Err() != nil {
			s.mu.Unlock()
			return
		}
		var err error
		if n := len(s.hashQ); n > 0 {
			j := s.hashQ[n-1]
			s.hashQ = s.hashQ[:n-1]
			s.mu.Unlock()
			err = s.hash(j, hasher, buf)
		} else {
			n := len(s.walkQ)
			j := s.walkQ[n-1]
			s.walkQ = s.walkQ[:n-1]
			s.mu.Unlock()
			if j.entry {
				err = s.visit(j.rel)
			} else {
				err = s.list(j, hasher, buf)
			}
		}
		if err != nil {
			s.fail(err)
		}
		s.mu.Lock()
		if s.active--; s.active == 0 {
			s.cond.Broadcast()
		}
		s.mu.Unlock()
	}
}

// fail ends the scan with err, unless it is already ending.
func (s *scanner) fail(err error) { s.cancel(err) }

// drain releases what jobs left queued by a cancelled scan hold.
func (s *scanner) drain() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range s.hashQ {
		j.dir.release()
	}
	s.hashQ, s.walkQ = nil, nil
}

func (s *scanner) pushWalk(j walkJob) {
	s.mu.Lock()
	s.walkQ = append(s.walkQ, j)
	s.active++
	s.cond.Signal()
	s.mu.Unlock()
}

// pushHash queues j, or reports false when the queue is full and the caller
// should hash the file itself.
func (s *scanner) pushHash(j hashJob) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.hashQ) >= maxQueuedHashes*s.opts.Workers {
		return false
	}
	s.hashQ = append(s.hashQ, j)
	s.active++
	s.cond.Signal()
	return true
}

// pathErr records a per-path problem: the path is left as it is in the
// index, the scan goes on, and Scan reports it at the end.
func (s *scanner) pathErr(op, rel string, err error) {
	if rel == "" {
		rel = "."
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pathErrs) < maxPathErrors {
		s.pathErrs = append(s.pathErrs, fmt.Errorf("%s %s: %w", op, rel, err))
	} else {
		s.lostErrs++
	}
}

// badName warns about a name that cannot be synced.
func (s *scanner) badName(rel string) {
	s.mu.Lock()
	s.specials++
	n := s.specials
	s.mu.Unlock()
	if n <= maxSpecialWarns {
		s.log.Warn("skipping a name that is not valid UTF-8; rename it to sync it",
			zap.String("root", s.root), zap.String("path", strings.ToValidUTF8(rel, "?")))
	}
}

func (s *scanner) special(rel string, mode uint32) {
	s.mu.Lock()
	s.specials++
	n := s.specials
	s.mu.Unlock()
	if n <= maxSpecialWarns {
		s.log.Warn("skipping special file", zap.String("root", s.root), zap.String("path", rel), zap.String("kind", kindOf(mode)))
	}
}

func (s *scanner) emit(ch change) error {
	select {
	case s.out <- ch:
		return nil
	case <-s.ctx.Done():
		return context.Cause(s.ctx)
	}
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// list compares directory j.rel with its records.
func (s *scanner) list(j walkJob, hasher *blake3.Hasher, buf []byte) error {
	fd, err := openDir(s.rootfd, j.rel)
	if err != nil {
		if gone(err) {
			return nil // replaced since its parent was listed; its parent's next scan sees it
		}
		s.pathErr("open", j.rel, err)
		return nil
	}
	dir := newDirHandle(fd)
	defer dir.release()
	names, err := readNames(fd)
	if err != nil {
		s.pathErr("list", j.rel, err)
		return nil
	}
	s.opts.Progress.Dirs.Add(1)
	kids, orphans, err := s.db.children(s.root, j.rel)
	if err != nil {
		return err
	}
	slices.Sort(names)

	type entry struct {
		name string
		st   unix.Stat_t
	}
	entries := make([]entry, 0, len(names))
	present := make(map[string]bool, len(names)) // on disk, or unknown: never tombstoned
	for _, name := range names {
		if strings.HasPrefix(name, TmpPrefix) {
			present[name] = true
			continue
		}
		if !utf8.ValidString(name) {
			// Legal on Linux, but no peer accepts it (paths on the link
			// are UTF-8): skipped with a warning, never half-synced.
			present[name] = true
			s.badName(join(j.rel, name))
			continue
		}
		e := entry{name: name}
		if err := unix.Fstatat(fd, name, &e.st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if !errors.Is(err, unix.ENOENT) {
				present[name] = true
				s.pathErr("lstat", join(j.rel, name), err)
			}
			continue
		}
		present[name] = true
		t := typeOf(e.st.Mode)
		if t == 0 {
			if !s.opts.Excluded(join(j.rel, name), false) {
				s.special(join(j.rel, name), e.st.Mode)
			}
			continue
		}
		if s.opts.Excluded(join(j.rel, name), t == Dir) {
			continue
		}
		entries = append(entries, e)
	}

	if j.cur != nil && j.old != nil && !j.old.Deleted && j.old.Dev != j.cur.Dev && len(entries) == 0 {
		for _, r := range kids {
			if !r.Deleted {
				// Its record keeps the old device, so the next scan stops here too.
				s.pathErr("scan", j.rel, fmt.Errorf("%w: it was a mount point and is now empty; if its disk is not mounted, mount it; nothing was changed below it", ErrRootVanished))
				return nil
			}
		}
	}
	// A directory the peer deleted that holds nothing but the receiver's
	// temp files (transfers into it still in flight) is on its way out:
	// the receiver removes it when they end. Recording it as new would
	// bring it back to life on the peer.
	inFlightOnly := len(entries) == 0 && len(names) > 0 && j.old != nil && j.old.Deleted
	for _, name := range names {
		inFlightOnly = inFlightOnly && strings.HasPrefix(name, TmpPrefix)
	}
	// The directory's own change goes before its contents'.
	if j.cur != nil && (j.old == nil || !statSame(j.old, j.cur)) && !inFlightOnly {
		if err := s.decide(*j.cur, j.old); err != nil {
			return err
		}
	}

	for i := range entries {
		e := &entries[i]
		var old *Record
		if r, ok := kids[e.name]; ok {
			old = &r
		}
		if err := s.entry(dir, j.rel, e.name, &e.st, old, orphans[e.name], hasher, buf); err != nil {
			return err
		}
	}
	// Recorded names not on disk any more, orphans included.
	var missing []string
	for name, r := range kids {
		if !present[name] && !r.Deleted {
			missing = append(missing, name)
		}
	}
	for name := range orphans {
		if _, ok := kids[name]; !ok && !present[name] {
			missing = append(missing, name)
		}
	}
	slices.Sort(missing)
	for _, name := range missing {
		r, ok := kids[name]
		rel := join(j.rel, name)
		if s.opts.Excluded(rel, !ok || r.Type == Dir) {
			continue
		}
		if err := s.tombstoneTree(rel, true); err != nil {
			return err
		}
	}
	return nil
}

// visit looks at one path of a Paths scan.
func (s *scanner) visit(rel string) error {
	parent, name := "", rel
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		parent, name = rel[:i], rel[i+1:]
	}
	fd, err := openDir(s.rootfd, parent)
	if err != nil {
		if gone(err) {
			return s.tombstoneTree(rel, true)
		}
		s.pathErr("open", parent, err)
		return nil
	}
	dir := newDirHandle(fd)
	defer dir.release()
	var st unix.Stat_t
	if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return s.tombstoneTree(rel, true)
		}
		s.pathErr("lstat", rel, err)
		return nil
	}
	t := typeOf(st.Mode)
	if t == 0 {
		s.special(rel, st.Mode)
		return nil
	}
	if s.opts.Excluded(rel, t == Dir) {
		return nil
	}
	r, ok, err := s.db.Get(s.root, rel)
	if err != nil {
		return err
	}
	var old *Record
	if ok {
		old = &r
	}
	return s.entry(dir, parent, name, &st, old, !ok, nil, nil)
}

// entry handles one directory entry that exists on disk and is not excluded.
// old is its record (nil: none); orphan, that it has none but records below
// it may exist. hasher and buf, if set, are the caller's for inline hashing.
func (s *scanner) entry(dir *dirHandle, dirRel, name string, st *unix.Stat_t, old *Record, orphan bool, hasher *blake3.Hasher, buf []byte) error {
	rel := join(dirRel, name)
	cur := fromStat(rel, st)
	if cur.Type == Symlink {
		target, err := readLink(dir.fd, name)
		if err != nil {
			if gone(err) || errors.Is(err, unix.EINVAL) {
				return nil // replaced since lstat; the next scan sees what is there
			}
			s.pathErr("readlink", rel, err)
			return nil
		}
		cur.Target = target
	}
	if cur.Type != Dir {
		s.opts.Progress.Files.Add(1)
		// What was a directory is not any more: its contents are gone, and
		// their tombstones must come before this path's new version.
		if (old != nil && old.Type == Dir && !old.Deleted) || orphan {
			if err := s.tombstoneTree(rel, false); err != nil {
				return err
			}
		}
	}
	switch {
	case cur.Type == Dir:
		// list decides about the directory itself, once it has seen inside.
		s.pushWalk(walkJob{rel: rel, cur: &cur, old: old})
		return nil
	case old != nil && statSame(old, &cur):
		return nil
	case cur.Type == File && s.db.isHeld(s.root, rel):
		// The receiver is writing it; what a scan saw would be dropped, and
		// the receiver asks for a scan of it once its state is recorded.
		return nil
	case cur.Type == File:
		j := hashJob{dir: dir.acquire(), name: name, rel: rel, old: old}
		if !s.pushHash(j) {
			if hasher == nil {
				hasher, buf = blake3.New(), make([]byte, 64<<10)
			}
			return s.hash(j, hasher, buf)
		}
		return nil
	default:
		return s.decide(cur, old)
	}
}

// hash hashes file j and decides what changed. It reads through a
// descriptor opened without following symlinks and records the stat of that
// descriptor, so the hash and the stat cache describe the same file.
func (s *scanner) hash(j hashJob, hasher *blake3.Hasher, buf []byte) error {
	defer j.dir.release()
	flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK // a fifo swapped in must not block
	fd, err := unix.Openat(j.dir.fd, j.name, flags|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) {
		fd, err = unix.Openat(j.dir.fd, j.name, flags, 0)
	}
	if err != nil {
		if gone(err) {
			return nil // removed or replaced by a symlink since lstat; the next scan sees it
		}
		s.pathErr("open", j.rel, err)
		return nil
	}
	defer unix.Close(fd)
	for range 3 {
		var before, after unix.Stat_t
		if err := unix.Fstat(fd, &before); err != nil {
			s.pathErr("stat", j.rel, err)
			return nil
		}
		if typeOf(before.Mode) != File {
			return nil // replaced since lstat
		}
		now := s.opts.Now()
		hasher.Reset()
		n, err := s.read(fd, hasher, buf)
		if err != nil {
			if s.ctx.Err() != nil {
				return nil
			}
			s.pathErr("read", j.rel, err)
			return nil
		}
		s.opts.Progress.Hashed.Add(1)
		s.opts.Progress.HashedBytes.Add(n)
		if err := unix.Fstat(fd, &after); err != nil {
			s.pathErr("stat", j.rel, err)
			return nil
		}
		if !sameFile(&before, &after) {
			if _, err := unix.Seek(fd, 0, 0); err != nil {
				s.pathErr("seek", j.rel, err)
				return nil
			}
			continue // written while read: again
		}
		cur := fromStat(j.rel, &before)
		hasher.Sum(cur.Hash[:0])
		if cur.CtimeNs >= now.UnixNano()-int64(racyWindow) {
			cur.CtimeNs = 0
		}
		return s.decide(cur, j.old)
	}
	// Still being written: its next event, or the next scan, hashes it.
	s.log.Debug("file keeps changing, not recorded", zap.String("root", s.root), zap.String("path", j.rel))
	return nil
}

func (s *scanner) read(fd int, hasher *blake3.Hasher, buf []byte) (int64, error) {
	var total int64
	for i := 0; ; i++ {
		if i%16 == 15 && s.ctx.Err() != nil {
			return total, context.Cause(s.ctx)
		}
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return total, err
		}
		if n == 0 {
			return total, nil
		}
		hasher.Write(buf[:n])
		total += int64(n)
	}
}

// decide emits what cur, a path as it is on disk now, means for its record
// old (nil: none).
func (s *scanner) decide(cur Record, old *Record) error {
	if old != nil && sameVersion(old, &cur) {
		if old.Ino == cur.Ino && old.Dev == cur.Dev && old.CtimeNs == cur.CtimeNs {
			return nil
		}
		r := *old
		r.Ino, r.Dev, r.CtimeNs = cur.Ino, cur.Dev, cur.CtimeNs
		return s.emit(change{rec: r, base: old.Seq, cacheOnly: true})
	}
	var v conflict.Vector
	var base uint64
	if old != nil {
		v, base = old.Vector, old.Seq
	}
	if in, ok := s.db.intent(s.root, cur.Path); ok && sameContent(&in, &cur) {
		// The peer's version, written by a receiver killed before it
		// recorded it (see Intend): the peer's, not a change of ours.
		cur.Vector, cur.Origin, cur.PeerHas = in.Vector, in.Origin, true
		return s.emit(change{rec: cur, base: base, adopted: true})
	}
	cur.Vector = v.Update(s.node)
	cur.Origin = s.node
	return s.emit(change{rec: cur, base: base})
}

// tombstoneTree emits tombstones for the live records below rel, and for rel
// itself with self, deepest first so a directory's contents go before it.
func (s *scanner) tombstoneTree(rel string, self bool) error {
	var live []Record
	err := s.db.Walk(s.root, rel, func(r Record) error {
		if !r.Deleted && (self || r.Path != rel) {
			live = append(live, r)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := len(live) - 1; i >= 0; i-- {
		r := live[i]
		t := r
		t.Deleted = true
		t.Vector = r.Vector.Update(s.node)
		t.Origin = s.node
		t.PeerHas = false
		t.Ino, t.Dev, t.CtimeNs = 0, 0, 0
		adopted := false
		if in, ok := s.db.intent(s.root, r.Path); ok && in.Deleted {
			// The peer's delete, done by a receiver killed before it
			// recorded it (see Intend).
			t.Vector, t.Origin, t.PeerHas, adopted = in.Vector, in.Origin, true, true
		}
		if err := s.emit(change{rec: t, base: r.Seq, adopted: adopted}); err != nil {
			return err
		}
	}
	return nil
}
