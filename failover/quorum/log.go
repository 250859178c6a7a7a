package quorum

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// repeatEvery rate-limits raft's warnings and errors: while a peer is down
// raft reports every failed heartbeat.
const repeatEvery = 10 * time.Second

// raftLogger adapts raft's hclog output to log. Raft is chatty at Info
// (every state change, every accepted conn): its Info and below go to
// Debug. Its Warn and Error keep their levels, each message at most once
// every repeatEvery, with the number of repeats left out.
//
// Raft's conn goroutines outlive Shutdown a little (they log the closed
// conn): mute the sink once the Quorum is closed, so that nothing is
// written to log after Close returns.
func raftLogger(log *zap.Logger) (hclog.Logger, *zapSink) {
	l := hclog.NewInterceptLogger(&hclog.LoggerOptions{
		Name:   "raft",
		Level:  hclog.Off, // the intercept logger's own output: none
		Output: io.Discard,
	})
	sink := &zapSink{log: log, last: map[string]*repeats{}}
	l.RegisterSink(sink)
	return l, sink
}

type zapSink struct {
	log   *zap.Logger
	mu    sync.Mutex // guards last and muted; held while writing
	last  map[string]*repeats
	muted bool
}

// mute stops all output; when it returns, no write is under way.
func (z *zapSink) mute() {
	z.mu.Lock()
	z.muted = true
	z.mu.Unlock()
}

type repeats struct {
	at      time.Time // when the message was last written
	dropped int       // repeats left out since
}

func (z *zapSink) Accept(name string, level hclog.Level, msg string, args ...interface{}) {
	zl := zapcore.DebugLevel
	switch {
	case level >= hclog.Error:
		zl = zapcore.ErrorLevel
	case level == hclog.Warn:
		zl = zapcore.WarnLevel
	}
	ce := z.log.Check(zl, msg)
	if ce == nil {
		return
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.muted {
		return
	}
	fields := make([]zap.Field, 0, len(args)/2+2)
	if zl >= zapcore.WarnLevel {
		dropped, ok := z.allow(msg)
		if !ok {
			return
		}
		if dropped > 0 {
			fields = append(fields, zap.Int("repeats_left_out", dropped))
		}
	}
	if name != "" {
		fields = append(fields, zap.String("component", name))
	}
	for i := 0; i+1 < len(args); i += 2 {
		key := fmt.Sprint(args[i])
		if err, ok := args[i+1].(error); ok {
			fields = append(fields, zap.NamedError(key, err))
			continue
		}
		fields = append(fields, zap.Any(key, args[i+1]))
	}
	ce.Write(fields...)
}

// allow reports whether msg may be written now, and how many repeats of it
// were left out before. z.mu is held.
func (z *zapSink) allow(msg string) (dropped int, ok bool) {
	now := time.Now()
	r := z.last[msg]
	if r == nil {
		if len(z.last) > 1000 { // raft's messages are constants; bound it anyway
			clear(z.last)
		}
		z.last[msg] = &repeats{at: now}
		return 0, true
	}
	if now.Sub(r.at) < repeatEvery {
		r.dropped++
		return 0, false
	}
	dropped = r.dropped
	r.at, r.dropped = now, 0
	return dropped, true
}
