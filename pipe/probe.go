package pipe

import (
	"context"
	"fmt"
	"time"
)

// ProbeResult is what one probe of the peer found.
type ProbeResult struct {
	Version     uint16
	PeerEpoch   uint64
	RTT         time.Duration
	ClockOffset time.Duration // the peer's clock minus ours, estimated
}

// Probe dials the peer once, handshakes (host key, our key, names,
// versions), measures one ping and hangs up. It does not disturb a running
// daemon's link: the peer keeps its established connection. `tandem check`
// uses it; Probe needs no Run.
func (n *Node) Probe(ctx context.Context) (ProbeResult, error) {
	client, ctrl, w, err := n.dial(ctx, HelloProbe)
	if err != nil {
		return ProbeResult{}, err
	}
	defer client.Close()
	stop := context.AfterFunc(ctx, func() { client.Close() })
	defer stop()
	t0 := n.opts.Now()
	if err := ctrl.Send(&Ping{Seq: 1, SentUnixNano: t0.UnixNano()}); err != nil {
		return ProbeResult{}, fmt.Errorf("send ping: %w", err)
	}
	typ, body, err := ctrl.Recv()
	if err != nil {
		return ProbeResult{}, fmt.Errorf("read pong: %w", err)
	}
	m, err := decodeControl(typ, body)
	if err != nil {
		return ProbeResult{}, err
	}
	p, ok := m.(*Pong)
	if !ok {
		return ProbeResult{}, fmt.Errorf("%w: %T instead of Pong", ErrMalformed, m)
	}
	rtt := n.opts.Now().Sub(t0)
	return ProbeResult{
		Version:     w.Version,
		PeerEpoch:   p.Epoch,
		RTT:         rtt,
		ClockOffset: time.Duration(p.PeerUnixNano - (t0.UnixNano() + int64(rtt/2))),
	}, nil
}
