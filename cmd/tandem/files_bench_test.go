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
	"strings"
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
	var bigName string
	b.Run("64MiB-new-file", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			rand.Read(big[:4096]) // new content each time: nothing to reuse
			name := fmt.Sprintf("big-%d-%d.bin", time.Now().UnixNano(), i)
			bigName = name
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
		name := filepath.Join(a, bigName)
		for i := 0; b.Loop(); i++ {
			base := applied(b, fp.nodes[1])
			wire := fp.proxies["beta"].Stats().ToTarget
			start := time.Now()
			f, err := os.OpenFile(name, os.O_WRONLY, 0)
			if err != nil {
				b.Fatal(err)
			}
			f.WriteAt([]byte{big[32<<20+i] ^ 0xff}, 32<<20+int64(i))
			big[32<<20+i] ^= 0xff
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

// BenchmarkIdle100kFiles syncs a 100,000-file tree, then measures what the
// two daemons cost while nothing changes: CPU over 10 s and resident memory.
func BenchmarkIdle100kFiles(b *testing.B) {
	fp := startFilePair(b, 50*time.Millisecond)
	for d := 0; d < 1000; d++ {
		dir := filepath.Join(fp.dirs[0], fmt.Sprintf("d%03d/e%d", d/10, d%10))
		os.MkdirAll(dir, 0o755)
		for f := 0; f < 100; f++ {
			os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d.html", f)), []byte(fmt.Sprintf("<p>%d %d</p>\n", d, f)), 0o644)
		}
	}
	start := time.Now()
	fp.start(b)
	deadline := time.Now().Add(10 * time.Minute)
	for applied(b, fp.nodes[1]) < 100_000 {
		if time.Now().After(deadline) {
			b.Fatal("initial sync of 100k files did not finish in 10 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.ReportMetric(time.Since(start).Seconds(), "s-initial-sync-100k")
	for b.Loop() {
		for i, p := range fp.procs {
			cpu0 := procCPU(b, p.cmd.Process.Pid)
			t0 := time.Now()
			time.Sleep(10 * time.Second) // measuring an idle period, not waiting for an event
			cpu := procCPU(b, p.cmd.Process.Pid) - cpu0
			b.ReportMetric(100*cpu.Seconds()/time.Since(t0).Seconds(), fp.nodes[i].Name+"-idle-cpu-%")
			b.ReportMetric(float64(procRSS(b, p.cmd.Process.Pid))/(1<<20), fp.nodes[i].Name+"-rss-MiB")
		}
	}
}

// procCPU returns the user+system CPU time of a process from /proc.
func procCPU(b testing.TB, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the ")" that ends the command name; utime and stime
	// are the 12th and 13th of them, in clock ticks (100 Hz on Linux).
	s := string(data)
	s = s[strings.LastIndexByte(s, ')')+2:]
	f := strings.Fields(s)
	var ut, st int64
	fmt.Sscan(f[11], &ut)
	fmt.Sscan(f[12], &st)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// procRSS returns the resident set size of a process in bytes.
func procRSS(b testing.TB, pid int) int64 { return procMem(b, pid, "VmRSS:") }

// procPeakRSS returns the most a process has had resident, in bytes.
func procPeakRSS(b testing.TB, pid int) int64 { return procMem(b, pid, "VmHWM:") }

// procMem returns a size from /proc/PID/status, in bytes.
func procMem(b testing.TB, pid int, field string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb << 10
		}
	}
	return 0
}
