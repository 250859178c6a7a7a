package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tandemhost/tandem/binlog"
	"github.com/tandemhost/tandem/failover"
	"github.com/tandemhost/tandem/internal/control"
	"github.com/tandemhost/tandem/snapshot"
)

// Status is what `tandem status --json` prints. Field names are a contract
// for scripts: add fields, never rename or remove them.
type Status struct {
	Node    string       `json:"node"`
	Version string       `json:"version"`
	Started time.Time    `json:"started"`
	Peers   []PeerStatus `json:"peers"`
	Sync    []SyncStatus `json:"sync"`
	// Rows is the database replication, absent when [mysql] is not set.
	Rows *binlog.Status `json:"rows,omitempty"`
	// Snapshot is the snapshot side loop, absent when [snapshot] is not set.
	Snapshot *snapshot.Status `json:"snapshot,omitempty"`
	// Failover is the role, epoch, last change and why, DNS target; absent
	// when [failover] is off.
	Failover *failover.Status `json:"failover,omitempty"`
}

// SyncStatus is one synced tree.
type SyncStatus struct {
	Path  string `json:"path"`
	Files int64  `json:"files"`
	Dirs  int64  `json:"dirs"`
	Bytes int64  `json:"bytes"`
	// Queued counts local changes not yet sent; InFlight sent, not acked.
	Queued int64 `json:"queued"`
	// QueuedKnown: the peer has answered for this tree since start; until
	// then Queued is 0, not a count.
	QueuedKnown bool  `json:"queued_known"`
	InFlight    int64 `json:"in_flight"`
	Sent        int64 `json:"sent"`
	Applied     int64 `json:"applied"`
	// LastApplied is when a change from the peer was last applied here.
	LastApplied string `json:"last_applied"`
	// LagMs is the age of the last applied change (its mtime on the peer
	// to its apply here).
	LagMs    float64 `json:"lag_ms"`
	Scanning bool    `json:"scanning"`
	// ScannedFiles and HashedFiles count the scans' work since start.
	ScannedFiles int64  `json:"scanned_files"`
	HashedFiles  int64  `json:"hashed_files"`
	Watches      int64  `json:"watches"`
	Halted       string `json:"halted"`
	Error        string `json:"error"`
}

// PeerStatus is the link to one peer.
type PeerStatus struct {
	Name      string `json:"name"`
	Address   string `json:"address"`
	Connected bool   `json:"connected"`
	// RTTms is the last heartbeat's round trip in milliseconds.
	RTTms float64 `json:"rtt_ms"`
	// Since is when connected last changed (RFC 3339), "" before that.
	Since     string `json:"since"`
	LastError string `json:"last_error"`
	// Inbound tells whether the peer's own link to us is up.
	Inbound       bool    `json:"inbound"`
	LastHeartbeat string  `json:"last_heartbeat"`
	ClockOffsetMs float64 `json:"clock_offset_ms"`
	PeerEpoch     uint64  `json:"peer_epoch"`
	Protocol      int     `json:"protocol"`
	Connects      int     `json:"connects"`
}

func (d *daemon) status() Status {
	p := d.node.Status()
	st := Status{
		Node:    d.cfg.Node,
		Version: versionString(),
		Started: d.started.UTC(),
		Peers: []PeerStatus{{
			Name:          p.Name,
			Address:       p.Address,
			Connected:     p.Connected,
			RTTms:         ms(p.RTT),
			Since:         rfc3339(p.Since),
			LastError:     p.LastError,
			Inbound:       p.Inbound,
			LastHeartbeat: rfc3339(p.LastHeartbeat),
			ClockOffsetMs: ms(p.ClockOffset),
			PeerEpoch:     p.PeerEpoch,
			Protocol:      int(p.PeerVersion),
			Connects:      p.Connects,
		}},
		Sync: []SyncStatus{},
	}
	if d.rows != nil {
		rs := d.rows.Status()
		st.Rows = &rs
	}
	if d.snapshots != nil {
		ss := d.snapshots.Status()
		st.Snapshot = &ss
	}
	if d.failover != nil {
		fs := d.failover.Status()
		st.Failover = &fs
	}
	if d.files == nil {
		return st
	}
	for _, r := range d.files.Status() {
		l := d.files.Local(r.Name)
		ss := SyncStatus{
			Path: r.Name, Queued: r.Queued, QueuedKnown: r.QueuedKnown, InFlight: r.InFlight, Sent: r.Sent, Applied: r.Applied,
			LastApplied: rfc3339(r.LastApplied), LagMs: ms(r.Lag), Scanning: l.Scanning,
			ScannedFiles: l.ScanFiles, HashedFiles: l.ScanHashed, Watches: l.Watches,
			Halted: r.Halted, Error: firstNonEmpty(r.ApplyError, l.Error),
		}
		if c, err := d.db.Count(r.Name); err == nil {
			ss.Files, ss.Dirs, ss.Bytes = c.Files, c.Dirs, c.Bytes
		}
		st.Sync = append(st.Sync, ss)
	}
	return st
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func cmdStatus(e *env, args []string) int {
	cfg, ok := e.loadConfig()
	if !ok {
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	var st Status
	if err := control.NewClient(control.SocketPath(cfg.StateDir)).Get(ctx, "/status", &st); err != nil {
		fmt.Fprintf(e.stderr, "tandem: %v\n", err)
		if errors.Is(err, control.ErrNotRunning) {
			return exitNotRunning
		}
		return exitFailure
	}
	if e.json {
		writeJSON(e.stdout, st)
		return exitOK
	}
	printStatus(e.stdout, st, time.Now())
	return exitOK
}

func printStatus(w io.Writer, st Status, now time.Time) {
	defer printSnapshotStatus(w, st.Snapshot, now)
	fmt.Fprintf(w, "node %s (tandem %s), up %s\n", st.Node, st.Version, now.Sub(st.Started).Round(time.Second))
	for _, p := range st.Peers {
		state := "DISCONNECTED"
		if p.Connected {
			state = "connected"
		}
		fmt.Fprintf(w, "peer %s at %s: %s", p.Name, p.Address, state)
		if t, err := time.Parse(time.RFC3339Nano, p.Since); err == nil {
			fmt.Fprintf(w, " since %s (%s ago)", t.Local().Format("2006-01-02 15:04:05"), now.Sub(t).Round(time.Second))
		}
		fmt.Fprintln(w)
		if p.Connected {
			fmt.Fprintf(w, "  round trip %.1f ms, peer clock offset %+.1f ms, protocol %d\n", p.RTTms, p.ClockOffsetMs, p.Protocol)
		}
		inbound := "down"
		if p.Inbound {
			inbound = "up"
		}
		fmt.Fprintf(w, "  link from the peer to us: %s\n", inbound)
		if p.LastError != "" {
			fmt.Fprintf(w, "  last error: %s\n", p.LastError)
		}
	}
	if st.Failover != nil {
		for _, line := range st.Failover.Summary(now) {
			fmt.Fprintln(w, line)
		}
	}
	for _, s := range st.Sync {
		fmt.Fprintf(w, "tree %s: %d files, %d dirs, %s\n", s.Path, s.Files, s.Dirs, humanBytes(s.Bytes))
		if s.Halted != "" {
			fmt.Fprintf(w, "  HALTED: %s\n", s.Halted)
		}
		if s.Error != "" {
			fmt.Fprintf(w, "  error: %s\n", s.Error)
		}
		scan := "idle"
		if s.Scanning {
			scan = fmt.Sprintf("scanning (%d files looked at, %d hashed)", s.ScannedFiles, s.HashedFiles)
		}
		queued := fmt.Sprintf("%d queued", s.Queued)
		if !s.QueuedKnown {
			queued = "queue not known yet (the peer has not answered since start)"
		}
		fmt.Fprintf(w, "  to peer: %s, %d in flight, %d sent; from peer: %d applied", queued, s.InFlight, s.Sent, s.Applied)
		if s.LastApplied != "" {
			fmt.Fprintf(w, ", last lag %.0f ms", s.LagMs)
		}
		fmt.Fprintf(w, "\n  watcher: %d directories watched, %s\n", s.Watches, scan)
	}
	if r := st.Rows; r != nil {
		fmt.Fprintf(w, "database: read up to %s; to peer: %d sent, %d committed there, %d in flight, lag %.0f ms, %.1f tx/s\n",
			cmp.Or(r.Read, "(nothing yet)"), r.Sent, r.Acked, r.InFlight, r.LagMS, r.TxPerSec)
		if r.SentBytes > 0 {
			fmt.Fprintf(w, "  sent %s of transactions as %s on the link\n", humanBytes(int64(r.SentBytes)), humanBytes(int64(r.WireBytes)))
		}
		fmt.Fprintf(w, "  from peer: applied up to %s (seq %d), %.1f tx/s\n", cmp.Or(r.AppliedGTID, "(nothing yet)"), r.Applied, r.AppliedPerSec)
		if r.SendError != "" {
			fmt.Fprintf(w, "  send error: %s\n", r.SendError)
		}
		if r.ApplyError != "" {
			fmt.Fprintf(w, "  APPLY ERROR: %s\n", r.ApplyError)
		}
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
