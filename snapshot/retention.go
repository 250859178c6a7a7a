package snapshot

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"
)

// Decision is what retention does with one snapshot, and why.
type Decision struct {
	Info   Info   `json:"info"`
	Keep   bool   `json:"keep"`
	Reason string `json:"reason"` // "newest", "hourly", "daily", "weekly", "monthly", "failed, no newer complete", ...
}

// Plan decides which snapshots to keep at time now: the newest complete
// snapshot of each of the last keep.Hourly hours (this hour counts as the
// first), keep.Daily days, keep.Weekly ISO weeks and keep.Monthly months,
// all in UTC; and always the newest complete snapshot. A failed snapshot
// is removed once a complete one newer than it exists; a snapshot from the
// future (the clock went back) is kept. Plan is pure: list in any order,
// decisions oldest first.
func Plan(list []Info, now time.Time, keep Keep) []Decision {
	now = now.UTC()
	ds := make([]Decision, len(list))
	for i := range list {
		ds[i] = Decision{Info: list[i]}
	}
	// Oldest first, so "newest" is the last.
	sortDecisions(ds)
	type bucket struct {
		name  string
		n     int
		key   func(t time.Time) int64
		back  func(i int) time.Time // the time i units before now
		claim map[int64]bool
	}
	hour := func(t time.Time) int64 { return t.Unix() / 3600 }
	day := func(t time.Time) int64 { return int64(t.Year())*1000 + int64(t.YearDay()) }
	week := func(t time.Time) int64 { y, w := t.ISOWeek(); return int64(y)*100 + int64(w) }
	month := func(t time.Time) int64 { return int64(t.Year())*12 + int64(t.Month()) - 1 }
	buckets := []*bucket{
		{name: "hourly", n: keep.Hourly, key: hour, back: func(i int) time.Time { return now.Add(-time.Duration(i) * time.Hour) }},
		{name: "daily", n: keep.Daily, key: day, back: func(i int) time.Time { return now.AddDate(0, 0, -i) }},
		{name: "weekly", n: keep.Weekly, key: week, back: func(i int) time.Time { return now.AddDate(0, 0, -7*i) }},
		{name: "monthly", n: keep.Monthly, key: month, back: func(i int) time.Time {
			first := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
			return first.AddDate(0, -i, 0)
		}},
	}
	for _, b := range buckets {
		b.claim = map[int64]bool{}
		for i := 0; i < b.n; i++ {
			b.claim[b.key(b.back(i))] = false // allowed, not yet claimed
		}
	}
	newestGood := -1
	for i := len(ds) - 1; i >= 0; i-- {
		if ds[i].Info.Good() && !ds[i].Info.Time.After(now) {
			newestGood = i
			break
		}
	}
	goodAfter := false // a complete snapshot newer than ds[i] exists
	for i := len(ds) - 1; i >= 0; i-- {
		d := &ds[i]
		t := d.Info.Time.UTC()
		switch {
		case t.After(now):
			d.Keep, d.Reason = true, "newer than now (has the clock gone back?)"
		case !d.Info.Good() && goodAfter:
			d.Reason = "failed, and a newer snapshot is complete"
		case !d.Info.Good():
			d.Keep, d.Reason = true, "failed; kept until a newer snapshot is complete"
		case i == newestGood:
			d.Keep, d.Reason = true, "newest"
		}
		if d.Info.Good() {
			for _, b := range buckets {
				k := b.key(t)
				if claimed, allowed := b.claim[k]; allowed && !claimed && !t.After(now) {
					b.claim[k] = true
					if !d.Keep {
						d.Keep, d.Reason = true, b.name
					} else if d.Reason == "newest" {
						d.Reason = "newest, " + b.name
					}
				}
			}
			goodAfter = true
		}
		if !d.Keep && d.Reason == "" {
			d.Reason = "older than every bucket kept"
		}
	}
	return ds
}

func sortDecisions(ds []Decision) {
	for i := 1; i < len(ds); i++ {
		for j := i; j > 0 && lessInfo(&ds[j].Info, &ds[j-1].Info); j-- {
			ds[j], ds[j-1] = ds[j-1], ds[j]
		}
	}
}

func lessInfo(a, b *Info) bool {
	if !a.Time.Equal(b.Time) {
		return a.Time.Before(b.Time)
	}
	return a.ID < b.ID
}

// Prune removes the snapshots Plan does not keep (none with dryRun) and
// returns the plan. A snapshot is first renamed to .del-ID, so a
// half-deleted one is never listed (and the next Take or Prune finishes
// deleting it).
func (s *Store) Prune(ctx context.Context, keep Keep, now time.Time, dryRun bool) ([]Decision, error) {
	if dryRun {
		list, err := s.List()
		if err != nil {
			return nil, err
		}
		return Plan(list, now, keep), nil
	}
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := s.cleanStale(); err != nil {
		return nil, err
	}
	list, err := s.List()
	if err != nil {
		return nil, err
	}
	plan := Plan(list, now, keep)
	for _, d := range plan {
		if d.Keep {
			continue
		}
		if err := ctx.Err(); err != nil {
			return plan, err
		}
		del := filepath.Join(s.dir, delPrefix+d.Info.ID)
		if err := os.Rename(filepath.Join(s.dir, d.Info.ID), del); err != nil {
			return plan, fmt.Errorf("prune %s: %w", d.Info.ID, err)
		}
		if err := syncDir(s.dir); err != nil {
			return plan, fmt.Errorf("prune %s: %w", d.Info.ID, err)
		}
		if err := removeAll(del); err != nil {
			return plan, fmt.Errorf("prune %s: %w", d.Info.ID, err)
		}
		s.log.Info("snapshot removed", zap.String("id", d.Info.ID), zap.String("reason", d.Reason))
	}
	return plan, nil
}
