package conflict

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

var logTime = time.Date(2026, 11, 22, 1, 30, 0, 0, time.UTC)

// openLog opens a log in a fresh state dir with a clock that advances a
// second per call.
func openLog(t testing.TB, dir string) *Log {
	t.Helper()
	l, err := Open(dir)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	var mu sync.Mutex
	tick := logTime
	l.now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		tick = tick.Add(time.Second)
		return tick
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func sampleEntry(path string) Entry {
	local := Version{Node: "alpha", Vector: vec("alpha", 2, "beta", 1), Type: TypeFile, Hash: Hash{1}, Size: 10, Mtime: logTime}
	remote := Version{Node: "beta", Vector: vec("alpha", 1, "beta", 2), Type: TypeFile, Hash: Hash{2}, Size: 12, Mtime: logTime.Add(time.Minute)}
	return NewEntry("/var/www", path, local, remote, Decide(path, local, remote, nil))
}

func mustAppend(t testing.TB, l *Log, e Entry) Entry {
	t.Helper()
	got, err := l.Append(e)
	if err != nil {
		t.Fatalf("Append(%s): %v", e.Path, err)
	}
	return got
}

func ids(es []Entry) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

func TestLogAppendListReopen(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	e1 := mustAppend(t, l, sampleEntry("docs/a.txt"))
	e2 := mustAppend(t, l, sampleEntry("docs/b.txt"))
	if e1.ID != "1" || e2.ID != "2" {
		t.Fatalf("IDs = %q, %q; want 1, 2", e1.ID, e2.ID)
	}
	if !e1.Time.Equal(logTime.Add(time.Second)) {
		t.Errorf("Append filled Time = %v, want the clock's %v", e1.Time, logTime.Add(time.Second))
	}
	if e1.Winner != "beta" || e1.KeptAs != "docs/a.conflict-alpha-20261122-013000.txt" || e1.Kind != KindFile {
		t.Errorf("NewEntry from the decision = %+v", e1)
	}
	fi, err := os.Stat(filepath.Join(dir, LogFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("log file mode = %v, %v; want 0600", fi.Mode(), err)
	}
	got, err := l.Get("1")
	if err != nil || !reflect.DeepEqual(got, e1) {
		t.Errorf("Get(1) = %+v, %v; want %+v", got, err, e1)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(sampleEntry("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}

	l = openLog(t, dir)
	e3 := mustAppend(t, l, sampleEntry("docs/c.txt"))
	if e3.ID != "3" {
		t.Errorf("ID after reopen = %q, want 3", e3.ID)
	}
	all, err := l.List(Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(all); !reflect.DeepEqual(got, []string{"1", "2", "3"}) {
		t.Errorf("List = %v, want [1 2 3]", got)
	}
	if !reflect.DeepEqual(all[0], e1) {
		t.Errorf("entry after reopen = %+v\nwant %+v", all[0], e1)
	}
	if l.Skipped() != 0 {
		t.Errorf("Skipped = %d on a clean log", l.Skipped())
	}
}

func TestLogFilter(t *testing.T) {
	l := openLog(t, t.TempDir())
	for _, p := range []string{"docs/a.txt", "docs/sub/b.txt", "docsx/c.txt", "d.txt"} {
		mustAppend(t, l, sampleEntry(p)) // times: +1s, +2s, +3s, +4s
	}
	if _, err := l.MarkResolved("2", "keep beta", logTime.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		f    Filter
		want []string
	}{
		{Filter{}, []string{"1", "2", "3", "4"}},
		{Filter{Path: "docs"}, []string{"1", "2"}},
		{Filter{Path: "docs/"}, []string{"1", "2"}},
		{Filter{Path: "docs/a.txt"}, []string{"1"}},
		{Filter{Path: "/var/www/docs/sub"}, []string{"2"}},
		{Filter{Path: "/var/www"}, []string{"1", "2", "3", "4"}},
		{Filter{Path: "/var/ww"}, []string{}},
		{Filter{Since: logTime.Add(3 * time.Second)}, []string{"3", "4"}},
		{Filter{Unresolved: true}, []string{"1", "3", "4"}},
		{Filter{Unresolved: true, Path: "docs"}, []string{"1"}},
	}
	for _, tt := range tests {
		got, err := l.List(tt.f)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(ids(got), tt.want) {
			t.Errorf("List(%+v) = %v, want %v", tt.f, ids(got), tt.want)
		}
	}
}

func TestLogMarkResolved(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	mustAppend(t, l, sampleEntry("a.txt"))
	at := logTime.Add(time.Hour)
	e, err := l.MarkResolved("1", "keep alpha", at)
	if err != nil || e.Resolution == nil || e.Resolution.How != "keep alpha" || !e.Resolution.At.Equal(at) {
		t.Fatalf("MarkResolved = %+v, %v", e, err)
	}
	if _, err := l.MarkResolved("1", "keep both", at); !errors.Is(err, ErrResolved) {
		t.Errorf("second MarkResolved = %v, want ErrResolved", err)
	}
	if _, err := l.MarkResolved("7", "keep both", at); !errors.Is(err, ErrNotFound) {
		t.Errorf("MarkResolved(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := l.Get("7"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(unknown) = %v, want ErrNotFound", err)
	}
	// Append-only: the conflict's own line is untouched, a second line
	// resolves it, and a reader (the CLI) sees the latest state.
	data, _ := os.ReadFile(filepath.Join(dir, LogFile))
	if n := bytes.Count(data, []byte("\n")); n != 2 {
		t.Errorf("log has %d lines, want 2:\n%s", n, data)
	}
	v, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Get("1")
	if err != nil || got.Resolution == nil || got.Resolution.How != "keep alpha" {
		t.Errorf("Load then Get(1) = %+v, %v; want resolved", got, err)
	}
	if v.Skipped != 0 {
		t.Errorf("Skipped = %d", v.Skipped)
	}
}

func TestLogRowEntry(t *testing.T) {
	l := openLog(t, t.TempDir())
	e := Entry{
		Kind:   KindRow,
		Local:  Version{Node: "alpha"},
		Remote: Version{Node: "beta"},
		Winner: "beta",
		Row: &Row{
			Schema: "shop", Table: "orders",
			Key:     json.RawMessage(`{"id":42}`),
			Before:  json.RawMessage(`{"id":42,"state":"new"}`),
			After:   json.RawMessage(`{"id":42,"state":"paid"}`),
			Current: json.RawMessage(`{"id":42,"state":"cancelled"}`),
		},
	}
	got := mustAppend(t, l, e)
	back, err := l.Get(got.ID)
	if err != nil || !reflect.DeepEqual(back, got) {
		t.Errorf("Get(row entry) = %+v, %v\nwant %+v", back, err, got)
	}
}

func TestLogAppendRefuses(t *testing.T) {
	l := openLog(t, t.TempDir())
	good := sampleEntry("a.txt")
	tests := map[string]func(*Entry){
		"no kind":        func(e *Entry) { e.Kind = "" },
		"no path":        func(e *Entry) { e.Path = "" },
		"row without":    func(e *Entry) { e.Kind = KindRow },
		"bad vector":     func(e *Entry) { e.Local.Vector = Vector{{"b", 1}, {"a", 1}} },
		"resolved":       func(e *Entry) { e.Resolution = &Resolution{How: "x"} },
		"bad row images": func(e *Entry) { e.Row = &Row{Key: json.RawMessage(`{`)} },
	}
	for name, mutate := range tests {
		e := good
		mutate(&e)
		if _, err := l.Append(e); err == nil {
			t.Errorf("Append(%s) succeeded, want an error", name)
		}
	}
	// Refused appends leave nothing behind and use no ID.
	if e := mustAppend(t, l, good); e.ID != "1" {
		t.Errorf("first good Append got ID %q, want 1", e.ID)
	}
}

func TestLogSecondWriterRefused(t *testing.T) {
	dir := t.TempDir()
	openLog(t, dir)
	if l, err := Open(dir); err == nil {
		l.Close()
		t.Fatal("second Open of the same log succeeded, want an error")
	}
}

// TestLogCrashRecovery opens logs a crash could leave behind.
func TestLogCrashRecovery(t *testing.T) {
	good := func(id string) string {
		b, err := encodeLine(line{Op: opConflict, Entry: func() Entry {
			e := sampleEntry("f" + id)
			e.ID, e.Time = id, logTime
			return e
		}()})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	whole := good("1") + good("2")
	tests := []struct {
		name     string
		content  string
		wantIDs  []string
		skipped  int
		wantNext string
	}{
		{"empty", "", []string{}, 0, "1"},
		{"clean", whole, []string{"1", "2"}, 0, "3"},
		{"torn last line", whole + good("3")[:40], []string{"1", "2"}, 1, "3"},
		{"record short of its newline", whole + strings.TrimSuffix(good("3"), "\n"), []string{"1", "2", "3"}, 0, "4"},
		{"only a torn line", good("1")[:10], []string{}, 1, "1"},
		{"corrupt middle line", good("1") + "{garbage\n" + good("2"), []string{"1", "2"}, 1, "3"},
		{"zero bytes from a lost write", good("1") + strings.Repeat("\x00", 30) + "\n" + good("2"), []string{"1", "2"}, 1, "3"},
		{"repeated id", good("1") + good("1"), []string{"1"}, 1, "2"},
		{"unknown op", good("1") + `{"op":"compact","id":"9"}` + "\n", []string{"1"}, 1, "2"},
		{"resolve of unknown", good("1") + `{"op":"resolve","id":"9","resolution":{"at":"2026-11-22T01:30:00Z","how":"x"}}` + "\n", []string{"1"}, 1, "2"},
		{"blank lines", "\n" + good("1") + "\n\n", []string{"1"}, 0, "2"},
		{"ids with gaps", good("5") + good("2"), []string{"5", "2"}, 0, "6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			name := filepath.Join(dir, LogFile)
			if err := os.WriteFile(name, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			l := openLog(t, dir)
			if l.Skipped() != tt.skipped {
				t.Errorf("Skipped() = %d, want %d", l.Skipped(), tt.skipped)
			}
			all, err := l.List(Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ids(all), tt.wantIDs) {
				t.Errorf("List = %v, want %v", ids(all), tt.wantIDs)
			}
			e := mustAppend(t, l, sampleEntry("new.txt"))
			if e.ID != tt.wantNext {
				t.Errorf("next ID = %q, want %q", e.ID, tt.wantNext)
			}
			// The new line must stand on its own: a reader sees it whole.
			v, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.Get(e.ID); err != nil {
				t.Errorf("after repair, the appended entry is unreadable: %v", err)
			}
			data, _ := os.ReadFile(name)
			if !bytes.HasSuffix(data, []byte("\n")) {
				t.Errorf("log does not end in a newline: %q", data)
			}
		})
	}
}

func TestLoadMissingAndPartial(t *testing.T) {
	dir := t.TempDir()
	v, err := Load(dir)
	if err != nil || len(v.List(Filter{})) != 0 {
		t.Fatalf("Load(empty dir) = %v, %v; want an empty view", v, err)
	}
	// A reader that catches the daemon mid-write sees a partial last line:
	// not an error, not counted.
	l := openLog(t, dir)
	mustAppend(t, l, sampleEntry("a.txt"))
	f, err := os.OpenFile(filepath.Join(dir, LogFile), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"op":"conflict","id":"2","ki`)
	f.Close()
	v, err = Load(dir)
	if err != nil || len(v.List(Filter{})) != 1 || v.Skipped != 0 {
		t.Errorf("Load with a partial last line = %d entries, skipped %d, %v; want 1, 0, nil", len(v.List(Filter{})), v.Skipped, err)
	}
}

func TestLogOverlongLine(t *testing.T) {
	defer func(n int) { maxLine = n }(maxLine)
	maxLine = 4096
	dir := t.TempDir()
	big := `{"op":"conflict","id":"1","pad":"` + strings.Repeat("x", maxLine) + `"}` + "\n"
	if err := os.WriteFile(filepath.Join(dir, LogFile), []byte(big), 0o600); err != nil {
		t.Fatal(err)
	}
	l := openLog(t, dir)
	if l.Skipped() != 1 {
		t.Errorf("Skipped() = %d with one overlong line, want 1", l.Skipped())
	}
	if e := mustAppend(t, l, sampleEntry("a")); e.ID != "1" {
		t.Errorf("ID = %q, want 1", e.ID)
	}
	e := sampleEntry("b")
	e.Root = strings.Repeat("r", maxLine)
	if _, err := l.Append(e); err == nil {
		t.Error("Append of an entry over the line limit succeeded")
	}
}

func TestLogConcurrent(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	const writers, each = 8, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers*each+100)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := l.Append(sampleEntry(fmt.Sprintf("w%d/%d", w, i))); err != nil {
					errs <- err
				}
			}
		}()
	}
	// Readers, in this process and as the CLI would (Load), never see a
	// broken line while the writers append.
	done := make(chan struct{})
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := l.List(Filter{}); err != nil {
				errs <- err
			}
			v, err := Load(dir)
			if err != nil {
				errs <- err
			} else if v.Skipped != 0 {
				errs <- fmt.Errorf("Load saw %d bad lines mid-write", v.Skipped)
			}
		}
	}()
	wg.Wait()
	close(done)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	all, err := l.List(Filter{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range all {
		if seen[e.ID] {
			t.Errorf("ID %s used twice", e.ID)
		}
		seen[e.ID] = true
	}
	if len(all) != writers*each {
		t.Errorf("List has %d entries, want %d", len(all), writers*each)
	}
}

func TestVectorJSON(t *testing.T) {
	tests := []struct {
		v    Vector
		want string
	}{
		{nil, `{}`},
		{vec("alpha", 3, "beta", 1), `{"alpha":3,"beta":1}`},
		{Vector{{"a\"b", 18446744073709551615}}, `{"a\"b":18446744073709551615}`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(tt.v)
		if err != nil || string(b) != tt.want {
			t.Errorf("json.Marshal(%v) = %s, %v; want %s", tt.v, b, err, tt.want)
		}
		var back Vector
		if err := json.Unmarshal(b, &back); err != nil || back.Compare(tt.v) != Equal || !back.Valid() {
			t.Errorf("json.Unmarshal(%s) = %v, %v; want %v", b, back, err, tt.v)
		}
	}
	var v Vector
	if err := json.Unmarshal([]byte(`{"beta":1,"alpha":2}`), &v); err != nil || v.String() != "{alpha:2 beta:1}" {
		t.Errorf("unsorted object = %v, %v; want sorted", v, err)
	}
	for _, bad := range []string{`[]`, `{"a":0}`, `{"":1}`, `{"a":1,"a":2}`, `{"a":-1}`, `{"a":1.5}`, `{"a":"1"}`, `{"a":18446744073709551616}`} {
		if err := json.Unmarshal([]byte(bad), &v); err == nil {
			t.Errorf("json.Unmarshal(%s) = %v, want an error", bad, v)
		}
	}
}

func TestHashText(t *testing.T) {
	h := Hash{0xab, 0x01}
	b, _ := h.MarshalText()
	var back Hash
	if err := back.UnmarshalText(b); err != nil || back != h {
		t.Errorf("Hash text round trip = %v, %v", back, err)
	}
	for _, bad := range []string{"", "ab", strings.Repeat("z", 64), strings.Repeat("a", 66)} {
		if err := back.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("Hash.UnmarshalText(%q) succeeded", bad)
		}
	}
}

// FuzzDecodeLine feeds arbitrary bytes to the line decoder: it must not
// panic, and what it accepts must survive encoding and decoding again
// unchanged.
func FuzzDecodeLine(f *testing.F) {
	e := sampleEntry("docs/a.txt")
	e.ID, e.Time = "1", logTime
	b, _ := encodeLine(line{Op: opConflict, Entry: e})
	f.Add(b)
	b, _ = encodeLine(line{Op: opResolve, Entry: Entry{ID: "1", Resolution: &Resolution{At: logTime, How: "keep beta"}}})
	f.Add(b)
	b, _ = encodeLine(line{Op: opConflict, Entry: Entry{ID: "2", Kind: KindRow, Row: &Row{Schema: "s", Table: "t", Key: json.RawMessage(`[1]`)}}})
	f.Add(b)
	f.Add([]byte(`{"op":"conflict","id":"3","kind":"file","path":"x","local":{"vector":{"a":0}}}`))
	f.Add([]byte(`{"op":"conflict","id":"3","kind":"file","path":"x","local":{"hash":"zz","type":"fifo"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ln, err := decodeLine(data)
		if err != nil {
			return
		}
		enc, err := encodeLine(ln)
		if err != nil {
			if len(data) > maxLine/2 {
				return
			}
			t.Fatalf("decodeLine(%q) accepted a line it cannot encode: %v", data, err)
		}
		ln2, err := decodeLine(enc)
		if err != nil {
			t.Fatalf("decodeLine(encodeLine(decodeLine(%q))) = %v", data, err)
		}
		enc2, _ := encodeLine(ln2)
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("round trip changed the line:\n%s\n%s", enc, enc2)
		}
	})
}

// FuzzScan reads arbitrary files as logs: never an error from a reader that
// works, never a panic, never two entries with one ID.
func FuzzScan(f *testing.F) {
	e := sampleEntry("docs/a.txt")
	e.ID, e.Time = "1", logTime
	b, _ := encodeLine(line{Op: opConflict, Entry: e})
	f.Add(append(append([]byte{}, b...), b[:20]...))
	f.Add([]byte("\n\n{}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, _, err := scan(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("scan: %v", err)
		}
		seen := map[string]bool{}
		for _, e := range v.List(Filter{}) {
			if seen[e.ID] {
				t.Fatalf("ID %q twice", e.ID)
			}
			seen[e.ID] = true
		}
	})
}
