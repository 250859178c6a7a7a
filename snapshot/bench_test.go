package snapshot

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tandemhost/tandem/watcher/index"
)

// BenchmarkSnapshot100k measures the second snapshot of a 100,000-file
// tree (about 400 MB, 1,000 directories) after 1% of the files changed,
// against rsnapshot 1.4.5 in its default cp -al mode on the same tree and
// change set, when rsnapshot is installed. It builds the tree in a temp dir
// and removes it at the end. Run it alone:
//
//	go test ./snapshot -run '^$' -bench Snapshot100k -benchtime 1x
//
// TANDEM_BENCH_FILES changes the number of files (average size stays 4 KB).
func BenchmarkSnapshot100k(b *testing.B) {
	files := 100000
	if v := os.Getenv("TANDEM_BENCH_FILES"); v != "" {
		files, _ = strconv.Atoi(v)
	}
	base := b.TempDir()
	www := filepath.Join(base, "www")
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 8192)
	var paths []string
	var sizes []int
	var total int64
	for i := 0; i < files; i++ {
		dir := filepath.Join(www, fmt.Sprintf("d%02d", i/10000), fmt.Sprintf("s%03d", i/100%100))
		if i%100 == 0 {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		n := rng.IntN(8193)
		for j := range buf[:n] {
			buf[j] = byte(rng.Uint32())
		}
		p := filepath.Join(dir, fmt.Sprintf("f%05d.dat", i))
		if err := os.WriteFile(p, buf[:n], 0o644); err != nil {
			b.Fatal(err)
		}
		paths = append(paths, p)
		sizes = append(sizes, n)
		total += int64(n)
	}
	dbPath := filepath.Join(base, "index.db")
	db, err := index.Open(dbPath, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	scan := func() time.Duration {
		start := time.Now()
		if _, err := index.Scan(context.Background(), db, "www", www, "alpha", index.ScanOptions{}); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	scan()
	store := NewStore(filepath.Join(base, "snapshots"), nil)
	opts := TakeOptions{Roots: []Root{{Name: "www", Dir: www}}, Index: IndexChanges(db, dbPath)}
	clock := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	opts.Now = func() time.Time { return clock }
	first, err := store.Take(context.Background(), opts)
	if err != nil {
		b.Fatal(err)
	}
	rsnap := newRsnapshot(b, base, www)
	if rsnap != nil {
		rsnap.run(b) // the first, full copy
	}

	rounds := 3
	if v := os.Getenv("TANDEM_BENCH_ROUNDS"); v != "" {
		rounds, _ = strconv.Atoi(v)
	}
	b.Logf("tree: %d files, %d dirs, %.0f MB", files, files/100+files/10000+1, float64(total)/1e6)
	prev := first
	var tandemTimes, rsTimes []float64
	b.ResetTimer()
	for round := 1; round <= rounds; round++ {
		b.StopTimer()
		// Change 1% of the files in place: new content, same size.
		var changed int64
		for _, i := range rng.Perm(files)[:files/100] {
			n := sizes[i]
			for j := range buf[:n] {
				buf[j] = byte(rng.Uint32())
			}
			if err := os.WriteFile(paths[i], buf[:n], 0o644); err != nil {
				b.Fatal(err)
			}
			changed += int64(n)
		}
		scanTime := scan() // what the watcher does as the changes happen
		var tandemTime, rsTime time.Duration
		var second Info
		takeTandem := func() {
			clock = clock.Add(time.Hour)
			if p := os.Getenv("TANDEM_BENCH_CPUPROFILE"); p != "" && round == 1 {
				f, err := os.Create(p)
				if err != nil {
					b.Fatal(err)
				}
				pprof.StartCPUProfile(f)
				defer pprof.StopCPUProfile()
			}
			b.StartTimer()
			start := time.Now()
			var err error
			second, err = store.Take(context.Background(), opts)
			tandemTime = time.Since(start)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
		}
		takeRsnapshot := func() {
			if rsnap == nil {
				return
			}
			start := time.Now()
			rsnap.run(b)
			rsTime = time.Since(start)
		}
		// Alternate who goes first, so neither always finds the caches
		// the other warmed.
		if round%2 == 1 {
			takeTandem()
			takeRsnapshot()
		} else {
			takeRsnapshot()
			takeTandem()
		}
		if second.Totals.Copied != int64(files/100) {
			b.Errorf("snapshot copied %d files, want %d", second.Totals.Copied, files/100)
		}
		uniq := duExtra(b, store.Path(prev.ID), store.Path(second.ID))
		treeUniq := duExtra(b, store.Path(prev.ID), store.RootPath(second.ID, "www"))
		manifest, _ := os.Stat(filepath.Join(store.Path(second.ID), manifestName))
		tandemTimes = append(tandemTimes, tandemTime.Seconds())
		b.Logf("round %d: changed %d files, %.2f MB (index scan of the change %.2fs)", round, files/100, float64(changed)/1e6, scanTime.Seconds())
		fileBlocks, dirBlocks := blocksOf(b, store.RootPath(second.ID, "www"))
		b.Logf("  tandem:    %.2fs, %.2f MB new on disk: tree %.2f MB (copied files' blocks %.2f MB, directories %.2f MB), manifest %.2f MB",
			tandemTime.Seconds(), float64(uniq)/1e6, float64(treeUniq)/1e6, float64(fileBlocks)/1e6, float64(dirBlocks)/1e6, float64(manifest.Size())/1e6)
		if rsnap != nil {
			rsUniq := duExtra(b, filepath.Join(rsnap.root, "hourly.1"), filepath.Join(rsnap.root, "hourly.0"))
			rsTimes = append(rsTimes, rsTime.Seconds())
			b.Logf("  rsnapshot: %.2fs, %.2f MB new on disk (cp -al)", rsTime.Seconds(), float64(rsUniq)/1e6)
			b.ReportMetric(float64(rsUniq)/1e6, "rsnapshot-new-MB")
		}
		b.ReportMetric(float64(changed)/1e6, "changed-MB")
		b.ReportMetric(float64(uniq)/1e6, "tandem-new-MB")
		b.ReportMetric(float64(treeUniq)/1e6, "tandem-tree-new-MB")
		prev = second
	}
	b.ReportMetric(median(tandemTimes), "tandem-s")
	if len(rsTimes) > 0 {
		b.ReportMetric(median(rsTimes), "rsnapshot-s")
	}
}

// blocksOf returns the disk blocks (bytes) of the files under dir that
// have one link (copied, not shared) and of its directories.
func blocksOf(b *testing.B, dir string) (files, dirs int64) {
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		switch {
		case d.IsDir():
			dirs += st.Blocks * 512
		case st.Nlink == 1:
			files += st.Blocks * 512
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return files, dirs
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

type rsnapshot struct {
	conf, root string
}

// newRsnapshot writes an rsnapshot.conf backing up www, or returns nil
// when rsnapshot is not installed.
func newRsnapshot(b *testing.B, base, www string) *rsnapshot {
	if _, err := exec.LookPath("rsnapshot"); err != nil {
		b.Logf("rsnapshot not installed: no comparison")
		return nil
	}
	r := &rsnapshot{conf: filepath.Join(base, "rsnapshot.conf"), root: filepath.Join(base, "rsnap")}
	conf := strings.Join([]string{
		"config_version\t1.2",
		"snapshot_root\t" + r.root + "/",
		"cmd_cp\t/bin/cp",
		"cmd_rm\t/bin/rm",
		"cmd_rsync\t/usr/bin/rsync",
		"retain\thourly\t6",
		"verbose\t1",
		"lockfile\t" + filepath.Join(base, "rsnapshot.pid"),
		"backup\t" + www + "/\tlocalhost/",
		"",
	}, "\n")
	if err := os.WriteFile(r.conf, []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	return r
}

func (r *rsnapshot) run(b *testing.B) {
	if out, err := exec.Command("rsnapshot", "-c", r.conf, "hourly").CombinedOutput(); err != nil {
		b.Fatalf("rsnapshot: %v\n%s", err, out)
	}
}

// duExtra returns the bytes of disk blocks under next that are not shared
// with prev (du counts each inode once, in the first tree that has it).
func duExtra(b *testing.B, prev, next string) int64 {
	out, err := exec.Command("du", "-s", "-B1", prev, next).Output()
	if err != nil {
		b.Fatalf("du: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	f := strings.Fields(lines[len(lines)-1])
	n, _ := strconv.ParseInt(f[0], 10, 64)
	return n
}
