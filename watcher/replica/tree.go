package replica

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tandemhost/tandem/watcher/index"
)

// tree writes into one sync root. Every path goes through os.Root, so
// nothing a peer names can reach outside the root, symlinks included.
//
// Within a batch (begin .. flush), new files are written to temp files
// without an fsync each and renamed into place together at flush, after
// one syncfs has made all their data durable, then a second syncfs makes
// the renames durable: a file is never visible half-written, even after a
// crash, and a burst of small files costs two syncs instead of two per file.
// Any other change to the tree flushes the batch first, so operations stay
// in order.
type tree struct {
	dir   string
	root  *os.Root
	fd    *os.File // the root directory, for syncfs
	chown bool     // running as root: keep owners

	batch bool
	// mu guards deferred, targets and dirs: a batch writes new files from
	// several goroutines; every other operation runs alone.
	mu       sync.Mutex
	deferred [][2]string         // temp name, final name
	targets  map[string]bool     // the final names in deferred
	dirs     map[string]*os.Root // in a batch: sub-roots of directories written to
}

func openTree(dir string) (*tree, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open sync root: %w", err)
	}
	fd, err := os.Open(dir)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("open sync root: %w", err)
	}
	return &tree{dir: dir, root: r, fd: fd, chown: os.Geteuid() == 0,
		targets: make(map[string]bool), dirs: make(map[string]*os.Root)}, nil
}

// at returns where to operate on rel: in a batch, a cached sub-root of
// rel's directory and the base name (each os.Root call walks its path one
// component at a time, so this saves most of the system calls of a burst);
// otherwise the tree's root and rel.
func (t *tree) at(rel string) (*os.Root, string) {
	dir := path.Dir(rel)
	if !t.batch || dir == "." {
		return t.root, rel
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.dirs[dir]
	if r == nil {
		var err error
		if r, err = t.root.OpenRoot(dir); err != nil {
			return t.root, rel
		}
		t.dirs[dir] = r
	}
	return r, path.Base(rel)
}

// forgetDirs closes cached sub-roots at or below rel ("" for all).
func (t *tree) forgetDirs(rel string) {
	for d, r := range t.dirs {
		if rel == "" || d == rel || strings.HasPrefix(d, rel+"/") {
			r.Close()
			delete(t.dirs, d)
		}
	}
}

// cleanTemps removes temp files a killed receiver left behind. They were
// never renamed into place, so nothing in them was acked: the sender sends
// those changes again.
func (t *tree) cleanTemps() (removed int) {
	filepath.WalkDir(t.dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && strings.HasPrefix(d.Name(), index.TmpPrefix) {
			rel, _ := filepath.Rel(t.dir, p)
			if t.root.Remove(filepath.ToSlash(rel)) == nil {
				removed++
			}
		}
		return nil
	})
	return removed
}

func (t *tree) Close() error {
	t.fd.Close()
	return t.root.Close()
}

// begin starts a batch; flush ends it.
func (t *tree) begin() { t.batch = true }

// flush makes the batch's files durable and renames them into place.
func (t *tree) flush() error {
	defer func() {
		t.batch = false
		t.deferred = t.deferred[:0]
		clear(t.targets)
		t.forgetDirs("")
	}()
	if len(t.deferred) == 0 {
		return nil
	}
	if err := unix.Syncfs(int(t.fd.Fd())); err != nil {
		return fmt.Errorf("sync %s: %w", t.dir, err)
	}
	for i, d := range t.deferred {
		r, name := t.at(d[1])
		if err := r.Rename(path.Base(d[0]), name); err != nil {
			for _, rest := range t.deferred[i:] {
				t.root.Remove(rest[0])
			}
			return fmt.Errorf("rename into %s: %w", d[1], err)
		}
	}
	if err := unix.Syncfs(int(t.fd.Fd())); err != nil {
		return fmt.Errorf("sync %s: %w", t.dir, err)
	}
	return nil
}

// discard ends a batch without renaming anything into place.
func (t *tree) discard() {
	t.mu.Lock()
	for _, d := range t.deferred {
		t.root.Remove(d[0])
	}
	t.mu.Unlock()
	t.deferred = t.deferred[:0]
	clear(t.targets)
	t.forgetDirs("")
	t.batch = false
}

// writeFile writes data as rel's new content with rec's metadata: a temp
// file beside it, renamed into place (at flush, in a batch).
func (t *tree) writeFile(rel string, rec *index.Record, data []byte) error {
	f, name, err := t.createTemp(rel)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		t.root.Remove(name)
		return fmt.Errorf("write %s: %w", rel, err)
	}
	return t.commitFile(f, name, rel, rec)
}

// ordered flushes a pending batch before an operation on rel that must come
// after the batch's renames: one on a path a deferred rename writes, above
// one, or below one.
func (t *tree) ordered(rel string) error {
	if len(t.deferred) == 0 {
		return nil
	}
	clash := t.targets[rel]
	for p := path.Dir(rel); !clash && p != "."; p = path.Dir(p) {
		clash = t.targets[p]
	}
	for target := range t.targets {
		if clash {
			break
		}
		clash = strings.HasPrefix(target, rel+"/")
	}
	if !clash {
		return nil
	}
	batch := t.batch
	err := t.flush()
	t.batch = batch
	return err
}

// tempName returns a fresh temporary name in rel's directory.
func tempName(rel string) string {
	var b [8]byte
	rand.Read(b[:])
	return path.Join(path.Dir(rel), index.TmpPrefix+hex.EncodeToString(b[:]))
}

// parent makes sure rel's parent directories exist.
func (t *tree) parent(rel string) error {
	dir := path.Dir(rel)
	if dir == "." {
		return nil
	}
	t.mu.Lock()
	cached := t.dirs[dir] != nil
	t.mu.Unlock()
	if cached {
		return nil
	}
	if err := t.root.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create parent of %s: %w", rel, err)
	}
	return nil
}

// createTemp creates a temporary file beside rel, mode 0600.
func (t *tree) createTemp(rel string) (*os.File, string, error) {
	if err := t.parent(rel); err != nil {
		return nil, "", err
	}
	name := tempName(rel)
	r, base := t.at(name)
	f, err := r.OpenFile(base, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, "", fmt.Errorf("create temp for %s: %w", rel, err)
	}
	return f, name, nil
}

// commitFile gives the temp file f (named tmp) rec's metadata, makes it
// durable and renames it over rel, then syncs the directory. f is closed.
func (t *tree) commitFile(f *os.File, tmp, rel string, rec *index.Record) error {
	err := func() error {
		if t.chown {
			if err := f.Chown(int(rec.UID), int(rec.GID)); err != nil {
				return err
			}
		}
		if err := f.Chmod(fs.FileMode(rec.Mode)); err != nil {
			return err
		}
		if !t.batch {
			if err := f.Sync(); err != nil {
				return err
			}
		}
		return f.Close()
	}()
	if err != nil {
		f.Close()
		t.root.Remove(tmp)
		return fmt.Errorf("write %s: %w", rel, err)
	}
	mt := time.Unix(0, rec.MtimeNs)
	r, base := t.at(tmp)
	if err := r.Chtimes(base, mt, mt); err != nil {
		t.root.Remove(tmp)
		return fmt.Errorf("set mtime of %s: %w", rel, err)
	}
	if t.batch {
		t.mu.Lock()
		t.deferred = append(t.deferred, [2]string{tmp, rel})
		t.targets[rel] = true
		t.mu.Unlock()
		return nil
	}
	return t.renameIn(tmp, rel)
}

// renameIn renames from over to (replacing a file or symlink there) and
// syncs the directory.
func (t *tree) renameIn(from, to string) error {
	if err := t.ordered(from); err != nil {
		return err
	}
	if err := t.ordered(to); err != nil {
		return err
	}
	t.forgetDirs(from)
	if err := t.root.Rename(from, to); err != nil {
		t.root.Remove(from)
		return fmt.Errorf("rename into %s: %w", to, err)
	}
	return t.syncDir(path.Dir(to))
}

func (t *tree) syncDir(dir string) error {
	d, err := t.root.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// symlink makes rel a symlink to target (replacing a file or symlink).
func (t *tree) symlink(rel string, rec *index.Record) error {
	if err := t.parent(rel); err != nil {
		return err
	}
	tmp := tempName(rel)
	if err := t.root.Symlink(rec.Target, tmp); err != nil {
		return fmt.Errorf("symlink %s: %w", rel, err)
	}
	if t.chown {
		t.root.Lchown(tmp, int(rec.UID), int(rec.GID))
	}
	return t.renameIn(tmp, rel)
}

// mkdir makes rel a directory with rec's mode and owner.
func (t *tree) mkdir(rel string, rec *index.Record) error {
	if err := t.ordered(rel); err != nil {
		return err
	}
	if err := t.parent(rel); err != nil {
		return err
	}
	err := t.root.Mkdir(rel, 0o700)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("mkdir %s: %w", rel, err)
	}
	if t.chown {
		if err := t.root.Lchown(rel, int(rec.UID), int(rec.GID)); err != nil {
			return fmt.Errorf("chown %s: %w", rel, err)
		}
	}
	if err := t.root.Chmod(rel, fs.FileMode(rec.Mode)); err != nil {
		return fmt.Errorf("chmod %s: %w", rel, err)
	}
	return nil
}

// remove deletes rel: a file, a symlink or an empty directory. A directory
// that still holds entries is left alone (errNotEmpty): what is in it has
// versions of its own and will replicate.
func (t *tree) remove(rel string) error {
	if err := t.ordered(rel); err != nil {
		return err
	}
	t.forgetDirs(rel)
	err := t.root.Remove(rel)
	switch {
	case err == nil:
		return t.syncDir(path.Dir(rel))
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST):
		return errNotEmpty
	}
	return fmt.Errorf("remove %s: %w", rel, err)
}

var errNotEmpty = errors.New("directory not empty")

// setMeta gives an existing path rec's mode, owner and mtime.
func (t *tree) setMeta(rel string, rec *index.Record) error {
	if rec.Type == index.Symlink {
		return nil
	}
	if err := t.ordered(rel); err != nil {
		return err
	}
	if t.chown {
		if err := t.root.Lchown(rel, int(rec.UID), int(rec.GID)); err != nil {
			return err
		}
	}
	if err := t.root.Chmod(rel, fs.FileMode(rec.Mode)); err != nil {
		return err
	}
	if rec.Type == index.File {
		mt := time.Unix(0, rec.MtimeNs)
		return t.root.Chtimes(rel, mt, mt)
	}
	return nil
}

// stamp fills rec's local stat cache from the path as it is now.
func (t *tree) stamp(rec *index.Record) {
	r, name := t.at(rec.Path)
	fi, err := r.Lstat(name)
	if err != nil {
		return
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		rec.Ino, rec.Dev, rec.CtimeNs = st.Ino, uint64(st.Dev), st.Ctim.Nano()
		if !t.chown {
			// Owners are not ours to set: record what the disk says, or
			// the next scan would see a change that is not one.
			rec.UID, rec.GID = st.Uid, st.Gid
		}
	}
}

// empty reports whether the tree's directory holds nothing but tandem's
// own temp files. An error counts as not empty: the answer only decides
// whether a first sync may send content unasked.
func (t *tree) empty() bool {
	f, err := t.root.Open(".")
	if err != nil {
		return false
	}
	defer f.Close()
	for {
		names, err := f.Readdirnames(64)
		for _, n := range names {
			if !strings.HasPrefix(n, index.TmpPrefix) {
				return false
			}
		}
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
	}
}
