package quorum

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/net/nettest"
)

// pipeChannel is one end of an in-memory duplex byte stream, the stand-in
// for an SSH channel: it has no deadlines, and Close unblocks both ways.
type pipeChannel struct {
	*io.PipeReader
	*io.PipeWriter
}

func (p pipeChannel) Close() error {
	_ = p.PipeReader.Close()
	return p.PipeWriter.Close()
}

func channelPair() (a, b pipeChannel) {
	ar, bw := io.Pipe()
	br, aw := io.Pipe()
	return pipeChannel{ar, aw}, pipeChannel{br, bw}
}

func connPair() (c1, c2 net.Conn, stop func(), err error) {
	a, b := channelPair()
	c1, c2 = ChannelConn(a, "alpha", "beta"), ChannelConn(b, "beta", "alpha")
	return c1, c2, func() { c1.Close(); c2.Close() }, nil
}

// TestChannelConnConformance runs x/net's net.Conn conformance suite:
// ordering, concurrent use, and deadlines in the past, present and future.
func TestChannelConnConformance(t *testing.T) {
	nettest.TestConn(t, connPair)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() && errors.Is(err, os.ErrDeadlineExceeded)
}

func TestChannelConnDeadlines(t *testing.T) {
	c1, c2, stop, _ := connPair()
	defer stop()

	t.Run("read times out and the stream stays intact", func(t *testing.T) {
		c1.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		start := time.Now()
		buf := make([]byte, 8)
		if n, err := c1.Read(buf); n != 0 || !isTimeout(err) {
			t.Fatalf("Read = %d, %v, want 0 and a timeout", n, err)
		}
		if d := time.Since(start); d < 20*time.Millisecond {
			t.Fatalf("Read timed out after %v, before its deadline", d)
		}
		// Data sent after the timeout is read once the deadline is lifted.
		go c2.Write([]byte("ping"))
		c1.SetReadDeadline(time.Time{})
		if _, err := io.ReadFull(c1, buf[:4]); err != nil || string(buf[:4]) != "ping" {
			t.Fatalf("ReadFull = %q, %v, want ping", buf[:4], err)
		}
	})

	t.Run("a deadline set in the past unblocks a pending read", func(t *testing.T) {
		errc := make(chan error, 1)
		go func() {
			_, err := c1.Read(make([]byte, 8))
			errc <- err
		}()
		// The reader may or may not be blocked yet; either way it must
		// return a timeout once the deadline has passed.
		c1.SetReadDeadline(time.Unix(1, 0))
		if err := <-errc; !isTimeout(err) {
			t.Fatalf("Read = %v, want a timeout", err)
		}
		c1.SetReadDeadline(time.Time{})
	})

	t.Run("a blocked write times out with its bytes committed", func(t *testing.T) {
		// c2's pump takes "abc" and then waits for a Read of c2 that
		// does not come, so the pipe blocks the write of "def".
		if _, err := c1.Write([]byte("abc")); err != nil {
			t.Fatal(err)
		}
		c1.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
		n, err := c1.Write([]byte("def"))
		if n != 3 || !isTimeout(err) {
			t.Fatalf("Write = %d, %v, want 3 and a timeout", n, err)
		}
		if n, err := c1.Write([]byte("xyz")); n != 0 || !isTimeout(err) {
			t.Fatalf("Write after the deadline = %d, %v, want 0 and a timeout", n, err)
		}
		c1.SetWriteDeadline(time.Time{})
		done := make(chan error, 1)
		go func() {
			_, err := c1.Write([]byte("ghi"))
			done <- err
		}()
		buf := make([]byte, 9)
		if _, err := io.ReadFull(c2, buf); err != nil || string(buf) != "abcdefghi" {
			t.Fatalf("peer read %q, %v, want abcdefghi", buf, err)
		}
		if err := <-done; err != nil {
			t.Fatalf("Write = %v", err)
		}
	})

	t.Run("close unblocks a pending read", func(t *testing.T) {
		errc := make(chan error, 1)
		go func() {
			_, err := c1.Read(make([]byte, 8))
			errc <- err
		}()
		c1.Close()
		if err := <-errc; err == nil {
			t.Fatal("Read after Close succeeded")
		}
		if _, err := c1.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Write after Close = %v, want net.ErrClosed", err)
		}
		if n, err := c2.Read(make([]byte, 8)); err == nil {
			t.Fatalf("peer Read after Close = %d, nil, want an error", n)
		}
	})
}
