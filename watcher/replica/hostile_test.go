package replica

// These tests start a real receiving node (beta: a pipe node serving a
// replica Engine over a temp tree, with a real index and conflict log and
// its scan loop running) and a hostile peer (alpha: a pipe node holding a
// trusted key that, instead of an engine, sends crafted frames from its
// OnSession hook, plus raw SSH connections for byte-level attacks).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandemhost/tandem/internal/pipetest"

	"github.com/zeebo/blake3"
	"golang.org/x/crypto/ssh"

	"github.com/tandemhost/tandem/conflict"
	"github.com/tandemhost/tandem/pipe"
	"github.com/tandemhost/tandem/pipe/delta"
	"github.com/tandemhost/tandem/watcher/index"
)

// hostile is the pair of a receiving node and a hostile peer.
type hostile struct {
	beta    *side
	alpha   *pipetest.Node
	base    string // holds root and outside, and nothing else
	outside string // a sibling of the root the peer must never reach
	absGone bool   // /abs.txt did not exist before the tests

	mu      sync.Mutex // guards sess, sessCtx
	sess    *pipe.Session
	sessCtx context.Context

	streams []*pipe.Stream // opened by the current attack
}

const sentinel = "keep me"

func newHostile(t *testing.T) *hostile {
	base := t.TempDir()
	h := &hostile{base: base, outside: filepath.Join(base, "outside")}
	if err := os.Mkdir(h.outside, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(h.outside, "victim"), sentinel)
	if _, err := os.Lstat("/abs.txt"); errors.Is(err, fs.ErrNotExist) {
		h.absGone = true
	}
	h.alpha = pipetest.NewNode(t, "alpha")
	h.beta = newSide(t, "beta", "alpha", filepath.Join(base, "root"))
	pipetest.Trust(t, h.beta.Node, h.alpha)
	pipetest.Trust(t, h.alpha, h.beta.Node)
	h.beta.runEngine(t)
	// beta's own sender has nobody to talk to: the hostile peer serves no
	// files streams.
	h.beta.Start(t, "alpha", unusedAddr(t), h.beta.eng.Register)
	h.alpha.Start(t, "beta", h.beta.Addr(), func(n *pipe.Node) {
		n.OnSession(func(ctx context.Context, s *pipe.Session) {
			h.mu.Lock()
			h.sess, h.sessCtx = s, ctx
			h.mu.Unlock()
			<-ctx.Done()
		})
	})
	return h
}

// session returns the hostile peer's live session to beta, waiting for
// one if the last has ended.
func (h *hostile) session(t *testing.T) *pipe.Session {
	t.Helper()
	var s *pipe.Session
	waitFor(t, "a session from the hostile peer", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		s = h.sess
		return s != nil && h.sessCtx.Err() == nil
	})
	return s
}

type frame struct {
	typ  uint8
	body []byte
	err  error
}

// recvFrame reads the next frame of st, failing the test if none comes.
func recvFrame(t *testing.T, st *pipe.Stream) frame {
	t.Helper()
	c := make(chan frame, 1)
	go func() {
		typ, body, err := st.Recv()
		c <- frame{typ, bytes.Clone(body), err}
	}()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	select {
	case f := <-c:
		return f
	case <-timer.C:
		st.Close()
		<-c
		t.Fatalf("no frame and no end of stream within %v", waitTimeout)
		return frame{}
	}
}

// expectEnd checks that the receiver closes st without answering.
func expectEnd(t *testing.T, st *pipe.Stream) {
	t.Helper()
	if f := recvFrame(t, st); f.err == nil {
		t.Fatalf("receiver answered with a frame of type %d instead of closing the stream", f.typ)
	}
}

// expectAck reads frames until an Ack and checks its seq.
func expectAck(t *testing.T, st *pipe.Stream, seq uint64) {
	t.Helper()
	f := recvFrame(t, st)
	if f.err != nil {
		t.Fatalf("waiting for Ack %d: %v", seq, f.err)
	}
	var a Ack
	if f.typ != typeAck || pipe.Unmarshal(f.body, &a) != nil {
		t.Fatalf("got frame type %d, want Ack %d", f.typ, seq)
	}
	if a.Seq != seq {
		t.Fatalf("Ack %d, want %d", a.Seq, seq)
	}
}

// openStream opens a files stream without saying anything on it.
func (h *hostile) openStream(t *testing.T) *pipe.Stream {
	t.Helper()
	st, err := h.session(t).Open(kindFiles, wantMaxFrame)
	if err != nil {
		t.Fatal(err)
	}
	h.streams = append(h.streams, st)
	return st
}

// files opens a files stream for the root and returns beta's watermark.
func (h *hostile) files(t *testing.T) (*pipe.Stream, uint64) {
	t.Helper()
	st := h.openStream(t)
	if err := st.Send(&Open{Root: rootName}); err != nil {
		t.Fatal(err)
	}
	f := recvFrame(t, st)
	if f.err != nil {
		t.Fatalf("waiting for Opened: %v", f.err)
	}
	var o Opened
	if f.typ != typeOpened || pipe.Unmarshal(f.body, &o) != nil || o.Error != "" {
		t.Fatalf("answer to Open: type %d %+v", f.typ, o)
	}
	return st, o.Watermark
}

func (h *hostile) bulk(t *testing.T) *pipe.Stream {
	t.Helper()
	st, err := h.session(t).Open(kindBulk, bulkMaxFrame)
	if err != nil {
		t.Fatal(err)
	}
	h.streams = append(h.streams, st)
	return st
}

// closeStreams closes the streams the last attack opened: beta serves one
// files stream per tree at a time.
func (h *hostile) closeStreams() {
	for _, st := range h.streams {
		st.Close()
	}
	h.streams = nil
}

// refused sends one crafted frame after Open and checks that the receiver
// closes the stream.
func (h *hostile) refused(t *testing.T, typ uint8, body func(seq uint64) []byte) {
	t.Helper()
	st, wm := h.files(t)
	if err := st.SendFrame(typ, body(wm+1)); err != nil {
		t.Fatal(err)
	}
	expectEnd(t, st)
}

// refusedChange sends c (its Seq set above the watermark) and checks that
// the receiver closes the stream.
func (h *hostile) refusedChange(t *testing.T, c *Change) {
	t.Helper()
	h.refused(t, typeChange, func(seq uint64) []byte {
		c.Seq = seq
		return encode(c)
	})
}

// sendGood sends a well-formed change creating name and checks that beta
// acks and applies it.
func (h *hostile) sendGood(t *testing.T, name string) {
	t.Helper()
	st, wm := h.files(t)
	content := "good content of " + name
	if err := st.Send(testChange(wm+1, name, content)); err != nil {
		t.Fatal(err)
	}
	expectAck(t, st, wm+1)
	h.closeStreams()
	got, err := os.ReadFile(filepath.Join(h.beta.root, name))
	if err != nil || string(got) != content {
		t.Fatalf("after the Ack, %s holds %q, %v; want %q", name, got, err, content)
	}
	rec, ok, err := h.beta.db.Get(rootName, name)
	if err != nil || !ok || rec.Origin != "alpha" {
		t.Fatalf("index record of %s = %+v, %v, %v; want one from alpha", name, rec, ok, err)
	}
}

// checkContained checks that nothing was written outside the root and no
// temporary file was left inside it.
func (h *hostile) checkContained(t *testing.T) {
	t.Helper()
	ents, err := os.ReadDir(h.base)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"outside", "root"}) {
		t.Errorf("the directory around the root holds %q, want only outside and root", names)
	}
	ents, err = os.ReadDir(h.outside)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "victim" {
		t.Errorf("the sentinel directory outside the root holds %v, want only victim", ents)
	}
	if b, err := os.ReadFile(filepath.Join(h.outside, "victim")); err != nil || string(b) != sentinel {
		t.Errorf("the sentinel file outside the root holds %q, %v; want %q", b, err, sentinel)
	}
	if _, err := os.Lstat("/abs.txt"); h.absGone && err == nil {
		t.Errorf("/abs.txt was created")
	}
	filepath.WalkDir(h.beta.root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), index.TmpPrefix) {
			t.Errorf("temporary file %s left in the root", p)
		}
		return nil
	})
}

// waitWarn waits until beta logged a warning mentioning every one of want.
func (h *hostile) waitWarn(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !h.beta.Warned(want...) {
		if time.Now().After(deadline) {
			t.Fatalf("no warning mentioning %q; warnings: %q", want, h.beta.Warnings())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rawFiles opens a files stream on a raw SSH connection to beta with
// alpha's key (a probe, so it does not replace alpha's own link) and sends
// Open on it. It returns the channel; the connection closes at cleanup.
func (h *hostile) rawFiles(t *testing.T) ssh.Channel {
	t.Helper()
	client, err := ssh.Dial("tcp", h.beta.Addr(), &ssh.ClientConfig{
		User:              "alpha",
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(h.alpha.Signer)},
		HostKeyCallback:   ssh.FixedHostKey(h.beta.Signer.PublicKey()),
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
		Timeout:           waitTimeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	ctrl, reqs, err := client.OpenChannel("tandem-control", nil)
	if err != nil {
		t.Fatal(err)
	}
	go ssh.DiscardRequests(reqs)
	hello := &pipe.Hello{MinVersion: pipe.MinProtocolVersion, MaxVersion: pipe.ProtocolVersion,
		Node: "alpha", Peer: "beta", Flags: pipe.HelloProbe}
	if err := pipe.NewFrameWriter(ctrl, 0).Write(hello.Type(), encode(hello)); err != nil {
		t.Fatal(err)
	}
	if typ, _, err := pipe.NewFrameReader(ctrl, 0).Read(); err != nil || typ != (&pipe.Welcome{}).Type() {
		t.Fatalf("handshake: frame type %d, %v; want Welcome", typ, err)
	}
	ch, reqs, err := client.OpenChannel("tandem-"+kindFiles, nil)
	if err != nil {
		t.Fatal(err)
	}
	go ssh.DiscardRequests(reqs)
	if err := pipe.NewFrameWriter(ch, 0).Write(typeOpen, encode(&Open{Root: rootName})); err != nil {
		t.Fatal(err)
	}
	if typ, _, err := pipe.NewFrameReader(ch, wantMaxFrame).Read(); err != nil || typ != typeOpened {
		t.Fatalf("answer to Open: frame type %d, %v", typ, err)
	}
	return ch
}

// rawRefused writes b on a raw files stream after Open and checks that
// beta closes the stream.
func (h *hostile) rawRefused(t *testing.T, b []byte, closeWrite bool) {
	t.Helper()
	ch := h.rawFiles(t)
	if _, err := ch.Write(b); err != nil {
		t.Fatal(err)
	}
	if closeWrite {
		ch.CloseWrite()
	}
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, ch)
		done <- err
	}()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		ch.Close()
		<-done
		t.Fatal("beta did not close the stream")
	}
}

// largeChange announces a file too large for inline content.
func largeChange(seq uint64, path string, content []byte) *Change {
	return &Change{
		Seq: seq,
		Rec: index.Record{Path: path, Type: index.File, Size: int64(len(content)), MtimeNs: time.Now().UnixNano(),
			Mode: 0o644, Hash: blake3.Sum256(content), Vector: conflict.Vector{{Node: "alpha", Value: seq}}, Origin: "alpha"},
		Flags: flagLarge,
	}
}

func randomBytes(n int) []byte {
	r := rand.New(rand.NewPCG(1, uint64(n)))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// literalDelta is content as a delta against nothing.
func literalDelta(t *testing.T, content []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := delta.Diff(emptySignature, bytes.NewReader(content), &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sendLarge announces a large file at seq, answers the receiver's Want
// with the whole content on bulk, and checks the Ack.
func sendLarge(t *testing.T, st, bulk *pipe.Stream, seq uint64, path string, content []byte) {
	t.Helper()
	if err := st.Send(largeChange(seq, path, content)); err != nil {
		t.Fatal(err)
	}
	expectWant(t, st, seq)
	if err := bulk.Send(&Range{Root: rootName, Seq: seq, Size: int64(len(content)), Delta: literalDelta(t, content)}); err != nil {
		t.Fatal(err)
	}
	expectAck(t, st, seq)
}

// expectWant reads the receiver's Want for seq.
func expectWant(t *testing.T, st *pipe.Stream, seq uint64) {
	t.Helper()
	f := recvFrame(t, st)
	var w Want
	if f.err != nil || f.typ != typeWant || pipe.Unmarshal(f.body, &w) != nil || w.Seq != seq {
		t.Fatalf("got frame type %d (%v), want Want %d", f.typ, f.err, seq)
	}
}

func TestHostilePeer(t *testing.T) {
	h := newHostile(t)
	// The pair works before any attack.
	h.sendGood(t, "before.txt")

	withPath := func(p string) func(t *testing.T, h *hostile) {
		return func(t *testing.T, h *hostile) {
			h.refusedChange(t, testChange(0, p, "escape"))
		}
	}
	tests := []struct {
		name   string
		attack func(t *testing.T, h *hostile)
		warn   []string // what beta's warning must mention; nil: no warning needed
	}{
		{"change before Open", func(t *testing.T, h *hostile) {
			st := h.openStream(t)
			if err := st.Send(testChange(1, "early.txt", "x")); err != nil {
				t.Fatal(err)
			}
			expectEnd(t, st)
		}, []string{"stream ended with error", "instead of Open"}},

		{"Open for a tree beta does not sync", func(t *testing.T, h *hostile) {
			st := h.openStream(t)
			if err := st.Send(&Open{Root: "/srv/other"}); err != nil {
				t.Fatal(err)
			}
			f := recvFrame(t, st)
			var o Opened
			if f.err != nil || f.typ != typeOpened || pipe.Unmarshal(f.body, &o) != nil || !strings.Contains(o.Error, "syncs no tree") {
				t.Fatalf("answer = type %d %+v (%v), want Opened with an error", f.typ, o, f.err)
			}
			expectEnd(t, st)
		}, nil},

		{"parent path", withPath("../escape.txt"), []string{"refused a change", "climbs out"}},
		{"absolute path", withPath("/abs.txt"), []string{"refused a change", "is absolute"}},
		{"climbing path", withPath("a/../../x"), []string{"refused a change", "climbs out"}},
		{"unclean path", withPath("a//b"), []string{"refused a change", "not clean"}},
		{"empty path", withPath(""), []string{"refused a change", "empty"}},
		{"NUL in a name", withPath("a\x00b"), []string{"refused a change", "NUL"}},
		{"invalid UTF-8", withPath("caf\xe9"), []string{"refused a change", "UTF-8"}},
		{"300-byte name", withPath(strings.Repeat("x", 300)), []string{"refused a change", "bytes long"}},

		{"huge length prefix", func(t *testing.T, h *hostile) {
			h.refused(t, typeChange, func(seq uint64) []byte {
				var e pipe.Encoder
				e.Uvarint(seq)
				e.Uvarint(math.MaxInt64) // path length
				e.Fixed([]byte("short"))
				return e.Buf()
			})
		}, []string{"refused a change", "exceeds limit"}},

		{"huge length prefix of inline data", func(t *testing.T, h *hostile) {
			h.refused(t, typeChange, func(seq uint64) []byte {
				b := encode(&Change{Seq: seq, Rec: testChange(0, "f", "").Rec, Flags: flagInline})
				b = b[:len(b)-1] // the empty data's length
				var e pipe.Encoder
				e.Uvarint(1 << 40)
				return append(b, e.Buf()...)
			})
		}, []string{"refused a change", "exceeds limit"}},

		{"truncated Change", func(t *testing.T, h *hostile) {
			h.refused(t, typeChange, func(seq uint64) []byte {
				b := encode(testChange(seq, "cut.txt", "content"))
				return b[:len(b)/2]
			})
		}, []string{"refused a change", "malformed"}},

		{"Change with trailing bytes", func(t *testing.T, h *hostile) {
			h.refused(t, typeChange, func(seq uint64) []byte {
				return append(encode(testChange(seq, "trail.txt", "content")), 1, 2, 3)
			})
		}, []string{"refused a change", "trailing"}},

		{"inline content not matching its hash", func(t *testing.T, h *hostile) {
			c := testChange(0, "forged.txt", "genuine")
			c.Data = []byte("forgery")
			h.refusedChange(t, c)
			if _, err := os.Lstat(filepath.Join(h.beta.root, "forged.txt")); err == nil {
				t.Error("forged.txt was written")
			}
		}, []string{"stream ended with error", "does not match its hash"}},

		{"zstd bomb", func(t *testing.T, h *hostile) {
			c := testChange(0, "bomb", strings.Repeat("x", 100))
			c.Flags |= flagZstd
			c.Data = zenc.EncodeAll(make([]byte, 64<<20), nil)
			h.refusedChange(t, c)
			if _, err := os.Lstat(filepath.Join(h.beta.root, "bomb")); err == nil {
				t.Error("bomb was written")
			}
		}, []string{"stream ended with error", "content of bomb"}},

		{"file through a symlink to outside the root", func(t *testing.T, h *hostile) {
			st, wm := h.files(t)
			link := &Change{Seq: wm + 1, Rec: index.Record{Path: "link", Type: index.Symlink, Size: int64(len(h.outside)),
				Target: h.outside, Vector: conflict.Vector{{Node: "alpha", Value: 1}}, Origin: "alpha"}}
			if err := st.Send(link); err != nil {
				t.Fatal(err)
			}
			// A symlink pointing anywhere is a legitimate thing to replicate.
			expectAck(t, st, wm+1)
			if target, err := os.Readlink(filepath.Join(h.beta.root, "link")); err != nil || target != h.outside {
				t.Fatalf("link = %q, %v; want a symlink to %s", target, err, h.outside)
			}
			if err := st.Send(testChange(wm+2, "link/passwd", "root::0:0::/:/bin/sh")); err != nil {
				t.Fatal(err)
			}
			expectEnd(t, st)
		}, []string{"stream ended with error", "link/passwd"}},

		{"directory through a relative symlink", func(t *testing.T, h *hostile) {
			st, wm := h.files(t)
			link := &Change{Seq: wm + 1, Rec: index.Record{Path: "up", Type: index.Symlink, Size: 10,
				Target: "../outside", Vector: conflict.Vector{{Node: "alpha", Value: 1}}, Origin: "alpha"}}
			if err := st.Send(link); err != nil {
				t.Fatal(err)
			}
			expectAck(t, st, wm+1)
			dir := &Change{Seq: wm + 2, Rec: index.Record{Path: "up/sub", Type: index.Dir, Mode: 0o755,
				Vector: conflict.Vector{{Node: "alpha", Value: 1}}, Origin: "alpha"}}
			if err := st.Send(dir); err != nil {
				t.Fatal(err)
			}
			expectEnd(t, st)
		}, []string{"stream ended with error", "up/sub"}},

		{"delete through a symlink", func(t *testing.T, h *hostile) {
			st, wm := h.files(t)
			link := &Change{Seq: wm + 1, Rec: index.Record{Path: "out", Type: index.Symlink, Size: int64(len(h.outside)),
				Target: h.outside, Vector: conflict.Vector{{Node: "alpha", Value: 1}}, Origin: "alpha"}}
			if err := st.Send(link); err != nil {
				t.Fatal(err)
			}
			expectAck(t, st, wm+1)
			gone := &Change{Seq: wm + 2, Rec: index.Record{Path: "out/victim", Type: index.File, Deleted: true,
				Vector: conflict.Vector{{Node: "alpha", Value: 5}}, Origin: "alpha"}}
			if err := st.Send(gone); err != nil {
				t.Fatal(err)
			}
			expectEnd(t, st)
		}, []string{"stream ended with error", "out/victim"}},

		{"escape inside a batch", func(t *testing.T, h *hostile) {
			// More than smallBatch changes at once take the receiver's
			// batched path (deferred renames, cached sub-roots).
			st, wm := h.files(t)
			seq := wm
			var frames []pipe.Message
			for i := range 12 {
				seq++
				frames = append(frames, testChange(seq, fmt.Sprintf("batch/f%02d", i), "batched"))
			}
			seq++
			frames = append(frames, &Change{Seq: seq, Rec: index.Record{Path: "batch/blink", Type: index.Symlink,
				Size: int64(len(h.outside)), Target: h.outside, Vector: conflict.Vector{{Node: "alpha", Value: 1}}, Origin: "alpha"}})
			seq++
			frames = append(frames, testChange(seq, "batch/blink/passwd", "root::0:0::/:/bin/sh"))
			for _, m := range frames {
				if err := st.Send(m); err != nil {
					t.Fatal(err)
				}
			}
			for {
				f := recvFrame(t, st)
				if f.err != nil {
					break
				}
				if f.typ != typeAck {
					t.Fatalf("receiver answered with a frame of type %d", f.typ)
				}
			}
		}, []string{"stream ended with error", "batch/blink/passwd"}},

		{"Ack from the sender", func(t *testing.T, h *hostile) {
			h.refused(t, typeAck, func(seq uint64) []byte { return encode(&Ack{Seq: seq}) })
		}, []string{"refused a change", "frame type 5 from sender"}},

		{"Range on the files stream", func(t *testing.T, h *hostile) {
			h.refused(t, typeRange, func(seq uint64) []byte {
				return encode(&Range{Root: rootName, Seq: seq, Size: 1, Delta: []byte{0}})
			})
		}, []string{"refused a change", "frame type 6 from sender"}},

		{"second Open", func(t *testing.T, h *hostile) {
			h.refused(t, typeOpen, func(uint64) []byte { return encode(&Open{Root: rootName}) })
		}, []string{"refused a change", "frame type 1 from sender"}},

		{"replayed seq", func(t *testing.T, h *hostile) {
			st, wm := h.files(t)
			if err := st.Send(testChange(wm+1, "once.txt", "once")); err != nil {
				t.Fatal(err)
			}
			expectAck(t, st, wm+1)
			if err := st.Send(testChange(wm+1, "twice.txt", "twice")); err != nil {
				t.Fatal(err)
			}
			expectEnd(t, st)
			if _, err := os.Lstat(filepath.Join(h.beta.root, "twice.txt")); err == nil {
				t.Error("a change with a replayed seq was applied")
			}
		}, []string{"stream ended with error", "after"}},

		{"raw frame with a huge length", func(t *testing.T, h *hostile) {
			h.rawRefused(t, []byte{0xff, 0xff, 0xff, 0xff, typeChange, 1, 2, 3}, false)
		}, []string{"stream ended with error", "frame too large"}},

		{"raw frame cut short", func(t *testing.T, h *hostile) {
			b := []byte{0, 0, 0x10, 0, typeChange}
			b = append(b, encode(testChange(1, "cut", "x"))...)
			h.rawRefused(t, b, true)
		}, []string{"stream ended with error", "unexpected EOF"}},

		{"zero-length raw frame", func(t *testing.T, h *hostile) {
			h.rawRefused(t, []byte{0, 0, 0, 0}, false)
		}, []string{"stream ended with error", "zero-length"}},

		{"Range for a seq never announced", func(t *testing.T, h *hostile) {
			st, wm := h.files(t)
			bulk := h.bulk(t)
			// Ranges for a seq nobody asked for are dropped...
			bogus := []byte("the peer never asked for this")
			for _, seq := range []uint64{wm + 1000, math.MaxUint64} {
				r := &Range{Root: rootName, Seq: seq, Size: int64(len(bogus)), Delta: literalDelta(t, bogus)}
				if err := bulk.Send(r); err != nil {
					t.Fatal(err)
				}
			}
			if err := bulk.Send(&Range{Root: "/no/such/tree", Seq: 1, Size: 1, Delta: literalDelta(t, []byte("x"))}); err != nil {
				t.Fatal(err)
			}
			// ...and the bulk stream still carries a real transfer.
			content := randomBytes(InlineMax + 1000)
			sendLarge(t, st, bulk, wm+1, "large.bin", content)
			if got, err := os.ReadFile(filepath.Join(h.beta.root, "large.bin")); err != nil || !bytes.Equal(got, content) {
				t.Fatalf("large.bin holds %d bytes (%v), want the %d sent", len(got), err, len(content))
			}
		}, nil},

		{"Range past the end of a large file", func(t *testing.T, h *hostile) {
			st, wm := h.files(t)
			bulk := h.bulk(t)
			content := randomBytes(InlineMax + 10)
			if err := st.Send(largeChange(wm+1, "past.bin", content)); err != nil {
				t.Fatal(err)
			}
			expectWant(t, st, wm+1)
			tail := randomBytes(100)
			r := &Range{Root: rootName, Seq: wm + 1, Offset: int64(len(content)) - 10, Size: 100, Delta: literalDelta(t, tail)}
			if err := bulk.Send(r); err != nil {
				t.Fatal(err)
			}
			expectEnd(t, st)
			if _, err := os.Lstat(filepath.Join(h.beta.root, "past.bin")); err == nil {
				t.Error("past.bin was written")
			}
		}, []string{"large file transfer failed", "beyond the end"}},

		{"Range delivering the wrong content", func(t *testing.T, h *hostile) {
			st, wm := h.files(t)
			bulk := h.bulk(t)
			content := randomBytes(InlineMax + 20)
			if err := st.Send(largeChange(wm+1, "swapped.bin", content)); err != nil {
				t.Fatal(err)
			}
			expectWant(t, st, wm+1)
			other := randomBytes(len(content) + 1)[1:]
			if err := bulk.Send(&Range{Root: rootName, Seq: wm + 1, Size: int64(len(other)), Delta: literalDelta(t, other)}); err != nil {
				t.Fatal(err)
			}
			expectEnd(t, st)
			if _, err := os.Lstat(filepath.Join(h.beta.root, "swapped.bin")); err == nil {
				t.Error("swapped.bin was written")
			}
		}, []string{"stream ended with error", "does not match its hash"}},

		{"Change on a bulk stream", func(t *testing.T, h *hostile) {
			bulk := h.bulk(t)
			if err := bulk.Send(testChange(1, "bulk.txt", "x")); err != nil {
				t.Fatal(err)
			}
			expectEnd(t, bulk)
		}, []string{"stream ended with error", "on a bulk stream"}},

		{"large file announced, then the stream closed", func(t *testing.T, h *hostile) {
			st, wm := h.files(t)
			if err := st.Send(largeChange(wm+1, "abandoned.bin", randomBytes(InlineMax+1))); err != nil {
				t.Fatal(err)
			}
			expectWant(t, st, wm+1)
			st.Close()
			// checkContained finds no temp file once the next stream is served.
		}, nil},

		{"record the index refuses", func(t *testing.T, h *hostile) {
			c := testChange(0, "target.txt", "a file with a link target")
			c.Rec.Target = "elsewhere"
			h.refusedChange(t, c)
			if _, err := os.Lstat(filepath.Join(h.beta.root, "target.txt")); err == nil {
				t.Error("target.txt was written although its record was refused")
			}
		}, []string{"stream ended with error", "link target on a file"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.beta.Logs.TakeAll()
			defer h.closeStreams()
			tt.attack(t, h)
			if tt.warn != nil {
				h.waitWarn(t, tt.warn...)
			}
			// beta keeps serving the same peer.
			h.closeStreams()
			h.sendGood(t, fmt.Sprintf("ok-%d.txt", i))
			h.checkContained(t)
		})
	}
	if n := h.alpha.Pipe.Status().Connects; n != 1 {
		t.Errorf("the hostile peer connected %d times, want 1: beta dropped the whole link", n)
	}
}

// TestHostileFailedRangesDoNotWedge: a peer whose ranges keep failing must
// not leave a bulk stream handler blocked forever (it would keep the
// connection, and the node's Run, from ever returning).
func TestHostileFailedRangesDoNotWedge(t *testing.T) {
	for round := range 5 {
		t.Run(fmt.Sprint("round ", round), func(t *testing.T) {
			h := newHostile(t)
			st, wm := h.files(t)
			bulk := h.bulk(t)
			const n = 200
			for i := uint64(1); i <= n; i++ {
				if err := st.Send(largeChange(wm+i, fmt.Sprintf("f%03d", i), randomBytes(InlineMax+1))); err != nil {
					t.Fatal(err)
				}
			}
			for i := uint64(1); i <= n; i++ {
				expectWant(t, st, wm+i)
			}
			bad := literalDelta(t, randomBytes(100))
			for range 5 {
				for i := uint64(1); i <= n; i++ {
					if err := bulk.Send(&Range{Root: rootName, Seq: wm + i, Offset: InlineMax - 5, Size: 100, Delta: bad}); err != nil {
						t.Fatal(err)
					}
				}
			}
			expectEnd(t, st)
			h.closeStreams()
			if !h.beta.Stop() {
				t.Fatalf("beta's node did not stop within %v after a peer sent failing ranges", waitTimeout)
			}
		})
		if t.Failed() {
			return
		}
	}
}

// TestHostileDuplicateRanges: ranges that keep coming for a transfer whose
// bytes all arrived are dropped or refused, without racing the receiver
// that finishes it. Run it with -race.
func TestHostileDuplicateRanges(t *testing.T) {
	h := newHostile(t)
	for round := range 10 {
		st, wm := h.files(t)
		bulk := h.bulk(t)
		content := randomBytes(InlineMax + 100)
		if err := st.Send(largeChange(wm+1, fmt.Sprintf("dup-%d.bin", round), content)); err != nil {
			t.Fatal(err)
		}
		expectWant(t, st, wm+1)
		good := &Range{Root: rootName, Seq: wm + 1, Size: int64(len(content)), Delta: literalDelta(t, content)}
		bad := &Range{Root: rootName, Seq: wm + 1, Offset: InlineMax, Size: 1000, Delta: literalDelta(t, randomBytes(1000))}
		if err := bulk.Send(good); err != nil {
			t.Fatal(err)
		}
		for range 10 {
			if err := bulk.Send(bad); err != nil {
				t.Fatal(err)
			}
		}
		recvFrame(t, st) // the Ack, or the end of the stream
		h.closeStreams()
		h.sendGood(t, fmt.Sprintf("after-dup-%d.txt", round))
		h.checkContained(t)
	}
}

// TestHostileRefusedChangeInBatch: when one change of a batch is refused,
// the changes before it are either recorded (index and watermark) or not
// on disk; never on disk unrecorded, where the next scan would take them
// for this node's own changes and send them back.
func TestHostileRefusedChangeInBatch(t *testing.T) {
	h := newHostile(t)
	st, wm := h.files(t)
	const n = 12
	for i := range n {
		if err := st.Send(testChange(wm+uint64(i)+1, fmt.Sprintf("batch/f%02d", i), "batched")); err != nil {
			t.Fatal(err)
		}
	}
	forged := testChange(wm+n+1, "batch/forged", "genuine")
	forged.Data = []byte("forgery")
	if err := st.Send(forged); err != nil {
		t.Fatal(err)
	}
	for {
		if f := recvFrame(t, st); f.err != nil {
			break
		}
	}
	for i := range n {
		p := fmt.Sprintf("batch/f%02d", i)
		_, err := os.Lstat(filepath.Join(h.beta.root, p))
		rec, ok, _ := h.beta.db.Get(rootName, p)
		if err == nil && (!ok || rec.Origin != "alpha") {
			t.Errorf("%s is on disk but not recorded as alpha's version (record found %v, origin %q)", p, ok, rec.Origin)
		}
	}
}

// hookWaitMore sets testHookWaitMore, before the engine starts and until
// after it stops, to report on the returned channel each wait of the
// receiver for the rest of a flagged batch.
func hookWaitMore(t *testing.T) <-chan int {
	waiting := make(chan int, 1)
	testHookWaitMore = func(n int) {
		select {
		case waiting <- n:
		default:
		}
	}
	t.Cleanup(func() { testHookWaitMore = nil }) // after the engine's own cleanups
	return waiting
}

// expectWaitMore returns the batch length the receiver waits with, failing
// if it does not wait.
func expectWaitMore(t *testing.T, waiting <-chan int) int {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	select {
	case n := <-waiting:
		return n
	case <-timer.C:
		t.Fatalf("beta did not wait for the rest of a flagged batch within %v", waitTimeout)
		return 0
	}
}

// TestRenameBatchWaitsForItsDelete: the sender read a rename from its
// index as a create and a delete of the same content, and flagged them as
// one batch. Beta takes the create, waits for the delete instead of
// applying the create alone, and then moves its own copy: it asks for no
// content. (Without the flag, a delete arriving a moment late cost the
// whole file over the link.)
func TestRenameBatchWaitsForItsDelete(t *testing.T) {
	waiting := hookWaitMore(t)
	h := newHostile(t)
	st, wm := h.files(t)
	bulk := h.bulk(t)
	content := randomBytes(InlineMax + 1000)
	sendLarge(t, st, bulk, wm+1, "big.bin", content)

	create := largeChange(wm+2, "moved/big.bin", content)
	create.Flags |= flagMore
	if err := st.Send(create); err != nil {
		t.Fatal(err)
	}
	if n := expectWaitMore(t, waiting); n != 1 {
		t.Fatalf("beta waits for more with %d changes in hand, want 1", n)
	}
	del := &Change{Seq: wm + 3, Rec: index.Record{Path: "big.bin", Type: index.File, Deleted: true,
		Size: int64(len(content)), Hash: blake3.Sum256(content),
		Vector: conflict.Vector{{Node: "alpha", Value: wm + 3}}, Origin: "alpha"}}
	if err := st.Send(del); err != nil {
		t.Fatal(err)
	}
	// A Want for wm+2 would come before this Ack if beta asked for the
	// content.
	expectAck(t, st, wm+3)
	if got, err := os.ReadFile(filepath.Join(h.beta.root, "moved/big.bin")); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("moved/big.bin holds %d bytes (%v), want the %d of big.bin", len(got), err, len(content))
	}
	if _, err := os.Lstat(filepath.Join(h.beta.root, "big.bin")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("big.bin still there after the rename: %v", err)
	}
}

// TestConflictCopyFromPeerIsReused: alpha decided a conflict first and sent
// its copy of the loser (its own version) before its version of the path.
// Beta, deciding the same conflict, finds that copy under the name it
// would choose and keeps it: one copy on both nodes, not a second one
// under "-2" (which CI saw in TestFilesInitialSyncOfIdenticalTreesSendsNoContent).
func TestConflictCopyFromPeerIsReused(t *testing.T) {
	h := newHostile(t)
	h.sendGood(t, "ready.txt") // beta's watcher and engine are up
	mustWrite(t, filepath.Join(h.beta.root, "differs.txt"), []byte("beta's"))
	waitFor(t, "beta's own version of differs.txt in its index", func() bool {
		rec, ok, err := h.beta.db.Get(rootName, "differs.txt")
		return err == nil && ok && rec.Origin == "beta"
	})
	st, wm := h.files(t)
	alphas := testChange(wm+1, "differs.txt", "alpha's") // older than beta's: alpha loses
	name := conflict.ConflictName("differs.txt", "alpha", time.Unix(0, alphas.Rec.MtimeNs), nil)
	cp := testChange(wm+1, name, "alpha's")
	cp.Rec.Vector = alphas.Rec.Vector // a copy has the loser's vector
	alphas.Seq = wm + 2
	if err := st.Send(cp); err != nil {
		t.Fatal(err)
	}
	if err := st.Send(alphas); err != nil {
		t.Fatal(err)
	}
	for {
		f := recvFrame(t, st)
		var a Ack
		if f.err != nil || f.typ != typeAck || pipe.Unmarshal(f.body, &a) != nil {
			t.Fatalf("waiting for Ack %d: frame type %d, %v", wm+2, f.typ, f.err)
		}
		if a.Seq == wm+2 {
			break
		}
	}
	copies, _ := filepath.Glob(filepath.Join(h.beta.root, "differs.conflict-*"))
	if len(copies) != 1 || filepath.Base(copies[0]) != name {
		t.Errorf("conflict copies on beta = %v, want just %s", copies, name)
	}
	if got, err := os.ReadFile(filepath.Join(h.beta.root, name)); err != nil || string(got) != "alpha's" {
		t.Errorf("%s holds %q, %v; want alpha's version", name, got, err)
	}
	if got, err := os.ReadFile(filepath.Join(h.beta.root, "differs.txt")); err != nil || string(got) != "beta's" {
		t.Errorf("differs.txt holds %q, %v; want beta's version, the newer", got, err)
	}
	entries, err := h.beta.conflicts.List(conflict.Filter{})
	if err != nil || len(entries) != 1 || entries[0].KeptAs != name {
		t.Errorf("conflict log = %+v, %v; want one entry keeping %s", entries, err, name)
	}
}

// TestDeleteDropsCompleteTransfer: a large file's bytes have all arrived
// but the receiver has not applied it yet when the peer's delete of the
// file and of its directory comes. The delete drops the transfer, so its
// temp file does not keep the directory: gone by the Ack, never seen by a
// scan as a directory this node made (which resurrected it on both nodes
// in TestTortureFiles).
func TestDeleteDropsCompleteTransfer(t *testing.T) {
	waiting := hookWaitMore(t)
	h := newHostile(t)
	st, wm := h.files(t)
	bulk := h.bulk(t)
	dir := &Change{Seq: wm + 1, Rec: index.Record{Path: "d", Type: index.Dir, Mode: 0o755,
		Vector: conflict.Vector{{Node: "alpha", Value: wm + 1}}, Origin: "alpha"}}
	if err := st.Send(dir); err != nil {
		t.Fatal(err)
	}
	expectAck(t, st, wm+1)
	content := randomBytes(InlineMax + 1000)
	if err := st.Send(largeChange(wm+2, "d/big.bin", content)); err != nil {
		t.Fatal(err)
	}
	expectWant(t, st, wm+2)

	// The file's delete, flagged as having more behind it: beta waits for
	// the rest of the batch while the transfer completes.
	del := &Change{Seq: wm + 3, Rec: index.Record{Path: "d/big.bin", Type: index.File, Deleted: true,
		Size: int64(len(content)), Hash: blake3.Sum256(content),
		Vector: conflict.Vector{{Node: "alpha", Value: wm + 3}}, Origin: "alpha"}, Flags: flagMore}
	if err := st.Send(del); err != nil {
		t.Fatal(err)
	}
	expectWaitMore(t, waiting)
	if err := bulk.Send(&Range{Root: rootName, Seq: wm + 2, Size: int64(len(content)), Delta: literalDelta(t, content)}); err != nil {
		t.Fatal(err)
	}
	rc := h.beta.eng.receiverOf(rootName)
	waitFor(t, "the transfer handed over, complete", func() bool {
		rc.pendingMu.Lock()
		defer rc.pendingMu.Unlock()
		tr := rc.pending[wm+2]
		return tr != nil && tr.handed
	})
	rmdir := &Change{Seq: wm + 4, Rec: index.Record{Path: "d", Type: index.Dir, Deleted: true,
		Vector: conflict.Vector{{Node: "alpha", Value: wm + 4}}, Origin: "alpha"}}
	if err := st.Send(rmdir); err != nil {
		t.Fatal(err)
	}
	expectAck(t, st, wm+4)
	if _, err := os.Lstat(filepath.Join(h.beta.root, "d")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("d still on disk when beta acked its delete: %v", err)
	}
}
