package snapshot

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/zeebo/blake3"
)

// RestoreDBOptions say which dump to load and where.
type RestoreDBOptions struct {
	ID  string // the snapshot
	DSN string // the server to load into
	// Database picks one of the snapshot's databases ("" for all).
	Database string
	// ToDatabase loads into this database instead of the original one (it
	// is created if missing); the snapshot (or Database) must then name
	// exactly one.
	ToDatabase string
	// Force drops and reloads tables that exist in the destination; without
	// it RestoreDB changes nothing when any exists.
	Force bool
}

// RestoreDBResult counts what RestoreDB loaded.
type RestoreDBResult struct {
	Databases []string `json:"databases"` // destinations
	Tables    int      `json:"tables"`
	Rows      int64    `json:"rows"`
}

// RestoreDB loads a snapshot's database dump. Every dump file is checked
// against its hash and every destination table for existence before
// anything is changed. Loading goes through the server like any client's
// writes (binlogged), so the peer gets them.
func (s *Store) RestoreDB(ctx context.Context, o RestoreDBOptions) (RestoreDBResult, error) {
	var res RestoreDBResult
	info, err := s.Get(o.ID)
	if err != nil {
		return res, err
	}
	if !info.Good() {
		return res, fmt.Errorf("snapshot %s is %s: restore from a complete one", o.ID, info.Status)
	}
	var tables []TableInfo
	var dbs []string
	for _, t := range info.Tables {
		if o.Database == "" || t.Database == o.Database {
			tables = append(tables, t)
			if !slices.Contains(dbs, t.Database) {
				dbs = append(dbs, t.Database)
			}
		}
	}
	if len(tables) == 0 {
		if o.Database != "" {
			return res, fmt.Errorf("snapshot %s has no dump of database %q", o.ID, o.Database)
		}
		return res, fmt.Errorf("snapshot %s has no database dump (is mysql_dump on?)", o.ID)
	}
	if o.ToDatabase != "" && len(dbs) > 1 {
		return res, fmt.Errorf("snapshot %s holds %d databases (%s): pick one with --database to load it into %s", o.ID, len(dbs), strings.Join(dbs, ", "), o.ToDatabase)
	}
	dest := func(db string) string {
		if o.ToDatabase != "" {
			return o.ToDatabase
		}
		return db
	}
	// Check the dump files.
	buf := make([]byte, 256<<10)
	h := blake3.New()
	for _, t := range tables {
		if !validRel(t.File) {
			return res, fmt.Errorf("snapshot %s: bad dump path %q", o.ID, t.File)
		}
		sum, _, err := hashFile(filepath.Join(s.Path(o.ID), dbDir, filepath.FromSlash(t.File)), h, buf)
		if err != nil {
			return res, fmt.Errorf("dump of %s.%s: %w", t.Database, t.Table, err)
		}
		if hex.EncodeToString(sum[:]) != t.Hash {
			return res, fmt.Errorf("dump of %s.%s is corrupted (its hash differs from snapshot.json's); nothing was loaded", t.Database, t.Table)
		}
	}
	db, err := sql.Open("mysql", o.DSN)
	if err != nil {
		return res, fmt.Errorf("dsn: %w", err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return res, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	// Check the destinations.
	var clash []string
	for _, t := range tables {
		var n int
		err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", dest(t.Database), t.Table).Scan(&n)
		if err != nil {
			return res, fmt.Errorf("check %s.%s: %w", dest(t.Database), t.Table, err)
		}
		if n > 0 {
			clash = append(clash, dest(t.Database)+"."+t.Table)
		}
	}
	if len(clash) > 0 && !o.Force {
		return res, fmt.Errorf("%w: tables %s exist; add --force to drop and reload them, or --to-database NAME to load into another database", ErrExists, strings.Join(clash, ", "))
	}
	for _, q := range []string{"SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'", "SET SESSION foreign_key_checks = 0"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return res, fmt.Errorf("%s: %w", q, err)
		}
	}
	defer conn.ExecContext(context.Background(), "SET SESSION foreign_key_checks = 1")
	for _, name := range dbs {
		d := dest(name)
		res.Databases = append(res.Databases, d)
		for _, q := range []string{"CREATE DATABASE IF NOT EXISTS " + quoteIdent(d), "USE " + quoteIdent(d)} {
			if _, err := conn.ExecContext(ctx, q); err != nil {
				return res, fmt.Errorf("%s: %w", q, err)
			}
		}
		for _, t := range tables {
			if t.Database != name {
				continue
			}
			if o.Force {
				if _, err := conn.ExecContext(ctx, "DROP TABLE IF EXISTS "+quoteIdent(t.Table)); err != nil {
					return res, fmt.Errorf("drop %s.%s: %w", d, t.Table, err)
				}
			}
			if err := loadDump(ctx, conn, filepath.Join(s.Path(o.ID), dbDir, filepath.FromSlash(t.File))); err != nil {
				return res, fmt.Errorf("load %s.%s: %w", d, t.Table, err)
			}
			res.Tables++
			res.Rows += t.Rows
		}
	}
	return res, nil
}

// loadDump runs every statement of a dump file on conn.
func loadDump(ctx context.Context, conn *sql.Conn, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return err
	}
	defer zr.Close()
	sp := newSplitter(zr)
	for {
		stmt, err := sp.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("%.80s...: %w", stmt, err)
		}
	}
}

// splitter cuts SQL text into statements at semicolons outside quotes and
// comments.
type splitter struct {
	r   *bufio.Reader
	buf []byte
}

func newSplitter(r io.Reader) *splitter { return &splitter{r: bufio.NewReaderSize(r, 256<<10)} }

var errUnterminated = errors.New("dump ends inside a statement")

// next returns the next statement without its semicolon, io.EOF at the end.
func (s *splitter) next() (string, error) {
	s.buf = s.buf[:0]
	var quote byte // the open quote, 0 outside
	for {
		c, err := s.r.ReadByte()
		if err == io.EOF {
			if strings.TrimSpace(string(s.buf)) == "" {
				return "", io.EOF
			}
			return "", errUnterminated
		}
		if err != nil {
			return "", err
		}
		switch {
		case quote != 0:
			s.buf = append(s.buf, c)
			if c == '\\' && quote != '`' {
				d, err := s.r.ReadByte()
				if err != nil {
					return "", errUnterminated
				}
				s.buf = append(s.buf, d)
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"' || c == '`':
			quote = c
			s.buf = append(s.buf, c)
		case c == '-' && s.peek("- "), c == '#':
			// A comment to the end of the line.
			if _, err := s.r.ReadString('\n'); err != nil && err != io.EOF {
				return "", err
			}
		case c == '/' && s.peek("*") && !s.peek("*!"):
			if err := s.skipBlockComment(); err != nil {
				return "", err
			}
		case c == ';':
			stmt := strings.TrimSpace(string(s.buf))
			if stmt == "" {
				continue
			}
			return stmt, nil
		default:
			s.buf = append(s.buf, c)
		}
	}
}

func (s *splitter) peek(want string) bool {
	b, _ := s.r.Peek(len(want))
	return string(b) == want
}

func (s *splitter) skipBlockComment() error {
	s.r.ReadByte() // the '*'
	prev := byte(0)
	for {
		c, err := s.r.ReadByte()
		if err != nil {
			return errUnterminated
		}
		if prev == '*' && c == '/' {
			return nil
		}
		prev = c
	}
}
