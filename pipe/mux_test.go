package pipe

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/tandemhost/tandem/internal/duration"
)

// muxHost is one host of a three-host test (two nodes and a witness): one
// key, one listener, one muxed Node per other host.
type muxHost struct {
	*testNode
	nodes    map[string]*Node
	sessions map[string]*Session
	mu       sync.Mutex
}

func echo(ctx context.Context, ch io.ReadWriteCloser) { io.Copy(ch, ch) }

func TestMuxServesEveryLinkOnOnePort(t *testing.T) {
	names := []string{"alpha", "beta", "witness"}
	hosts := map[string]*muxHost{}
	for _, name := range names {
		hosts[name] = &muxHost{testNode: newTestNode(t, name), nodes: map[string]*Node{}, sessions: map[string]*Session{}}
	}
	for _, h := range hosts {
		var auth, known strings.Builder
		for _, o := range hosts {
			if o == h {
				continue
			}
			auth.Write(ssh.MarshalAuthorizedKey(o.signer.PublicKey()))
			known.WriteString(knownhosts.Line([]string{knownhosts.Normalize(o.addr())}, o.signer.PublicKey()) + "\n")
		}
		writeFile(t, h.file("authorized_keys"), auth.String())
		writeFile(t, h.file("known_hosts"), known.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, h := range hosts {
		var list []*Node
		for _, o := range hosts {
			if o == h {
				continue
			}
			n, err := New(Options{
				Node: h.name,
				Config: Config{AuthorizedKeys: h.file("authorized_keys"), KnownHosts: h.file("known_hosts"),
					Heartbeat: duration.Duration(50 * time.Millisecond), Timeout: duration.Duration(time.Second)},
				Peer:       Peer{Name: o.name, Address: o.addr()},
				Signer:     h.signer,
				Log:        h.log,
				MaxBackoff: 200 * time.Millisecond,
				Muxed:      true,
			})
			if err != nil {
				t.Fatal(err)
			}
			n.HandleRaw("echo", echo)
			n.OnSession(func(ctx context.Context, s *Session) {
				h.mu.Lock()
				h.sessions[s.Peer] = s
				h.mu.Unlock()
				<-ctx.Done()
			})
			h.nodes[o.name] = n
			list = append(list, n)
			wg.Go(func() { n.Run(ctx) })
		}
		m, err := NewMux(h.ln, h.log, list...)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { m.Run(ctx) })
	}
	for _, h := range hosts {
		for peer, n := range h.nodes {
			deadline := time.Now().Add(10 * time.Second)
			for st := n.Status(); !st.Connected || !st.Inbound; st = n.Status() {
				if time.Now().After(deadline) {
					t.Fatalf("%s's link to %s: %+v, want connected both ways", h.name, peer, st)
				}
				<-n.Changed()
			}
		}
	}
	for _, h := range hosts {
		for peer := range h.nodes {
			var s *Session
			deadline := time.Now().Add(10 * time.Second)
			for s == nil {
				h.mu.Lock()
				s = h.sessions[peer]
				h.mu.Unlock()
				if time.Now().After(deadline) {
					t.Fatalf("%s: no session to %s", h.name, peer)
				}
				time.Sleep(time.Millisecond)
			}
			ch, err := s.OpenRaw("echo")
			if err != nil {
				t.Fatalf("%s -> %s: %v", h.name, peer, err)
			}
			msg := []byte(h.name + " to " + peer)
			ch.Write(msg)
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(ch, got); err != nil || !bytes.Equal(got, msg) {
				t.Errorf("%s -> %s echo = %q, %v", h.name, peer, got, err)
			}
			ch.Close()
		}
	}

	// A client with a trusted key but a name that is no peer of the host is
	// refused at the SSH handshake.
	nc, err := net.Dial("tcp", hosts["witness"].addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_, _, _, err = ssh.NewClientConn(nc, hosts["witness"].addr(), &ssh.ClientConfig{
		User: "mallory", Auth: []ssh.AuthMethod{ssh.PublicKeys(hosts["alpha"].signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second,
	})
	if err == nil {
		t.Error("witness accepted a client calling itself mallory")
	}
	// And one naming a peer but holding another host's key is refused
	// when that key is not in the authorized_keys (here every host trusts
	// both others, so use a fresh key).
	nc2, err := net.Dial("tcp", hosts["witness"].addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	_, _, _, err = ssh.NewClientConn(nc2, hosts["witness"].addr(), &ssh.ClientConfig{
		User: "alpha", Auth: []ssh.AuthMethod{ssh.PublicKeys(newSigner(t))},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second,
	})
	if err == nil {
		t.Error("witness accepted an unknown key for alpha")
	}
}
