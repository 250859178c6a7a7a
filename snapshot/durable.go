package snapshot

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// syncer makes what a snapshot writes durable: it fsyncs each copied
// file as soon as it is written, on a few goroutines (the filesystem
// commits concurrent fsyncs together, while the snapshot goes on), and
// each directory once it is complete. Past syncEach files it stops
// syncing them one by one and syncs the whole filesystem at the end
// instead (a full copy: one writeback beats a hundred thousand fsyncs).
type syncer struct {
	jobs chan func() error
	wg   sync.WaitGroup
	mu   sync.Mutex // guards err, files, dirs, waited
	err  error
	// files synced one by one so far; dirs, one of the snapshot's
	// directories to syncfs on when files went past syncEach.
	files  int
	dirs   string
	waited bool
}

const (
	syncWorkers = 8
	syncEach    = 4000
)

func newSyncer() *syncer {
	s := &syncer{jobs: make(chan func() error, 1024)}
	for range syncWorkers {
		s.wg.Go(func() {
			for job := range s.jobs {
				if err := job(); err != nil {
					s.mu.Lock()
					if s.err == nil {
						s.err = err
					}
					s.mu.Unlock()
				}
			}
		})
	}
	return s
}

// file takes f, a file just written: it is synced and closed.
func (s *syncer) file(f *os.File) {
	s.mu.Lock()
	s.files++
	many := s.files > syncEach
	if many && s.dirs == "" {
		s.dirs = filepath.Dir(f.Name())
	}
	s.mu.Unlock()
	if many {
		if err := f.Close(); err != nil {
			s.fail(fmt.Errorf("close %s: %w", f.Name(), err))
		}
		return
	}
	s.jobs <- func() error {
		err := f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("sync %s: %w", f.Name(), err)
		}
		return nil
	}
}

// dir syncs directory p, which must be complete.
func (s *syncer) dir(p string) {
	s.jobs <- func() error { return syncDir(p) }
}

func (s *syncer) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
}

// wait waits for every sync queued and returns the first error. Only the
// first call waits; later ones return the same error.
func (s *syncer) wait() error {
	s.mu.Lock()
	if s.waited {
		defer s.mu.Unlock()
		return s.err
	}
	s.waited = true
	s.mu.Unlock()
	close(s.jobs)
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil && s.dirs != "" {
		f, err := os.Open(s.dirs)
		if err == nil {
			err = unix.Syncfs(int(f.Fd()))
			f.Close()
		}
		if err != nil {
			s.err = fmt.Errorf("syncfs: %w", err)
		}
	}
	return s.err
}
