//go:build unix

package conflict

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockFile takes an exclusive advisory lock on f, held until f is closed,
// so that a second daemon cannot append to the same log.
func lockFile(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return fmt.Errorf("in use by another process (is a tandem daemon already running with this state dir?)")
	}
	if err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	return nil
}

// syncDir fsyncs a directory so that a file just created in it survives a
// crash.
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
