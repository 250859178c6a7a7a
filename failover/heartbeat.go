package failover

import (
	"fmt"
	"time"

	"github.com/tandemhost/tandem/pipe"
)

// StreamKind is the pipe stream kind that carries heartbeats. Each node
// opens one on its outbound session and sends; the peer's handler receives.
const StreamKind = "failover"

// heartbeatMaxFrame bounds a heartbeat frame; real ones are under 150 bytes.
const heartbeatMaxFrame = 1024

const typeHeartbeat uint8 = 1

// Limits on heartbeat fields.
const (
	maxNodeLen    = 64
	maxAddressLen = 64 // an IPv6 address is at most 45
	maxPriority   = 1 << 31
)

// Heartbeat is what a node tells its peer every heartbeat interval: who it
// is, its role and epoch, whether its own checks are up, and what the
// election needs (priority, an operator's hold, the address DNS answers
// for it).
type Heartbeat struct {
	Node     string
	Epoch    uint64
	Role     Role
	Health   Health
	Hold     bool
	Priority int
	Address  string
	// TimeUnixNano is the sender's clock when it sent the heartbeat.
	TimeUnixNano int64
}

var _ pipe.Message = (*Heartbeat)(nil)

// Type is the heartbeat's frame type on the failover stream.
func (*Heartbeat) Type() uint8 { return typeHeartbeat }

// Encode appends the heartbeat's fields (pipe.Message).
func (h *Heartbeat) Encode(e *pipe.Encoder) {
	e.String(h.Node)
	e.Uvarint(h.Epoch)
	e.Uint8(uint8(h.Role))
	e.Uint8(uint8(h.Health))
	e.Bool(h.Hold)
	e.Varint(int64(h.Priority))
	e.String(h.Address)
	e.Varint(h.TimeUnixNano)
}

// Decode reads the heartbeat's fields, refusing an unknown role or health
// and an out-of-range priority (pipe.Message; use DecodeHeartbeat).
func (h *Heartbeat) Decode(d *pipe.Decoder) {
	h.Node = d.String(maxNodeLen)
	h.Epoch = d.Uvarint()
	h.Role = Role(d.Uint8())
	if h.Role != Primary && h.Role != Standby {
		d.Fail("role %d is neither standby nor primary", h.Role)
	}
	h.Health = Health(d.Uint8())
	if h.Health > HealthDown {
		d.Fail("health %d is not starting, up or down", h.Health)
	}
	h.Hold = d.Bool()
	p := d.Varint()
	if p <= -maxPriority || p >= maxPriority {
		d.Fail("priority %d out of range", p)
	}
	h.Priority = int(p)
	h.Address = d.String(maxAddressLen)
	h.TimeUnixNano = d.Varint()
}

// DecodeHeartbeat decodes one frame of the failover stream.
func DecodeHeartbeat(typ uint8, body []byte) (*Heartbeat, error) {
	if typ != typeHeartbeat {
		return nil, fmt.Errorf("%w: unknown failover message type %d", pipe.ErrMalformed, typ)
	}
	h := new(Heartbeat)
	if err := pipe.Unmarshal(body, h); err != nil {
		return nil, err
	}
	if h.Node == "" {
		return nil, fmt.Errorf("%w: heartbeat without a node name", pipe.ErrMalformed)
	}
	return h, nil
}

// event turns a received heartbeat into the machine's event.
func (h *Heartbeat) event(now time.Time) PeerHeartbeat {
	return PeerHeartbeat{
		Now: now, From: h.Node, Epoch: h.Epoch, Role: h.Role, Health: h.Health, Hold: h.Hold,
		Priority: h.Priority, Address: h.Address, Time: time.Unix(0, h.TimeUnixNano),
	}
}
