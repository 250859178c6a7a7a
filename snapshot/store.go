package snapshot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// Snapshot statuses.
const (
	StatusComplete = "complete"
	StatusFailed   = "failed"
)

// IDLayout is the time layout of snapshot IDs (UTC).
const IDLayout = "2006-01-02T150405Z"

// Info is a snapshot's snapshot.json: what it holds and whether it is good.
// Field names are a contract for scripts (`tandem snapshot list --json`).
type Info struct {
	ID     string    `json:"id"`
	Time   time.Time `json:"time"`
	Status string    `json:"status"`
	Error  string    `json:"error,omitempty"`
	// Parent is the complete snapshot unchanged files were linked from.
	Parent string     `json:"parent,omitempty"`
	Roots  []RootInfo `json:"roots"`
	// Database position of the dump (and of the lead's binlog tailer):
	// the GTID of the consistent snapshot and its binlog file and offset.
	GTID       string      `json:"gtid,omitempty"`
	BinlogFile string      `json:"binlog_file,omitempty"`
	BinlogPos  uint64      `json:"binlog_pos,omitempty"`
	Tables     []TableInfo `json:"tables,omitempty"`
	Totals     Totals      `json:"totals"`
	// Seconds is how long the snapshot took.
	Seconds float64 `json:"seconds"`
}

// RootInfo is one synced tree in a snapshot.
type RootInfo struct {
	Name string `json:"name"` // the [[sync]] name
	Dir  string `json:"dir"`  // the live path when taken
	// Seq is the index sequence number the snapshot is at least as new as.
	Seq uint64 `json:"seq"`
	// IndexID is the index incarnation Seq belongs to.
	IndexID string `json:"index_id,omitempty"`
	// Full says the live tree was walked and compared (the index could not
	// say what changed).
	Full bool `json:"full,omitempty"`
}

// Totals count a snapshot's content.
type Totals struct {
	Files    int64 `json:"files"`
	Dirs     int64 `json:"dirs"`
	Symlinks int64 `json:"symlinks"`
	Bytes    int64 `json:"bytes"` // size of all files
	// Copied files took new space; Linked share the parent's copy.
	Copied      int64 `json:"copied"`
	CopiedBytes int64 `json:"copied_bytes"`
	Linked      int64 `json:"linked"`
	// Changing counts files that kept changing during their copy.
	Changing int64 `json:"changing"`
	// DumpBytes is the size of the database dump files written anew.
	DumpBytes int64 `json:"dump_bytes"`
}

// Good reports whether the snapshot is complete.
func (i *Info) Good() bool { return i.Status == StatusComplete }

const (
	infoName  = "snapshot.json"
	filesDir  = "files"
	dbDir     = "db"
	tmpPrefix = ".tmp-"
	delPrefix = ".del-"
	lockName  = ".lock"
)

// ErrNotFound is returned for a snapshot ID that does not exist.
var ErrNotFound = errors.New("no such snapshot")

// ErrBusy is returned when another process is taking or pruning snapshots
// in the same directory.
var ErrBusy = errors.New("another tandem is taking or pruning snapshots in this directory")

// Store is the snapshot directory.
type Store struct {
	dir string
	log *zap.Logger
}

// NewStore returns the store at dir (created on the first Take). A nil log
// discards logs.
func NewStore(dir string, log *zap.Logger) *Store {
	if log == nil {
		log = zap.NewNop()
	}
	return &Store{dir: dir, log: log.Named("snapshot")}
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// Path returns the directory of snapshot id.
func (s *Store) Path(id string) string { return filepath.Join(s.dir, id) }

// RootPath returns where root's tree is in snapshot id.
func (s *Store) RootPath(id, root string) string {
	return filepath.Join(s.dir, id, filesDir, rootDirName(root))
}

// rootDirName is a root's directory name in a snapshot: its name with
// everything but [A-Za-z0-9-_.~] escaped, so "/var/www" is "%2Fvar%2Fwww".
func rootDirName(root string) string {
	n := url.PathEscape(root)
	n = strings.ReplaceAll(n, "/", "%2F")
	if n == "." || n == ".." {
		n = strings.ReplaceAll(n, ".", "%2E")
	}
	return n
}

// validID reports whether id looks like a snapshot ID (and so is safe to
// join to the store's directory).
func validID(id string) bool {
	base, _, _ := strings.Cut(id, ".")
	if _, err := time.Parse(IDLayout, base); err != nil {
		return false
	}
	return !strings.ContainsAny(id, "/\x00") && id == filepath.Base(id)
}

// newID returns the ID for a snapshot taken at t that no entry of taken
// has yet: the time, with ".2", ".3", ... when two land in one second.
func newID(t time.Time, taken func(id string) bool) string {
	base := t.UTC().Format(IDLayout)
	id := base
	for n := 2; taken(id); n++ {
		id = fmt.Sprintf("%s.%d", base, n)
	}
	return id
}

// List returns every snapshot, oldest first. A directory whose
// snapshot.json is missing or unreadable is listed as failed, with the
// reason, so nothing in the store is invisible.
func (s *Store) List() ([]Info, error) {
	ents, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	var out []Info
	for _, e := range ents {
		if !e.IsDir() || !validID(e.Name()) {
			continue
		}
		info, err := s.Get(e.Name())
		if err != nil {
			t, _ := time.Parse(IDLayout, strings.SplitN(e.Name(), ".", 2)[0])
			info = Info{ID: e.Name(), Time: t, Status: StatusFailed, Error: err.Error()}
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b Info) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Get reads snapshot id's Info.
func (s *Store) Get(id string) (Info, error) {
	if !validID(id) {
		return Info{}, fmt.Errorf("snapshot %q: %w (IDs look like 2026-11-22T031500Z)", id, ErrNotFound)
	}
	b, err := os.ReadFile(filepath.Join(s.dir, id, infoName))
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(filepath.Join(s.dir, id)); serr != nil {
			return Info{}, fmt.Errorf("snapshot %s: %w in %s", id, ErrNotFound, s.dir)
		}
	}
	if err != nil {
		return Info{}, fmt.Errorf("snapshot %s: %w", id, err)
	}
	var info Info
	if err := json.Unmarshal(b, &info); err != nil {
		return Info{}, fmt.Errorf("snapshot %s: %s: %w", id, infoName, err)
	}
	if info.ID != id {
		return Info{}, fmt.Errorf("snapshot %s: %s names %q", id, infoName, info.ID)
	}
	return info, nil
}

// Latest returns the newest complete snapshot; ok is false when there is
// none.
func (s *Store) Latest() (info Info, ok bool, err error) {
	list, err := s.List()
	if err != nil {
		return Info{}, false, err
	}
	for i := len(list) - 1; i >= 0; i-- {
		if list[i].Good() {
			return list[i], true, nil
		}
	}
	return Info{}, false, nil
}

// Find resolves what the user gave as --at: a snapshot ID, or a time (RFC
// 3339 or 2006-01-02 [15:04[:05]] in UTC), which picks the newest complete
// snapshot taken at or before it.
func (s *Store) Find(at string) (Info, error) {
	if validID(at) {
		info, err := s.Get(at)
		if err != nil {
			return Info{}, err
		}
		if !info.Good() {
			return Info{}, fmt.Errorf("snapshot %s is %s (%s): pick a complete one from `tandem snapshot list`", at, info.Status, info.Error)
		}
		return info, nil
	}
	t, err := parseAt(at)
	if err != nil {
		return Info{}, err
	}
	list, err := s.List()
	if err != nil {
		return Info{}, err
	}
	for i := len(list) - 1; i >= 0; i-- {
		if list[i].Good() && !list[i].Time.After(t) {
			return list[i], nil
		}
	}
	return Info{}, fmt.Errorf("no complete snapshot at or before %s: %w; `tandem snapshot list` shows them", t.Format(time.RFC3339), ErrNotFound)
}

func parseAt(at string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, at, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--at %q is neither a snapshot ID (2026-11-22T031500Z) nor a time (2026-11-22T03:15:00Z, 2026-11-22 03:15, 2026-11-22)", at)
}

// lock takes the store's lock file, creating the directory. It fails at
// once with ErrBusy when another process holds it.
func (s *Store) lock() (unlock func(), err error) {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("snapshot dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(s.dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("snapshot lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w; wait for it to finish", s.dir, ErrBusy)
		}
		return nil, fmt.Errorf("snapshot lock: %w", err)
	}
	return func() { f.Close() }, nil
}

// cleanStale removes what a crashed take or prune left: .tmp-* and .del-*
// directories. The caller holds the lock, so nobody is still writing them.
func (s *Store) cleanStale() error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("snapshot dir: %w", err)
	}
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, tmpPrefix) || strings.HasPrefix(n, delPrefix) {
			s.log.Info("removing what an interrupted snapshot left", zap.String("dir", n))
			if err := removeAll(filepath.Join(s.dir, n)); err != nil {
				return fmt.Errorf("remove stale %s: %w", n, err)
			}
		}
	}
	return nil
}

// removeAll is os.RemoveAll that first makes directories writable, since a
// snapshot keeps each directory's mode (a 0555 directory cannot be emptied).
func removeAll(dir string) error {
	err := os.RemoveAll(dir)
	if err == nil || !errors.Is(err, fs.ErrPermission) {
		return err
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(dir)
}

// writeInfo writes dir/snapshot.json atomically.
func writeInfo(dir string, info *Info) error {
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, infoName), append(b, '\n'))
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
