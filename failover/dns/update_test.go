package dns

// These tests start a real BIND9 (named) on a loopback port with a TSIG key
// and point names at it with the Updater.

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/tandemhost/tandem/failover/dns/bindtest"
	"go.uber.org/zap/zaptest"
)

func newTestUpdater(t testing.TB, b *bindtest.Server, o UpdaterOptions) *Updater {
	t.Helper()
	if o.Server == "" {
		o.Server = b.Addr
	}
	if o.Zone == "" {
		o.Zone = b.Zone
	}
	if o.Names == nil {
		o.Names = []string{"www." + b.Zone}
	}
	if o.TSIGKey == "" {
		o.TSIGKey = bindtest.DefaultKey
	}
	if o.TSIGSecret == "" {
		o.TSIGSecret = b.Secret
	}
	if o.Log == nil {
		o.Log = zaptest.NewLogger(t)
	}
	u, err := NewUpdater(o)
	if err != nil {
		t.Fatalf("NewUpdater: %v", err)
	}
	return u
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestUpdaterPointBIND(t *testing.T) {
	b := bindtest.Start(t, bindtest.Options{Records: []string{
		"www 30 IN A 192.0.2.1",
		"@ 30 IN A 192.0.2.1",
		"other 30 IN A 192.0.2.99",
	}})
	ctx := testCtx(t)
	u := newTestUpdater(t, b, UpdaterOptions{Names: []string{"www.example.test.", "example.test.", "new.example.test."}})

	steps := []struct {
		name  string
		addrs []string
	}{
		{"to beta", []string{"192.0.2.2"}},
		{"dual stack", []string{"2001:db8::2", "192.0.2.2"}},
		{"roundrobin", []string{"192.0.2.3", "192.0.2.2", "2001:db8::3", "2001:db8::2"}},
		{"v6 only", []string{"2001:db8::1"}},
		{"back to alpha", []string{"192.0.2.1"}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			serial := b.Serial()
			if err := u.Point(ctx, st.addrs); err != nil {
				t.Fatalf("Point(%v): %v", st.addrs, err)
			}
			want := slices.Clone(st.addrs)
			slices.Sort(want)
			for _, n := range []string{"www.example.test.", "example.test.", "new.example.test."} {
				got := b.Addrs(n)
				if !slices.Equal(got, want) {
					t.Errorf("after Point(%v), BIND answers %s = %v, want %v", st.addrs, n, got, want)
				}
			}
			if got := b.Addrs("other.example.test."); !slices.Equal(got, []string{"192.0.2.99"}) {
				t.Errorf("a name not ours changed: other.example.test. = %v", got)
			}
			if s := b.Serial(); s == serial {
				t.Errorf("zone serial still %d after a change", s)
			}
			cur, err := u.Current(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for n, got := range cur {
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Errorf("Current()[%s] = %v, want %v", n, got, want)
				}
			}
			// Idempotent: pointing again sends no update, so the serial stays.
			serial = b.Serial()
			if err := u.Point(ctx, st.addrs); err != nil {
				t.Fatalf("second Point(%v): %v", st.addrs, err)
			}
			if s := b.Serial(); s != serial {
				t.Errorf("second Point(%v) changed the zone: serial %d -> %d", st.addrs, serial, s)
			}
		})
	}
}

func TestUpdaterTTLChangeIsAnUpdate(t *testing.T) {
	b := bindtest.Start(t, bindtest.Options{Records: []string{"www 300 IN A 192.0.2.1"}})
	u := newTestUpdater(t, b, UpdaterOptions{TTL: 30})
	serial := b.Serial()
	if err := u.Point(testCtx(t), []string{"192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	if b.Serial() == serial {
		t.Fatal("same address with TTL 300 instead of 30 was left alone")
	}
	m := new(dns.Msg)
	m.SetQuestion("www.example.test.", dns.TypeA)
	r, err := dns.Exchange(m, b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Answer) != 1 || r.Answer[0].Header().Ttl != 30 {
		t.Fatalf("answer %v, want one A with TTL 30", r.Answer)
	}
}

// TestUpdaterCompareAndSwap changes the record behind the updater's back,
// between its read and its update: the prerequisite must fail, and the
// updater must read again and win on the next attempt, or give up with
// ErrContended when the interference never stops.
func TestUpdaterCompareAndSwap(t *testing.T) {
	t.Run("one interference then success", func(t *testing.T) {
		b := bindtest.Start(t, bindtest.Options{})
		u := newTestUpdater(t, b, UpdaterOptions{})
		n := 0
		u.beforeUpdate = func(names []string) {
			n++
			if n == 1 {
				b.Set(names[0], "192.0.2.66")
			}
		}
		if err := u.Point(testCtx(t), []string{"192.0.2.2"}); err != nil {
			t.Fatalf("Point: %v", err)
		}
		if n != 2 {
			t.Errorf("updates attempted %d times, want 2 (the first must fail its prerequisite)", n)
		}
		if got := b.Addrs("www.example.test."); !slices.Equal(got, []string{"192.0.2.2"}) {
			t.Errorf("www = %v, want [192.0.2.2]", got)
		}
	})
	t.Run("created behind our back", func(t *testing.T) {
		// The name had no records when read: the prerequisite is
		// "rrset does not exist", which the interference breaks.
		b := bindtest.Start(t, bindtest.Options{})
		u := newTestUpdater(t, b, UpdaterOptions{Names: []string{"new.example.test."}})
		n := 0
		u.beforeUpdate = func(names []string) {
			n++
			if n == 1 {
				b.Set(names[0], "192.0.2.66")
			}
		}
		if err := u.Point(testCtx(t), []string{"192.0.2.2"}); err != nil {
			t.Fatalf("Point: %v", err)
		}
		if n != 2 {
			t.Errorf("updates attempted %d times, want 2", n)
		}
		if got := b.Addrs("new.example.test."); !slices.Equal(got, []string{"192.0.2.2"}) {
			t.Errorf("new = %v, want [192.0.2.2]", got)
		}
	})
	t.Run("endless interference", func(t *testing.T) {
		b := bindtest.Start(t, bindtest.Options{})
		u := newTestUpdater(t, b, UpdaterOptions{Retries: 2})
		n := 0
		u.beforeUpdate = func(names []string) {
			n++
			b.Set(names[0], "192.0.2."+strings.Repeat("1", 1+n%2)) // .11, .111, .11...
		}
		err := u.Point(testCtx(t), []string{"192.0.2.2"})
		if !errors.Is(err, ErrContended) {
			t.Fatalf("Point under endless interference = %v, want ErrContended", err)
		}
		if n != 3 {
			t.Errorf("attempts = %d, want 3 (1 + 2 retries)", n)
		}
		if got := b.Addrs("www.example.test."); slices.Contains(got, "192.0.2.2") {
			t.Errorf("www = %v: the losing update went through", got)
		}
	})
}

// TestUpdaterRefusals checks each way the server says no is reported with
// what to fix, and changes nothing.
func TestUpdaterRefusals(t *testing.T) {
	b := bindtest.Start(t, bindtest.Options{Keys: []bindtest.Key{{Name: "readonly-key."}}})
	type want struct{ code, hint string }
	tests := []struct {
		name         string
		o            UpdaterOptions
		point, probe want
	}{
		{"wrong secret", UpdaterOptions{TSIGSecret: bindtest.RandomSecret()},
			want{"BADSIG", "secret in tsig_secret_file does not match the server's key tandem-key."},
			want{"BADSIG", "does not match"}},
		{"unknown key", UpdaterOptions{TSIGKey: "nosuch-key."},
			want{"BADKEY", "does not know key nosuch-key."},
			want{"BADKEY", "update-policy { grant nosuch-key. zonesub ANY; }"}},
		{"wrong algorithm", UpdaterOptions{TSIGAlgorithm: "hmac-sha512"},
			want{"BADKEY", "or knows it with another algorithm"},
			want{"BADKEY", "or knows it with another algorithm"}},
		{"clock skew", UpdaterOptions{Now: func() time.Time { return time.Now().Add(-time.Hour) }},
			want{"BADTIME", "run NTP"},
			want{"BADTIME", "differ by more than 300 s"}},
		{"key not granted", UpdaterOptions{TSIGKey: "readonly-key.", TSIGSecret: b.Keys[1].Secret},
			want{"REFUSED", "add `update-policy { grant readonly-key. zonesub ANY; };` to zone example.test."},
			want{"REFUSED", "update-policy { grant readonly-key. zonesub ANY; }"}},
		{"zone not served", UpdaterOptions{Zone: "other.test.", Names: []string{"www.other.test."}},
			want{"REFUSED", "refuses to answer for zone other.test."},
			want{"NOTAUTH", "not authoritative for zone other.test."}},
	}
	check := func(t *testing.T, call string, err error, w want) {
		t.Helper()
		t.Logf("%s: %v", call, err)
		var se *ServerError
		if !errors.As(err, &se) {
			t.Fatalf("%s = %T %v, want a *ServerError %s", call, err, err, w.code)
		}
		if se.Code() != w.code {
			t.Errorf("%s: Code() = %s, want %s", call, se.Code(), w.code)
		}
		if !strings.Contains(err.Error(), w.hint) {
			t.Errorf("%s = %q, does not say %q", call, err, w.hint)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			serial := b.Serial()
			u := newTestUpdater(t, b, tt.o)
			check(t, "Point", u.Point(ctx, []string{"192.0.2.77"}), tt.point)
			check(t, "Probe", u.Probe(ctx), tt.probe)
			if got := b.Addrs("www.example.test."); !slices.Equal(got, []string{"192.0.2.1"}) {
				t.Errorf("www = %v after a refused update, want [192.0.2.1]", got)
			}
			if s := b.Serial(); s != serial {
				t.Errorf("serial %d -> %d after a refused update", serial, s)
			}
		})
	}
}

// TestUpdaterBadSigOnUpdate reads with the right secret and updates with
// a wrong one, so the BADSIG comes from the UPDATE, not the read before.
func TestUpdaterBadSigOnUpdate(t *testing.T) {
	b := bindtest.Start(t, bindtest.Options{})
	u := newTestUpdater(t, b, UpdaterOptions{})
	u.beforeUpdate = func([]string) { u.secret = bindtest.RandomSecret() }
	err := u.Point(testCtx(t), []string{"192.0.2.9"})
	var se *ServerError
	if !errors.As(err, &se) || se.Code() != "BADSIG" || se.Op != "update" {
		t.Fatalf("update with a wrong secret = %v, want BADSIG from the update", err)
	}
	if got := b.Addrs("www.example.test."); !slices.Equal(got, []string{"192.0.2.1"}) {
		t.Errorf("www = %v after a refused update", got)
	}
}

// TestUpdaterAtomic checks that all names change in one update: when one
// name is changed behind our back, or one name may not be updated, none
// is changed.
func TestUpdaterAtomic(t *testing.T) {
	names := []string{"www.example.test.", "example.test.", "shop.example.test."}
	t.Run("interference on one name holds back all", func(t *testing.T) {
		b := bindtest.Start(t, bindtest.Options{Records: []string{"www 30 IN A 192.0.2.1", "@ 30 IN A 192.0.2.1"}})
		u := newTestUpdater(t, b, UpdaterOptions{Names: names})
		var seen [][]string
		u.beforeUpdate = func(change []string) {
			seen = append(seen, change)
			if len(seen) == 1 {
				b.Set("example.test.", "192.0.2.66")
				// The update about to go must fail as a whole: www and
				// shop stay as they were until the retry.
				if got := b.Addrs("www.example.test."); !slices.Equal(got, []string{"192.0.2.1"}) {
					t.Errorf("www = %v before the first update", got)
				}
			}
		}
		if err := u.Point(testCtx(t), []string{"192.0.2.2"}); err != nil {
			t.Fatalf("Point: %v", err)
		}
		if len(seen) != 2 || !slices.Equal(seen[0], names) {
			t.Errorf("updates for %v, want two, the first for all of %v", seen, names)
		}
		for _, n := range names {
			if got := b.Addrs(n); !slices.Equal(got, []string{"192.0.2.2"}) {
				t.Errorf("%s = %v, want [192.0.2.2]", n, got)
			}
		}
	})
	t.Run("one name not allowed: none changes", func(t *testing.T) {
		b := bindtest.Start(t, bindtest.Options{
			Records: []string{"www 30 IN A 192.0.2.1", "@ 30 IN A 192.0.2.1"},
			Keys:    []bindtest.Key{{Name: "www-only.", OnlyName: "www.example.test."}},
		})
		u := newTestUpdater(t, b, UpdaterOptions{Names: names[:2], TSIGKey: "www-only.", TSIGSecret: b.Keys[1].Secret})
		err := u.Point(testCtx(t), []string{"192.0.2.2"})
		var se *ServerError
		if !errors.As(err, &se) || se.Code() != "REFUSED" {
			t.Fatalf("Point = %v, want REFUSED", err)
		}
		for _, n := range names[:2] {
			if got := b.Addrs(n); !slices.Equal(got, []string{"192.0.2.1"}) {
				t.Errorf("%s = %v after a refused update, want [192.0.2.1]", n, got)
			}
		}
		// The same key may change www alone.
		u = newTestUpdater(t, b, UpdaterOptions{Names: names[:1], TSIGKey: "www-only.", TSIGSecret: b.Keys[1].Secret})
		if err := u.Point(testCtx(t), []string{"192.0.2.2"}); err != nil {
			t.Fatalf("Point www alone: %v", err)
		}
	})
}

// TestUpdaterNoChangeNoUpdate checks the idempotent path sends no update
// at all: the hook between read and update never runs.
func TestUpdaterNoChangeNoUpdate(t *testing.T) {
	b := bindtest.Start(t, bindtest.Options{})
	u := newTestUpdater(t, b, UpdaterOptions{})
	u.beforeUpdate = func(names []string) { t.Errorf("update sent for %v, which already point there", names) }
	if err := u.Point(testCtx(t), []string{"192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
}

func TestUpdaterProbe(t *testing.T) {
	b := bindtest.Start(t, bindtest.Options{})
	u := newTestUpdater(t, b, UpdaterOptions{Names: []string{"www.example.test.", "example.test.", "absent.example.test."}})
	serial := b.Serial()
	if err := u.Probe(testCtx(t)); err != nil {
		t.Fatalf("Probe with the right key: %v", err)
	}
	if s := b.Serial(); s != serial {
		t.Errorf("Probe changed the zone: serial %d -> %d", serial, s)
	}
	if got := b.Addrs("www.example.test."); !slices.Equal(got, []string{"192.0.2.1"}) {
		t.Errorf("www = %v after Probe", got)
	}
}

func TestUpdaterUnreachable(t *testing.T) {
	b := bindtest.Start(t, bindtest.Options{})
	addr := b.Addr
	b.Stop()
	u := newTestUpdater(t, b, UpdaterOptions{Server: addr, Timeout: time.Second})
	err := u.Point(testCtx(t), []string{"192.0.2.2"})
	if err == nil || !strings.Contains(err.Error(), "connection refused: is the name server running") {
		t.Fatalf("Point to a stopped server = %v, want a connection refused hint", err)
	}
}

// TestUpdaterSilentServer points the updater at a loopback TCP socket that
// accepts and never answers: Point must give up after Timeout, or when its
// context ends, with an error that says so.
func TestUpdaterSilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		var conns []net.Conn
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-accepted })

	u, err := NewUpdater(UpdaterOptions{Server: ln.Addr().String(), Zone: "example.test.", Names: []string{"www.example.test."},
		TSIGKey: "k.", TSIGSecret: "c2VjcmV0", Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	err = u.Point(context.Background(), []string{"192.0.2.1"})
	if err == nil || !strings.Contains(err.Error(), "no answer within 200ms") {
		t.Errorf("Point to a silent server = %v, want a timeout naming 200ms", err)
	}

	u.timeout = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = u.Point(ctx, []string{"192.0.2.1"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Point with a 100ms context = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("Point took %s past its context", d)
	}
}
