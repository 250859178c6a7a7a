package conflict

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// LogFile is the conflict log's name inside the state dir.
const LogFile = "conflicts.jsonl"

// Kind classifies a logged conflict.
type Kind string

const (
	KindFile    Kind = "file"    // two different contents of a regular file
	KindSymlink Kind = "symlink" // a symlink against a file or another symlink
	KindDir     Kind = "dir"     // a directory against a file or symlink
	KindDelete  Kind = "delete"  // a change against a delete; the delete lost
	KindRow     Kind = "row"     // a MySQL row (logged by package binlog); Row is set
)

var (
	// ErrNotFound: no conflict has the given ID.
	ErrNotFound = errors.New("no such conflict")
	// ErrResolved: the conflict was already marked resolved.
	ErrResolved = errors.New("conflict already resolved")
	// ErrClosed: the Log was closed.
	ErrClosed = errors.New("conflict log closed")
)

// Entry is one conflict in the log.
type Entry struct {
	// ID is assigned by Append: a decimal counter, "1", "2", ..., in log
	// order, never reused for the life of the file.
	ID string `json:"id"`
	// Time is when the conflict was decided (Append fills it when zero).
	Time time.Time `json:"time,omitzero"`
	Kind Kind      `json:"kind,omitempty"`
	// Root is the sync root (the [[sync]] path on the logging node) and
	// Path the conflicting path relative to it, slash separated. Both are
	// empty for a row conflict.
	Root string `json:"root,omitempty"`
	Path string `json:"path,omitempty"`
	// Local and Remote are the two versions as the logging node saw them.
	Local  Version `json:"local,omitzero"`
	Remote Version `json:"remote,omitzero"`
	// Winner is the node whose version was kept in place.
	Winner string `json:"winner,omitempty"`
	// KeptAs is where the loser was kept (relative to Root), "" when
	// nothing was kept because the loser was a delete.
	KeptAs string `json:"kept_as,omitempty"`
	// Row describes a row conflict (Kind "row").
	Row *Row `json:"row,omitempty"`
	// Resolution is set once an operator has resolved the conflict. It is
	// never written in the conflict's own line: see Log.MarkResolved.
	Resolution *Resolution `json:"resolution,omitempty"`
}

// Row is a MySQL row conflict. The images are JSON as package binlog
// encodes them; this package stores them as they are.
type Row struct {
	Schema string `json:"schema"`
	Table  string `json:"table"`
	// Key identifies the row (its primary key values).
	Key json.RawMessage `json:"key,omitempty"`
	// Before and After are the incoming event's row images; Current is the
	// row found on this node, which did not match Before.
	Before  json.RawMessage `json:"before,omitempty"`
	After   json.RawMessage `json:"after,omitempty"`
	Current json.RawMessage `json:"current,omitempty"`
}

// Resolution records how an operator settled a conflict.
type Resolution struct {
	At  time.Time `json:"at"`
	How string    `json:"how"` // e.g. "keep beta", "keep both"
}

// NewEntry returns the log entry for a Conflict decision d about path under
// root. ID and Time are left for Append.
func NewEntry(root, path string, local, remote Version, d Decision) Entry {
	return Entry{
		Kind:   d.Kind,
		Root:   root,
		Path:   path,
		Local:  local,
		Remote: remote,
		Winner: d.Winner.Of(local, remote).Node,
		KeptAs: d.KeepLoserAs,
	}
}

// validate checks what Append requires and what a decoded line must have.
func (e *Entry) validate() error {
	switch {
	case e.Kind == "":
		return errors.New("no kind")
	case e.Kind == KindRow && e.Row == nil:
		return errors.New("row conflict without a row")
	case e.Kind != KindRow && e.Path == "":
		return errors.New("no path")
	case !e.Local.Vector.Valid() || !e.Remote.Vector.Valid():
		return errors.New("vector not in canonical form")
	}
	return nil
}

// Filter selects entries for List. The zero Filter selects all.
type Filter struct {
	// Since keeps entries whose Time is not before it.
	Since time.Time
	// Path keeps entries about this path or anything under it, given
	// relative to the sync root or as an absolute path (Root joined with
	// Path).
	Path string
	// Unresolved keeps only entries not yet resolved.
	Unresolved bool
}

func (f Filter) match(e *Entry) bool {
	if !f.Since.IsZero() && e.Time.Before(f.Since) {
		return false
	}
	if f.Unresolved && e.Resolution != nil {
		return false
	}
	if f.Path != "" {
		want := strings.TrimSuffix(f.Path, "/")
		under := func(p string) bool {
			return p == want || strings.HasPrefix(p, want+"/") || want == ""
		}
		if !under(e.Path) && !(e.Root != "" && under(path.Join(e.Root, e.Path))) {
			return false
		}
	}
	return true
}

// View is the conflict log as read at one moment: every conflict in log
// order with its latest resolution. A View never changes; its methods may be
// called from any goroutine. Entries it returns share memory with it: treat
// them as read-only.
type View struct {
	entries []Entry
	byID    map[string]int
	maxID   uint64
	// Skipped counts lines that could not be used: corrupt, from an
	// unknown format, a repeated ID, a resolution of an unknown conflict. A
	// caller should warn when it is not zero. An unfinished last line (being
	// written right now) is not counted.
	Skipped int
}

// List returns the entries f selects, oldest first.
func (v *View) List(f Filter) []Entry {
	var out []Entry
	for i := range v.entries {
		if f.match(&v.entries[i]) {
			out = append(out, v.entries[i])
		}
	}
	return out
}

// Get returns the entry with the given ID, or an error wrapping ErrNotFound.
func (v *View) Get(id string) (Entry, error) {
	i, ok := v.byID[id]
	if !ok {
		return Entry{}, fmt.Errorf("conflict %q: %w", id, ErrNotFound)
	}
	return v.entries[i], nil
}

// Load reads the conflict log in stateDir without opening it for writing:
// what the CLI does while the daemon runs. A missing log is an empty View.
func Load(stateDir string) (*View, error) {
	f, err := os.Open(filepath.Join(stateDir, LogFile))
	if errors.Is(err, os.ErrNotExist) {
		return &View{byID: map[string]int{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read conflict log: %w", err)
	}
	defer f.Close()
	v, _, err := scan(f)
	if err != nil {
		return nil, fmt.Errorf("read conflict log %s: %w", f.Name(), err)
	}
	return v, nil
}

// Log is the conflict log, open for appending: conflicts.jsonl in the state
// dir, one JSON object per line, mode 0600. It is append-only: a
// resolution is a line of its own, and readers apply it to the conflict it
// names.
//
// One process may have the log open (an exclusive flock, taken by Open,
// enforces it: the daemon). Any number of readers may read the file at the
// same time with Load, because every line is written whole at the end of
// the file and a reader ignores an unfinished last line. A Log may be used
// from many goroutines.
type Log struct {
	now func() time.Time // the clock for Append's default Time; tests replace it

	mu      sync.Mutex // guards f, size, next and broken; held across each write+fsync and each read
	f       *os.File   // nil once closed
	size    int64      // end of the last whole line: where the next line goes
	next    uint64     // the next ID
	broken  error      // set when a failed append could not be undone; appends then fail
	skipped int        // lines skipped when opened; set by Open only
}

// Open opens (creating it if needed) the conflict log in stateDir, which
// must exist. It does not fail on what the file holds: unreadable lines are
// skipped and counted (see Skipped), and an unfinished last line left by a
// crash is cut off (or, if it is a whole record short of its newline,
// finished) so that new lines do not run into it.
func Open(stateDir string) (*Log, error) {
	name := filepath.Join(stateDir, LogFile)
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open conflict log: %w", err)
	}
	l, err := open(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open conflict log %s: %w", name, err)
	}
	return l, nil
}

func open(f *os.File) (*Log, error) {
	if err := lockFile(f); err != nil {
		return nil, err
	}
	if err := syncDir(filepath.Dir(f.Name())); err != nil { // the file may be new
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	skipped := 0
	tail, err := tailStart(f, size)
	if err != nil {
		return nil, err
	}
	if tail < size {
		var buf []byte // stays nil (not a record) when the tail is over the line limit
		if size-tail < int64(maxLine) {
			buf = make([]byte, size-tail)
			if _, err := f.ReadAt(buf, tail); err != nil {
				return nil, err
			}
		}
		var err error
		if _, derr := decodeLine(buf); buf != nil && derr == nil {
			_, err = f.WriteAt([]byte{'\n'}, size)
			size++
		} else {
			skipped++
			err = f.Truncate(tail)
			size = tail
		}
		if err != nil {
			return nil, fmt.Errorf("repair unfinished last line: %w", err)
		}
		if err := f.Sync(); err != nil {
			return nil, err
		}
	}
	v, _, err := scan(io.NewSectionReader(f, 0, size))
	if err != nil {
		return nil, err
	}
	return &Log{
		now:     time.Now,
		f:       f,
		size:    size,
		next:    v.maxID + 1,
		skipped: skipped + v.Skipped,
	}, nil
}

// tailStart returns the offset just past the file's last newline (0 if it
// has none).
func tailStart(f *os.File, size int64) (int64, error) {
	buf := make([]byte, 4096)
	for end := size; end > 0; {
		start := max(end-int64(len(buf)), 0)
		b := buf[:end-start]
		if _, err := f.ReadAt(b, start); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
			return start + int64(i) + 1, nil
		}
		end = start
	}
	return 0, nil
}

// Skipped returns how many lines Open could not use (see View.Skipped),
// counting an unfinished last line it cut off. The daemon warns when it is
// not zero.
func (l *Log) Skipped() int { return l.skipped }

// Append assigns e an ID (and a Time, when zero), writes it as one line and
// fsyncs before returning the stored entry. On error nothing was added.
func (l *Log) Append(e Entry) (Entry, error) {
	if err := e.validate(); err != nil {
		return Entry{}, fmt.Errorf("log conflict %s: %w", e.Path, err)
	}
	if e.Resolution != nil {
		return Entry{}, fmt.Errorf("log conflict %s: a new entry cannot be resolved; use MarkResolved", e.Path)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e.ID = strconv.FormatUint(l.next, 10)
	if e.Time.IsZero() {
		e.Time = l.now()
	}
	b, err := encodeLine(line{Op: opConflict, Entry: e})
	if err != nil {
		return Entry{}, fmt.Errorf("log conflict %s: %w", e.Path, err)
	}
	if err := l.writeLocked(b); err != nil {
		return Entry{}, fmt.Errorf("log conflict %s: %w", e.Path, err)
	}
	l.next++
	return e, nil
}

// MarkResolved records that conflict id was resolved at the given time (now
// when zero), how
// (free text such as "keep beta" or "keep both"), by appending a line, and
// returns the entry as it now reads. It fails with ErrNotFound for an
// unknown id and ErrResolved for one already resolved.
func (l *Log) MarkResolved(id, how string, at time.Time) (Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	v, err := l.viewLocked()
	if err != nil {
		return Entry{}, err
	}
	e, err := v.Get(id)
	if err != nil {
		return Entry{}, err
	}
	if e.Resolution != nil {
		return Entry{}, fmt.Errorf("conflict %s: %w at %s (%s)", id, ErrResolved, e.Resolution.At.Format(time.RFC3339), e.Resolution.How)
	}
	if at.IsZero() {
		at = l.now()
	}
	r := &Resolution{At: at, How: how}
	b, err := encodeLine(line{Op: opResolve, Entry: Entry{ID: id, Resolution: r}})
	if err != nil {
		return Entry{}, fmt.Errorf("resolve conflict %s: %w", id, err)
	}
	if err := l.writeLocked(b); err != nil {
		return Entry{}, fmt.Errorf("resolve conflict %s: %w", id, err)
	}
	e.Resolution = r
	return e, nil
}

// writeLocked writes b (a whole line) at the end and fsyncs it. On failure
// it cuts the file back so that no partial line stays in the way.
func (l *Log) writeLocked(b []byte) error {
	if l.f == nil {
		return ErrClosed
	}
	if l.broken != nil {
		return fmt.Errorf("conflict log unusable since an earlier error (restart the daemon): %w", l.broken)
	}
	_, err := l.f.WriteAt(b, l.size)
	if err == nil {
		err = l.f.Sync()
	}
	if err != nil {
		if terr := l.f.Truncate(l.size); terr != nil {
			l.broken = terr
		}
		return err
	}
	l.size += int64(len(b))
	return nil
}

// List returns the entries f selects, oldest first, as the file reads now.
func (l *Log) List(f Filter) ([]Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	v, err := l.viewLocked()
	if err != nil {
		return nil, err
	}
	return v.List(f), nil
}

// Get returns the entry with the given ID, or an error wrapping ErrNotFound.
func (l *Log) Get(id string) (Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	v, err := l.viewLocked()
	if err != nil {
		return Entry{}, err
	}
	return v.Get(id)
}

// viewLocked reads the whole log. Only the ID counter lives in memory, so a
// daemon's memory does not grow with its conflict history.
func (l *Log) viewLocked() (*View, error) {
	if l.f == nil {
		return nil, ErrClosed
	}
	v, _, err := scan(io.NewSectionReader(l.f, 0, l.size))
	if err != nil {
		return nil, fmt.Errorf("read conflict log: %w", err)
	}
	return v, nil
}

// Close closes the file, releasing the lock. Further calls fail with
// ErrClosed; Close itself may be called again.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

const (
	opConflict = "conflict"
	opResolve  = "resolve"
)

// maxLine bounds one line; a longer one is skipped as corrupt. A variable
// so that tests can lower it.
var maxLine = 16 << 20

// line is one line of the log file: {"op":"conflict", ...Entry fields} or
// {"op":"resolve","id":...,"resolution":{...}}.
type line struct {
	Op string `json:"op"`
	Entry
}

func encodeLine(ln line) ([]byte, error) {
	b, err := json.Marshal(ln)
	if err != nil {
		return nil, err
	}
	if len(b) >= maxLine {
		return nil, fmt.Errorf("entry of %d bytes is over the %d byte line limit", len(b), maxLine)
	}
	return append(b, '\n'), nil
}

// decodeLine parses one line (with or without its newline) and checks it
// is a record this version understands.
func decodeLine(b []byte) (line, error) {
	var ln line
	if err := json.Unmarshal(b, &ln); err != nil {
		return line{}, err
	}
	if ln.ID == "" {
		return line{}, errors.New("no id")
	}
	switch ln.Op {
	case opConflict:
		if ln.Resolution != nil {
			return line{}, errors.New("conflict line with a resolution")
		}
		if err := ln.Entry.validate(); err != nil {
			return line{}, err
		}
	case opResolve:
		if ln.Resolution == nil {
			return line{}, errors.New("resolve line without a resolution")
		}
		ln.Entry = Entry{ID: ln.ID, Resolution: ln.Resolution}
	default:
		return line{}, fmt.Errorf("unknown op %q", ln.Op)
	}
	return ln, nil
}

// scan reads log lines from r into a View. It fails only when r does; bad
// lines are counted in Skipped. partial reports an unfinished last line.
func scan(r io.Reader) (v *View, partial bool, err error) {
	v = &View{byID: map[string]int{}}
	br := bufio.NewReaderSize(r, 64<<10)
	var buf []byte
	tooLong := false
	for {
		chunk, err := br.ReadSlice('\n')
		if !tooLong {
			buf = append(buf, chunk...)
			if len(buf) > maxLine {
				tooLong, buf = true, buf[:0]
			}
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF:
			return v, len(buf) > 0 || tooLong, nil
		case err != nil:
			return nil, false, err
		}
		if tooLong {
			v.Skipped++
		} else {
			v.add(buf)
		}
		buf, tooLong = buf[:0], false
	}
}

// add applies one whole line to v.
func (v *View) add(b []byte) {
	if len(bytes.TrimSpace(b)) == 0 {
		return
	}
	ln, err := decodeLine(b)
	if err != nil {
		v.Skipped++
		return
	}
	i, seen := v.byID[ln.ID]
	switch ln.Op {
	case opConflict:
		if seen {
			v.Skipped++
			return
		}
		if n, err := strconv.ParseUint(ln.ID, 10, 64); err == nil && n > v.maxID {
			v.maxID = n
		}
		v.byID[ln.ID] = len(v.entries)
		v.entries = append(v.entries, ln.Entry)
	case opResolve:
		if !seen {
			v.Skipped++
			return
		}
		v.entries[i].Resolution = ln.Resolution
	}
}
