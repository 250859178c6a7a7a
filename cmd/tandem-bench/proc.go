package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a program the bench started, in its own process group so that
// stopping it also stops what it started (rsync and ssh under lsyncd).
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
	log  *os.File
}

// startProc starts argv with its output appended to logPath.
func startProc(name, logPath string, env []string, argv ...string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), log: f}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after grace, and
// waits for the process.
func (p *proc) stop(grace time.Duration) {
	if p == nil {
		return
	}
	pgid := p.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
	}
	// Whatever is left in the group (a child that ignored the TERM).
	syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.done
	p.log.Close()
}

// descendants returns roots and every process below them, from /proc.
func descendants(roots []int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil {
			children[st.ppid] = append(children[st.ppid], pid)
		}
	}
	var out []int
	queue := append([]int(nil), roots...)
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		out = append(out, pid)
		queue = append(queue, children[pid]...)
	}
	return out
}

type procStat struct {
	ppid int
	cpu  time.Duration // user + system
}

// readStat reads the parent and CPU time of a process from /proc/pid/stat.
func readStat(pid int) (procStat, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// The fields after the ")" that ends the command name: state, ppid, ...,
	// utime and stime are the 12th and 13th, in clock ticks (100 Hz).
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ppid, _ := strconv.Atoi(f[1])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return procStat{ppid: ppid, cpu: time.Duration(ut+st) * 10 * time.Millisecond}, nil
}

// rss returns the resident set size of a process in bytes (0 if it is gone).
func rss(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// idleCost measures what the process trees under roots cost over d: CPU as
// a percentage of one core, and their summed RSS at the end.
func idleCost(roots []int, d time.Duration, wait func(time.Duration) error) (cpuPct float64, rssBytes int64, err error) {
	cpu := func(pids []int) map[int]time.Duration {
		m := map[int]time.Duration{}
		for _, pid := range pids {
			if st, err := readStat(pid); err == nil {
				m[pid] = st.cpu
			}
		}
		return m
	}
	before := cpu(descendants(roots))
	t0 := time.Now()
	if err := wait(d); err != nil {
		return 0, 0, err
	}
	pids := descendants(roots)
	after := cpu(pids)
	elapsed := time.Since(t0)
	var used time.Duration
	for pid, c := range after {
		used += c - before[pid] // a process born meanwhile counts from zero
	}
	for _, pid := range pids {
		rssBytes += rss(pid)
	}
	return 100 * used.Seconds() / elapsed.Seconds(), rssBytes, nil
}
