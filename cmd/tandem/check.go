package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/tandemhost/tandem/deploy"
	failoverdns "github.com/tandemhost/tandem/failover/dns"
	"github.com/tandemhost/tandem/internal/control"
)

// maxClockOffset is the clock difference `check` tolerates between the
// peers: conflict winners are chosen by mtime, so clocks must agree.
const maxClockOffset = time.Second

func cmdCheck(e *env, args []string) int {
	cfg, ok := e.loadConfig()
	if !ok {
		return exitUsage
	}
	failed := 0
	report := func(ok bool, what, detail string) {
		mark := "ok  "
		if !ok {
			mark = "FAIL"
			failed++
		}
		if detail != "" {
			what += ": " + detail
		}
		fmt.Fprintf(e.stdout, "%s %s\n", mark, what)
	}
	report(true, "config "+e.configPath, "")
	for _, err := range cfg.CheckFiles() {
		report(false, "key files", err.Error())
	}
	if err := deploy.CheckStateDir(cfg.StateDir); err != nil {
		report(false, "state dir", err.Error())
	}
	for _, c := range localChecks() {
		for _, r := range c.run(e.ctx, cfg) {
			report(r.ok, r.what, r.detail)
		}
	}
	signer, err := deploy.LoadKey(deploy.KeyPath(cfg.StateDir))
	if err != nil {
		report(false, "node key", err.Error())
		fmt.Fprintf(e.stdout, "%d check(s) failed\n", failed)
		return exitFailure
	}
	report(true, "node key "+deploy.KeyPath(cfg.StateDir), deploy.AuthorizedLine(signer.PublicKey(), ""))

	peer := cfg.Peers[0]
	node, err := newNode(cfg, zap.NewNop(), signer)
	if err != nil {
		report(false, "peer "+peer.Name, err.Error())
	} else {
		ctx, cancel := context.WithTimeout(e.ctx, 15*time.Second)
		res, err := node.Probe(ctx)
		cancel()
		if err != nil {
			report(false, fmt.Sprintf("peer %s at %s", peer.Name, peer.Address), err.Error())
		} else {
			report(true, fmt.Sprintf("peer %s at %s", peer.Name, peer.Address),
				fmt.Sprintf("host key matches, our key accepted, protocol %d, round trip %.1f ms", res.Version, ms(res.RTT)))
			off := res.ClockOffset
			report(off < maxClockOffset && off > -maxClockOffset, "clock offset with the peer",
				fmt.Sprintf("%+.1f ms (limit ±%s; run NTP, e.g. systemd-timesyncd, on both nodes)", ms(off), maxClockOffset))
		}
	}

	var st Status
	ctx, cancel := context.WithTimeout(e.ctx, 2*time.Second)
	if err := control.NewClient(control.SocketPath(cfg.StateDir)).Get(ctx, "/status", &st); err == nil {
		fmt.Fprintf(e.stdout, "info daemon running (tandem %s)\n", st.Version)
	} else {
		fmt.Fprintf(e.stdout, "info daemon not running on this node\n")
	}
	cancel()

	if failed > 0 {
		fmt.Fprintf(e.stdout, "%d check(s) failed\n", failed)
		return exitFailure
	}
	fmt.Fprintln(e.stdout, "all checks passed")
	return exitOK
}

// A localCheck is one preflight check that does not need the peer link;
// check runs them all, in order, after the config and before dialing the
// peer. Each returns its report lines (none when it does not apply).
//
// Extension points: the parts add theirs to localChecks, one entry each:
// the MySQL settings (binlog_format=ROW, binlog_row_image=FULL,
// binlog_row_metadata=FULL, auto_increment_increment/offset) come with the
// mysql part, the DNS update permission (a TSIG-signed, prerequisite-only
// update that changes nothing) with the failover part. A check that does not
// apply (no [mysql] dsn) returns nothing.
type localCheck struct {
	name string // for readers of the table
	run  func(ctx context.Context, cfg *Config) []checkResult
}

// checkResult is one line of check's report.
type checkResult struct {
	ok     bool
	what   string // what was checked, like "inotify watches"
	detail string // the figures, and when !ok what to do
}

func localChecks() []localCheck {
	return []localCheck{
		{"key file modes", func(_ context.Context, cfg *Config) []checkResult { return checkFileModes(cfg) }},
		{"inotify watches", func(_ context.Context, cfg *Config) []checkResult {
			return checkInotify(inotifyWatchesFile, syncTreePaths(cfg))
		}},
		{"disk space", func(_ context.Context, cfg *Config) []checkResult {
			paths := append([]string{cfg.StateDir}, syncTreePaths(cfg)...)
			if cfg.Snapshot.Dir != "" {
				paths = append(paths, cfg.Snapshot.Dir)
			}
			return checkDisk(paths, minFreeBytes, minFreePercent)
		}},
		{"mysql", checkMySQLServer},
		{"dns update", checkDNSUpdate},
	}
}

// checkMySQLServer reports every server check of [mysql] (see
// binlog.CheckServer): warnings count as passed, with their advice.
func checkMySQLServer(ctx context.Context, cfg *Config) []checkResult {
	if !cfg.MySQL.Enabled() {
		return nil
	}
	findings, _ := checkMySQL(ctx, cfg)
	var out []checkResult
	for _, f := range findings {
		detail := f.Message
		if !f.OK && !f.Fatal {
			detail = "warning: " + detail
		}
		out = append(out, checkResult{ok: f.OK || !f.Fatal, what: "mysql " + f.What, detail: detail})
	}
	return out
}

// checkDNSUpdate sends a TSIG-signed update that changes nothing to the
// [failover.dns] update server: the key, the secret, the clock and the
// update policy all have to be right for it to pass.
func checkDNSUpdate(ctx context.Context, cfg *Config) []checkResult {
	fc := cfg.Failover
	if !fc.Enabled() || fc.DNS.Update == "" {
		return nil
	}
	what := "dns update permission at " + fc.DNS.Update
	secret, err := failoverdns.ReadSecretFile(fc.DNS.TSIGSecretFile)
	if err != nil {
		return []checkResult{{what: what, detail: err.Error()}}
	}
	u, err := failoverdns.NewUpdater(failoverdns.UpdaterOptions{
		Server: fc.DNS.Update, Zone: fc.DNS.Zone, Names: fc.DNS.Names, TTL: fc.DNS.TTL,
		TSIGKey: fc.DNS.TSIGKey, TSIGSecret: secret.Secret, TSIGAlgorithm: secret.Algorithm,
	})
	if err != nil {
		return []checkResult{{what: what, detail: err.Error()}}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := u.Probe(ctx); err != nil {
		return []checkResult{{what: what, detail: err.Error()}}
	}
	return []checkResult{{ok: true, what: what, detail: "key " + fc.DNS.TSIGKey + " may update " + fc.DNS.Zone}}
}

// checkFileModes checks that only root (or the owner) can change the files
// that say whom this node trusts, and that a config holding a database
// password is not readable by others.
func checkFileModes(cfg *Config) []checkResult {
	var res []checkResult
	for _, f := range []struct{ key, path string }{
		{"ssh.authorized_keys", cfg.SSH.AuthorizedKeys},
		{"ssh.known_hosts", cfg.SSH.KnownHosts},
	} {
		fi, err := os.Stat(f.path)
		if err != nil {
			continue // CheckFiles has said so
		}
		if m := fi.Mode().Perm(); m&0o022 != 0 {
			res = append(res, checkResult{false, f.key + " " + f.path,
				fmt.Sprintf("mode %04o lets others change whom this node trusts; run: chmod 644 %s", m, f.path)})
		}
	}
	if cfg.MySQL.DSN != "" && strings.Contains(cfg.MySQL.DSN, ":") && cfg.file != "" {
		if fi, err := os.Stat(cfg.file); err == nil && fi.Mode().Perm()&0o044 != 0 {
			res = append(res, checkResult{false, "config " + cfg.file,
				fmt.Sprintf("mode %04o lets others read the [mysql] dsn and its password; run: chmod 600 %s", fi.Mode().Perm(), cfg.file)})
		}
	}
	if len(res) == 0 {
		res = append(res, checkResult{ok: true, what: "key and trust file modes"})
	}
	return res
}

// inotifyWatchesFile holds the per-user limit of inotify watches; tandem
// needs one watch per directory of every synced tree.
const inotifyWatchesFile = "/proc/sys/fs/inotify/max_user_watches"

// inotifyHeadroom is the room check wants above today's directory count:
// trees grow, and other programs of the same user watch too.
const inotifyHeadroom = 1.25

// checkInotify counts the directories of the synced trees and compares
// them with the inotify watch limit read from limitFile.
func checkInotify(limitFile string, roots []string) []checkResult {
	if len(roots) == 0 {
		return nil
	}
	b, err := os.ReadFile(limitFile)
	if err != nil {
		return []checkResult{{false, "inotify watches", fmt.Sprintf("read the limit: %v", err)}}
	}
	limit, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return []checkResult{{false, "inotify watches", fmt.Sprintf("%s holds %q, not a number", limitFile, strings.TrimSpace(string(b)))}}
	}
	var dirs int64
	var walkErrs []string
	for _, root := range roots {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				walkErrs = append(walkErrs, err.Error())
				return nil
			}
			if d.IsDir() {
				dirs++
			}
			return nil
		})
	}
	need := int64(float64(dirs) * inotifyHeadroom)
	detail := fmt.Sprintf("%d directories in %d tree(s) need as many watches; the limit is %d", dirs, len(roots), limit)
	if len(walkErrs) > 0 {
		detail += fmt.Sprintf(" (%d unreadable: %s)", len(walkErrs), walkErrs[0])
	}
	if need <= limit {
		return []checkResult{{true, "inotify watches", detail}}
	}
	raise := max(int64(524288), 2*dirs)
	return []checkResult{{false, "inotify watches", fmt.Sprintf(
		"%s, too few to watch them all with room to grow; raise it: echo fs.inotify.max_user_watches=%d > /etc/sysctl.d/60-tandem.conf && sysctl --system",
		detail, raise)}}
}

// Disk space check's thresholds: below either, a write burst or a
// snapshot could fill the disk, and a full disk stops replication.
const (
	minFreeBytes   = 1 << 30 // 1 GiB
	minFreePercent = 5
)

// checkDisk checks free space and inodes on the filesystem of each path
// (the nearest existing parent for one that does not exist yet), once per
// filesystem.
func checkDisk(paths []string, minFree uint64, minPercent float64) []checkResult {
	var res []checkResult
	seen := map[[2]int32]bool{}
	for _, p := range paths {
		at := p
		for {
			if _, err := os.Stat(at); err == nil || filepath.Dir(at) == at {
				break
			}
			at = filepath.Dir(at)
		}
		var st syscall.Statfs_t
		if err := syscall.Statfs(at, &st); err != nil {
			res = append(res, checkResult{false, "disk space for " + p, err.Error()})
			continue
		}
		if seen[st.Fsid.X__val] {
			continue
		}
		seen[st.Fsid.X__val] = true
		total := st.Blocks * uint64(st.Bsize)
		free := st.Bavail * uint64(st.Bsize)
		pct := 100 * float64(free) / float64(max(total, 1))
		detail := fmt.Sprintf("%s free of %s (%.0f%%)", bytesIEC(free), bytesIEC(total), pct)
		ok := free >= minFree && pct >= minPercent
		if st.Files > 0 && st.Ffree < st.Files/100 {
			ok = false
			detail += fmt.Sprintf(", but only %d of %d inodes free", st.Ffree, st.Files)
		}
		if !ok {
			detail += fmt.Sprintf("; below the %s / %.0f%% tandem wants: a full disk stops replication; free some space or grow the disk", bytesIEC(minFree), minPercent)
		}
		res = append(res, checkResult{ok, "disk space for " + p, detail})
	}
	return res
}

// bytesIEC formats n as "1.5 GiB".
func bytesIEC(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// syncTreePaths are the roots of the synced trees.
func syncTreePaths(cfg *Config) []string {
	var paths []string
	for _, s := range cfg.Sync {
		paths = append(paths, s.Path)
	}
	return paths
}
