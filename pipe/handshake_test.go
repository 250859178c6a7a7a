package pipe

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// recordingListener accepts connections on loopback, notes when each
// arrived and closes it at once, like a peer that is not up yet.
type recordingListener struct {
	ln    net.Listener
	mu    sync.Mutex
	times []time.Time
	more  chan struct{} // a token per accepted connection
}

func newRecordingListener(t *testing.T) *recordingListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recordingListener{ln: ln, more: make(chan struct{}, 1000)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.times = append(r.times, time.Now())
			r.mu.Unlock()
			nc.Close()
			r.more <- struct{}{}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return r
}

// wait waits for the next accepted connection, or fails.
func (r *recordingListener) wait(t *testing.T, what string) {
	t.Helper()
	select {
	case <-r.more:
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10s", what)
	}
}

// poke connects to addr and hangs up without a word of SSH.
func poke(t *testing.T, addr string) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
}

// stalledDialer starts alpha with its peer at a listener that hangs up on
// every dial, and a redial backoff of an hour; it returns once the first
// dial is in and has failed.
func stalledDialer(t *testing.T) (*testNode, *recordingListener) {
	t.Helper()
	a := newTestNode(t, "alpha")
	peer := newRecordingListener(t)
	a.start(t, "beta", peer.ln.Addr().String(), func(n *Node) {
		n.backoff = func(int, time.Duration) time.Duration { return time.Hour }
	})
	peer.wait(t, "first dial")
	waitStatus(t, a, "the first dial failed", func(s PeerStatus) bool { return s.LastError != "" })
	return a, peer
}

// TestAcceptWakesDialer: an inbound connection wakes a node waiting to
// redial before the connection has said anything, so the node's own dial
// runs beside the peer's handshake instead of after it.
func TestAcceptWakesDialer(t *testing.T) {
	a, peer := stalledDialer(t)
	poke(t, a.addr())
	peer.wait(t, "redial after an inbound connection (the backoff is an hour)")
}

// TestWakesKeepDialsApart: however often the listener is hit, and by
// whom, the dialer starts a dial at most every minRedial.
func TestWakesKeepDialsApart(t *testing.T) {
	a, peer := stalledDialer(t)
	// Right after each dial, three connections: each would start a
	// dial at once without the spacing.
	for range 4 {
		for range 3 {
			poke(t, a.addr())
		}
		peer.wait(t, "redial after inbound connections (the backoff is an hour)")
	}
	peer.mu.Lock()
	times := peer.times
	peer.mu.Unlock()
	for i := 1; i < len(times); i++ {
		// Half of minRedial: the accept may be seen late for one dial
		// and on time for the next; without the spacing they are a
		// millisecond or less apart.
		if gap := times[i].Sub(times[i-1]); gap < minRedial/2 {
			t.Errorf("dials %d and %d started %v apart, want at least about %v", i-1, i, gap, minRedial)
		}
	}
}

// rawControl dials tn as peer and opens the control channel with the
// given open data; it returns the channel and its frame stream.
func rawControl(t *testing.T, tn *testNode, peer *testNode, early []byte) *Stream {
	t.Helper()
	nc, err := net.Dial("tcp", tn.addr())
	if err != nil {
		t.Fatal(err)
	}
	cc, chans, reqs, err := ssh.NewClientConn(nc, tn.addr(), &ssh.ClientConfig{
		User: peer.name, Auth: []ssh.AuthMethod{ssh.PublicKeys(peer.signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second,
	})
	if err != nil {
		nc.Close()
		t.Fatal(err)
	}
	client := ssh.NewClient(cc, chans, reqs)
	t.Cleanup(func() { client.Close() })
	ch, creqs, err := client.OpenChannel(channelPrefix+controlKind, early)
	if err != nil {
		t.Fatal(err)
	}
	go ssh.DiscardRequests(creqs)
	return newStream(ch, DefaultMaxFrame)
}

func helloFrame(m Message) []byte {
	var e Encoder
	m.Encode(&e)
	return AppendFrame(nil, m.Type(), e.Buf())
}

// recvControl reads one control message, or returns the error.
func recvControl(s *Stream) (Message, error) {
	typ, body, err := s.Recv()
	if err != nil {
		return nil, err
	}
	return decodeControl(typ, body)
}

func TestEarlyHello(t *testing.T) {
	a, b := pair(t)
	// beta listens; alpha's side is played by hand. beta dials an address
	// that refuses, so only the hand-made connections reach it.
	dead := newRecordingListener(t)
	b.start(t, "alpha", dead.ln.Addr().String(), nil)
	hello := &Hello{MinVersion: MinProtocolVersion, MaxVersion: ProtocolVersion, Node: "alpha", Peer: "beta", TimeUnixNano: 1}

	t.Run("answered from the open data alone", func(t *testing.T) {
		s := rawControl(t, b, a, helloFrame(hello))
		m, err := recvControl(s)
		if _, ok := m.(*Welcome); !ok {
			t.Fatalf("after an early Hello and nothing on the stream: %+v, %v; want a Welcome", m, err)
		}
		// Its copy on the stream is skipped, and pings are answered.
		if err := s.Send(hello); err != nil {
			t.Fatal(err)
		}
		if err := s.Send(&Ping{Seq: 1}); err != nil {
			t.Fatal(err)
		}
		if m, err := recvControl(s); err != nil {
			t.Fatalf("after the Hello's copy: %v", err)
		} else if p, ok := m.(*Pong); !ok || p.Seq != 1 {
			t.Fatalf("after the Hello's copy and a ping: %+v; want Pong 1", m)
		}
	})
	t.Run("a dialer without it (older versions)", func(t *testing.T) {
		s := rawControl(t, b, a, nil)
		if err := s.Send(hello); err != nil {
			t.Fatal(err)
		}
		if m, err := recvControl(s); err != nil {
			t.Fatal(err)
		} else if _, ok := m.(*Welcome); !ok {
			t.Fatalf("got %+v; want a Welcome", m)
		}
	})
	t.Run("refused from the open data", func(t *testing.T) {
		wrong := *hello
		wrong.Peer = "gamma"
		s := rawControl(t, b, a, helloFrame(&wrong))
		m, err := recvControl(s)
		if r, ok := m.(*Refuse); !ok {
			t.Fatalf("early Hello for gamma: %+v, %v; want a Refuse", m, err)
		} else if r.Reason == "" {
			t.Error("Refuse without a reason")
		}
	})
	for name, early := range map[string][]byte{
		"not a Hello":                 helloFrame(&Ping{Seq: 1}),
		"a Hello and more":            append(helloFrame(hello), helloFrame(hello)...),
		"a truncated Hello":           helloFrame(hello)[:8],
		"a length past the open data": {0x7f, 0xff, 0xff, 0xff, typeHello},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := decodeEarlyHello(early); !errors.Is(err, ErrMalformed) {
				t.Errorf("decodeEarlyHello: %v, want ErrMalformed", err)
			}
			s := rawControl(t, b, a, early)
			if m, err := recvControl(s); err == nil {
				t.Errorf("server answered %+v; want the stream closed", m)
			}
		})
	}
	t.Run("a second, different Hello on the stream", func(t *testing.T) {
		s := rawControl(t, b, a, helloFrame(hello))
		if _, err := recvControl(s); err != nil {
			t.Fatal(err)
		}
		other := *hello
		other.TimeUnixNano = 2
		s.Send(&other)
		if m, err := recvControl(s); err == nil {
			t.Errorf("server answered %+v after a different second Hello; want the stream closed", m)
		}
	})
}

// TestMuxWakesTheDialingPeersNode: on a shared listener the peer is known
// once it offers an authorized key; that wakes the node for that peer.
func TestMuxWakesTheDialingPeersNode(t *testing.T) {
	w, a := newTestNode(t, "witness"), newTestNode(t, "alpha")
	writeFile(t, w.file("authorized_keys"), string(ssh.MarshalAuthorizedKey(a.signer.PublicKey())))
	writeFile(t, w.file("known_hosts"), "")
	peer := newRecordingListener(t)
	n, err := New(Options{
		Node:   "witness",
		Config: Config{AuthorizedKeys: w.file("authorized_keys"), KnownHosts: w.file("known_hosts")},
		Peer:   Peer{Name: "alpha", Address: peer.ln.Addr().String()},
		Signer: w.signer,
		Log:    w.log,
		Muxed:  true,
	})
	if err != nil {
		t.Fatal(err)
	}
	n.backoff = func(int, time.Duration) time.Duration { return time.Hour }
	m, err := NewMux(w.ln, w.log, n)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() { n.Run(ctx) })
	wg.Go(func() { m.Run(ctx) })
	peer.wait(t, "first dial")

	nc, err := net.Dial("tcp", w.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	cc, chans, reqs, err := ssh.NewClientConn(nc, w.addr(), &ssh.ClientConfig{
		User: "alpha", Auth: []ssh.AuthMethod{ssh.PublicKeys(a.signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ssh.NewClient(cc, chans, reqs).Close()
	peer.wait(t, "redial after alpha authenticated (the backoff is an hour)")
}
