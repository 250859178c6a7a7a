package failover

import (
	"bytes"
	"errors"
	"testing"

	"github.com/tandemhost/tandem/pipe"
)

func encodeHeartbeat(h *Heartbeat) []byte {
	var e pipe.Encoder
	h.Encode(&e)
	return bytes.Clone(e.Buf())
}

func TestHeartbeatRoundTrip(t *testing.T) {
	for _, h := range []Heartbeat{
		{Node: "alpha", Epoch: 7, Role: Primary, Health: HealthUp, Priority: 100, Address: "198.51.100.1", TimeUnixNano: 1_700_000_000_000_000_000},
		{Node: "b", Role: Standby, Hold: true, Priority: -5, Address: "2001:db8::1"},
	} {
		got, err := DecodeHeartbeat(typeHeartbeat, encodeHeartbeat(&h))
		if err != nil {
			t.Fatalf("DecodeHeartbeat(%+v): %v", h, err)
		}
		if *got != h {
			t.Errorf("DecodeHeartbeat(Encode(%+v)) = %+v", h, *got)
		}
	}
}

func TestDecodeHeartbeatRejects(t *testing.T) {
	good := encodeHeartbeat(&Heartbeat{Node: "alpha", Epoch: 1, Role: Primary, Priority: 100})
	badRole := bytes.Clone(good)
	badRole[len("alpha")+2] = 7 // the role byte, after the name and the epoch
	tests := map[string]struct {
		typ  uint8
		body []byte
	}{
		"unknown type":   {9, good},
		"truncated":      {typeHeartbeat, good[:len(good)-1]},
		"trailing bytes": {typeHeartbeat, append(bytes.Clone(good), 0)},
		"bad role":       {typeHeartbeat, badRole},
		"empty name":     {typeHeartbeat, encodeHeartbeat(&Heartbeat{Role: Standby})},
		"long name":      {typeHeartbeat, encodeHeartbeat(&Heartbeat{Node: string(make([]byte, 65))})},
	}
	for name, tt := range tests {
		if h, err := DecodeHeartbeat(tt.typ, tt.body); !errors.Is(err, pipe.ErrMalformed) {
			t.Errorf("%s: DecodeHeartbeat = %+v, %v; want ErrMalformed", name, h, err)
		}
	}
}

// FuzzDecodeHeartbeat: no input panics, and whatever decodes re-encodes to
// something that decodes to the same heartbeat.
func FuzzDecodeHeartbeat(f *testing.F) {
	f.Add(typeHeartbeat, encodeHeartbeat(&Heartbeat{Node: "alpha", Epoch: 3, Role: Primary, Health: HealthUp, Priority: 100, Address: "198.51.100.1", TimeUnixNano: 42}))
	f.Add(typeHeartbeat, []byte{})
	f.Add(uint8(2), []byte{1, 'a'})
	f.Fuzz(func(t *testing.T, typ uint8, body []byte) {
		h, err := DecodeHeartbeat(typ, body)
		if err != nil {
			return
		}
		again, err := DecodeHeartbeat(typ, encodeHeartbeat(h))
		if err != nil || *again != *h {
			t.Fatalf("re-decoding %+v gave %+v, %v", *h, again, err)
		}
	})
}
