package main

// Disk full on the receiver: two real daemons; beta's synced tree is a
// small tmpfs the test mounts (so it needs root). alpha writes more than
// fits; beta must keep no half-written file and no temp file, say in its
// status that the disk is full, and take everything once the tmpfs grows.

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mountTmpfs mounts a tmpfs of size on dir until the test ends. It skips
// the test when it cannot (not root), unless TANDEM_REQUIRE_INTEGRATION
// is set.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	skip := t.Skipf
	if os.Getenv("TANDEM_REQUIRE_INTEGRATION") != "" {
		skip = t.Fatalf
	}
	if os.Geteuid() != 0 {
		skip("mounting a tmpfs needs root")
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=755", "tmpfs", dir).CombinedOutput(); err != nil {
		skip("mount a tmpfs on %s: %v\n%s", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", dir, err, out)
		}
	})
}

// checkIntact reports beta's files that are neither absent nor identical
// to alpha's (or to their content in old, when given), and its temp files
// if temps is set. present counts those identical to alpha's.
func checkIntact(t *testing.T, alpha, beta string, old map[string][]byte, temps bool) (present int, bad []string) {
	t.Helper()
	err := filepath.WalkDir(beta, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(beta, p)
		if strings.HasPrefix(d.Name(), ".tandem-tmp-") {
			if temps {
				bad = append(bad, rel+" (temp file left)")
			}
			return nil
		}
		got, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		want, err := os.ReadFile(filepath.Join(alpha, rel))
		switch {
		case old[rel] != nil && bytes.Equal(got, old[rel]):
			// The previous version, whole: the new one has not come yet.
		case err != nil:
			bad = append(bad, fmt.Sprintf("%s (not on alpha: %v)", rel, err))
		case !bytes.Equal(got, want):
			bad = append(bad, fmt.Sprintf("%s (%d bytes, alpha's has %d)", rel, len(got), len(want)))
		default:
			present++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return present, bad
}

func TestDiskFullOnReceiver(t *testing.T) {
	fp := startFilePair(t, 2*time.Millisecond)
	mountTmpfs(t, fp.dirs[1], "8m")
	fp.start(t)

	// Files beta already has, which alpha then overwrites with larger
	// ones while the disk is full: beta must keep the old version whole.
	old := map[string][]byte{}
	for i := range 3 {
		name := filepath.Join("keep", fmt.Sprintf("k%d.txt", i))
		old[name] = []byte(fmt.Sprintf("version 1 of %s\n", name))
		write(t, filepath.Join(fp.dirs[0], name), string(old[name]))
	}
	for name, b := range old {
		waitFor(t, name+" on beta", 30*time.Second, fileIs(filepath.Join(fp.dirs[1], name), string(b)))
	}

	// 24 files of 1 MiB (incompressible) into an 8 MiB tree, a few small
	// ones among them.
	const big, n = 1 << 20, 24
	want := map[string][]byte{}
	for i := range n {
		size := big
		if i%6 == 5 {
			size = 100
		}
		b := make([]byte, size)
		rand.Read(b)
		name := filepath.Join("data", fmt.Sprintf("f%02d.bin", i))
		want[name] = b
		write(t, filepath.Join(fp.dirs[0], name), string(b))
		if i == n/2 {
			for name := range old {
				b := make([]byte, big)
				rand.Read(b)
				want[name] = b
				write(t, filepath.Join(fp.dirs[0], name), string(b))
			}
		}
	}

	// beta says its disk is full, in its status.
	var syncErr string
	waitFor(t, "beta's status to report the full disk", 60*time.Second, func() bool {
		st := statusCLI(t, fp.nodes[1])
		for _, s := range st.Sync {
			if strings.Contains(strings.ToLower(s.Error+" "+s.Halted), "no space") {
				syncErr = s.Error + " " + s.Halted
				return true
			}
		}
		return false
	})
	t.Logf("beta's status while full: %q", syncErr)

	// While full: whatever is on beta is whole. Look a few times, as
	// retries come and go.
	present := 0
	for range 5 {
		var bad []string
		present, bad = checkIntact(t, fp.dirs[0], fp.dirs[1], old, false)
		if len(bad) > 0 {
			t.Errorf("while the disk is full, beta holds files that are not alpha's: %q", bad)
			break
		}
		time.Sleep(200 * time.Millisecond) // a look every so often, not a synchronisation
	}
	if present >= len(want) {
		t.Fatalf("all %d files fit in the 8 MiB tmpfs: the test did not fill the disk", present)
	}
	_, temps := checkIntact(t, fp.dirs[0], fp.dirs[1], old, true)
	t.Logf("while full: %d of %d files on beta as alpha has them; temp files and others: %q", present, len(want), temps)

	// Room again: everything arrives, nothing is left over.
	if out, err := exec.Command("mount", "-o", "remount,size=64m", fp.dirs[1]).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v\n%s", err, out)
	}
	started := time.Now()
	var bad []string
	waitFor(t, "every file on beta once the disk has room", 90*time.Second, func() bool {
		present, bad = checkIntact(t, fp.dirs[0], fp.dirs[1], old, true)
		for _, b := range bad {
			// Temp files may still be in use; a file that is neither
			// alpha's nor the old version is corrupt at any time.
			if !strings.HasSuffix(b, "(temp file left)") {
				t.Fatalf("beta holds a file that is not alpha's: %s", b)
			}
		}
		return present == len(want) && len(bad) == 0
	})
	t.Logf("all %d files on beta %v after the disk grew", len(want), time.Since(started).Round(time.Millisecond))
	waitFor(t, "beta's sync error to clear", 30*time.Second, func() bool {
		st := statusCLI(t, fp.nodes[1])
		return len(st.Sync) > 0 && st.Sync[0].Error == "" && st.Sync[0].Halted == ""
	})
	for name, b := range want {
		got, err := os.ReadFile(filepath.Join(fp.dirs[1], name))
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("beta %s: %d bytes, %v; want alpha's %d bytes", name, len(got), err, len(b))
		}
	}
}
