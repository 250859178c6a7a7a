package failover

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the expected output in testdata/*.txt")

// TestScripts runs every scenario in testdata/*.txt against the machine.
//
// A script is a list of commands, one a line; "#" starts a comment. The
// lines starting with "> " after a command are what it must output: the
// actions it returned, one a line, or "error: ...". A command followed by
// no "> " line must output nothing. go test -update rewrites them.
//
//	config KEY=VALUE...   before start: node, peer, address, peer_address,
//	                      priority, dead_after, rise, fall, dwell,
//	                      max_per_hour, failback, peer_check, mode, force,
//	                      witness, serve,
//	                      on_promote, on_demote, epoch, role (persisted)
//	start                 the Start event
//	tick D                advance the clock by D and Tick
//	seen                  PeerSeen
//	recv KEY=VALUE...     a peer heartbeat: from (the peer), epoch (ours),
//	                      role (standby), health (up), hold (false),
//	                      priority (100), address (peer_address)
//	health ok|fail [WHY]  a HealthResult
//	peercheck ok|fail [WHY]
//	promote [--force], demote [--force]
//	leader NAME|none term=N   a Leadership event (witness mode)
//	repeat N CMD; CMD...  run the commands N times (output concatenated)
//	status                print role, epoch, dns, read_only, waiting
//	expect ROLE [epoch=N] [dns=A,B|-] [serving=A,B|-] [readonly=on|off] [hold=BOOL]
//	                      [waiting=SUBSTRING]   check the state (no output)
func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scripts in testdata")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			got := runScript(t, string(data))
			if *update {
				if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != string(data) {
				t.Errorf("%s: output differs (go test ./failover -run TestScripts -update rewrites it):\n%s", file, diffLines(string(data), got))
			}
		})
	}
}

// diffLines shows the first differing lines of want and got.
func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n  want: %s\n  got:  %s", i+1, wl, gl)
		}
	}
	return "(same lines)"
}

// scriptRun is the state of one script.
type scriptRun struct {
	t           testing.TB
	line        int
	now         time.Time
	p           Params
	st          Persisted
	peerAddress string
	m           *Machine
}

// runScript runs a script and returns it with each command's output
// rewritten from what the machine did.
func runScript(t testing.TB, script string) string {
	t.Helper()
	r := &scriptRun{
		t:   t,
		now: time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC),
		p: Params{Node: "alpha", Peer: "beta", Address: "198.51.100.1", Priority: 100,
			DeadAfter: 10 * time.Second, Rise: 2, Fall: 2, MinDwell: 30 * time.Second, MaxPerHour: 3},
		peerAddress: "198.51.100.2",
	}
	var out strings.Builder
	for i, line := range strings.Split(strings.TrimRight(script, "\n"), "\n") {
		r.line = i + 1
		if strings.HasPrefix(line, ">") {
			continue // expected output: replaced by the real one
		}
		out.WriteString(line + "\n")
		cmd := strings.TrimSpace(line)
		if cmd == "" || strings.HasPrefix(cmd, "#") {
			continue
		}
		for _, o := range r.run(cmd) {
			out.WriteString("> " + o + "\n")
		}
	}
	return out.String()
}

func (r *scriptRun) fatalf(format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf("line %d: "+format, append([]any{r.line}, args...)...)
}

// run runs one command line and returns its output lines.
func (r *scriptRun) run(cmd string) []string {
	r.t.Helper()
	name, rest, _ := strings.Cut(cmd, " ")
	args := splitArgs(rest)
	if name != "config" && name != "start" && r.m == nil {
		r.fatalf("%q before start", name)
	}
	switch name {
	case "config":
		if r.m != nil {
			r.fatalf("config after start")
		}
		r.config(args)
		return nil
	case "start":
		r.m = NewMachine(r.p, r.st)
		return r.step(Start{Now: r.now})
	case "tick":
		if len(args) != 1 {
			r.fatalf("tick DURATION")
		}
		r.now = r.now.Add(r.duration(args[0]))
		return r.step(Tick{Now: r.now})
	case "seen":
		return r.step(PeerSeen{Now: r.now})
	case "recv":
		return r.step(r.heartbeat(args))
	case "health", "peercheck":
		if len(args) < 1 || (args[0] != "ok" && args[0] != "fail") {
			r.fatalf("%s ok|fail [WHY]", name)
		}
		ok, why := args[0] == "ok", strings.Join(args[1:], " ")
		if name == "health" {
			return r.step(HealthResult{Now: r.now, OK: ok, Detail: why})
		}
		return r.step(PeerCheckResult{Now: r.now, OK: ok, Detail: why})
	case "promote", "demote":
		op := Operator{Now: r.now, Op: OpPromote}
		if name == "demote" {
			op.Op = OpDemote
		}
		for _, a := range args {
			if a != "--force" {
				r.fatalf("%s [--force]", name)
			}
			op.Force = true
		}
		return r.step(op)
	case "repeat":
		n, err := strconv.Atoi(firstOr(args, ""))
		if err != nil || n < 1 {
			r.fatalf("repeat N CMD; CMD...")
		}
		_, body, _ := strings.Cut(rest, " ")
		var out []string
		for range n {
			for _, c := range strings.Split(body, ";") {
				out = append(out, r.run(strings.TrimSpace(c))...)
			}
		}
		return out
	case "leader":
		if len(args) != 2 {
			r.fatalf("leader NAME|none term=N")
		}
		ev := Leadership{Now: r.now, Leader: args[0]}
		if ev.Leader == "none" {
			ev.Leader = ""
		}
		if k, v := r.kv(args[1]); k == "term" {
			ev.Term = uint64(r.int(v))
		} else {
			r.fatalf("leader NAME|none term=N")
		}
		ev.IsSelf = ev.Leader == r.p.Node
		return r.step(ev)
	case "status":
		return []string{r.statusLine()}
	case "expect":
		r.expect(args)
		return nil
	}
	r.fatalf("unknown command %q", name)
	return nil
}

func firstOr(s []string, def string) string {
	if len(s) == 0 {
		return def
	}
	return s[0]
}

// splitArgs splits on spaces, keeping "quoted strings" (in KEY="a b" too)
// as one argument without their quotes.
func splitArgs(s string) []string {
	var args []string
	var cur strings.Builder
	in, have := false, false
	for _, c := range s {
		switch {
		case c == '"':
			in = !in
			have = true
		case c == ' ' && !in:
			if have {
				args = append(args, cur.String())
			}
			cur.Reset()
			have = false
		default:
			cur.WriteRune(c)
			have = true
		}
	}
	if have {
		args = append(args, cur.String())
	}
	return args
}

func (r *scriptRun) kv(a string) (string, string) {
	k, v, ok := strings.Cut(a, "=")
	if !ok {
		r.fatalf("%q is not KEY=VALUE", a)
	}
	return k, v
}

func (r *scriptRun) duration(s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		r.fatalf("%v", err)
	}
	return d
}

func (r *scriptRun) int(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		r.fatalf("%v", err)
	}
	return n
}

func (r *scriptRun) bool(s string) bool {
	b, err := strconv.ParseBool(s)
	if err != nil {
		r.fatalf("%v", err)
	}
	return b
}

func (r *scriptRun) role(s string) Role {
	role, err := ParseRole(s)
	if err != nil {
		r.fatalf("%v", err)
	}
	return role
}

func (r *scriptRun) config(args []string) {
	for _, a := range args {
		k, v := r.kv(a)
		switch k {
		case "node":
			r.p.Node = v
		case "peer":
			r.p.Peer = v
		case "address":
			r.p.Address = v
		case "peer_address":
			r.peerAddress = v
		case "priority":
			r.p.Priority = r.int(v)
		case "dead_after":
			r.p.DeadAfter = r.duration(v)
		case "rise":
			r.p.Rise = r.int(v)
		case "fall":
			r.p.Fall = r.int(v)
		case "dwell":
			r.p.MinDwell = r.duration(v)
		case "max_per_hour":
			r.p.MaxPerHour = r.int(v)
		case "failback":
			r.p.Failback = r.bool(v)
		case "peer_check":
			r.p.PeerCheck = r.bool(v)
		case "mode":
			r.p.RoundRobin = v == "roundrobin"
		case "force":
			r.p.Force = r.bool(v)
		case "witness":
			r.p.Witness = r.bool(v)
		case "serve":
			r.p.Serve = r.bool(v)
		case "on_promote":
			r.p.OnPromote = v
		case "on_demote":
			r.p.OnDemote = v
		case "epoch":
			r.st.Epoch = uint64(r.int(v))
		case "role":
			r.st.Role = r.role(v)
		default:
			r.fatalf("unknown config key %q", k)
		}
	}
}

func (r *scriptRun) heartbeat(args []string) PeerHeartbeat {
	_, epoch := r.m.Role()
	hb := PeerHeartbeat{Now: r.now, From: r.p.Peer, Epoch: epoch, Health: HealthUp, Priority: 100,
		Address: r.peerAddress, Time: r.now}
	for _, a := range args {
		k, v := r.kv(a)
		switch k {
		case "from":
			hb.From = v
		case "epoch":
			hb.Epoch = uint64(r.int(v))
		case "role":
			hb.Role = r.role(v)
		case "health":
			h, err := ParseHealth(v)
			if err != nil {
				r.fatalf("%v", err)
			}
			hb.Health = h
		case "hold":
			hb.Hold = r.bool(v)
		case "priority":
			hb.Priority = r.int(v)
		case "address":
			hb.Address = v
		default:
			r.fatalf("unknown heartbeat key %q", k)
		}
	}
	return hb
}

func (r *scriptRun) step(ev Event) []string {
	acts, err := r.m.Step(ev)
	if err != nil {
		if len(acts) > 0 {
			r.fatalf("Step(%T) returned actions %v with error %v", ev, acts, err)
		}
		return []string{"error: " + err.Error()}
	}
	out := make([]string, 0, len(acts))
	for _, a := range acts {
		out = append(out, formatAction(a))
	}
	return out
}

func formatAction(a Action) string {
	switch a := a.(type) {
	case Persist:
		return fmt.Sprintf("persist epoch=%d role=%s", a.Epoch, a.Role)
	case BecomePrimary:
		return fmt.Sprintf("become primary epoch=%d reason=%q", a.Epoch, a.Reason)
	case BecomeStandby:
		return fmt.Sprintf("become standby epoch=%d reason=%q", a.Epoch, a.Reason)
	case SetReadOnly:
		return "readonly " + onOff(a.On)
	case PointDNS:
		return "dns " + strings.Join(a.Addrs, ",")
	case ServeDNS:
		return "serve " + strings.Join(a.Addrs, ",")
	case RunHook:
		return fmt.Sprintf("hook %q role=%s epoch=%d", a.Cmd, a.Role, a.Epoch)
	case SendHeartbeat:
		return "heartbeat"
	case TransferLeadership:
		return "transfer leadership to " + a.To
	}
	return fmt.Sprintf("unknown action %T", a)
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func (r *scriptRun) statusLine() string {
	s := r.m.Status()
	dns := strings.Join(s.DNS, ",")
	if dns == "" {
		dns = "-"
	}
	peer := "dead"
	if s.PeerAlive {
		peer = "alive"
	}
	line := fmt.Sprintf("%s epoch=%d dns=%s readonly=%s health=%s peer=%s", s.Role, s.Epoch, dns, onOff(s.ReadOnly), s.Health, peer)
	if s.Hold {
		line += " hold"
	}
	if s.Waiting != "" {
		line += fmt.Sprintf(" waiting=%q", s.Waiting)
	}
	return line
}

func (r *scriptRun) expect(args []string) {
	r.t.Helper()
	if len(args) == 0 {
		r.fatalf("expect ROLE [KEY=VALUE...]")
	}
	s := r.m.Status()
	if want := r.role(args[0]); s.Role != want {
		r.t.Errorf("line %d: role = %s, want %s (%s)", r.line, s.Role, want, r.statusLine())
	}
	for _, a := range args[1:] {
		k, v := r.kv(a)
		var got string
		switch k {
		case "epoch":
			got = strconv.FormatUint(s.Epoch, 10)
		case "dns":
			got = strings.Join(s.DNS, ",")
			if got == "" {
				got = "-"
			}
		case "readonly":
			got = onOff(s.ReadOnly)
		case "hold":
			got = strconv.FormatBool(s.Hold)
		case "serving":
			got = strings.Join(s.Serving, ",")
			if got == "" {
				got = "-"
			}
		case "waiting":
			if !strings.Contains(s.Waiting, v) {
				r.t.Errorf("line %d: waiting = %q, want it to contain %q", r.line, s.Waiting, v)
			}
			continue
		default:
			r.fatalf("unknown expect key %q", k)
		}
		if got != v {
			r.t.Errorf("line %d: %s = %s, want %s (%s)", r.line, k, got, v, r.statusLine())
		}
	}
}

func TestPeerDeadline(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)
	m := NewMachine(Params{Node: "alpha", Peer: "beta", DeadAfter: 10 * time.Second, Rise: 2, Fall: 1}, Persisted{})
	if _, err := m.Step(Start{Now: t0}); err != nil {
		t.Fatal(err)
	}
	if d := m.PeerDeadline(); !d.IsZero() {
		t.Errorf("PeerDeadline before any heartbeat = %v, want zero", d)
	}
	heard := t0.Add(3 * time.Second)
	if _, err := m.Step(PeerHeartbeat{Now: heard, From: "beta", Role: Primary}); err != nil {
		t.Fatal(err)
	}
	if d, want := m.PeerDeadline(), heard.Add(10*time.Second); !d.Equal(want) {
		t.Errorf("PeerDeadline = %v, want %v", d, want)
	}
	if _, err := m.Step(Tick{Now: heard.Add(10 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	if d := m.PeerDeadline(); !d.IsZero() {
		t.Errorf("PeerDeadline once dead = %v, want zero", d)
	}
}
