package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tandemhost/tandem/internal/control"
)

// Status is what `tandem status --json` prints. Field names are a contract
// for scripts: add fields, never rename or remove them.
type Status struct {
	Node    string       `json:"node"`
	Version string       `json:"version"`
	Started time.Time    `json:"started"`
	Peers   []PeerStatus `json:"peers"`
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
	return Status{
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
	}
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
}
