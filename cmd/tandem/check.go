package main

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/tandemhost/tandem/deploy"
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
