package pipe

import (
	"bytes"
	"errors"
	"io"
	"math"
	"reflect"
	"testing"
)

func TestControlMessagesRoundTrip(t *testing.T) {
	msgs := []Message{
		&Hello{MinVersion: 1, MaxVersion: 3, Node: "alpha", Peer: "beta", Epoch: 7, TimeUnixNano: -5},
		&Welcome{Version: 1, Node: "beta", Epoch: math.MaxUint64, TimeUnixNano: math.MaxInt64},
		&Refuse{Reason: "go away"},
		&Ping{Seq: 1, SentUnixNano: 123},
		&Pong{Seq: 1, SentUnixNano: 123, PeerUnixNano: 456, Epoch: 2},
	}
	var buf bytes.Buffer
	w := NewFrameWriter(&buf, 0)
	for _, m := range msgs {
		var e Encoder
		m.Encode(&e)
		if err := w.Write(m.Type(), e.Buf()); err != nil {
			t.Fatal(err)
		}
	}
	r := NewFrameReader(&buf, 0)
	for _, want := range msgs {
		typ, body, err := r.Read()
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeControl(typ, body)
		if err != nil {
			t.Fatalf("decode %T: %v", want, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("round trip = %+v, want %+v", got, want)
		}
	}
	if _, _, err := r.Read(); err != io.EOF {
		t.Errorf("Read at end = %v, want io.EOF", err)
	}
}

// TestWriteFrames: frames sent together read back one by one, and a batch
// with a frame over the limit, or a cut one, is refused whole.
func TestWriteFrames(t *testing.T) {
	var out bytes.Buffer
	w := NewFrameWriter(&out, 16)
	var batch []byte
	bodies := [][]byte{[]byte("one"), {}, []byte("fifteen bytes!!")}
	for i, b := range bodies {
		batch = AppendFrame(batch, uint8(i+1), b)
	}
	if err := w.WriteFrames(batch); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{
		AppendFrame(append([]byte(nil), batch...), 9, []byte("sixteen bytes!!!")),
		batch[:len(batch)-1],
		append(append([]byte(nil), batch...), 0, 0),
	} {
		if err := w.WriteFrames(bad); err == nil {
			t.Errorf("WriteFrames(%q) = nil", bad)
		}
	}
	r := NewFrameReader(&out, 16)
	for i, want := range bodies {
		typ, body, err := r.Read()
		if err != nil || typ != uint8(i+1) || !bytes.Equal(body, want) {
			t.Fatalf("frame %d: %d %q %v, want %d %q", i, typ, body, err, i+1, want)
		}
	}
	if _, _, err := r.Read(); err != io.EOF {
		t.Errorf("Read after the batch = %v, want io.EOF: a refused batch was sent", err)
	}
}

func TestFrameReaderRejects(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"absurd length", []byte{0xff, 0xff, 0xff, 0xff, 1}, ErrFrameTooLarge},
		{"just over limit", []byte{0, 0x10, 0, 1, 1}, ErrFrameTooLarge},
		{"zero length", []byte{0, 0, 0, 0}, ErrMalformed},
		{"truncated header", []byte{0, 0}, io.ErrUnexpectedEOF},
		{"truncated body", []byte{0, 0, 0, 9, 1, 2}, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewFrameReader(bytes.NewReader(tt.in), 1<<20)
			_, _, err := r.Read()
			if !errors.Is(err, tt.want) {
				t.Errorf("Read(%x) = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
}

func TestDecoderRejects(t *testing.T) {
	tests := []struct {
		name string
		typ  uint8
		body []byte
	}{
		{"unknown type", 99, nil},
		{"empty hello", typeHello, nil},
		{"trailing bytes", typePing, []byte{1, 2, 3}},
		{"name too long", typeRefuse, append([]byte{0xff, 0x0f}, bytes.Repeat([]byte{'a'}, 2047)...)},
		{"length beyond input", typeRefuse, []byte{50, 'a'}},
		{"invalid utf-8", typeRefuse, []byte{2, 0xff, 0xfe}},
		{"NUL in string", typeRefuse, []byte{3, 'a', 0, 'b'}},
		{"varint overflow", typePing, bytes.Repeat([]byte{0xff}, 11)},
		{"version out of range", typeWelcome, []byte{0xff, 0xff, 0x7f, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if m, err := decodeControl(tt.typ, tt.body); !errors.Is(err, ErrMalformed) {
				t.Errorf("decodeControl(%d, %x) = %+v, %v; want ErrMalformed", tt.typ, tt.body, m, err)
			}
		})
	}
}

// FuzzControlFrames feeds arbitrary bytes to the frame reader, the control
// message decoder and the early Hello decoder: they must return errors, never panic, and whatever
// decodes must encode back to the same bytes.
func FuzzControlFrames(f *testing.F) {
	for _, m := range []Message{
		&Hello{MinVersion: 1, MaxVersion: 1, Node: "alpha", Peer: "beta", Epoch: 1, TimeUnixNano: 1},
		&Welcome{Version: 1, Node: "beta"},
		&Refuse{Reason: "no"},
		&Ping{Seq: 9, SentUnixNano: 9},
		&Pong{Seq: 9},
	} {
		var buf bytes.Buffer
		var e Encoder
		m.Encode(&e)
		NewFrameWriter(&buf, 0).Write(m.Type(), e.Buf())
		f.Add(buf.Bytes())
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		// The same bytes as a control channel's open data.
		if m, err := decodeEarlyHello(data); err == nil && m == nil {
			t.Fatal("early Hello decoded to nil without an error")
		} else if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("early Hello: error %v is not ErrMalformed", err)
		}
		r := NewFrameReader(bytes.NewReader(data), 4096)
		for {
			typ, body, err := r.Read()
			if err != nil {
				return
			}
			m, err := decodeControl(typ, body)
			if err != nil {
				continue
			}
			var e Encoder
			m.Encode(&e)
			if !bytes.Equal(e.Buf(), body) {
				// Varints have one canonical encoding per value only when
				// minimal; a non-minimal one may decode. Re-decoding the
				// re-encoding must give the same message.
				m2, err := decodeControl(typ, e.Buf())
				if err != nil || !reflect.DeepEqual(m, m2) {
					t.Fatalf("re-encoding %+v does not decode back: %+v, %v", m, m2, err)
				}
			}
		}
	})
}
