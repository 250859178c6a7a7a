package watcher

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

const ms = time.Millisecond

// touchAt is one change in a debounce script: path changed at the offset.
type touchAt struct {
	at   time.Duration
	path string
}

// emission is what a debounce script expects: paths reported at the offset.
type emission struct {
	at    time.Duration
	paths string // sorted, space-separated
}

func (e emission) String() string { return fmt.Sprintf("%v:[%s]", e.at, e.paths) }

// runDebounce drives d the way Tree.Run does: it applies the touches in
// order and fires Due whenever the time Next names comes before the next
// touch, or before end.
func runDebounce(d *debouncer, t0 time.Time, touches []touchAt, end time.Duration) []emission {
	var got []emission
	fire := func(until time.Duration) {
		for {
			at, ok := d.Next()
			if !ok || at.After(t0.Add(until)) {
				return
			}
			var paths []string
			d.Due(at, func(p string) { paths = append(paths, p) })
			slices.Sort(paths)
			got = append(got, emission{at.Sub(t0), strings.Join(paths, " ")})
		}
	}
	for _, tc := range touches {
		fire(tc.at - 1) // a timer due at the same instant as an event loses the race here
		d.Touch(tc.path, t0.Add(tc.at))
	}
	fire(end)
	return got
}

func every(path string, from, to, step time.Duration) []touchAt {
	var ts []touchAt
	for at := from; at <= to; at += step {
		ts = append(ts, touchAt{at, path})
	}
	return ts
}

// newPaths touches a new path p000, p001, ... at each step.
func newPaths(from, to, step time.Duration) []touchAt {
	var ts []touchAt
	for at := from; at <= to; at += step {
		ts = append(ts, touchAt{at, fmt.Sprintf("p%03d", len(ts))})
	}
	return ts
}

// pathNames lists p<from> to p<to> as an emission's paths.
func pathNames(from, to int) string {
	var names []string
	for i := from; i <= to; i++ {
		names = append(names, fmt.Sprintf("p%03d", i))
	}
	return strings.Join(names, " ")
}

func TestDebouncer(t *testing.T) {
	tests := []struct {
		name    string
		touches []touchAt
		want    []emission
	}{
		{
			name:    "one write is reported once quiet",
			touches: []touchAt{{0, "a"}},
			want:    []emission{{5 * ms, "a"}},
		},
		{
			name:    "a burst to one path is reported once",
			touches: []touchAt{{0, "a"}, {1 * ms, "a"}, {3 * ms, "a"}, {6 * ms, "a"}},
			want:    []emission{{11 * ms, "a"}},
		},
		{
			name:    "a burst of new paths is reported once it settles, a path rewritten in it once quiet",
			touches: []touchAt{{0, "a"}, {1 * ms, "b"}, {2 * ms, "c"}, {4 * ms, "a"}},
			want:    []emission{{7 * ms, "b c"}, {9 * ms, "a"}},
		},
		{
			// The walk of a new directory reports what it holds; the
			// event for the old name of what was moved into it comes
			// later, by as long as the walk took.
			name:    "a rename's two names come together however far apart their events",
			touches: []touchAt{{0, "moved"}, {0, "moved/big"}, {4 * ms, "big"}},
			want:    []emission{{9 * ms, "big moved moved/big"}},
		},
		{
			name:    "a long burst of new paths is cut at max delay, with every path then quiet",
			touches: newPaths(0, 118*ms, 2*ms),
			want:    []emission{{100 * ms, pathNames(0, 47)}, {123 * ms, pathNames(48, 59)}},
		},
		{
			name:    "paths quiet at the same instant come together",
			touches: []touchAt{{0, "b"}, {0, "a"}, {0, "c"}},
			want:    []emission{{5 * ms, "a b c"}},
		},
		{
			name:    "a path written without pause is reported every max delay",
			touches: every("a", 0, 250*ms, 2*ms),
			want:    []emission{{100 * ms, "a"}, {202 * ms, "a"}, {255 * ms, "a"}},
		},
		{
			name:    "a steady stream does not hold back a quiet path",
			touches: slices.Insert(every("hot", 0, 60*ms, ms), 11, touchAt{10 * ms, "cold"}),
			want:    []emission{{15 * ms, "cold"}, {65 * ms, "hot"}},
		},
		{
			name:    "a path reported is new again",
			touches: []touchAt{{0, "a"}, {20 * ms, "a"}},
			want:    []emission{{5 * ms, "a"}, {25 * ms, "a"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDebouncer(5*ms, 100*ms)
			got := runDebounce(d, time.Unix(1000, 0), tt.touches, time.Second)
			if !slices.Equal(got, tt.want) {
				t.Errorf("emissions = %v, want %v", got, tt.want)
			}
			if d.Len() != 0 {
				t.Errorf("Len() = %d after the end, want 0", d.Len())
			}
		})
	}
}

func TestDebouncerNext(t *testing.T) {
	t0 := time.Unix(1000, 0)
	d := newDebouncer(5*ms, 20*ms)
	if at, ok := d.Next(); ok {
		t.Fatalf("Next() on empty = %v, true; want false", at)
	}
	d.Touch("a", t0)
	d.Touch("b", t0.Add(2*ms))
	if at, _ := d.Next(); !at.Equal(t0.Add(7 * ms)) {
		t.Errorf("Next() = +%v, want +7ms (the burst settled: b is the newest path)", at.Sub(t0))
	}
	d.Touch("a", t0.Add(4*ms))
	if at, _ := d.Next(); !at.Equal(t0.Add(7 * ms)) {
		t.Errorf("Next() = +%v, want +7ms (b quiet)", at.Sub(t0))
	}
	for i := 5; i <= 18; i++ {
		d.Touch("a", t0.Add(time.Duration(i)*ms))
		d.Touch("b", t0.Add(time.Duration(i)*ms))
	}
	if at, _ := d.Next(); !at.Equal(t0.Add(20 * ms)) {
		t.Errorf("Next() = +%v, want +20ms (a's max delay)", at.Sub(t0))
	}
	var got []string
	d.Due(t0.Add(20*ms), func(p string) { got = append(got, p) })
	if !slices.Equal(got, []string{"a"}) {
		t.Errorf("Due(+20ms) = %v, want [a]", got)
	}
	d.Reset()
	if d.Len() != 0 {
		t.Errorf("Len() after Reset = %d, want 0", d.Len())
	}
	if at, ok := d.Next(); ok {
		t.Errorf("Next() after Reset = %v, true; want false", at)
	}
}

func TestDebouncerClockBackwards(t *testing.T) {
	t0 := time.Unix(1000, 0)
	d := newDebouncer(5*ms, 100*ms)
	d.Touch("a", t0.Add(10*ms))
	d.Touch("b", t0) // taken as +10ms
	if at, _ := d.Next(); !at.Equal(t0.Add(15 * ms)) {
		t.Errorf("Next() = +%v, want +15ms", at.Sub(t0))
	}
	var got []string
	d.Due(t0.Add(14*ms), func(p string) { got = append(got, p) })
	if len(got) != 0 {
		t.Errorf("Due(+14ms) = %v, want none", got)
	}
	d.Due(t0.Add(15*ms), func(p string) { got = append(got, p) })
	slices.Sort(got)
	if !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("Due(+15ms) = %v, want [a b]", got)
	}
}

func BenchmarkDebouncer(b *testing.B) {
	paths := make([]string, 10_000)
	for i := range paths {
		paths[i] = fmt.Sprintf("dir/file-%d", i)
	}
	d := newDebouncer(5*ms, 100*ms)
	now := time.Unix(1000, 0)
	for i := 0; b.Loop(); i++ {
		now = now.Add(time.Microsecond)
		d.Touch(paths[i%len(paths)], now)
		if at, ok := d.Next(); ok && !at.After(now) {
			d.Due(now, func(string) {})
		}
	}
}
