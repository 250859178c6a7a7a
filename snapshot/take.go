package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/zeebo/blake3"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/tandemhost/tandem/watcher/index"
)

// Changes is what Take needs from the file index.
type Changes interface {
	// Changes calls fn for every path of root whose record changed after
	// sequence since (deletes included), and returns a sequence number the
	// listing is complete up to: the next call with it as since lists what
	// changed after this one. With since = CurrentSeq it lists nothing and
	// returns the current sequence. ID identifies the index's incarnation:
	// a rebuilt index has another, and its sequence numbers mean nothing
	// against the old one's.
	Changes(root string, since uint64, fn func(path string) error) (seq uint64, err error)
	ID() string
}

// CurrentSeq asks Changes for the current sequence only.
const CurrentSeq = math.MaxUint64

// indexChanges serves Changes from the daemon's index.
type indexChanges struct {
	db *index.DB
	id string
}

// IndexChanges returns the Changes of db, the index stored at path (whose
// inode and birth time identify its incarnation).
func IndexChanges(db *index.DB, path string) Changes {
	id := ""
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_INO|unix.STATX_BTIME, &stx); err == nil {
		id = fmt.Sprintf("%d:%d.%09d", stx.Ino, stx.Btime.Sec, stx.Btime.Nsec)
	}
	return &indexChanges{db: db, id: id}
}

func (c *indexChanges) ID() string { return c.id }

func (c *indexChanges) Changes(root string, since uint64, fn func(string) error) (uint64, error) {
	seq, err := c.db.Seq(root)
	if err != nil {
		return 0, fmt.Errorf("index seq of %s: %w", root, err)
	}
	if since >= seq {
		return seq, nil
	}
	err = c.db.Since(root, since, func(r index.Record) error { return fn(r.Path) })
	return seq, err
}

// Root is one synced tree to snapshot.
type Root struct {
	Name string // the [[sync]] name, the index's root ID
	Dir  string // its live path
	// Excluded reports paths that are not synced (nil: none); they are not
	// in snapshots either.
	Excluded func(rel string, isDir bool) bool
}

// TakeOptions say what a snapshot holds.
type TakeOptions struct {
	Roots []Root
	// Index says what changed since the previous snapshot; nil means the
	// live trees are walked and compared every time.
	Index Changes
	// DB, when set, dumps the databases into the snapshot.
	DB *Dumper
	// Position, when set and DB is not, gives the database position to
	// record (e.g. the binlog tailer's), for a snapshot without a dump.
	Position func(ctx context.Context) (Position, error)
	// Now is the clock (nil: time.Now).
	Now func() time.Time

	// hook, when set (tests), is called after each path is written; an
	// error fails the snapshot there, as a crash or a full disk would.
	hook func(root, rel string) error
	// duringCopy, when set (tests), runs after each copy of a file's data,
	// before the file is checked for changes.
	duringCopy func(root, rel string)
}

// racyWindow: a file copied less than this after its last change is
// compared again (by content) by the next full compare, not trusted by its
// stat. Two seconds covers coarse filesystem timestamps with room to spare.
var racyWindow = 2 * time.Second

// copyRetries is how many times a file that changes while copied is copied
// again before it is recorded as changing.
const copyRetries = 3

// Take takes a snapshot. It returns the new snapshot's Info; on failure the
// snapshot is recorded as failed (nothing of its partial data kept) and
// the error says why. Only one Take or Prune runs on a store at a time:
// another one gets ErrBusy.
func (s *Store) Take(ctx context.Context, opts TakeOptions) (Info, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	unlock, err := s.lock()
	if err != nil {
		return Info{}, err
	}
	defer unlock()
	if err := s.cleanStale(); err != nil {
		return Info{}, err
	}
	list, err := s.List()
	if err != nil {
		return Info{}, err
	}
	var prev *Info
	for i := len(list) - 1; i >= 0; i-- {
		if list[i].Good() {
			prev = &list[i]
			break
		}
	}
	start := now()
	id := newID(start, func(id string) bool {
		_, err := os.Lstat(filepath.Join(s.dir, id))
		return err == nil
	})
	info := Info{ID: id, Time: start.UTC(), Status: StatusFailed, Roots: []RootInfo{}}
	if prev != nil {
		info.Parent = prev.ID
	}
	tmp := filepath.Join(s.dir, tmpPrefix+id)
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return Info{}, fmt.Errorf("snapshot %s: %w", id, err)
	}
	err = s.build(ctx, tmp, &info, prev, opts)
	info.Seconds = now().Sub(start).Seconds()
	if err != nil {
		return s.fail(tmp, &info, err)
	}
	info.Status = StatusComplete
	if err := writeInfo(tmp, &info); err != nil {
		return s.fail(tmp, &info, err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, id)); err != nil {
		return s.fail(tmp, &info, err)
	}
	if err := syncDir(s.dir); err != nil {
		return info, fmt.Errorf("snapshot %s: %w", id, err)
	}
	s.log.Info("snapshot taken", zap.String("id", id), zap.Int64("files", info.Totals.Files),
		zap.Int64("copied", info.Totals.Copied), zap.Int64("copied_bytes", info.Totals.CopiedBytes),
		zap.Int64("linked", info.Totals.Linked), zap.Float64("seconds", info.Seconds))
	return info, nil
}

// fail records the snapshot in tmp as failed: its partial data goes (it
// is of no use, and the disk may be full), snapshot.json keeps the error.
func (s *Store) fail(tmp string, info *Info, cause error) (Info, error) {
	info.Status = StatusFailed
	info.Error = cause.Error()
	cause = fmt.Errorf("snapshot %s failed: %w", info.ID, cause)
	s.log.Error("snapshot failed", zap.String("id", info.ID), zap.Error(cause))
	if err := removeAll(tmp); err != nil {
		return *info, errors.Join(cause, fmt.Errorf("remove the partial snapshot: %w", err))
	}
	final := filepath.Join(s.dir, info.ID)
	err := os.Mkdir(final, 0o700)
	if err == nil {
		err = writeInfo(final, info)
	}
	if err != nil {
		os.RemoveAll(final)
		return *info, errors.Join(cause, fmt.Errorf("record the failure: %w", err))
	}
	return *info, cause
}

// build writes the snapshot's files, manifest and dump into tmp.
func (s *Store) build(ctx context.Context, tmp string, info *Info, prev *Info, opts TakeOptions) error {
	indexID := ""
	if opts.Index != nil {
		indexID = opts.Index.ID()
	}
	var prevM *manifest
	prevEntries := map[string][]Entry{}
	prevRoots := map[string]RootInfo{}
	if prev != nil {
		m, err := loadManifest(filepath.Join(s.dir, prev.ID), true)
		if err != nil {
			// The previous snapshot stays; this one is taken in full.
			s.log.Warn("previous manifest unreadable; comparing the live trees in full", zap.String("prev", prev.ID), zap.Error(err))
		} else {
			prevM, prevEntries = m, m.entries
			for _, r := range prev.Roots {
				prevRoots[r.Name] = r
			}
		}
	}
	if err := os.Mkdir(filepath.Join(tmp, filesDir), 0o700); err != nil {
		return err
	}
	mw, err := s.startManifest(tmp, prev, prevM)
	if err != nil {
		return err
	}
	defer mw.abort()
	sy := newSyncer()
	defer sy.wait()
	names := map[string]bool{}
	for _, r := range opts.Roots {
		if names[r.Name] {
			return fmt.Errorf("root %q given twice", r.Name)
		}
		names[r.Name] = true
		b := &builder{
			ctx: ctx, log: s.log, name: r.Name, excluded: r.Excluded, mw: mw, tot: &info.Totals,
			dst: filepath.Join(tmp, filesDir, rootDirName(r.Name)), made: map[string]bool{}, sync: sy,
			hook: opts.hook, during: opts.duringCopy, reflink: true, racy: racyWindow, hasher: blake3.New(), buf: make([]byte, 256<<10),
		}
		if b.live, err = os.OpenRoot(r.Dir); err != nil {
			return fmt.Errorf("sync root %s: %w", r.Name, err)
		}
		ri := RootInfo{Name: r.Name, Dir: r.Dir}
		pr, hasPrev := prevRoots[r.Name]
		if hasPrev {
			b.prevDst = filepath.Join(s.dir, prev.ID, filesDir, rootDirName(r.Name))
		}
		b.links = newLinker()
		err := func() error {
			defer b.live.Close()
			if err := os.Mkdir(b.dst, 0o700); err != nil {
				return err
			}
			var changed []string
			incremental := false
			if opts.Index != nil {
				since := uint64(CurrentSeq)
				if hasPrev && pr.IndexID == indexID && indexID != "" {
					since = pr.Seq
				}
				seq, err := opts.Index.Changes(r.Name, since, func(p string) error {
					changed = append(changed, p)
					return nil
				})
				if err != nil {
					return fmt.Errorf("index changes of %s: %w", r.Name, err)
				}
				ri.Seq, ri.IndexID = seq, indexID
				incremental = since != CurrentSeq && seq >= pr.Seq
			}
			ri.Full = !incremental
			if incremental {
				return b.incremental(prevEntries[r.Name], changed)
			}
			return b.full(prevEntries[r.Name])
		}()
		if lerr := b.finishLinks(); err == nil {
			err = lerr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", r.Name, err)
		}
		if err := b.finishDirs(); err != nil {
			return fmt.Errorf("%s: %w", r.Name, err)
		}
		info.Roots = append(info.Roots, ri)
	}
	if err := mw.close(); err != nil {
		return err
	}
	if opts.DB != nil {
		var prevDB string
		var prevTables []TableInfo
		if prev != nil {
			prevDB, prevTables = filepath.Join(s.dir, prev.ID, dbDir), prev.Tables
		}
		pos, tables, written, err := opts.DB.Dump(ctx, filepath.Join(tmp, dbDir), prevDB, prevTables)
		if err != nil {
			return fmt.Errorf("database dump: %w", err)
		}
		info.GTID, info.BinlogFile, info.BinlogPos = pos.GTID, pos.File, pos.Pos
		info.Tables = tables
		info.Totals.DumpBytes = written
	} else if opts.Position != nil {
		pos, err := opts.Position(ctx)
		if err != nil {
			return fmt.Errorf("database position: %w", err)
		}
		info.GTID, info.BinlogFile, info.BinlogPos = pos.GTID, pos.File, pos.Pos
	}
	sy.dir(filepath.Join(tmp, filesDir))
	sy.dir(tmp)
	return sy.wait()
}

// startManifest creates the manifest of the snapshot being built in tmp:
// a delta against prev's manifest m (nil: unreadable) while m's chain is
// short and light enough and its files can be linked into tmp, else a
// full one.
func (s *Store) startManifest(tmp string, prev *Info, m *manifest) (*manifestWriter, error) {
	path := filepath.Join(tmp, manifestName)
	if prev == nil || m == nil {
		return newManifestWriter(path, "", nil)
	}
	deltas, full := m.deltaBytes()
	if len(m.chain) >= manifestChainMax || deltas >= max(full/2, manifestChainSmall) {
		return newManifestWriter(path, "", nil)
	}
	var linked []string
	for i, part := range m.chain {
		name := part.name
		if i == 0 {
			name = chainPartName(prev.ID)
		}
		dst := filepath.Join(tmp, name)
		if err := os.Link(filepath.Join(s.dir, prev.ID, part.name), dst); err != nil {
			s.log.Warn("cannot link the previous manifest; writing a full one", zap.String("prev", prev.ID), zap.Error(err))
			for _, p := range linked {
				os.Remove(p)
			}
			return newManifestWriter(path, "", nil)
		}
		linked = append(linked, dst)
	}
	return newManifestWriter(path, prev.ID, m.entries)
}

// builder writes one root's tree of a snapshot.
type builder struct {
	ctx      context.Context
	log      *zap.Logger
	name     string
	live     *os.Root // the live tree
	excluded func(rel string, isDir bool) bool
	dst      string // the root's directory in the new snapshot
	prevDst  string // and in the previous one ("" when none)
	mw       *manifestWriter
	tot      *Totals
	made     map[string]bool // directories created, by rel path
	dirs     []Entry         // to get their mode and mtime at the end
	links    *linker
	sync     *syncer
	hook     func(root, rel string) error
	during   func(root, rel string)
	reflink  bool // FICLONE has not failed yet
	// racy is how recent a file's ctime must be for its stat not to be
	// trusted by the next snapshot.
	racy   time.Duration
	hasher *blake3.Hasher
	buf    []byte
	n      int

	// linkDir is the directory (rel) of the last path linked, linkSrc and
	// linkDst its full path in the previous and the new snapshot.
	linkDir, linkSrc, linkDst string
}

// incremental links every path of the previous manifest that is not in
// changed, and takes the changed ones from the live tree.
func (b *builder) incremental(prev []Entry, changed []string) error {
	slices.SortFunc(changed, pathCompare)
	changed = slices.Compact(changed)
	i, j := 0, 0
	for i < len(prev) || j < len(changed) {
		if err := b.tick(); err != nil {
			return err
		}
		switch {
		case j == len(changed) || (i < len(prev) && pathLess(prev[i].Path, changed[j])):
			if err := b.fromPrev(&prev[i]); err != nil {
				return err
			}
			i++
		default:
			var pe *Entry
			if i < len(prev) && prev[i].Path == changed[j] {
				pe = &prev[i]
				i++
			}
			if err := b.fromLive(changed[j], true, pe); err != nil {
				return err
			}
			j++
		}
	}
	return nil
}

// full walks the live tree; a path whose stat matches the previous
// manifest's entry is linked, others copied.
func (b *builder) full(prev []Entry) error {
	byPath := make(map[string]*Entry, len(prev))
	for i := range prev {
		byPath[prev[i].Path] = &prev[i]
	}
	return fs.WalkDir(b.live.FS(), ".", func(rel string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && rel != "." {
				return nil // removed while we walk
			}
			return err
		}
		if rel == "." {
			return nil
		}
		if err := b.tick(); err != nil {
			return err
		}
		if b.skip(rel, d.IsDir()) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		var st unix.Stat_t
		if err := b.lstat(rel, &st); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		p := byPath[rel]
		if p != nil {
			if err := p.parse(); err != nil {
				return err
			}
		}
		if p != nil && p.Type != Dir && sameStat(p, &st) {
			if p.Type == Symlink {
				if t, err := b.live.Readlink(rel); err != nil || t != p.Target {
					return b.fromLive(rel, false, nil)
				}
			}
			return b.fromPrev(p)
		}
		err = b.fromLive(rel, false, nil)
		if err == nil && typeOfMode(st.Mode) == Dir && !b.made[rel] {
			return fs.SkipDir
		}
		return err
	})
}

// tick checks for cancellation every so often.
func (b *builder) tick() error {
	if b.n++; b.n%1024 == 0 {
		return b.ctx.Err()
	}
	return nil
}

func (b *builder) skip(rel string, isDir bool) bool {
	if strings.HasPrefix(path.Base(rel), index.TmpPrefix) {
		return true
	}
	return b.excluded != nil && b.excluded(rel, isDir)
}

func (b *builder) lstat(rel string, st *unix.Stat_t) error {
	fi, err := b.live.Lstat(rel)
	if err != nil {
		return err
	}
	sys, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("lstat %s: no stat", rel)
	}
	*st = unix.Stat_t{
		Dev: sys.Dev, Ino: sys.Ino, Mode: sys.Mode, Uid: sys.Uid, Gid: sys.Gid, Size: sys.Size,
		Mtim: unix.Timespec(sys.Mtim), Ctim: unix.Timespec(sys.Ctim),
	}
	return nil
}

// splitRel splits a slash path into its directory ("" at the top) and
// name, without allocating.
func splitRel(rel string) (dir, name string) {
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return "", rel
	}
	return rel[:i], rel[i+1:]
}

// parentMade reports whether rel's directory exists in the new snapshot.
func (b *builder) parentMade(rel string) bool {
	d, _ := splitRel(rel)
	return d == "" || b.made[d]
}

// fromPrev puts the previous snapshot's e into the new one: a directory is
// made, anything else hard-linked.
func (b *builder) fromPrev(e *Entry) error {
	if !b.parentMade(e.Path) {
		return nil // its directory was deleted or replaced
	}
	switch e.Type {
	case Dir:
		if err := os.Mkdir(filepath.Join(b.dst, filepath.FromSlash(e.Path)), 0o700); err != nil {
			return err
		}
		b.made[e.Path] = true
		b.dirs = append(b.dirs, *e)
		b.tot.Dirs++
	default:
		dir, name := splitRel(e.Path)
		if dir != b.linkDir || b.linkSrc == "" {
			b.linkDir = dir
			b.linkSrc = filepath.Join(b.prevDst, filepath.FromSlash(dir))
			b.linkDst = filepath.Join(b.dst, filepath.FromSlash(dir))
		}
		if err := b.links.add(b.linkSrc, b.linkDst, name, e); err != nil {
			return err
		}
		b.tot.Linked++
		b.count(e)
	}
	if err := b.mw.add(e); err != nil {
		return err
	}
	return b.callHook(e.Path)
}

func (b *builder) count(e *Entry) {
	switch e.Type {
	case File:
		b.tot.Files++
		b.tot.Bytes += e.Size
	case Symlink:
		b.tot.Symlinks++
	}
}

func (b *builder) callHook(rel string) error {
	if b.hook != nil {
		return b.hook(b.name, rel)
	}
	return nil
}

// fromLive copies rel from the live tree, if it exists and is synced.
// fromIndex says rel comes from the index's changes: its directories may
// not have been created yet. prev, when set, is rel's entry in the previous
// snapshot: a file the index lists but whose stat is still the one
// recorded there (a new version vector, a rescan after a restart) is
// linked, not copied again.
func (b *builder) fromLive(rel string, fromIndex bool, prev *Entry) error {
	if !validRel(rel) {
		return fmt.Errorf("index path %q is not a clean relative path", rel)
	}
	if !b.parentMade(rel) {
		if !fromIndex || !b.makeParents(path.Dir(rel)) {
			return nil
		}
	}
	var st unix.Stat_t
	if err := b.lstat(rel, &st); err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
			return nil // deleted
		}
		return fmt.Errorf("lstat %s: %w", rel, err)
	}
	t := typeOfMode(st.Mode)
	if t == 0 || b.skip(rel, t == Dir) {
		return nil
	}
	if prev != nil {
		if err := prev.parse(); err != nil {
			return err
		}
	}
	if prev != nil && prev.Type == File && sameStat(prev, &st) {
		return b.fromPrev(prev)
	}
	e := entryOf(rel, t, &st)
	e.Root = b.name
	dst := filepath.Join(b.dst, filepath.FromSlash(rel))
	switch t {
	case Dir:
		if err := os.Mkdir(dst, 0o700); err != nil {
			return err
		}
		b.made[rel] = true
		b.dirs = append(b.dirs, e)
		b.tot.Dirs++
	case Symlink:
		target, err := b.live.Readlink(rel)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("readlink %s: %w", rel, err)
		}
		e.Target = target
		if err := os.Symlink(target, dst); err != nil {
			return err
		}
		if os.Geteuid() == 0 {
			if err := os.Lchown(dst, int(e.UID), int(e.GID)); err != nil {
				return err
			}
		}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, mtimes(e.MtimeNs), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("set mtime of %s: %w", dst, err)
		}
		b.count(&e)
	case File:
		ok, err := b.copyLive(rel, dst, &e)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		b.tot.Copied++
		b.tot.CopiedBytes += e.Size
		if e.Changing {
			b.tot.Changing++
			b.log.Warn("file kept changing while copied into the snapshot", zap.String("root", b.name), zap.String("path", rel))
		}
		b.count(&e)
	}
	if err := b.mw.add(&e); err != nil {
		return err
	}
	return b.callHook(rel)
}

// makeParents creates dir and its missing ancestors from the live tree, for
// a changed path whose directory the index did not list (yet). It reports
// whether dir now exists in the snapshot.
func (b *builder) makeParents(dir string) bool {
	if dir == "." || b.made[dir] {
		return true
	}
	if !b.makeParents(path.Dir(dir)) {
		return false
	}
	var st unix.Stat_t
	if err := b.lstat(dir, &st); err != nil || typeOfMode(st.Mode) != Dir {
		return false // gone, or no longer a directory: its contents went with it
	}
	if err := b.fromLive(dir, false, nil); err != nil {
		b.log.Warn("cannot add a changed path's directory", zap.String("root", b.name), zap.String("path", dir), zap.Error(err))
	}
	return b.made[dir]
}

// copyLive copies the live file rel to dst and fills e from what was
// copied. ok is false when rel is no longer a regular file.
func (b *builder) copyLive(rel, dst string, e *Entry) (ok bool, err error) {
	src, err := b.live.OpenFile(rel, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) {
		src, err = b.live.OpenFile(rel, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ELOOP) {
			return false, nil
		}
		return false, fmt.Errorf("open %s: %w", rel, err)
	}
	defer src.Close()
	var before unix.Stat_t
	if err := unix.Fstat(int(src.Fd()), &before); err != nil {
		return false, fmt.Errorf("stat %s: %w", rel, err)
	}
	if typeOfMode(before.Mode) != File {
		return false, nil
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return false, err
	}
	defer func() {
		if out != nil {
			out.Close()
		}
	}()
	stable := false
	for attempt := 0; attempt <= copyRetries && !stable; attempt++ {
		if attempt > 0 {
			if _, err := src.Seek(0, io.SeekStart); err != nil {
				return false, err
			}
			if err := out.Truncate(0); err != nil {
				return false, err
			}
			if _, err := out.Seek(0, io.SeekStart); err != nil {
				return false, err
			}
		}
		if err := b.copyData(out, src, e); err != nil {
			return false, fmt.Errorf("copy %s: %w", rel, err)
		}
		if b.during != nil {
			b.during(b.name, rel)
		}
		var after unix.Stat_t
		if err := unix.Fstat(int(src.Fd()), &after); err != nil {
			return false, fmt.Errorf("stat %s: %w", rel, err)
		}
		stable = sameFileStat(&before, &after)
		before = after
	}
	*e = entryOf(rel, File, &before)
	e.Root = b.name
	e.Hash = hashOf(b.hasher)
	e.Changing = !stable
	if time.Now().UnixNano()-e.CtimeNs < int64(b.racy) {
		// Changed within the filesystem's timestamp granularity of now: a
		// write right after the copy might not move ctime, so this stat must
		// never vouch for the copy later.
		e.CtimeNs = 0
	}
	if err := setMeta(out, e); err != nil {
		return false, err
	}
	b.sync.file(out)
	out = nil
	return true, nil
}

// copyData copies src to out and hashes the bytes into b.hasher: by reflink
// when the filesystem can (then hashing reads the source), else by reading
// and writing.
func (b *builder) copyData(out, src *os.File, e *Entry) error {
	b.hasher.Reset()
	if b.reflink {
		err := unix.IoctlFileClone(int(out.Fd()), int(src.Fd()))
		if err == nil {
			_, err := io.CopyBuffer(b.hasher, onlyReader{src}, b.buf)
			return err
		}
		b.reflink = false // EOPNOTSUPP, EXDEV, EINVAL: not on this filesystem
	}
	_, err := io.CopyBuffer(io.MultiWriter(out, b.hasher), onlyReader{src}, b.buf)
	return err
}

// copyPrev copies a previous snapshot's file (src) to dst with e's
// metadata, for when it cannot be linked.
func (b *builder) copyPrev(src, dst string, e *Entry) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(out, onlyReader{in}, b.buf); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", e.Path, err)
	}
	if err := setMeta(out, e); err != nil {
		out.Close()
		return err
	}
	b.tot.Copied++
	b.tot.CopiedBytes += e.Size
	b.sync.file(out)
	return nil
}

// onlyReader hides WriteTo/ReadFrom so io.Copy uses the buffer given.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func hashOf(h *blake3.Hasher) (sum [32]byte) {
	h.Sum(sum[:0])
	return sum
}

// setMeta gives a snapshot file e's owner (as root), mode and mtime.
func setMeta(f *os.File, e *Entry) error {
	if os.Geteuid() == 0 {
		if err := f.Chown(int(e.UID), int(e.GID)); err != nil {
			return err
		}
	}
	// After chown, which clears setuid and setgid.
	if err := unix.Fchmod(int(f.Fd()), unixMode(e.Mode)); err != nil {
		return fmt.Errorf("chmod %s: %w", f.Name(), err)
	}
	ts := mtimes(e.MtimeNs)
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, f.Name(), ts, 0); err != nil {
		return fmt.Errorf("set mtime of %s: %w", f.Name(), err)
	}
	return nil
}

// finishDirs gives the snapshot's directories their owner, mode and
// mtime, deepest first (creating entries changed their mtime).
func (b *builder) finishDirs() error {
	for i := len(b.dirs) - 1; i >= 0; i-- {
		e := &b.dirs[i]
		p := filepath.Join(b.dst, filepath.FromSlash(e.Path))
		if os.Geteuid() == 0 {
			if err := os.Lchown(p, int(e.UID), int(e.GID)); err != nil {
				return err
			}
		}
		if err := unix.Chmod(p, unixMode(e.Mode)); err != nil {
			return fmt.Errorf("chmod %s: %w", p, err)
		}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, mtimes(e.MtimeNs), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("set mtime of %s: %w", p, err)
		}
		b.sync.dir(p)
	}
	b.sync.dir(b.dst)
	b.dirs = nil
	return nil
}

func mtimes(ns int64) []unix.Timespec {
	t := unix.NsecToTimespec(ns)
	return []unix.Timespec{t, t}
}

func typeOfMode(m uint32) Type {
	switch m & unix.S_IFMT {
	case unix.S_IFREG:
		return File
	case unix.S_IFDIR:
		return Dir
	case unix.S_IFLNK:
		return Symlink
	}
	return 0
}

// entryOf describes rel from its lstat.
func entryOf(rel string, t Type, st *unix.Stat_t) Entry {
	e := Entry{
		Path: rel, Type: t, Mode: modeOf(st.Mode), UID: st.Uid, GID: st.Gid,
		MtimeNs: st.Mtim.Nano(), Ino: st.Ino, CtimeNs: st.Ctim.Nano(),
	}
	if t == File {
		e.Size = st.Size
	}
	if t == Dir {
		e.Size = 0
	}
	return e
}

// modeOf converts unix permission bits to Go's representation.
func modeOf(m uint32) fs.FileMode {
	fm := fs.FileMode(m & 0o777)
	if m&unix.S_ISUID != 0 {
		fm |= fs.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		fm |= fs.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		fm |= fs.ModeSticky
	}
	return fm
}

func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= unix.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		u |= unix.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		u |= unix.S_ISVTX
	}
	return u
}

// sameStat reports whether the live stat st still matches what the
// manifest recorded for e: same inode, size, mtime, ctime (which a chmod,
// chown or write moves) and type.
func sameStat(e *Entry, st *unix.Stat_t) bool {
	return typeOfMode(st.Mode) == e.Type && st.Ino == e.Ino && st.Ctim.Nano() == e.CtimeNs &&
		st.Mtim.Nano() == e.MtimeNs && (e.Type != File || st.Size == e.Size) &&
		modeOf(st.Mode) == e.Mode && st.Uid == e.UID && st.Gid == e.GID
}

// sameFileStat reports whether a file was left alone between two fstats.
func sameFileStat(a, b *unix.Stat_t) bool {
	return a.Size == b.Size && a.Mtim == b.Mtim && a.Ctim == b.Ctim && a.Ino == b.Ino
}
