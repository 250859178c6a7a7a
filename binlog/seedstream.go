package binlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"go.uber.org/zap"

	"github.com/tandemhost/tandem/pipe"
)

// Seeding over the pipe: the node to fill opens a "seed" stream; the peer
// dumps its databases from one consistent snapshot and streams the dump;
// the node loads it and records the snapshot's GTID as the peer's
// checkpoint, so the rows stream resumes right after the snapshot. While a
// seed runs, the node applies nothing else from the peer.
//
//	peer -> node  frameSeedTxn       one Txn of the dump (DDL or inserts)
//	peer -> node  frameSeedProgress  where the dump is (schema, table, rows)
//	peer -> node  frameSeedDone      the snapshot's GTID
//	peer -> node  frameSeedError     why the dump failed
const (
	kindSeed          = "seed"
	frameSeedTxn      = 1
	frameSeedProgress = 2
	frameSeedDone     = 3
	frameSeedError    = 4
)

// Loader loads a dump into the local server (Applier).
type Loader interface {
	Load(ctx context.Context, t *Txn) error
	FinishLoad(ctx context.Context, origin, gtid string) error
}

// Dumper dumps the local databases for the peer (see Dump), returning the
// snapshot's GTID.
type Dumper func(ctx context.Context, emit func(*Txn) error, progress func(SeedProgress)) (gtid string, err error)

// ErrNoSession is returned by Seed when the link to the peer is down.
var ErrNoSession = errors.New("not connected to the peer")

// seeding is the engine's state for seeds: the current outbound session
// (to open the seed stream on) and whether a seed runs.
type seeding struct {
	mu      sync.Mutex
	session *pipe.Session
	running bool
	// stopRecv ends the rows stream being applied, so that the peer's
	// sender starts again from the checkpoint the seed leaves.
	stopRecv context.CancelCauseFunc
}

// serveSeed dumps the local databases on the peer's seed stream.
func (e *Engine) serveSeed(ctx context.Context, st *pipe.Stream) error {
	if e.o.Dumper == nil {
		return sendSeedError(st, errors.New("database replication is not configured on "+e.o.Node))
	}
	e.log.Info("the peer asked for a seed: dumping the databases")
	var buf []byte
	var enc pipe.Encoder
	gtid, err := e.o.Dumper(ctx, func(t *Txn) error {
		t.Origin = e.o.Node
		if t.GTID == "" {
			t.GTID = fmt.Sprintf("seed:%d", t.Seq) // not in the binlog; the wire wants a name
		}
		buf = AppendTxn(buf[:0], t)
		return st.SendFrame(frameSeedTxn, buf)
	}, func(p SeedProgress) {
		enc.Reset()
		enc.String(p.Schema)
		enc.String(p.Table)
		enc.Varint(p.Rows)
		enc.Varint(p.TableRows)
		enc.Uvarint(uint64(p.Tables))
		enc.Uvarint(uint64(p.Done))
		st.SendFrame(frameSeedProgress, enc.Buf())
	})
	if err != nil {
		e.log.Warn("dump for the peer failed", zap.Error(err))
		return sendSeedError(st, err)
	}
	enc.Reset()
	enc.String(gtid)
	if err := st.SendFrame(frameSeedDone, enc.Buf()); err != nil {
		return err
	}
	e.log.Info("dump for the peer sent", zap.String("gtid", gtid))
	return st.CloseWrite()
}

func sendSeedError(st *pipe.Stream, err error) error {
	var enc pipe.Encoder
	enc.String(err.Error())
	st.SendFrame(frameSeedError, enc.Buf())
	return err
}

// Seed fills the local server with a copy of the peer's databases and makes
// the peer's rows stream resume right after that copy. The local copies of
// the replicated databases must be empty (or absent): the dump's CREATE
// TABLE and inserts fail on existing tables and rows. progress, if set, is
// called as the dump goes.
func (e *Engine) Seed(ctx context.Context, progress func(SeedProgress)) (gtid string, err error) {
	if e.o.Loader == nil {
		return "", errors.New("database replication is not configured")
	}
	e.seed.mu.Lock()
	s, running := e.seed.session, e.seed.running
	if s != nil && !running {
		e.seed.running = true
		if e.seed.stopRecv != nil {
			e.seed.stopRecv(errors.New("a seed starts"))
		}
	}
	e.seed.mu.Unlock()
	switch {
	case running:
		return "", errors.New("a seed is already running")
	case s == nil:
		return "", ErrNoSession
	}
	e.update(func(st *Status) { st.Seeding = &SeedStatus{} })
	defer func() {
		e.seed.mu.Lock()
		e.seed.running = false
		e.seed.mu.Unlock()
		e.update(func(st *Status) { st.Seeding = nil })
	}()

	st, err := s.Open(kindSeed, rowsMaxFrame)
	if err != nil {
		return "", err
	}
	defer st.Close()
	context.AfterFunc(ctx, func() { st.Close() })
	loaded := 0
	dec := newTxnDecoder() // a dump repeats each table's definition in every Txn
	for {
		typ, body, err := st.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("the peer ended the seed stream before the dump was complete")
			}
			return "", fmt.Errorf("seed after %d transactions: %w", loaded, err)
		}
		switch typ {
		case frameSeedTxn:
			t, err := dec.decode(body)
			if err != nil {
				return "", fmt.Errorf("seed: %w", err)
			}
			if err := e.o.Loader.Load(ctx, t); err != nil {
				return "", fmt.Errorf("seed: %w", err)
			}
			loaded++
		case frameSeedProgress:
			d := pipe.NewDecoder(body)
			p := SeedProgress{Schema: d.String(256), Table: d.String(256), Rows: d.Varint(), TableRows: d.Varint(),
				Tables: d.Int(1<<30, "tables"), Done: d.Int(1<<30, "done")}
			if err := d.Finish(); err != nil {
				return "", fmt.Errorf("seed progress: %w", err)
			}
			e.update(func(st *Status) {
				st.Seeding = &SeedStatus{Schema: p.Schema, Table: p.Table, Rows: p.Rows, TableRows: p.TableRows, Tables: p.Tables, Done: p.Done}
			})
			if progress != nil {
				progress(p)
			}
		case frameSeedDone:
			d := pipe.NewDecoder(body)
			gtid := d.String(4096)
			if err := d.Finish(); err != nil {
				return "", fmt.Errorf("seed end: %w", err)
			}
			if err := e.o.Loader.FinishLoad(ctx, e.o.Peer, gtid); err != nil {
				return "", err
			}
			e.log.Info("seeded from the peer", zap.Int("transactions", loaded), zap.String("gtid", gtid))
			return gtid, nil
		case frameSeedError:
			d := pipe.NewDecoder(body)
			msg := d.String(1 << 16)
			return "", fmt.Errorf("the peer's dump failed: %s", msg)
		default:
			return "", fmt.Errorf("%w: seed stream: frame type %d", pipe.ErrMalformed, typ)
		}
	}
}
