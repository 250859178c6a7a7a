package snapshot

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// linkWorkers is how many hard links are made at once: link(2) waits on
// the filesystem's journal and on the directory's lock, and a few in
// flight, in different directories, overlap those waits.
const linkWorkers = 4

// linker makes hard links from the previous snapshot on linkWorkers
// goroutines. Each destination directory goes to one worker (by a hash of
// its path), so workers do not queue on one directory's lock. A link
// refused with EMLINK (the inode has the most links the filesystem allows)
// is left for the builder to copy.
type linker struct {
	jobs [linkWorkers]chan linkJob
	wg   sync.WaitGroup
	mu   sync.Mutex // guards err and emlink
	err  error
	full []linkJob // refused with EMLINK
}

type linkJob struct {
	src, dst string
	e        *Entry
}

func newLinker() *linker {
	l := &linker{}
	for i := range l.jobs {
		l.jobs[i] = make(chan linkJob, 256)
		jobs := l.jobs[i]
		l.wg.Go(func() {
			// Links go through descriptors of the two directories, kept
			// while the jobs stay in them (they come in tree order), so
			// the kernel does not walk both full paths for every file.
			var src, dst dirFD
			defer src.close()
			defer dst.close()
			for j := range jobs {
				sfd, err := src.open(filepath.Dir(j.src))
				var dfd int
				if err == nil {
					dfd, err = dst.open(filepath.Dir(j.dst))
				}
				if err == nil {
					err = unix.Linkat(sfd, filepath.Base(j.src), dfd, filepath.Base(j.dst), 0)
				}
				if err == nil {
					continue
				}
				l.mu.Lock()
				if errors.Is(err, unix.EMLINK) && j.e.Type == File {
					l.full = append(l.full, j)
				} else if l.err == nil {
					l.err = fmt.Errorf("link %s from the previous snapshot: %w", j.e.Path, err)
				}
				l.mu.Unlock()
			}
		})
	}
	return l
}

// dirFD is an open directory, reused while the path stays the same.
type dirFD struct {
	path string
	fd   int
}

func (d *dirFD) open(path string) (int, error) {
	if d.path == path && d.path != "" {
		return d.fd, nil
	}
	d.close()
	fd, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	d.path, d.fd = path, fd
	return fd, nil
}

func (d *dirFD) close() {
	if d.path != "" {
		unix.Close(d.fd)
		d.path = ""
	}
}

// link queues a link; it returns an error an earlier link had.
func (l *linker) link(src, dst string, e *Entry) error {
	l.mu.Lock()
	err := l.err
	l.mu.Unlock()
	if err != nil {
		return err
	}
	c := *e
	dir := filepath.Dir(dst)
	h := uint32(2166136261) // FNV-1a
	for i := 0; i < len(dir); i++ {
		h = (h ^ uint32(dir[i])) * 16777619
	}
	l.jobs[h%linkWorkers] <- linkJob{src: src, dst: dst, e: &c}
	return nil
}

// finishLinks waits for the queued links and copies those refused.
func (b *builder) finishLinks() error {
	if b.links == nil {
		return nil
	}
	for _, c := range b.links.jobs {
		close(c)
	}
	b.links.wg.Wait()
	l := b.links
	b.links = nil
	if l.err != nil {
		return l.err
	}
	for _, j := range l.full {
		if err := j.e.parse(); err != nil {
			return err
		}
		if err := b.copyPrev(j.src, j.dst, j.e); err != nil {
			return err
		}
		b.tot.Linked--
	}
	return nil
}
