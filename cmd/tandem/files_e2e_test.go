package main

// File replication end to end: two real daemons (separate processes, real
// SSH on loopback, real inotify on real directories) with an in-process
// latency and partition proxy between them.

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tandemhost/tandem/conflict"
	"github.com/tandemhost/tandem/internal/control"
	"github.com/tandemhost/tandem/internal/faultproxy"
)

type filePair struct {
	nodes   [2]*pairNode
	dirs    [2]string
	proxies map[string]*faultproxy.Proxy
	procs   [2]*daemonProc
}

func startFilePair(t testing.TB, oneWay time.Duration) *filePair {
	t.Helper()
	base := t.TempDir()
	fp := &filePair{proxies: map[string]*faultproxy.Proxy{}}
	extra := map[string]string{}
	for i, name := range []string{"alpha", "beta"} {
		fp.dirs[i] = filepath.Join(base, "files-"+name)
		if err := os.MkdirAll(fp.dirs[i], 0o755); err != nil {
			t.Fatal(err)
		}
		extra[name] = fmt.Sprintf("\n[[sync]]\nname = \"www\"\npath = %q\nexclude = [\"*.tmp\", \"cache/\"]\n", fp.dirs[i])
	}
	nodes, err := setupPair(filepath.Join(base, "nodes"), pairOptions{
		Dial:  proxyDial(t, fp.proxies, oneWay),
		SSH:   "heartbeat = \"200ms\"\ntimeout = \"1s\"\n",
		Extra: extra,
	})
	if err != nil {
		t.Fatal(err)
	}
	fp.nodes = nodes
	return fp
}

func (fp *filePair) start(t testing.TB) {
	for i, n := range fp.nodes {
		fp.procs[i] = startDaemon(t, n)
	}
	for _, n := range fp.nodes {
		waitPeer(t, n, "connected", func(p PeerStatus) bool { return p.Connected && p.Inbound })
	}
}

func write(t testing.TB, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls until cond holds (a polling interval, not synchronisation).
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func fileIs(path, want string) func() bool {
	return func() bool {
		b, err := os.ReadFile(path)
		return err == nil && string(b) == want
	}
}

func gone(path string) func() bool {
	return func() bool {
		_, err := os.Lstat(path)
		return os.IsNotExist(err)
	}
}

// snapshotTree describes every path under dir: type, mode, content or
// link target.
func snapshotTree(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // a receiver's temp file, there and gone
		}
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".tandem-tmp-") {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		if rel == "cache" || strings.HasSuffix(rel, ".tmp") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		desc := fi.Mode().String()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			desc += fmt.Sprintf(" %d %x", len(b), b[:min(len(b), 16)])
			if fi.Size() > 16 {
				desc += fmt.Sprintf(" mtime=%d", fi.ModTime().UnixNano())
			}
		}
		out[filepath.ToSlash(rel)] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffTrees(a, b map[string]string) string {
	var lines []string
	for k, v := range a {
		if b[k] != v {
			lines = append(lines, fmt.Sprintf("%s: %q vs %q", k, v, b[k]))
		}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			lines = append(lines, fmt.Sprintf("%s: missing vs %q", k, v))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func (fp *filePair) waitIdentical(t testing.TB, timeout time.Duration) {
	t.Helper()
	var last string
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		last = diffTrees(snapshotTree(t, fp.dirs[0]), snapshotTree(t, fp.dirs[1]))
		if last == "" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("trees differ after %v:\n%s", timeout, last)
}

func TestFilesReplicateBothWays(t *testing.T) {
	fp := startFilePair(t, 50*time.Millisecond)
	a, b := fp.dirs[0], fp.dirs[1]
	// Files present before the daemons start are synced by the initial scan.
	write(t, filepath.Join(a, "before/alpha.txt"), "from alpha before start")
	write(t, filepath.Join(b, "before/beta.txt"), "from beta before start")
	fp.start(t)
	waitFor(t, "initial sync to beta", 20*time.Second, fileIs(filepath.Join(b, "before/alpha.txt"), "from alpha before start"))
	waitFor(t, "initial sync to alpha", 20*time.Second, fileIs(filepath.Join(a, "before/beta.txt"), "from beta before start"))

	// Live changes, each way.
	write(t, filepath.Join(a, "index.html"), "<h1>hello</h1>")
	waitFor(t, "new file on beta", 10*time.Second, fileIs(filepath.Join(b, "index.html"), "<h1>hello</h1>"))
	write(t, filepath.Join(b, "uploads/2026/11/photo.jpg"), "jpeg bytes")
	waitFor(t, "nested new file on alpha", 10*time.Second, fileIs(filepath.Join(a, "uploads/2026/11/photo.jpg"), "jpeg bytes"))
	write(t, filepath.Join(b, "index.html"), "<h1>hello again</h1>")
	waitFor(t, "modified file on alpha", 10*time.Second, fileIs(filepath.Join(a, "index.html"), "<h1>hello again</h1>"))

	// Metadata, symlinks, empty directories, renames, deletes.
	if err := os.Chmod(filepath.Join(a, "index.html"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("index.html", filepath.Join(a, "home.html")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(a, "empty/dir"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(b, "uploads/2026"), filepath.Join(b, "uploads/archive")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(a, "before/alpha.txt")); err != nil {
		t.Fatal(err)
	}
	// Excluded paths stay where they are.
	write(t, filepath.Join(a, "cache/page.html"), "cached")
	write(t, filepath.Join(a, "upload.tmp"), "partial")
	fp.waitIdentical(t, 10*time.Second)
	if _, err := os.Stat(filepath.Join(a, "cache/page.html")); err != nil {
		t.Errorf("excluded file vanished on alpha: %v", err)
	}
	// waitIdentical compares whole trees, excluded files included: make
	// sure they did not travel, then check the rest arrived.
	for _, p := range []string{"uploads/archive/11/photo.jpg", "empty/dir", "home.html"} {
		if _, err := os.Lstat(filepath.Join(a, p)); err != nil {
			t.Errorf("%s missing on alpha: %v", p, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(b, "index.html")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode of index.html on beta = %v, %v; want 0600", fi.Mode(), err)
	}
	if target, err := os.Readlink(filepath.Join(b, "home.html")); err != nil || target != "index.html" {
		t.Errorf("symlink on beta = %q, %v; want a link to index.html", target, err)
	}

	// A large file goes over the bulk streams; a small edit to it travels
	// as a delta.
	big := make([]byte, 5<<20+12345)
	rand.Read(big)
	if err := os.WriteFile(filepath.Join(a, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "large file on beta", 20*time.Second, func() bool {
		got, err := os.ReadFile(filepath.Join(b, "big.bin"))
		return err == nil && bytes.Equal(got, big)
	})
	f, err := os.OpenFile(filepath.Join(a, "big.bin"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{big[3<<20] ^ 0xff}, 3<<20)
	f.Close()
	big[3<<20] ^= 0xff
	waitFor(t, "edited large file on beta", 20*time.Second, func() bool {
		got, err := os.ReadFile(filepath.Join(b, "big.bin"))
		return err == nil && bytes.Equal(got, big)
	})

	// A rename of the large file is done on beta from its own copy: the
	// content does not cross the link again.
	wire := fp.proxies["beta"].Stats().ToTarget
	os.MkdirAll(filepath.Join(a, "moved"), 0o755)
	if err := os.Rename(filepath.Join(a, "big.bin"), filepath.Join(a, "moved/big.bin")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "renamed large file on beta", 20*time.Second, func() bool {
		got, err := os.ReadFile(filepath.Join(b, "moved/big.bin"))
		return err == nil && bytes.Equal(got, big) && gone(filepath.Join(b, "big.bin"))()
	})
	if sent := fp.proxies["beta"].Stats().ToTarget - wire; sent > 256<<10 {
		t.Errorf("renaming a %d-byte file sent %d bytes to beta; want it done locally", len(big), sent)
	}

	// A symlink pointing out of the root is replicated as a link, never
	// followed: nothing outside the root is read or written through it.
	outside := t.TempDir()
	write(t, filepath.Join(outside, "secret.txt"), "not for replication")
	if err := os.Symlink(outside, filepath.Join(a, "escape")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "escaping symlink on beta", 10*time.Second, func() bool {
		target, err := os.Readlink(filepath.Join(b, "escape"))
		return err == nil && target == outside
	})
	entries, _ := os.ReadDir(outside)
	if len(entries) != 1 {
		t.Errorf("the directory the symlink points to holds %d entries, want just secret.txt", len(entries))
	}
	leftovers(t, a)
	leftovers(t, b)
}

// leftovers fails if a temp file of tandem's is left in dir.
func leftovers(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".tandem-tmp-") {
			t.Errorf("temp file left behind: %s", p)
		}
		return nil
	})
}

func TestFilesConflictsDuringPartition(t *testing.T) {
	fp := startFilePair(t, 20*time.Millisecond)
	a, b := fp.dirs[0], fp.dirs[1]
	write(t, filepath.Join(a, "page.html"), "v1")
	write(t, filepath.Join(a, "doomed.txt"), "v1")
	write(t, filepath.Join(a, "both-delete.txt"), "v1")
	fp.start(t)
	fp.waitIdentical(t, 20*time.Second)
	// Each sender must know where its peer is before the link drops, or
	// its queue cannot be counted during the partition.
	for _, n := range fp.nodes {
		waitSync(t, n, "the peer's position known", func(s SyncStatus) bool { return s.QueuedKnown })
	}

	// Partition: each side's link drops silently.
	for _, p := range fp.proxies {
		p.Blackhole(true)
	}
	for _, n := range fp.nodes {
		waitPeer(t, n, "link down in the partition", func(p PeerStatus) bool { return !p.Connected })
	}
	base := [2]int64{hashedFiles(t, fp.nodes[0]), hashedFiles(t, fp.nodes[1])}
	// Concurrent edits of the same file; beta's is newer.
	write(t, filepath.Join(a, "page.html"), "alpha's edit")
	old := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(a, "page.html"), old, old)
	write(t, filepath.Join(b, "page.html"), "beta's edit")
	// Delete on alpha, modify on beta: the modification wins.
	os.Remove(filepath.Join(a, "doomed.txt"))
	write(t, filepath.Join(b, "doomed.txt"), "beta keeps this")
	// Both delete: no conflict.
	os.Remove(filepath.Join(a, "both-delete.txt"))
	os.Remove(filepath.Join(b, "both-delete.txt"))
	// Both create the same new file with the same content: no conflict.
	write(t, filepath.Join(a, "same.txt"), "same")
	write(t, filepath.Join(b, "same.txt"), "same")
	// Let each side's watcher record its edits before healing.
	waitHashed(t, fp.nodes[0], base[0]+2) // page.html, same.txt
	waitHashed(t, fp.nodes[1], base[1]+3) // page.html, doomed.txt, same.txt
	// Status shows what waits for the peer while the link is down.
	for _, n := range fp.nodes {
		waitSync(t, n, "changes queued for the peer", func(s SyncStatus) bool { return s.Queued > 0 })
	}

	for _, p := range fp.proxies {
		p.Blackhole(false)
	}
	fp.waitIdentical(t, 30*time.Second)

	for i, dir := range fp.dirs {
		if got, _ := os.ReadFile(filepath.Join(dir, "page.html")); string(got) != "beta's edit" {
			t.Errorf("%s: page.html = %q, want the newer edit (beta's)", fp.nodes[i].Name, got)
		}
		matches, _ := filepath.Glob(filepath.Join(dir, "page.conflict-alpha-*.html"))
		if len(matches) != 1 {
			t.Errorf("%s: conflict copies of page.html = %v, want one page.conflict-alpha-*.html", fp.nodes[i].Name, matches)
		} else if got, _ := os.ReadFile(matches[0]); string(got) != "alpha's edit" {
			t.Errorf("%s: conflict copy holds %q, want alpha's edit", fp.nodes[i].Name, got)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, "doomed.txt")); string(got) != "beta keeps this" {
			t.Errorf("%s: doomed.txt = %q, want beta's modification to beat alpha's delete", fp.nodes[i].Name, got)
		}
		if _, err := os.Lstat(filepath.Join(dir, "both-delete.txt")); !os.IsNotExist(err) {
			t.Errorf("%s: both-delete.txt still exists", fp.nodes[i].Name)
		}
	}
	// Each node logged what it resolved; between them, both conflicts.
	kinds := map[string]bool{}
	for _, n := range fp.nodes {
		view, err := conflict.Load(n.StateDir())
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range view.List(conflict.Filter{}) {
			kinds[e.Path+" "+string(e.Kind)] = true
			if e.Path == "page.html" && (e.KeptAs == "" || e.Winner != "beta") {
				t.Errorf("%s: log entry %+v, want winner beta and the copy's path", n.Name, e)
			}
		}
	}
	for _, want := range []string{"page.html file", "doomed.txt delete"} {
		if !kinds[want] {
			t.Errorf("no conflict log entry for %s; have %v", want, kinds)
		}
	}
	if kinds["same.txt file"] || kinds["both-delete.txt delete"] {
		t.Errorf("identical changes were logged as conflicts: %v", kinds)
	}
}

// hashedFiles returns how many files n's scans have hashed since it started.
func hashedFiles(t *testing.T, n *pairNode) int64 {
	t.Helper()
	var st Status
	c := control.NewClient(control.SocketPath(n.StateDir()))
	if err := c.Get(context.Background(), "/status", &st); err != nil || len(st.Sync) == 0 {
		t.Fatalf("%s status: %v %+v", n.Name, err, st)
	}
	return st.Sync[0].HashedFiles
}

// waitHashed waits until n's scans have hashed at least want files, so a
// test knows local changes have been recorded.
func waitHashed(t *testing.T, n *pairNode, want int64) {
	t.Helper()
	waitFor(t, n.Name+" recorded its local changes", 10*time.Second, func() bool { return hashedFiles(t, n) >= want })
}

func TestFilesReceiverKilledMidTransfer(t *testing.T) {
	fp := startFilePair(t, 20*time.Millisecond)
	a, b := fp.dirs[0], fp.dirs[1]
	fp.start(t)
	// Slow the link to beta so the transfer is still going when beta dies.
	fp.proxies["beta"].SetBandwidth(4 << 20)
	big := make([]byte, 24<<20)
	rand.Read(big)
	// Written beside the tree and renamed in, so that it appears whole:
	// written in place, a write slowed past the debouncer's longest wait
	// (a loaded CI machine) had a shorter version sent whole first, which
	// then was on beta when the kill came.
	part := filepath.Join(filepath.Dir(a), "big.bin.part")
	if err := os.WriteFile(part, big, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(part, filepath.Join(a, "big.bin")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the transfer to start on beta", 20*time.Second, func() bool {
		m, _ := filepath.Glob(filepath.Join(b, ".tandem-tmp-*"))
		return len(m) > 0
	})
	fp.procs[1].cmd.Process.Kill()
	<-fp.procs[1].done
	if _, err := os.Lstat(filepath.Join(b, "big.bin")); !os.IsNotExist(err) {
		t.Fatalf("big.bin visible on beta after it was killed mid-transfer (err %v): a partial file", err)
	}
	fp.proxies["beta"].SetBandwidth(0)
	fp.procs[1] = startDaemon(t, fp.nodes[1])
	waitFor(t, "big.bin on beta after restart", 30*time.Second, func() bool {
		got, err := os.ReadFile(filepath.Join(b, "big.bin"))
		return err == nil && bytes.Equal(got, big)
	})
	leftovers(t, b)
}

func TestFilesVanishedRootHalts(t *testing.T) {
	fp := startFilePair(t, 10*time.Millisecond)
	a, b := fp.dirs[0], fp.dirs[1]
	for i := 0; i < 20; i++ {
		write(t, filepath.Join(a, fmt.Sprintf("site/page%d.html", i)), "content")
	}
	fp.start(t)
	fp.waitIdentical(t, 20*time.Second)
	before := snapshotTree(t, b)

	// The disk under alpha's tree goes away: an empty mount point remains.
	if err := os.Rename(a, a+".unmounted"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(a, 0o755); err != nil {
		t.Fatal(err)
	}
	st := waitSync(t, fp.nodes[0], "halted", func(s SyncStatus) bool { return s.Halted != "" })
	if st.Files != 20 {
		t.Errorf("alpha's index holds %d live files after the tree vanished, want all 20 kept", st.Files)
	}
	if !strings.Contains(st.Halted, "nothing is deleted on the peer") {
		t.Errorf("halt reason %q does not say what it means", st.Halted)
	}
	// Beta's changes wait: nothing lands in the empty mount point.
	write(t, filepath.Join(b, "during.html"), "written on beta during the outage")
	// The disk comes back: replication resumes, and beta never lost a file.
	if err := os.Remove(a); err != nil {
		t.Fatalf("the empty mount point got files while the tree was gone: %v", err)
	}
	if err := os.Rename(a+".unmounted", a); err != nil {
		t.Fatal(err)
	}
	waitSync(t, fp.nodes[0], "resumed", func(s SyncStatus) bool { return s.Halted == "" })
	waitFor(t, "beta's change from the outage on alpha", 20*time.Second,
		fileIs(filepath.Join(a, "during.html"), "written on beta during the outage"))
	write(t, filepath.Join(a, "after.html"), "after")
	waitFor(t, "a change after the tree came back", 20*time.Second, fileIs(filepath.Join(b, "after.html"), "after"))
	now := snapshotTree(t, b)
	delete(now, "after.html")
	delete(now, "during.html")
	if d := diffTrees(before, now); d != "" {
		t.Errorf("beta's tree changed while alpha's was gone:\n%s", d)
	}
}

// waitSync polls n's status until cond holds for its first tree.
func waitSync(t testing.TB, n *pairNode, what string, cond func(SyncStatus) bool) SyncStatus {
	t.Helper()
	c := control.NewClient(control.SocketPath(n.StateDir()))
	var st Status
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if err := c.Get(context.Background(), "/status", &st); err == nil && len(st.Sync) > 0 && cond(st.Sync[0]) {
			return st.Sync[0]
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	t.Fatalf("%s: timed out waiting for %s; status %+v", n.Name, what, st)
	return SyncStatus{}
}

func TestFilesWatcherOverflowMissesNothing(t *testing.T) {
	fp := startFilePair(t, 10*time.Millisecond)
	a, b := fp.dirs[0], fp.dirs[1]
	fp.start(t)
	// Directories first: events only come from watched ones.
	for d := 0; d < 50; d++ {
		os.MkdirAll(filepath.Join(a, fmt.Sprintf("flood/d%02d", d)), 0o755)
	}
	waitFor(t, "directories on beta", 30*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(b, "flood/d49"))
		return err == nil
	})
	limit, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events")
	if err != nil {
		t.Skip("no inotify queue limit to read:", err)
	}
	var queue int
	fmt.Sscan(strings.TrimSpace(string(limit)), &queue)
	// Freeze alpha so its inotify queue fills past the kernel's limit while
	// files appear: the kernel drops events and reports an overflow.
	alpha := fp.procs[0].cmd.Process
	if err := alpha.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	n := queue/2 + 100 // a create and a write event each
	for i := 0; i < n; i++ {
		write(t, filepath.Join(a, fmt.Sprintf("flood/d%02d/f%05d.txt", i%50, i)), fmt.Sprint(i))
	}
	if err := alpha.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitFor(t, fmt.Sprintf("all %d files on beta", n), 2*time.Minute, func() bool {
		count := 0
		filepath.WalkDir(filepath.Join(b, "flood"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() && !strings.HasPrefix(d.Name(), ".tandem-tmp-") {
				count++
			}
			return nil
		})
		return count == n
	})
	if !strings.Contains(fp.procs[0].stderr.String(), "inotify events lost") {
		t.Errorf("alpha's log does not mention the overflow; the test did not overflow the queue (limit %d)", queue)
	}
	fp.waitIdentical(t, 30*time.Second)
}

func TestFilesInitialSyncOfIdenticalTreesSendsNoContent(t *testing.T) {
	fp := startFilePair(t, 10*time.Millisecond)
	big := make([]byte, 2<<20)
	rand.Read(big)
	pages := make([]string, 200)
	for i := range pages {
		b := make([]byte, 4096)
		rand.Read(b) // incompressible: sending it would show
		pages[i] = string(b)
	}
	for _, dir := range fp.dirs {
		for i, page := range pages {
			write(t, filepath.Join(dir, fmt.Sprintf("pages/p%03d.html", i)), page)
		}
		if err := os.WriteFile(filepath.Join(dir, "video.bin"), big, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// One file differs: the conflict rules decide it, with a copy kept.
	write(t, filepath.Join(fp.dirs[0], "differs.txt"), "alpha's")
	write(t, filepath.Join(fp.dirs[1], "differs.txt"), "beta's")
	fp.start(t)
	fp.waitIdentical(t, 30*time.Second)
	matches, _ := filepath.Glob(filepath.Join(fp.dirs[0], "differs.conflict-*.txt"))
	if len(matches) != 1 {
		t.Errorf("conflict copies of differs.txt = %v, want one", matches)
	}
	// 200 x 4 KiB pages and a 2 MiB file are on both sides already.
	for name, p := range fp.proxies {
		if n := p.Stats().ToTarget; n > 512<<10 {
			t.Errorf("%d bytes went to %s for trees it already held; want only records and signatures", n, name)
		}
	}
}
