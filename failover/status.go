package failover

import (
	"fmt"
	"strings"
	"time"
)

// Summary renders s for `tandem status` as lines without newlines: the
// role and epoch, the last change and why, what holds a standby back, DNS,
// read_only, the peer, and the last errors. now dates the "ago" parts.
func (s Status) Summary(now time.Time) []string {
	ago := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.Local().Format("2006-01-02 15:04:05") + " (" + now.Sub(t).Round(time.Second).String() + " ago)"
	}
	lines := []string{fmt.Sprintf("role %s at epoch %d since %s", strings.ToUpper(s.Role.String()), s.Epoch, ago(s.Since))}
	if s.Witness {
		leader := s.Leader
		if leader == "" {
			leader = "none known"
		}
		lines = append(lines, fmt.Sprintf("  raft leader: %s (term %d)", leader, s.LeaderTerm))
	}
	if t := s.LastTransition; t.Reason != "" {
		lines = append(lines, fmt.Sprintf("  last change: %s -> %s at %s: %s", t.From, t.To, ago(t.At), t.Reason))
	}
	if s.Waiting != "" {
		lines = append(lines, "  "+s.Waiting)
	}
	if s.Hold {
		lines = append(lines, "  held: an operator demoted this node; `tandem promote` takes the role back")
	}
	health := s.Health.String()
	if s.HealthDetail != "" {
		health += ": " + s.HealthDetail
	}
	lines = append(lines, "  own checks: "+health)
	peer := fmt.Sprintf("  peer %s: ", s.Peer)
	switch {
	case !s.PeerSeen:
		peer += "not seen since start"
	case s.PeerAlive:
		peer += fmt.Sprintf("alive, %s at epoch %d, checks %s", orUnknown(s.PeerRole), s.PeerEpoch, orUnknown(s.PeerHealth))
	default:
		peer += "SILENT since " + ago(s.LastHeard)
	}
	if s.PeerCheck != "" {
		peer += "; its site (peer_check): " + s.PeerCheck
	}
	lines = append(lines, peer)
	if s.Role == Primary && s.DNSUpdate {
		target := strings.Join(s.DNS, ", ")
		switch {
		case s.DNSError != "":
			lines = append(lines, fmt.Sprintf("  DNS: pointing at %s FAILS: %s (retrying)", target, s.DNSError))
		case strings.Join(s.DNSTarget, ", ") == target:
			lines = append(lines, "  DNS: points at "+target)
		default:
			lines = append(lines, "  DNS: being pointed at "+target)
		}
	}
	if len(s.Serving) > 0 || s.ServeError != "" {
		line := "  own DNS server answers " + strings.Join(s.Serving, ", ")
		if s.ServeError != "" {
			line += " (last change failed: " + s.ServeError + ")"
		}
		lines = append(lines, line)
	}
	switch {
	case s.ReadOnlyError != "":
		lines = append(lines, "  MySQL read_only: FAILS: "+s.ReadOnlyError+" (retrying)")
	case s.ReadOnlyApplied != "":
		lines = append(lines, "  MySQL read_only: "+s.ReadOnlyApplied)
	}
	if s.HookError != "" {
		lines = append(lines, "  last hook failed: "+s.HookError)
	}
	if s.TransferError != "" {
		lines = append(lines, "  last leadership transfer failed: "+s.TransferError)
	}
	return lines
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
