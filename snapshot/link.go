package snapshot

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// linkWorkers is how many hard links are made at once: link(2) is mostly
// kernel CPU (the inode's link count and the directory block, both
// journalled) and waits on the directory's lock, so links in different
// directories on a few goroutines use the cores the builder leaves idle.
// On two cores, two to eight workers took the same time (BenchmarkSnapshot100k);
// four lets a bigger machine go faster.
const linkWorkers = 4

// linkBatch is how many links of one directory go to a worker at once.
const linkBatch = 128

// linker makes hard links from the previous snapshot on linkWorkers
// goroutines. The builder hands it the names of one directory at a time
// (add, in tree order); each destination directory goes to one worker (by
// a hash of its path), so workers do not queue on one directory's lock,
// and a worker links through descriptors of the two directories, so the
// kernel does not walk both full paths for every file. A link refused with
// EMLINK (the inode has the most links the filesystem allows) is left for
// the builder to copy.
type linker struct {
	jobs [linkWorkers]chan *linkDir
	wg   sync.WaitGroup
	mu   sync.Mutex // guards err and full
	err  error
	full []linkRefused // refused with EMLINK

	cur *linkDir // the directory being filled by add, not yet sent
}

// linkDir is a batch of links from one directory to another.
type linkDir struct {
	src, dst string // the directories
	worker   int
	names    []string
	ents     []*Entry
}

type linkRefused struct {
	src, dst string
	e        *Entry
}

func newLinker() *linker {
	l := &linker{}
	for i := range l.jobs {
		l.jobs[i] = make(chan *linkDir, 64)
		jobs := l.jobs[i]
		l.wg.Go(func() {
			var src, dst dirFD
			defer src.close()
			defer dst.close()
			for d := range jobs {
				l.linkAll(d, &src, &dst)
			}
		})
	}
	return l
}

func (l *linker) linkAll(d *linkDir, src, dst *dirFD) {
	sfd, err := src.open(d.src)
	var dfd int
	if err == nil {
		dfd, err = dst.open(d.dst)
	}
	for i, name := range d.names {
		if err == nil {
			err = unix.Linkat(sfd, name, dfd, name, 0)
		}
		if err == nil {
			continue
		}
		e := d.ents[i]
		l.mu.Lock()
		if errors.Is(err, unix.EMLINK) && e.Type == File {
			l.full = append(l.full, linkRefused{src: filepath.Join(d.src, name), dst: filepath.Join(d.dst, name), e: e})
			err = nil
		} else if l.err == nil {
			l.err = fmt.Errorf("link %s from the previous snapshot: %w", e.Path, err)
		}
		l.mu.Unlock()
		if err != nil {
			return
		}
	}
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

// add queues a link of srcDir/name to dstDir/name; e is the entry, which
// must not change until wait returns. It returns an error an earlier link
// had.
func (l *linker) add(srcDir, dstDir, name string, e *Entry) error {
	if l.cur != nil && (l.cur.dst != dstDir || len(l.cur.names) == linkBatch) {
		l.send()
	}
	if l.cur == nil {
		l.mu.Lock()
		err := l.err
		l.mu.Unlock()
		if err != nil {
			return err
		}
		h := uint32(2166136261) // FNV-1a
		for i := 0; i < len(dstDir); i++ {
			h = (h ^ uint32(dstDir[i])) * 16777619
		}
		l.cur = &linkDir{src: srcDir, dst: dstDir, worker: int(h % linkWorkers),
			names: make([]string, 0, linkBatch), ents: make([]*Entry, 0, linkBatch)}
	}
	l.cur.names = append(l.cur.names, name)
	l.cur.ents = append(l.cur.ents, e)
	return nil
}

func (l *linker) send() {
	l.jobs[l.cur.worker] <- l.cur
	l.cur = nil
}

// wait makes the links queued and returns those refused with EMLINK.
func (l *linker) wait() ([]linkRefused, error) {
	if l.cur != nil {
		l.send()
	}
	for _, c := range l.jobs {
		close(c)
	}
	l.wg.Wait()
	return l.full, l.err
}

// finishLinks waits for the queued links and copies those refused.
func (b *builder) finishLinks() error {
	if b.links == nil {
		return nil
	}
	full, err := b.links.wait()
	b.links = nil
	if err != nil {
		return err
	}
	for _, j := range full {
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
