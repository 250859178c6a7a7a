package quorum

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
)

// store is raft's LogStore and StableStore in one bbolt file. (raft-boltdb
// v2.3.1 cannot be built with raft v1.8: it imports go-metrics/compat,
// which go-metrics v0.7 no longer has.) bbolt syncs every write
// transaction, so a stored entry or term survives a crash.
type store struct {
	db *bbolt.DB
}

var (
	bucketLogs   = []byte("logs")   // key: 8-byte big-endian index; value: encodeLog
	bucketStable = []byte("stable") // raft's own keys (current term, last vote)
)

// errKeyNotFound is what raft expects from a StableStore for a missing key:
// it compares the error's text with "not found".
var errKeyNotFound = errors.New("not found")

var (
	_ raft.LogStore    = (*store)(nil)
	_ raft.StableStore = (*store)(nil)
)

func openStore(path string) (*store, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w (is another tandem running on this state dir?)", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketLogs, bucketStable} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &store{db: db}, nil
}

func (s *store) Close() error { return s.db.Close() }

func (s *store) FirstIndex() (uint64, error) { return s.edgeIndex(true) }

func (s *store) LastIndex() (uint64, error) { return s.edgeIndex(false) }

func (s *store) edgeIndex(first bool) (uint64, error) {
	var idx uint64
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketLogs).Cursor()
		k, _ := c.Last()
		if first {
			k, _ = c.First()
		}
		if k != nil {
			idx = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	return idx, err
}

func (s *store) GetLog(index uint64, l *raft.Log) error {
	return s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketLogs).Get(indexKey(index))
		if v == nil {
			return raft.ErrLogNotFound
		}
		if err := decodeLog(v, l); err != nil {
			return fmt.Errorf("raft log %d: %w", index, err)
		}
		return nil
	})
}

func (s *store) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

func (s *store) StoreLogs(logs []*raft.Log) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketLogs)
		for _, l := range logs {
			if err := b.Put(indexKey(l.Index), encodeLog(l)); err != nil {
				return fmt.Errorf("store raft log %d: %w", l.Index, err)
			}
		}
		return nil
	})
}

// DeleteRange deletes the entries from min to max, both included.
func (s *store) DeleteRange(min, max uint64) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketLogs)
		var keys [][]byte
		c := b.Cursor()
		for k, _ := c.Seek(indexKey(min)); k != nil && binary.BigEndian.Uint64(k) <= max; k, _ = c.Next() {
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return fmt.Errorf("delete raft log %d: %w", binary.BigEndian.Uint64(k), err)
			}
		}
		return nil
	})
}

func (s *store) Set(key, val []byte) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketStable).Put(key, val)
	})
}

func (s *store) Get(key []byte) ([]byte, error) {
	var val []byte
	err := s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketStable).Get(key)
		if v == nil {
			return errKeyNotFound
		}
		val = append([]byte(nil), v...)
		return nil
	})
	return val, err
}

func (s *store) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

func (s *store) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("stable key %q: %d bytes, want 8", key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

func indexKey(i uint64) []byte { return binary.BigEndian.AppendUint64(nil, i) }

// logFormat versions encodeLog's layout:
//
//	uint8 logFormat | uvarint index | uvarint term | uint8 type |
//	uvarint len | data | uvarint len | extensions | varint appended-at (Unix ns, 0: unset)
const logFormat = 1

// maxLogField bounds a decoded data or extensions field.
const maxLogField = 64 << 20

func encodeLog(l *raft.Log) []byte {
	b := make([]byte, 0, 32+len(l.Data)+len(l.Extensions))
	b = append(b, logFormat)
	b = binary.AppendUvarint(b, l.Index)
	b = binary.AppendUvarint(b, l.Term)
	b = append(b, byte(l.Type))
	b = binary.AppendUvarint(b, uint64(len(l.Data)))
	b = append(b, l.Data...)
	b = binary.AppendUvarint(b, uint64(len(l.Extensions)))
	b = append(b, l.Extensions...)
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	return binary.AppendVarint(b, at)
}

// decodeLog fills l from b, copying what it keeps.
func decodeLog(b []byte, l *raft.Log) error {
	d := logDecoder{b: b}
	if v := d.byte(); d.err == nil && v != logFormat {
		return fmt.Errorf("log format %d, want %d", v, logFormat)
	}
	*l = raft.Log{
		Index:      d.uvarint(),
		Term:       d.uvarint(),
		Type:       raft.LogType(d.byte()),
		Data:       d.bytes(),
		Extensions: d.bytes(),
	}
	at := d.varint()
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%d bytes after the entry", len(d.b))
	}
	if at != 0 {
		l.AppendedAt = time.Unix(0, at)
	}
	return nil
}

type logDecoder struct {
	b   []byte
	err error
}

var errShortLog = errors.New("truncated entry")

func (d *logDecoder) byte() byte {
	if d.err != nil || len(d.b) < 1 {
		d.fail(errShortLog)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *logDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errShortLog)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *logDecoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(errShortLog)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *logDecoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > maxLogField || n > uint64(len(d.b)) {
		d.fail(fmt.Errorf("field of %d bytes, %d left", n, len(d.b)))
		return nil
	}
	if n == 0 {
		return nil
	}
	v := append([]byte(nil), d.b[:n]...)
	d.b = d.b[n:]
	return v
}

func (d *logDecoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}
