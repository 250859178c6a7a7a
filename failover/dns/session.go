package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/miekg/dns"
)

// session is one TCP connection to the update server, on which requests
// are pipelined: a batch costs one round trip, not one per request. TSIG
// is done here rather than by dns.Conn, which remembers only the last
// request's MAC and so cannot verify pipelined answers.
type session struct {
	u    *Updater
	conn *dns.Conn
}

func (u *Updater) dial(ctx context.Context) (*session, error) {
	d := net.Dialer{Timeout: u.timeout}
	c, err := d.DialContext(ctx, "tcp", u.server)
	if err != nil {
		return nil, u.transportError("connect", "", err)
	}
	return &session{u: u, conn: &dns.Conn{Conn: c}}, nil
}

func (s *session) Close() error { return s.conn.Close() }

// exchange sends msgs (each with a fresh id) back to back, then reads the
// answers in whatever order they come. names[i] names msgs[i] in errors.
// A refusal is a *ServerError, except NXDOMAIN when nxOK (for queries:
// the name has no records); an answer that is not properly signed when the
// request was is an error too. After an error the session is unusable.
func (s *session) exchange(ctx context.Context, op string, names []string, msgs []*dns.Msg, nxOK bool) ([]*dns.Msg, error) {
	u := s.u
	deadline := time.Now().Add(u.timeout)
	ctxDeadline := false
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline, ctxDeadline = d, true
	}
	// The connection's deadline may be the context's: a timeout then is
	// the context ending, and is reported as such.
	ctxErr := func(err error) error {
		var ne net.Error
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("%w (%v)", ctx.Err(), err)
		case ctxDeadline && errors.As(err, &ne) && ne.Timeout():
			return fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
		}
		return err
	}
	s.conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { s.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	byID := make(map[uint16]int, len(msgs))
	macs := make([]string, len(msgs))
	for i, m := range msgs {
		for {
			m.Id = dns.Id()
			if _, dup := byID[m.Id]; !dup {
				break
			}
		}
		byID[m.Id] = i
		var buf []byte
		var err error
		if u.key != "" {
			m.SetTsig(u.key, u.alg, tsigFudge, u.now().Unix())
			buf, macs[i], err = dns.TsigGenerate(m, u.secret, "", false)
		} else {
			buf, err = m.Pack()
		}
		if err != nil {
			return nil, fmt.Errorf("dns %s: pack: %w", op, err)
		}
		if _, err := s.conn.Write(buf); err != nil {
			return nil, u.transportError(op, names[i], ctxErr(err))
		}
	}
	out := make([]*dns.Msg, len(msgs))
	for range msgs {
		quickAck(s.conn.Conn)
		raw, err := s.conn.ReadMsgHeader(nil)
		if err != nil {
			return nil, u.transportError(op, names[0], ctxErr(err))
		}
		r := new(dns.Msg)
		if err := r.Unpack(raw); err != nil {
			return nil, fmt.Errorf("dns %s at %s: unreadable answer: %w", op, u.server, err)
		}
		i, ok := byID[r.Id]
		if !ok || out[i] != nil {
			return nil, fmt.Errorf("dns %s at %s: answer with unexpected id %d", op, u.server, r.Id)
		}
		if err := s.check(op, names[i], r, raw, macs[i], nxOK); err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

// check decodes a refusal and verifies the answer's signature.
func (s *session) check(op, name string, r *dns.Msg, raw []byte, mac string, nxOK bool) error {
	u := s.u
	se := &ServerError{Op: op, Server: u.server, Zone: u.zone, Name: name, Key: u.key, Rcode: r.Rcode}
	t := r.IsTsig()
	if t != nil && t.Error != dns.RcodeSuccess {
		se.TSIGError = t.Error
		return se
	}
	if r.Rcode != dns.RcodeSuccess && !(nxOK && r.Rcode == dns.RcodeNameError) {
		// Reported even unsigned or unverified: a forged refusal can only
		// make us fail, never make us believe a change was made.
		return se
	}
	if u.key == "" {
		return nil
	}
	if t == nil {
		// RFC 8945 §5.3: an unsigned answer to a signed request cannot
		// be trusted; it may not come from the server at all.
		return fmt.Errorf("dns %s at %s: the answer is not TSIG-signed although the request was: is something between us and the name server rewriting DNS?", op, u.server)
	}
	if err := dns.TsigVerify(raw, u.secret, mac, false); err != nil {
		return u.transportError(op, name, err)
	}
	return nil
}
