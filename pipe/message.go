package pipe

import (
	"fmt"
)

// Protocol versions this build speaks. A peer whose range does not overlap
// is refused at the handshake with a message saying which side to upgrade.
const (
	ProtocolVersion    = 1
	MinProtocolVersion = 1
)

// Limits on control message fields.
const (
	maxNameLen   = 64
	maxReasonLen = 1024
)

// Control stream message types.
const (
	typeHello   uint8 = 1
	typeWelcome uint8 = 2
	typeRefuse  uint8 = 3
	typePing    uint8 = 4
	typePong    uint8 = 5
)

// Message is a value that travels as one frame on a stream. Each stream kind
// has its own type space.
type Message interface {
	// Type returns the frame type byte.
	Type() uint8
	// Encode appends the message's fields.
	Encode(e *Encoder)
	// Decode reads the message's fields; the caller checks Finish.
	Decode(d *Decoder)
}

// Unmarshal decodes body into m and checks that it was consumed exactly.
func Unmarshal(body []byte, m Message) error {
	d := NewDecoder(body)
	m.Decode(d)
	if err := d.Finish(); err != nil {
		return fmt.Errorf("decode message type %d: %w", m.Type(), err)
	}
	return nil
}

// Hello opens the control stream: the dialing node says who it is, whom it
// expects to reach and which protocol versions it speaks.
type Hello struct {
	MinVersion, MaxVersion uint16
	Node                   string // the dialer's node name
	Peer                   string // the node the dialer expects to reach
	Epoch                  uint64 // the dialer's role epoch
	TimeUnixNano           int64  // the dialer's clock, for offset estimates
	Flags                  uint64 // HelloProbe, ...; unknown bits are ignored
}

// HelloProbe marks a short-lived connection (`tandem check`) that must not
// replace the peer's established link.
const HelloProbe uint64 = 1 << 0

func (*Hello) Type() uint8 { return typeHello }

func (m *Hello) Encode(e *Encoder) {
	e.Uvarint(uint64(m.MinVersion))
	e.Uvarint(uint64(m.MaxVersion))
	e.String(m.Node)
	e.String(m.Peer)
	e.Uvarint(m.Epoch)
	e.Varint(m.TimeUnixNano)
	e.Uvarint(m.Flags)
}

func (m *Hello) Decode(d *Decoder) {
	m.MinVersion = uint16(d.UvarintMax(0xffff, "version"))
	m.MaxVersion = uint16(d.UvarintMax(0xffff, "version"))
	m.Node = d.String(maxNameLen)
	m.Peer = d.String(maxNameLen)
	m.Epoch = d.Uvarint()
	m.TimeUnixNano = d.Varint()
	m.Flags = d.Uvarint()
}

// Welcome accepts a Hello: the listening node's name and the version chosen.
type Welcome struct {
	Version      uint16
	Node         string
	Epoch        uint64
	TimeUnixNano int64
}

func (*Welcome) Type() uint8 { return typeWelcome }

func (m *Welcome) Encode(e *Encoder) {
	e.Uvarint(uint64(m.Version))
	e.String(m.Node)
	e.Uvarint(m.Epoch)
	e.Varint(m.TimeUnixNano)
}

func (m *Welcome) Decode(d *Decoder) {
	m.Version = uint16(d.UvarintMax(0xffff, "version"))
	m.Node = d.String(maxNameLen)
	m.Epoch = d.Uvarint()
	m.TimeUnixNano = d.Varint()
}

// Refuse rejects a Hello, saying why in words meant for an operator.
type Refuse struct {
	Reason string
}

func (*Refuse) Type() uint8            { return typeRefuse }
func (m *Refuse) Encode(e *Encoder)    { e.String(m.Reason) }
func (m *Refuse) Decode(d *Decoder)    { m.Reason = d.String(maxReasonLen) }
func (m *Refuse) Error() string        { return "peer refused: " + m.Reason }
func (m *Refuse) Is(target error) bool { return target == ErrRefused }

// Ping asks for a Pong; SentUnixNano comes back unchanged so the sender can
// measure the round trip without keeping state per ping.
type Ping struct {
	Seq          uint64
	SentUnixNano int64
}

func (*Ping) Type() uint8 { return typePing }
func (m *Ping) Encode(e *Encoder) {
	e.Uvarint(m.Seq)
	e.Varint(m.SentUnixNano)
}
func (m *Ping) Decode(d *Decoder) {
	m.Seq = d.Uvarint()
	m.SentUnixNano = d.Varint()
}

// Pong answers a Ping with the peer's own clock and epoch.
type Pong struct {
	Seq          uint64
	SentUnixNano int64 // copied from the Ping
	PeerUnixNano int64 // the answering node's clock when it answered
	Epoch        uint64
}

func (*Pong) Type() uint8 { return typePong }
func (m *Pong) Encode(e *Encoder) {
	e.Uvarint(m.Seq)
	e.Varint(m.SentUnixNano)
	e.Varint(m.PeerUnixNano)
	e.Uvarint(m.Epoch)
}
func (m *Pong) Decode(d *Decoder) {
	m.Seq = d.Uvarint()
	m.SentUnixNano = d.Varint()
	m.PeerUnixNano = d.Varint()
	m.Epoch = d.Uvarint()
}

// decodeControl decodes one control stream frame.
func decodeControl(typ uint8, body []byte) (Message, error) {
	var m Message
	switch typ {
	case typeHello:
		m = new(Hello)
	case typeWelcome:
		m = new(Welcome)
	case typeRefuse:
		m = new(Refuse)
	case typePing:
		m = new(Ping)
	case typePong:
		m = new(Pong)
	default:
		return nil, fmt.Errorf("%w: unknown control message type %d", ErrMalformed, typ)
	}
	if err := Unmarshal(body, m); err != nil {
		return nil, err
	}
	return m, nil
}
