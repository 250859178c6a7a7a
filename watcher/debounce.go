package watcher

import (
	"container/list"
	"time"
)

// debouncer holds paths that changed recently until each is quiet: a path is
// due once quiet has passed since its last change and since the last time
// a path not held before was touched, or maxDelay since its first change not
// yet reported, whichever comes first. So a file written in one burst is
// reported once, a file written without pause is still reported at least
// every maxDelay, and the paths of one burst of changes (a rename's old and
// new name, a directory and what it holds) are reported together, however
// the event loop spaced their events; a path rewritten without pause does
// not hold back the others, since only paths new to the debouncer extend
// the burst.
//
// It reads no clock: every method takes the current time, and times must not
// go backwards from one call to the next (a time before the latest one seen
// is taken as that latest one). Touch, Due and Next cost O(1) per path
// touched or returned, whatever the number of paths held.
type debouncer struct {
	quiet    time.Duration
	maxDelay time.Duration

	paths   map[string]*debounceEntry
	byLast  list.List // of *debounceEntry, oldest last change first
	byFirst list.List // of *debounceEntry, oldest first change first
	latest  time.Time
	newest  time.Time // when a path not held before was last touched
}

type debounceEntry struct {
	path        string
	first, last time.Time
	inLast      *list.Element
	inFirst     *list.Element
}

func newDebouncer(quiet, maxDelay time.Duration) *debouncer {
	return &debouncer{quiet: quiet, maxDelay: maxDelay, paths: make(map[string]*debounceEntry)}
}

// Touch records that path changed at now.
func (d *debouncer) Touch(path string, now time.Time) {
	if now.Before(d.latest) {
		now = d.latest
	}
	d.latest = now
	if e, ok := d.paths[path]; ok {
		e.last = now
		d.byLast.MoveToBack(e.inLast)
		return
	}
	d.newest = now
	e := &debounceEntry{path: path, first: now, last: now}
	e.inLast = d.byLast.PushBack(e)
	e.inFirst = d.byFirst.PushBack(e)
	d.paths[path] = e
}

// Due removes the paths that are due at now and passes each to emit, in no
// particular order.
func (d *debouncer) Due(now time.Time, emit func(path string)) {
	// The burst has settled, or it has lasted so long that a path is due
	// by maxDelay: then every path quiet on its own goes with it.
	settled := !now.Before(d.newest.Add(d.quiet))
	if f := d.byFirst.Front(); f != nil && !now.Before(f.Value.(*debounceEntry).first.Add(d.maxDelay)) {
		settled = true
	}
	for {
		var e *debounceEntry
		if f := d.byLast.Front(); settled && f != nil && !now.Before(f.Value.(*debounceEntry).last.Add(d.quiet)) {
			e = f.Value.(*debounceEntry)
		} else if f := d.byFirst.Front(); f != nil && !now.Before(f.Value.(*debounceEntry).first.Add(d.maxDelay)) {
			e = f.Value.(*debounceEntry)
		} else {
			return
		}
		d.remove(e)
		emit(e.path)
	}
}

// Next returns when the earliest held path falls due; ok is false when no
// path is held.
func (d *debouncer) Next() (at time.Time, ok bool) {
	l, f := d.byLast.Front(), d.byFirst.Front()
	if l == nil {
		return time.Time{}, false
	}
	at = l.Value.(*debounceEntry).last.Add(d.quiet)
	if settle := d.newest.Add(d.quiet); settle.After(at) {
		at = settle
	}
	if byFirst := f.Value.(*debounceEntry).first.Add(d.maxDelay); byFirst.Before(at) {
		at = byFirst
	}
	return at, true
}

// Len returns the number of paths held.
func (d *debouncer) Len() int { return len(d.paths) }

// Reset forgets every path held.
func (d *debouncer) Reset() {
	clear(d.paths)
	d.newest = time.Time{}
	d.byLast.Init()
	d.byFirst.Init()
}

func (d *debouncer) remove(e *debounceEntry) {
	d.byLast.Remove(e.inLast)
	d.byFirst.Remove(e.inFirst)
	delete(d.paths, e.path)
}
