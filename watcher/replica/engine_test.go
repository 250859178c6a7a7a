package replica

// These tests start two pipe nodes on loopback (alpha and beta, trusting
// each other's keys), each with a replica Engine over its own temp tree,
// index and conflict log, and most run the engines' scan loops (real
// inotify watchers) as the daemon does.

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tandemhost/tandem/internal/pipetest"

	"github.com/zeebo/blake3"

	"github.com/tandemhost/tandem/conflict"
	"github.com/tandemhost/tandem/watcher/index"
)

// newPair returns alpha and beta, each syncing its own directory, which
// trust each other. Nothing runs yet.
func newPair(t *testing.T) (alpha, beta *side) {
	t.Helper()
	base := t.TempDir()
	alpha = newSide(t, "alpha", "beta", filepath.Join(base, "alpha"))
	beta = newSide(t, "beta", "alpha", filepath.Join(base, "beta"))
	pipetest.Trust(t, alpha.Node, beta.Node)
	pipetest.Trust(t, beta.Node, alpha.Node)
	return alpha, beta
}

// connect runs both nodes with their engines registered.
func connect(t *testing.T, alpha, beta *side) {
	t.Helper()
	alpha.Start(t, "beta", beta.Addr(), alpha.eng.Register)
	beta.Start(t, "alpha", alpha.Addr(), beta.eng.Register)
}

// snapshot describes every path under root (type, mode, content hash and
// mtime, or link target), temp files left out.
func snapshot(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		if strings.HasPrefix(d.Name(), index.TmpPrefix) {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "symlink to " + target
		case fi.IsDir():
			out[rel] = fmt.Sprintf("dir %v", fi.Mode())
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h := blake3.Sum256(b)
			out[rel] = fmt.Sprintf("file %v %d bytes %s mtime %d", fi.Mode(), len(b), hex.EncodeToString(h[:8]), fi.ModTime().UnixNano())
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return out
}

// waitSame waits until beta's tree looks exactly like alpha's.
func waitSame(t *testing.T, alpha, beta *side) {
	t.Helper()
	var a, b map[string]string
	defer func() {
		if t.Failed() {
			t.Logf("alpha: %v\nbeta:  %v", a, b)
		}
	}()
	waitFor(t, "beta's tree to match alpha's", func() bool {
		a, b = snapshot(t, alpha.root), snapshot(t, beta.root)
		return maps.Equal(a, b)
	})
}

func mustWrite(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestEngineReplicatesTree(t *testing.T) {
	alpha, beta := newPair(t)
	// Before the engines run: found by the first scan.
	mustWrite(t, filepath.Join(alpha.root, "a.txt"), []byte("alpha's a"))
	mustWrite(t, filepath.Join(alpha.root, "dir/b.txt"), []byte("alpha's b"))
	mustWrite(t, filepath.Join(alpha.root, "dir/deeper/c.txt"), bytes.Repeat([]byte("compressible "), 200))
	big := randomBytes(1<<20 + 12345) // larger than InlineMax: Want and Ranges
	mustWrite(t, filepath.Join(alpha.root, "big.bin"), big)
	if err := os.Chmod(filepath.Join(alpha.root, "dir/b.txt"), 0o600); err != nil {
		t.Fatal(err)
	}
	alpha.runEngine(t)
	beta.runEngine(t)
	connect(t, alpha, beta)
	waitSame(t, alpha, beta)
	// beta's tree was empty: the small files came with their content, and
	// only the big one was asked for.
	for _, r := range beta.eng.roots {
		if n := r.asked.Load(); n != 1 {
			t.Errorf("beta asked for the content of %d files on its first sync into an empty tree, want 1 (big.bin)", n)
		}
	}

	// Live changes: found by the watcher.
	mustWrite(t, filepath.Join(alpha.root, "live.txt"), []byte("written while running"))
	mustWrite(t, filepath.Join(alpha.root, "a.txt"), []byte("alpha's a, second version"))
	if err := os.Remove(filepath.Join(alpha.root, "dir/b.txt")); err != nil {
		t.Fatal(err)
	}
	copy(big[500_000:], "a few bytes changed in the middle of the big file")
	mustWrite(t, filepath.Join(alpha.root, "big.bin"), big)
	mustWrite(t, filepath.Join(alpha.root, "new/dir/d.txt"), []byte("d"))
	waitSame(t, alpha, beta)

	// Every record beta holds came from alpha and stays alpha's: beta's
	// own scans of what it wrote found nothing new.
	checkOrigins(t, beta, "alpha")

	// A change made on beta goes the other way, and only it: nothing of
	// alpha's was sent back before it.
	mustWrite(t, filepath.Join(beta.root, "from-beta.txt"), []byte("beta's own"))
	waitSame(t, alpha, beta)
	if st := beta.status(); st.Sent != 1 {
		t.Errorf("beta sent %d changes, want 1 (its own file only): status %+v", st.Sent, st)
	}
	if st := alpha.status(); st.Applied != 1 {
		t.Errorf("alpha applied %d changes, want 1: status %+v", st.Applied, st)
	}
	if st := beta.status(); st.Applied == 0 || st.Halted != "" {
		t.Errorf("beta status %+v, want changes applied and not halted", st)
	}
}

// checkOrigins checks that every record of s's index except those under
// skip was made by origin.
func checkOrigins(t *testing.T, s *side, origin string, skip ...string) {
	t.Helper()
	err := s.db.Walk(rootName, "", func(r index.Record) error {
		if !slices.Contains(skip, r.Path) && r.Origin != origin {
			t.Errorf("%s's record of %s has origin %q, want %q", s.Name, r.Path, r.Origin, origin)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// putFile writes a file in s's tree and records it in s's index as a
// version made by origin.
func putFile(t *testing.T, s *side, path, content, origin string) {
	t.Helper()
	p := filepath.Join(s.root, path)
	mustWrite(t, p, []byte(content))
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.db.Put(rootName, index.Record{
		Path: path, Type: index.File, Size: fi.Size(), MtimeNs: fi.ModTime().UnixNano(),
		Mode: uint32(fi.Mode().Perm()), Hash: blake3.Sum256([]byte(content)),
		Vector: conflict.Vector{{Node: origin, Value: 1}}, Origin: origin,
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestEngineNeverSendsPeerVersionsBack: a record whose Origin is the peer
// (a version the peer made, applied here) is skipped by the sender.
func TestEngineNeverSendsPeerVersionsBack(t *testing.T) {
	alpha, beta := newPair(t)
	// beta's index: first a version alpha made, then one of beta's own.
	putFile(t, beta, "from-alpha.txt", "alpha made this", "alpha")
	putFile(t, beta, "mine.txt", "beta made this", "beta")
	connect(t, alpha, beta)
	// The sender goes in seq order: once mine.txt is applied on alpha,
	// from-alpha.txt was passed over.
	waitFor(t, "mine.txt on alpha", func() bool {
		b, err := os.ReadFile(filepath.Join(alpha.root, "mine.txt"))
		return err == nil && string(b) == "beta made this"
	})
	waitFor(t, "alpha's Ack to reach beta", func() bool { return beta.status().InFlight == 0 && !beta.status().LastAck.IsZero() })
	if _, err := os.Lstat(filepath.Join(alpha.root, "from-alpha.txt")); err == nil {
		t.Error("beta sent alpha's own version of from-alpha.txt back to it")
	}
	if st := beta.status(); st.Sent != 1 || st.Queued != 0 {
		t.Errorf("beta status %+v, want 1 change sent and none queued", st)
	}
	if st := alpha.status(); st.Applied != 1 || st.Sent != 0 {
		t.Errorf("alpha status %+v, want 1 change applied and none sent", st)
	}
	// alpha recorded mine.txt as beta's version: it is not sent back either.
	rec, ok, err := alpha.db.Get(rootName, "mine.txt")
	if err != nil || !ok || rec.Origin != "beta" {
		t.Fatalf("alpha's record of mine.txt = %+v, %v, %v; want origin beta", rec, ok, err)
	}
	alpha.eng.Notify(rootName)
	putFile(t, alpha, "alpha-after.txt", "alpha's own", "alpha")
	alpha.eng.Notify(rootName)
	waitFor(t, "alpha-after.txt on beta", func() bool {
		_, err := os.Lstat(filepath.Join(beta.root, "alpha-after.txt"))
		return err == nil
	})
	if st := alpha.status(); st.Sent != 1 {
		t.Errorf("alpha sent %d changes, want 1: mine.txt went back to beta", st.Sent)
	}
}

// TestEngineSpecialModes: setgid directories (common for shared web
// roots), sticky directories and setuid files replicate like any other.
func TestEngineSpecialModes(t *testing.T) {
	alpha, beta := newPair(t)
	shared := filepath.Join(alpha.root, "shared")
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o775|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(alpha.root, "after.txt"), []byte("after the setgid directory"))
	alpha.runEngine(t)
	beta.runEngine(t)
	connect(t, alpha, beta)
	waitSame(t, alpha, beta)
}

// TestEngineNameNotUTF8: a file whose name is not UTF-8 (legal on Linux,
// common in old archives) must not stop the rest of the tree replicating.
func TestEngineNameNotUTF8(t *testing.T) {
	alpha, beta := newPair(t)
	mustWrite(t, filepath.Join(alpha.root, "caf\xe9.txt"), []byte("latin-1 name"))
	alpha.runEngine(t)
	beta.runEngine(t)
	waitFor(t, "alpha to warn about caf\xe9.txt", func() bool { return alpha.Warned("not valid UTF-8", "caf") })
	connect(t, alpha, beta)
	mustWrite(t, filepath.Join(alpha.root, "plain.txt"), []byte("an ordinary file"))
	waitFor(t, "plain.txt on beta", func() bool {
		_, err := os.Lstat(filepath.Join(beta.root, "plain.txt"))
		return err == nil
	})
}

// TestEngineResumeAfterHalt: once the receiver's tree is resumed, the
// sender's changes flow again without waiting for the link to drop (the
// sender asks again every few seconds on the same session).
func TestEngineResumeAfterHalt(t *testing.T) {
	alpha, beta := newPair(t)
	beta.eng.Halt(rootName, "test halt")
	// beta's scan loop is not run: its first full scan would resume the
	// tree by itself.
	alpha.runEngine(t)
	connect(t, alpha, beta)
	waitFor(t, "alpha to hear that beta refuses the tree", func() bool { return alpha.Warned("peer refuses", "test halt") })
	beta.eng.Resume(rootName)
	mustWrite(t, filepath.Join(alpha.root, "after-resume.txt"), []byte("x"))
	waitFor(t, "after-resume.txt on beta", func() bool {
		_, err := os.Lstat(filepath.Join(beta.root, "after-resume.txt"))
		return err == nil
	})
	if n := alpha.Pipe.Status().Connects; n != 1 {
		t.Errorf("alpha connected %d times, want 1: the link was dropped to get replication going", n)
	}
}

// TestEngineSymlinkSettles: a replicated symlink is recorded on the
// receiver as the sender's version and never comes back.
func TestEngineSymlinkSettles(t *testing.T) {
	alpha, beta := newPair(t)
	mustWrite(t, filepath.Join(alpha.root, "a.txt"), []byte("target"))
	if err := os.Symlink("a.txt", filepath.Join(alpha.root, "l")); err != nil {
		t.Fatal(err)
	}
	alpha.runEngine(t)
	beta.runEngine(t)
	connect(t, alpha, beta)
	waitFor(t, "l on beta", func() bool {
		target, err := os.Readlink(filepath.Join(beta.root, "l"))
		return err == nil && target == "a.txt"
	})
	// A change on beta after it, to know beta's sender passed l.
	mustWrite(t, filepath.Join(beta.root, "marker"), []byte("m"))
	waitFor(t, "marker on alpha", func() bool {
		_, err := os.Lstat(filepath.Join(alpha.root, "marker"))
		return err == nil
	})
	checkOrigins(t, beta, "alpha", "marker")
	rec, _, err := beta.db.Get(rootName, "l")
	if err != nil || !slices.Equal(rec.Vector, conflict.Vector{{Node: "alpha", Value: 1}}) {
		t.Errorf("beta's record of l has vector %v (%v), want {alpha:1}", rec.Vector, err)
	}
	if st := beta.status(); st.Sent != 1 {
		t.Errorf("beta sent %d changes, want 1 (marker)", st.Sent)
	}
}

// A tree with more directories than inotify allows watches: the error
// shows in the status with the fix, and the tree is scanned instead of
// watched, so a change deep in an unwatched directory still replicates.
func TestEngineWatchLimitFallsBackToScans(t *testing.T) {
	alpha, beta := newPair(t)
	alpha.eng.opts.maxWatches = 3
	for _, d := range []string{"a", "b", "c", "d/e/f"} {
		mustWrite(t, filepath.Join(alpha.root, d, "file.txt"), []byte("in "+d))
	}
	alpha.runEngine(t)
	beta.runEngine(t)
	connect(t, alpha, beta)
	waitSame(t, alpha, beta)
	waitFor(t, "the watch limit in alpha's status", func() bool {
		return strings.Contains(alpha.eng.Local(rootName).Error, "sysctl fs.inotify.max_user_watches")
	})
	// A change where no watch is: found by the fallback scans.
	mustWrite(t, filepath.Join(alpha.root, "d/e/f/later.txt"), []byte("written where nothing watches"))
	waitSame(t, alpha, beta)
}
