package snapshot

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// linkWorkers is how many hard links are made at once: link(2) waits on
// the filesystem's journal, and a few in flight overlap those waits.
const linkWorkers = 4

// linker makes hard links from the previous snapshot on linkWorkers
// goroutines. A link refused with EMLINK (the inode has the most links the
// filesystem allows) is left for the builder to copy.
type linker struct {
	jobs chan linkJob
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
	l := &linker{jobs: make(chan linkJob, 256)}
	for range linkWorkers {
		l.wg.Go(func() {
			// Links go through descriptors of the two directories, kept
			// while the jobs stay in them (they come in tree order), so
			// the kernel does not walk both full paths for every file.
			var src, dst dirFD
			defer src.close()
			defer dst.close()
			for j := range l.jobs {
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
	l.jobs <- linkJob{src: src, dst: dst, e: &c}
	return nil
}

// finishLinks waits for the queued links and copies those refused.
func (b *builder) finishLinks() error {
	if b.links == nil {
		return nil
	}
	close(b.links.jobs)
	b.links.wg.Wait()
	l := b.links
	b.links = nil
	if l.err != nil {
		return l.err
	}
	for _, j := range l.full {
		if err := b.copyPrev(j.src, j.dst, j.e); err != nil {
			return err
		}
		b.tot.Linked--
	}
	return nil
}
