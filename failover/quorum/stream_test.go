package quorum

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

func TestStreamLayer(t *testing.T) {
	// alpha dials beta over an in-memory channel pair.
	var beta *StreamLayer
	delivered := make(chan error, 4)
	alpha := NewStreamLayer("alpha", func(ctx context.Context, peer string) (net.Conn, error) {
		if peer != "beta" {
			return nil, errors.New("no route")
		}
		a, b := channelPair()
		go func() { delivered <- beta.Deliver(ChannelConn(b, "beta", "alpha")) }()
		return ChannelConn(a, "alpha", "beta"), nil
	})
	beta = NewStreamLayer("beta", nil)

	if got := alpha.Addr().String(); got != "alpha" {
		t.Errorf("Addr() = %q, want alpha", got)
	}
	if _, err := alpha.Dial("gamma", time.Second); err == nil || !strings.Contains(err.Error(), "gamma") {
		t.Errorf("Dial(gamma) = %v, want an error naming gamma", err)
	}

	out, err := alpha.Dial("beta", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	in, err := beta.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := out.Write([]byte("rpc")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	if _, err := in.Read(buf); err != nil || string(buf) != "rpc" {
		t.Fatalf("Read = %q, %v, want rpc", buf, err)
	}
	// Deliver returns once the conn it handed over is closed.
	in.Close()
	if err := <-delivered; err != nil {
		t.Errorf("Deliver = %v, want nil after the conn closed", err)
	}

	// Close ends Accept and every conn handed out.
	out2, err := alpha.Dial("beta", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := beta.Accept(); err != nil {
		t.Fatal(err)
	}
	beta.Close()
	if err := <-delivered; err != nil {
		t.Errorf("Deliver = %v, want nil after Close", err)
	}
	if _, err := beta.Accept(); !errors.Is(err, ErrClosed) {
		t.Errorf("Accept after Close = %v, want ErrClosed", err)
	}
	out2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := out2.Read(buf); err == nil {
		t.Error("Read of a conn whose peer layer closed succeeded")
	}
	alpha.Close()
	if _, err := alpha.Dial("beta", time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("Dial after Close = %v, want ErrClosed", err)
	}
	if err := out.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Errorf("Close = %v", err)
	}
}

func TestDeliverRefusesBadHeaders(t *testing.T) {
	layer := NewStreamLayer("beta", nil)
	defer layer.Close()
	tests := []struct {
		name   string
		header []byte
		want   string
	}{
		{"other version", []byte{headerVersion + 1, purposeRaft}, "version"},
		{"unknown purpose", []byte{headerVersion, 'X'}, "purpose"},
		{"control without a quorum", []byte{headerVersion, purposeControl}, "no quorum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := channelPair()
			peer := ChannelConn(a, "alpha", "beta")
			defer peer.Close()
			go peer.Write(tt.header)
			err := layer.Deliver(ChannelConn(b, "beta", "alpha"))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Deliver = %v, want an error about %s", err, tt.want)
			}
		})
	}
}
