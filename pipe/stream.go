package pipe

import (
	"context"
	"fmt"
	"io"

	"golang.org/x/crypto/ssh"
)

// channelPrefix prefixes every tandem SSH channel type: "tandem-control",
// "tandem-files", ...
const channelPrefix = "tandem-"

const controlKind = "control"

// Stream is one SSH channel carrying frames of one kind between the peers.
// Send may be called from several goroutines; Recv from one at a time.
type Stream struct {
	ch ssh.Channel
	r  *FrameReader
	w  *FrameWriter
}

func newStream(ch ssh.Channel, maxFrame int) *Stream {
	return &Stream{ch: ch, r: NewFrameReader(ch, maxFrame), w: NewFrameWriter(ch, maxFrame)}
}

// Send encodes m and writes it as one frame. It blocks while the peer's
// window is full: that is the stream's backpressure.
func (s *Stream) Send(m Message) error {
	var e Encoder
	m.Encode(&e)
	return s.w.Write(m.Type(), e.Buf())
}

// SendFrame writes one frame with a body encoded by the caller.
func (s *Stream) SendFrame(typ uint8, body []byte) error { return s.w.Write(typ, body) }

// SendFrames writes frames built with AppendFrame, in one write.
func (s *Stream) SendFrames(frames []byte) error { return s.w.WriteFrames(frames) }

// Recv reads the next frame. The body is valid only until the next Recv.
// It returns io.EOF when the peer closed its side between frames.
func (s *Stream) Recv() (typ uint8, body []byte, err error) { return s.r.Read() }

// CloseWrite tells the peer nothing more will be sent on this stream.
func (s *Stream) CloseWrite() error { return s.ch.CloseWrite() }

// Close closes the stream in both directions.
func (s *Stream) Close() error { return s.ch.Close() }

// Handler serves one stream the peer opened. ctx ends when the connection
// does. The stream is closed after the handler returns; a returned error is
// logged with the stream kind.
type Handler func(ctx context.Context, s *Stream) error

type handler struct {
	fn       Handler
	maxFrame int
	raw      RawHandler
}

// RawHandler serves one unframed stream the peer opened with OpenRaw: the
// SSH channel's bytes as they come, for protocols that frame themselves
// (raft's transport). The stream is closed after the handler returns.
type RawHandler func(ctx context.Context, ch io.ReadWriteCloser)

// Session is an established, handshaken outbound connection to the peer.
// Its streams end when the connection does.
type Session struct {
	// Peer is the peer's node name.
	Peer string
	// Version is the protocol version both sides agreed on.
	Version uint16
	// PeerEpoch is the epoch the peer announced at the handshake.
	PeerEpoch uint64

	client *ssh.Client
}

// Open opens a stream of kind to the peer, which serves it with the Handler
// it registered for kind. maxFrame bounds the frames both ways on this
// stream (0 means DefaultMaxFrame); the peer's handler sets its own bound.
func (s *Session) Open(kind string, maxFrame int) (*Stream, error) {
	ch, reqs, err := s.client.OpenChannel(channelPrefix+kind, nil)
	if err != nil {
		return nil, fmt.Errorf("open %s stream: %w", kind, err)
	}
	go ssh.DiscardRequests(reqs)
	return newStream(ch, maxFrame), nil
}

// OpenRaw opens an unframed stream of kind to the peer, served by the
// RawHandler the peer registered with HandleRaw.
func (s *Session) OpenRaw(kind string) (io.ReadWriteCloser, error) {
	ch, reqs, err := s.client.OpenChannel(channelPrefix+kind, nil)
	if err != nil {
		return nil, fmt.Errorf("open %s stream: %w", kind, err)
	}
	go ssh.DiscardRequests(reqs)
	return ch, nil
}

var _ io.Closer = (*Stream)(nil)
