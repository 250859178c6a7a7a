package main

// End-to-end file replication benchmarks: two real daemons, each dialing
// the other through a proxy that adds 50 ms each way (100 ms round trip).
// Run: go test -run '^$' -bench BenchmarkFiles -benchtime 1x ./cmd/tandem

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/tandemhost/tandem/internal/control"
)

func BenchmarkFiles(b *testing.B) {
	fp := startFilePair(b, 50*time.Millisecond)
	fp.start(b)
	a, dst := fp.dirs[0], fp.dirs[1]
	wait := func(what string, cond func() bool) {
		deadline := time.Now().Add(2 * time.Minute)
		for !cond() {
			if time.Now().After(deadline) {
				b.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}

	b.Run("1KiB-new-file-latency", func(b *testing.B) {
		data := make([]byte, 1024)
		rand.Read(data)
		var lat []time.Duration
		run := time.Now().UnixNano()
		for i := 0; b.Loop(); i++ {
			name := fmt.Sprintf("lat-%d-%d.html", run, i)
			start := time.Now()
			if err := os.WriteFile(filepath.Join(a, name), data, 0o644); err != nil {
				b.Fatal(err)
			}
			wait(name, func() bool {
				fi, err := os.Stat(filepath.Join(dst, name))
				return err == nil && fi.Size() == 1024
			})
			lat = append(lat, time.Since(start))
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	})

	b.Run("10k-files-100-dirs", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			base := applied(b, fp.nodes[1])
			burst := fmt.Sprintf("burst%d-%d", time.Now().UnixNano(), i)
			start := time.Now()
			for d := 0; d < 100; d++ {
				dir := filepath.Join(a, burst, fmt.Sprintf("d%03d", d))
				os.MkdirAll(dir, 0o755)
				for f := 0; f < 100; f++ {
					os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d.txt", f)), []byte(fmt.Sprintf("file %d %d %d\n", i, d, f)), 0o644)
				}
			}
			// Creating the files here is the disk's own pace for 10k
			// creates; beta must create as many.
			written := time.Since(start)
			wait("10k files on beta", func() bool { return applied(b, fp.nodes[1]) >= base+10_000+101 })
			b.ReportMetric(time.Since(start).Seconds(), "s/burst")
			b.ReportMetric(written.Seconds(), "s-to-write-locally")
		}
	})

	big := make([]byte, 64<<20)
	rand.Read(big)
	b.Run("64MiB-new-file", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			name := fmt.Sprintf("big-%d.bin", i)
			base := applied(b, fp.nodes[1])
			start := time.Now()
			if err := os.WriteFile(filepath.Join(a, name), big, 0o644); err != nil {
				b.Fatal(err)
			}
			wait(name, func() bool { return applied(b, fp.nodes[1]) > base })
			b.ReportMetric(time.Since(start).Seconds(), "s/file")
		}
	})

	b.Run("1-byte-edit-of-64MiB", func(b *testing.B) {
		name := filepath.Join(a, "big-0.bin")
		for i := 0; b.Loop(); i++ {
			base := applied(b, fp.nodes[1])
			wire := fp.proxies["beta"].Stats().ToTarget
			start := time.Now()
			f, err := os.OpenFile(name, os.O_WRONLY, 0)
			if err != nil {
				b.Fatal(err)
			}
			f.WriteAt([]byte{byte(i)}, 32<<20+int64(i))
			f.Close()
			wait("edit on beta", func() bool { return applied(b, fp.nodes[1]) > base })
			b.ReportMetric(time.Since(start).Seconds(), "s/edit")
			b.ReportMetric(float64(fp.proxies["beta"].Stats().ToTarget-wire)/1024, "KiB-on-wire")
		}
	})
}

// applied returns how many peer changes n has applied since it started.
func applied(b testing.TB, n *pairNode) int64 {
	var st Status
	c := control.NewClient(control.SocketPath(n.StateDir()))
	if err := c.Get(context.Background(), "/status", &st); err != nil || len(st.Sync) == 0 {
		b.Fatalf("%s status: %v", n.Name, err)
	}
	return st.Sync[0].Applied
}
