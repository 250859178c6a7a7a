package snapshot

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/tandemhost/tandem/internal/control"
)

// SchedulerOptions configure a Scheduler.
type SchedulerOptions struct {
	// Every is the time between snapshots.
	Every time.Duration
	// RetryAfter is the wait after a failed snapshot (default: Every, at
	// most 10 minutes).
	RetryAfter time.Duration
	Keep       Keep
	// Take is what each snapshot holds. Its Now is ignored: the
	// scheduler's clock is used.
	Take TakeOptions
	// Now is the clock (nil: time.Now); timers come from package time, so
	// tests run the scheduler in a testing/synctest bubble.
	Now func() time.Time
	Log *zap.Logger
}

// Status is the scheduler's state, for `tandem status`. Field names are a
// contract for scripts.
type Status struct {
	Dir string `json:"dir"`
	// LastGood is the newest complete snapshot ("" when none).
	LastGood     string    `json:"last_good"`
	LastGoodTime time.Time `json:"last_good_time"`
	// LastGoodBytes is the size of its files; LastGoodNewBytes what it
	// took on disk beyond its parent (copied files and new dumps).
	LastGoodBytes    int64 `json:"last_good_bytes"`
	LastGoodNewBytes int64 `json:"last_good_new_bytes"`
	// LastError is the last take's or prune's error, "" after a success.
	LastError string    `json:"last_error"`
	NextDue   time.Time `json:"next_due"`
	Taking    bool      `json:"taking"`
	Pruning   bool      `json:"pruning"`
}

// Scheduler takes a snapshot every Every and prunes after each, in the
// background at idle I/O priority. One goroutine (Run) owns the taking; a
// mutex guards the status it publishes.
type Scheduler struct {
	store *Store
	opts  SchedulerOptions
	log   *zap.Logger
	reqs  chan takeReq
	done  chan struct{} // closed when Run returns

	mu     sync.Mutex // guards status and lastTry
	status Status
}

type takeReq struct {
	ctx   context.Context
	reply chan takeResult
}

type takeResult struct {
	info Info
	err  error
}

// ErrSchedulerStopped is returned by TakeNow when Run is not running.
var ErrSchedulerStopped = errors.New("snapshot scheduler is not running")

// NewScheduler returns a scheduler for store.
func NewScheduler(store *Store, opts SchedulerOptions) *Scheduler {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.Every <= 0 {
		opts.Every = DefaultEvery
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = min(opts.Every, 10*time.Minute)
	}
	return &Scheduler{
		store: store, opts: opts, log: opts.Log.Named("snapshot"),
		reqs: make(chan takeReq), done: make(chan struct{}),
		status: Status{Dir: store.Dir()},
	}
}

// Status returns the scheduler's state.
func (s *Scheduler) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// Run takes snapshots until ctx ends, then waits for a prune in progress
// to stop. The first is due Every after the newest snapshot (now when
// there is none). A failed take is logged, shown in Status and retried
// after RetryAfter; Run itself fails only when the store cannot be read.
func (s *Scheduler) Run(ctx context.Context) error {
	defer close(s.done)
	list, err := s.store.List()
	if err != nil {
		return err
	}
	next := s.opts.Now()
	for i := len(list) - 1; i >= 0; i-- {
		if list[i].Good() {
			s.setGood(list[i])
			break
		}
	}
	if n := len(list); n > 0 {
		next = list[n-1].Time.Add(s.opts.Every)
	}
	var pruning sync.WaitGroup
	defer pruning.Wait()
	pruneCtx, stopPrune := context.WithCancel(ctx)
	defer stopPrune()
	for {
		s.mu.Lock()
		s.status.NextDue = next
		s.mu.Unlock()
		timer := time.NewTimer(max(next.Sub(s.opts.Now()), 0))
		var req *takeReq
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		case r := <-s.reqs:
			timer.Stop()
			req = &r
		}
		// A prune still going holds the store's lock: let it finish first.
		pruning.Wait()
		tctx := ctx
		if req != nil {
			tctx = req.ctx
		}
		info, err := s.take(tctx)
		if req != nil {
			req.reply <- takeResult{info, err}
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			next = s.opts.Now().Add(s.opts.RetryAfter)
			continue
		}
		next = info.Time.Add(s.opts.Every)
		pruning.Add(1)
		s.setPruning(true)
		go func() {
			defer pruning.Done()
			defer s.setPruning(false)
			s.prune(pruneCtx)
		}()
	}
}

func (s *Scheduler) take(ctx context.Context) (Info, error) {
	s.mu.Lock()
	s.status.Taking = true
	s.mu.Unlock()
	opts := s.opts.Take
	opts.Now = s.opts.Now
	info, err := s.store.Take(ctx, opts)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status.Taking = false
	if err != nil {
		s.status.LastError = err.Error()
		return info, err
	}
	s.status.LastError = ""
	s.setGoodLocked(info)
	return info, nil
}

// prune runs Prune on a thread of its own at idle I/O priority. The thread
// stays locked, so it dies with the goroutine instead of going back to the
// pool with its priority.
func (s *Scheduler) prune(ctx context.Context) {
	runtime.LockOSThread()
	if err := setIdleIOPriority(); err != nil {
		s.log.Warn("cannot lower the I/O priority of pruning", zap.Error(err))
	}
	plan, err := s.store.Prune(ctx, s.opts.Keep, s.opts.Now(), false)
	if err != nil && ctx.Err() == nil {
		s.log.Error("prune", zap.Error(err))
		s.mu.Lock()
		s.status.LastError = err.Error()
		s.mu.Unlock()
		return
	}
	removed := len(plan) - countKeep(plan)
	if removed > 0 {
		s.log.Info("pruned snapshots", zap.Int("removed", removed), zap.Int("kept", countKeep(plan)))
	}
}

func countKeep(ds []Decision) int {
	n := 0
	for _, d := range ds {
		if d.Keep {
			n++
		}
	}
	return n
}

// ioprio_set(2) constants (linux/ioprio.h).
const (
	ioprioWhoProcess = 1
	ioprioClassIdle  = 3
	ioprioClassShift = 13
)

// setIdleIOPriority puts the calling thread in the idle I/O class: its
// disk I/O waits for everyone else's.
func setIdleIOPriority() error {
	_, _, errno := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, 0, ioprioClassIdle<<ioprioClassShift)
	if errno != 0 {
		return fmt.Errorf("ioprio_set: %w", errno)
	}
	return nil
}

func (s *Scheduler) setPruning(on bool) {
	s.mu.Lock()
	s.status.Pruning = on
	s.mu.Unlock()
}

func (s *Scheduler) setGood(info Info) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setGoodLocked(info)
}

func (s *Scheduler) setGoodLocked(info Info) {
	s.status.LastGood = info.ID
	s.status.LastGoodTime = info.Time
	s.status.LastGoodBytes = info.Totals.Bytes
	s.status.LastGoodNewBytes = info.Totals.CopiedBytes + info.Totals.DumpBytes
}

// TakeNow takes a snapshot at once, in Run's goroutine, and returns it.
func (s *Scheduler) TakeNow(ctx context.Context) (Info, error) {
	reply := make(chan takeResult, 1)
	select {
	case s.reqs <- takeReq{ctx: ctx, reply: reply}:
	case <-s.done:
		return Info{}, ErrSchedulerStopped
	case <-ctx.Done():
		return Info{}, ctx.Err()
	}
	r := <-reply
	return r.info, r.err
}

// Routes registers the control socket's snapshot routes on mux:
//
//	POST /snapshot/take    take one now; answers its Info
//	GET  /snapshot/status  the Status
func (s *Scheduler) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /snapshot/take", func(w http.ResponseWriter, r *http.Request) {
		info, err := s.TakeNow(r.Context())
		if err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, ErrBusy) {
				code = http.StatusConflict
			}
			control.WriteError(w, code, err.Error())
			return
		}
		control.WriteJSON(w, http.StatusOK, info)
	})
	mux.HandleFunc("GET /snapshot/status", func(w http.ResponseWriter, r *http.Request) {
		control.WriteJSON(w, http.StatusOK, s.Status())
	})
}
