package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tandemhost/tandem/failover"
	"github.com/tandemhost/tandem/internal/control"
)

// promoteHelp and demoteHelp are the help of `tandem promote` and `tandem
// demote`.
const (
	promoteHelp = `Makes this node the primary: the running daemon bumps the epoch, writes it
to the state dir, turns MySQL read_only off, points the DNS names at this
node's [failover] address and runs on_promote. The peer, on hearing the
higher epoch, becomes standby. Use it to move the role by hand, or to take
it back after a failover (tandem never fails back by itself unless
failback = true).

Without --force it refuses when this node's own checks fail, or when the
peer cannot be reached: the link may only be cut while the peer still
serves, and two primaries would both take writes. --force promotes anyway:
use it when you know the peer is down (or cut off from clients), and after
a restart when the peer is gone (a node waits to see its peer before taking
any role).

With a witness ([failover] witness), promote asks the raft quorum to hand
the leadership to this node and returns once it has and this node is
primary; the raft term is the new epoch.

Exits 0 when this node is primary, 1 when the daemon refused (the message
says why and what to do), 3 when the daemon is not running.`

	demoteHelp = `Makes this node a standby: the running daemon turns MySQL read_only on and
runs on_demote, and the peer, if alive and healthy, promotes itself and
points DNS at its own address. This node is not elected again by itself
until the peer has taken the role; "tandem promote" takes it back.

Without --force it refuses when the peer is not alive and healthy, since
no node would then be primary. --force demotes anyway (e.g. to stop
serving from a broken node with no peer to take over). With a witness,
demote hands the raft leadership to the peer, so it needs the peer alive
and healthy, --force or not.

Exits 0 when this node is standby, 1 when the daemon refused (the message
says why and what to do), 3 when the daemon is not running.`
)

var (
	promoteExamples = []string{
		"tandem promote",
		"tandem promote --force -c /etc/tandem/tandem.toml",
	}
	demoteExamples = []string{
		"tandem demote",
		"tandem demote --force",
	}
)

func roleFlags(fs *flag.FlagSet, e *env) {
	fs.Bool("force", false, "skip the safety checks (see above)")
}

// roleRequest is the body of POST /failover/promote and /failover/demote.
type roleRequest struct {
	Force bool `json:"force"`
}

// roleResponse is their answer.
type roleResponse struct {
	Done   string          `json:"done"` // what was done, as a sentence
	Status failover.Status `json:"status"`
}

// roleRoutes registers the control socket's failover routes on mux:
//
//	POST /failover/promote  {"force": false} -> {"done": "...", "status": {...}}
//	POST /failover/demote   {"force": false} -> {"done": "...", "status": {...}}
//	GET  /failover          -> failover.Status
//
// It answers 400 for a bad body, 409 when the runner refuses (or failover
// is off: r is nil), 503 when the runner is not running.
func roleRoutes(mux *http.ServeMux, r *failover.Runner) {
	for _, op := range []string{"promote", "demote"} {
		mux.HandleFunc("POST /failover/"+op, func(w http.ResponseWriter, req *http.Request) {
			var body roleRequest
			dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, 4<<10))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&body); err != nil {
				control.WriteError(w, http.StatusBadRequest, fmt.Sprintf("%s: bad request body: %v", op, err))
				return
			}
			if r == nil {
				control.WriteError(w, http.StatusConflict, failoverOff)
				return
			}
			var err error
			if op == "promote" {
				err = r.Promote(body.Force)
			} else {
				err = r.Demote(body.Force)
			}
			if err != nil {
				code := http.StatusInternalServerError
				switch {
				case errors.Is(err, failover.ErrRefused):
					code = http.StatusConflict
				case errors.Is(err, failover.ErrNotRunning):
					code = http.StatusServiceUnavailable
				}
				control.WriteError(w, code, fmt.Sprintf("%s: %v", op, err))
				return
			}
			st := r.Status()
			control.WriteJSON(w, http.StatusOK, roleResponse{
				Done:   fmt.Sprintf("%s is %s at epoch %d (%s)", st.Node, st.Role, st.Epoch, st.LastTransition.Reason),
				Status: st,
			})
		})
	}
	mux.HandleFunc("GET /failover", func(w http.ResponseWriter, req *http.Request) {
		if r == nil {
			control.WriteError(w, http.StatusConflict, failoverOff)
			return
		}
		control.WriteJSON(w, http.StatusOK, r.Status())
	})
}

const failoverOff = "failover is off in this daemon's config; set address in [failover] (and restart) to turn it on"

func cmdPromote(e *env, args []string) int { return roleCommand(e, "promote", args) }
func cmdDemote(e *env, args []string) int  { return roleCommand(e, "demote", args) }

func roleCommand(e *env, op string, args []string) int {
	if len(args) > 0 {
		fmt.Fprintf(e.stderr, "tandem %s: unexpected argument %q; the only flag is --force\n", op, args[0])
		return exitUsage
	}
	force := false
	if e.flags != nil {
		if f := e.flags.Lookup("force"); f != nil {
			force = f.Value.String() == "true"
		}
	}
	cfg, ok := e.loadConfig()
	if !ok {
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	var resp roleResponse
	err := control.NewClient(control.SocketPath(cfg.StateDir)).Post(ctx, "/failover/"+op, roleRequest{Force: force}, &resp)
	if err != nil {
		fmt.Fprintf(e.stderr, "tandem: %v\n", err)
		if errors.Is(err, control.ErrNotRunning) {
			return exitNotRunning
		}
		return exitFailure
	}
	fmt.Fprintln(e.stdout, resp.Done)
	st := resp.Status
	if st.Role == failover.Primary && len(st.DNS) > 0 {
		fmt.Fprintf(e.stdout, "DNS: %s (being updated; tandem status shows when it is done)\n", strings.Join(st.DNS, ", "))
	}
	return exitOK
}
