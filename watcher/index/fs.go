package index

import (
	"errors"
	"io/fs"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// The scanner reaches every path through directory file descriptors opened
// one component at a time with O_NOFOLLOW, and looks at entries with
// fstatat/openat relative to them: a directory swapped for a symlink during
// the scan makes the walk stop there, never read what the link points to.

// dirHandle is an open directory shared by the jobs that look inside it.
type dirHandle struct {
	fd   int
	refs atomic.Int32
}

func newDirHandle(fd int) *dirHandle {
	h := &dirHandle{fd: fd}
	h.refs.Store(1)
	return h
}

func (h *dirHandle) acquire() *dirHandle { h.refs.Add(1); return h }

func (h *dirHandle) release() {
	if h.refs.Add(-1) == 0 {
		unix.Close(h.fd)
	}
}

// openDir opens rel ("" for the root) below rootfd without following any
// symlink on the way.
func openDir(rootfd int, rel string) (int, error) {
	fd, err := unix.Openat(rootfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	for rel != "" && err == nil {
		var name string
		name, rel, _ = strings.Cut(rel, "/")
		var next int
		next, err = unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		fd = next
	}
	if err != nil {
		return -1, err
	}
	return fd, nil
}

// gone reports whether err means the path is not there (any more), or is
// not what was expected on the way to it (a file or a symlink where a
// directory was).
func gone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP)
}

// readNames lists the directory open as fd, without "." and "..".
func readNames(fd int) ([]string, error) {
	var names []string
	err := eachName(fd, func(name string) bool {
		names = append(names, name)
		return true
	})
	return names, err
}

// eachName calls fn for the names in the directory open as fd, without "."
// and "..", until fn returns false.
func eachName(fd int, fn func(string) bool) error {
	buf := make([]byte, 32<<10)
	var names []string
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n <= 0 {
			return nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names[:0])
		for _, name := range names {
			if !fn(name) {
				return nil
			}
		}
	}
}

// readLink reads the target of symlink name in directory dirfd.
func readLink(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
		if size > MaxTargetLen {
			return "", unix.ENAMETOOLONG
		}
	}
}

func typeOf(mode uint32) Type {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return File
	case unix.S_IFDIR:
		return Dir
	case unix.S_IFLNK:
		return Symlink
	}
	return 0
}

func kindOf(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	}
	return "unknown"
}

// permOf converts st_mode's permission bits to Go's representation.
func permOf(mode uint32) uint32 {
	m := fs.FileMode(mode & 0o777)
	if mode&unix.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if mode&unix.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if mode&unix.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return uint32(m)
}

// fromStat fills the fields of a record lstat tells, except a symlink's
// target and a file's hash.
func fromStat(rel string, st *unix.Stat_t) Record {
	r := Record{
		Path:    rel,
		Type:    typeOf(st.Mode),
		Mode:    permOf(st.Mode),
		UID:     st.Uid,
		GID:     st.Gid,
		Ino:     uint64(st.Ino),
		Dev:     uint64(st.Dev),
		CtimeNs: st.Ctim.Nano(),
	}
	if r.Type != Dir {
		r.Size = st.Size
	}
	// A symlink's mtime is not kept: the receiver cannot set it through
	// os.Root, and a difference that can never settle would bounce
	// between the nodes forever.
	if r.Type == File {
		r.MtimeNs = st.Mtim.Nano()
	}
	return r
}

// statSame reports whether the path the scan sees (cur, from lstat and, for
// a symlink, readlink) is the one old was made from: nothing to hash or store.
func statSame(old, cur *Record) bool {
	return !old.Deleted && old.CtimeNs != 0 && old.Type == cur.Type &&
		old.Ino == cur.Ino && old.Dev == cur.Dev && old.CtimeNs == cur.CtimeNs &&
		old.Size == cur.Size && old.MtimeNs == cur.MtimeNs && old.Mode == cur.Mode &&
		old.UID == cur.UID && old.GID == cur.GID && old.Target == cur.Target
}

// sameFile reports whether two fstats of one open file show no change.
func sameFile(a, b *unix.Stat_t) bool {
	return a.Ino == b.Ino && a.Size == b.Size && a.Mtim == b.Mtim && a.Ctim == b.Ctim
}
