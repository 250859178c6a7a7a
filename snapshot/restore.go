package snapshot

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/zeebo/blake3"
	"golang.org/x/sys/unix"

	"github.com/tandemhost/tandem/watcher/index"
)

// RestoreOptions say what to restore and where.
type RestoreOptions struct {
	ID   string // the snapshot
	Root string // the [[sync]] name
	// Path is the file or directory to restore, relative to the root ("" for
	// the whole tree).
	Path string
	// To is where Path goes: the live path itself, or a path elsewhere.
	To string
	// Force replaces files and symlinks that exist at the destination;
	// without it Restore writes nothing when any would be replaced.
	Force bool
}

// RestoreResult counts what Restore wrote.
type RestoreResult struct {
	Files    int64 `json:"files"`
	Dirs     int64 `json:"dirs"`
	Symlinks int64 `json:"symlinks"`
	Bytes    int64 `json:"bytes"`
	Replaced int64 `json:"replaced"` // existing files and symlinks replaced (--force)
}

// ErrExists is returned (wrapped, naming the paths) when a restore would
// replace something and Force is not set.
var ErrExists = errors.New("restore would replace existing files")

// Restore copies Path of a snapshot to To. Each file is written to a temp
// file beside its destination (named like the index's temp files, which
// the watcher ignores), checked against the manifest's hash as it is
// copied, given its owner (as root), mode and mtime, synced and renamed
// into place: in a live tree the watcher sees one complete change per file
// and replicates it. Directories are merged into, never removed; a file
// that exists where the snapshot has a directory is replaced only with
// Force. Restore checks every destination before it writes anything.
func (s *Store) Restore(ctx context.Context, o RestoreOptions) (RestoreResult, error) {
	var res RestoreResult
	info, err := s.Get(o.ID)
	if err != nil {
		return res, err
	}
	if !info.Good() {
		return res, fmt.Errorf("snapshot %s is %s: restore from a complete one", o.ID, info.Status)
	}
	if o.Path != "" && !validRel(o.Path) {
		return res, fmt.Errorf("path %q must be relative to the sync root, without . or .. components", o.Path)
	}
	if o.To == "" || !filepath.IsAbs(o.To) {
		return res, fmt.Errorf("restore destination %q must be an absolute path", o.To)
	}
	var entries []Entry
	err = s.Manifest(o.ID, func(e *Entry) error {
		if e.Root == o.Root && (o.Path == "" || e.Path == o.Path || strings.HasPrefix(e.Path, o.Path+"/")) {
			entries = append(entries, *e)
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	if len(entries) == 0 {
		return res, fmt.Errorf("%s is not in snapshot %s (root %s): `tandem snapshot show %s` lists what it holds", orDot(o.Path), o.ID, o.Root, o.ID)
	}
	src := s.RootPath(o.ID, o.Root)
	dst := func(rel string) string {
		suffix := strings.TrimPrefix(rel, o.Path)
		return filepath.Join(o.To, filepath.FromSlash(strings.TrimPrefix(suffix, "/")))
	}
	// The whole tree is a directory that the manifest does not list.
	top := o.Path == "" || entries[0].Type == Dir

	// Check first: nothing is written when something would be replaced
	// without Force, or cannot be at all.
	var clash []string
	for i := range entries {
		e := &entries[i]
		var st unix.Stat_t
		p := dst(e.Path)
		if err := unix.Lstat(p, &st); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			if errors.Is(err, unix.ENOTDIR) {
				continue // under a path reported below
			}
			return res, fmt.Errorf("restore %s: %w", p, err)
		}
		isDir := typeOfMode(st.Mode) == Dir
		switch {
		case e.Type == Dir && isDir:
		case isDir:
			return res, fmt.Errorf("restore %s: a directory is there now; tandem does not replace a directory with a %v: move it aside first", p, e.Type)
		default:
			clash = append(clash, p)
		}
	}
	if len(clash) > 0 && !o.Force {
		more := ""
		if len(clash) > 5 {
			more = fmt.Sprintf(" and %d more", len(clash)-5)
			clash = clash[:5]
		}
		return res, fmt.Errorf("%w: %s%s; add --force to replace them, or --to DIR to restore elsewhere", ErrExists, strings.Join(clash, ", "), more)
	}
	if top {
		if err := os.MkdirAll(filepath.Dir(o.To), 0o755); err != nil {
			return res, fmt.Errorf("restore: %w", err)
		}
	} else if _, err := os.Stat(filepath.Dir(o.To)); err != nil {
		return res, fmt.Errorf("restore: the destination's directory: %w", err)
	}
	if o.Path == "" {
		if err := os.MkdirAll(o.To, 0o755); err != nil {
			return res, fmt.Errorf("restore: %w", err)
		}
	}
	buf := make([]byte, 256<<10)
	h := blake3.New()
	var dirs []*Entry
	for i := range entries {
		if i%256 == 0 && ctx.Err() != nil {
			return res, ctx.Err()
		}
		e := &entries[i]
		from := filepath.Join(src, filepath.FromSlash(e.Path))
		to := dst(e.Path)
		var err error
		switch e.Type {
		case Dir:
			err = restoreDir(to, o.Force)
			dirs = append(dirs, e)
			res.Dirs++
		case Symlink:
			var replaced bool
			replaced, err = restoreSymlink(to, e)
			res.Symlinks++
			if replaced {
				res.Replaced++
			}
		case File:
			var replaced bool
			replaced, err = restoreFile(from, to, e, h, buf)
			res.Files++
			res.Bytes += e.Size
			if replaced {
				res.Replaced++
			}
		}
		if err != nil {
			return res, fmt.Errorf("restore %s: %w", to, err)
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		e := dirs[i]
		p := dst(e.Path)
		if os.Geteuid() == 0 {
			os.Lchown(p, int(e.UID), int(e.GID))
		}
		if err := unix.Chmod(p, unixMode(e.Mode)); err != nil {
			return res, fmt.Errorf("restore %s: %w", p, err)
		}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, mtimes(e.MtimeNs), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return res, fmt.Errorf("restore %s: %w", p, err)
		}
	}
	return res, nil
}

func orDot(p string) string {
	if p == "" {
		return "the whole tree"
	}
	return p
}

func restoreDir(to string, force bool) error {
	var st unix.Stat_t
	err := unix.Lstat(to, &st)
	if err == nil && typeOfMode(st.Mode) == Dir {
		return nil
	}
	if err == nil {
		if !force {
			return fmt.Errorf("%w: %s", ErrExists, to)
		}
		if err := os.Remove(to); err != nil {
			return err
		}
	}
	return os.Mkdir(to, 0o700)
}

// tempBeside returns a temp name in to's directory that the watcher and
// the index scanner ignore.
func tempBeside(to string) string {
	return filepath.Join(filepath.Dir(to), index.TmpPrefix+"restore-"+rand.Text()[:10]+"-"+path.Base(to))
}

func restoreSymlink(to string, e *Entry) (replaced bool, err error) {
	tmp := tempBeside(to)
	os.Remove(tmp)
	if err := os.Symlink(e.Target, tmp); err != nil {
		return false, err
	}
	if os.Geteuid() == 0 {
		os.Lchown(tmp, int(e.UID), int(e.GID))
	}
	unix.UtimesNanoAt(unix.AT_FDCWD, tmp, mtimes(e.MtimeNs), unix.AT_SYMLINK_NOFOLLOW)
	_, lerr := os.Lstat(to)
	if err := os.Rename(tmp, to); err != nil {
		os.Remove(tmp)
		return false, err
	}
	return lerr == nil, syncDir(filepath.Dir(to))
}

// restoreFile copies the snapshot's file from to to through a temp file,
// checking its hash on the way.
func restoreFile(from, to string, e *Entry, h *blake3.Hasher, buf []byte) (replaced bool, err error) {
	in, err := os.Open(from)
	if err != nil {
		return false, fmt.Errorf("the snapshot's copy: %w", err)
	}
	defer in.Close()
	tmp := tempBeside(to)
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return false, err
	}
	ok := false
	defer func() {
		if !ok {
			out.Close()
			os.Remove(tmp)
		}
	}()
	h.Reset()
	if _, err := io.CopyBuffer(io.MultiWriter(out, h), onlyReader{in}, buf); err != nil {
		return false, err
	}
	if hashOf(h) != e.Hash {
		return false, fmt.Errorf("the snapshot's copy %s does not match its manifest hash (corrupted; `tandem snapshot verify` checks them all); nothing was replaced", from)
	}
	if err := setMeta(out, e); err != nil {
		return false, err
	}
	if err := out.Sync(); err != nil {
		return false, err
	}
	if err := out.Close(); err != nil {
		return false, err
	}
	_, lerr := os.Lstat(to)
	if err := os.Rename(tmp, to); err != nil {
		return false, err
	}
	ok = true
	return lerr == nil, syncDir(filepath.Dir(to))
}
