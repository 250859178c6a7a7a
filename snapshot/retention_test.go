package snapshot

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func at(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04", s)
	if err != nil {
		panic(err)
	}
	return t
}

// snaps makes a list from "2026-03-01 09:00" (complete) and
// "2026-03-01 09:00 failed" entries.
func snaps(specs ...string) []Info {
	var out []Info
	for _, s := range specs {
		status := StatusComplete
		if t, ok := strings.CutSuffix(s, " failed"); ok {
			s, status = t, StatusFailed
		}
		tm := at(s)
		out = append(out, Info{ID: tm.Format(IDLayout), Time: tm, Status: status})
	}
	return out
}

func ids(specs ...string) []string {
	var out []string
	for _, s := range specs {
		out = append(out, at(strings.TrimSuffix(s, " failed")).Format(IDLayout))
	}
	slices.Sort(out)
	return out
}

func TestPlan(t *testing.T) {
	tests := []struct {
		name string
		now  string
		keep Keep
		list []Info
		want []string // kept
	}{
		{
			name: "hourly keeps the newest of each of the last hours",
			now:  "2026-03-01 12:30", keep: Keep{Hourly: 3},
			list: snaps("2026-03-01 09:00", "2026-03-01 09:30", "2026-03-01 10:15", "2026-03-01 11:00", "2026-03-01 11:45", "2026-03-01 12:10"),
			want: ids("2026-03-01 10:15", "2026-03-01 11:45", "2026-03-01 12:10"),
		},
		{
			name: "daily across the end of February",
			now:  "2026-03-01 10:00", keep: Keep{Daily: 3},
			list: snaps("2026-02-26 23:00", "2026-02-27 01:00", "2026-02-27 22:00", "2026-02-28 05:00", "2026-02-28 23:59", "2026-03-01 00:30", "2026-03-01 09:00"),
			want: ids("2026-02-27 22:00", "2026-02-28 23:59", "2026-03-01 09:00"),
		},
		{
			name: "weekly by ISO week (Monday first)",
			now:  "2026-11-25 12:00", keep: Keep{Weekly: 2},
			list: snaps("2026-11-15 12:00", "2026-11-16 12:00", "2026-11-22 23:00", "2026-11-23 01:00", "2026-11-24 12:00"),
			want: ids("2026-11-22 23:00", "2026-11-24 12:00"),
		},
		{
			name: "monthly across the new year",
			now:  "2026-01-15 00:00", keep: Keep{Monthly: 3},
			list: snaps("2025-10-31 12:00", "2025-11-01 12:00", "2025-11-30 12:00", "2025-12-05 12:00", "2025-12-31 23:00", "2026-01-02 12:00", "2026-01-10 12:00"),
			want: ids("2025-11-30 12:00", "2025-12-31 23:00", "2026-01-10 12:00"),
		},
		{
			name: "buckets combine; each keeps its own",
			now:  "2026-03-03 12:30", keep: Keep{Hourly: 2, Daily: 2, Monthly: 2},
			list: snaps("2026-01-31 10:00", "2026-02-14 10:00", "2026-02-28 10:00", "2026-03-02 08:00", "2026-03-02 20:00", "2026-03-03 09:00", "2026-03-03 11:10", "2026-03-03 11:50", "2026-03-03 12:05"),
			// hourly: 12h -> 12:05, 11h -> 11:50; daily: Mar 3 -> 12:05, Mar 2 -> 20:00;
			// monthly: March -> 12:05, February -> Feb 28.
			want: ids("2026-02-28 10:00", "2026-03-02 20:00", "2026-03-03 11:50", "2026-03-03 12:05"),
		},
		{
			name: "the newest complete snapshot is kept even when no bucket wants it",
			now:  "2026-06-01 00:00", keep: Keep{Hourly: 24},
			list: snaps("2026-01-01 00:00", "2026-02-01 00:00"),
			want: ids("2026-02-01 00:00"),
		},
		{
			name: "nothing configured keeps only the newest",
			now:  "2026-06-01 00:00", keep: Keep{},
			list: snaps("2026-05-31 21:00", "2026-05-31 22:00", "2026-05-31 23:00"),
			want: ids("2026-05-31 23:00"),
		},
		{
			name: "a failed snapshot stays until a newer one is complete, and fills no bucket",
			now:  "2026-03-01 12:30", keep: Keep{Hourly: 2},
			list: snaps("2026-03-01 10:00", "2026-03-01 11:05", "2026-03-01 11:30 failed", "2026-03-01 12:00 failed"),
			want: ids("2026-03-01 11:05", "2026-03-01 12:00 failed", "2026-03-01 11:30 failed"),
		},
		{
			name: "a failed snapshot older than a complete one goes",
			now:  "2026-03-01 12:30", keep: Keep{Hourly: 24},
			list: snaps("2026-03-01 10:00", "2026-03-01 11:00 failed", "2026-03-01 12:00"),
			want: ids("2026-03-01 10:00", "2026-03-01 12:00"),
		},
		{
			name: "only failed snapshots: all kept (nothing newer is good)",
			now:  "2026-03-01 12:30", keep: Keep{},
			list: snaps("2026-03-01 10:00 failed", "2026-03-01 11:00 failed"),
			want: ids("2026-03-01 10:00 failed", "2026-03-01 11:00 failed"),
		},
		{
			name: "a snapshot from the future is kept and is not the newest",
			now:  "2026-03-01 12:30", keep: Keep{},
			list: snaps("2026-03-01 09:00", "2026-03-01 10:00", "2026-03-02 10:00"),
			want: ids("2026-03-01 10:00", "2026-03-02 10:00"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Plan takes the list in any order.
			list := slices.Clone(tt.list)
			slices.Reverse(list)
			ds := Plan(list, at(tt.now), tt.keep)
			var kept []string
			for i, d := range ds {
				if i > 0 && lessInfo(&d.Info, &ds[i-1].Info) {
					t.Errorf("decisions not oldest first at %d", i)
				}
				if d.Keep {
					kept = append(kept, d.Info.ID)
				}
				if d.Reason == "" {
					t.Errorf("%s: no reason", d.Info.ID)
				}
			}
			slices.Sort(kept)
			if !slices.Equal(kept, tt.want) {
				t.Errorf("Plan(now %s, %+v) keeps %v, want %v\n%v", tt.now, tt.keep, kept, tt.want, ds)
			}
		})
	}
}

// TestPlanHourlyForAYear runs retention every hour over a year of hourly
// snapshots, as the scheduler would, and checks the count stays bounded and
// the buckets hold what they should at the end.
func TestPlanHourlyForAYear(t *testing.T) {
	keep := Keep{Hourly: 24, Daily: 7, Weekly: 4, Monthly: 12}
	var list []Info
	start := at("2026-01-01 00:15")
	now := start
	for h := 0; h < 366*24; h++ {
		now = start.Add(time.Duration(h) * time.Hour)
		list = append(list, Info{ID: now.Format(IDLayout), Time: now, Status: StatusComplete})
		var next []Info
		for _, d := range Plan(list, now, keep) {
			if d.Keep {
				next = append(next, d.Info)
			}
		}
		list = next
		if len(list) > 24+7+4+12 {
			t.Fatalf("at %s: %d snapshots kept, more than the buckets allow", now, len(list))
		}
	}
	// now is 2027-01-01 23:15: the last 24 hours, then one per day back to
	// Dec 26, one per ISO week, one per month back to February 2026.
	last := list[len(list)-1].Time
	if !last.Equal(now) {
		t.Errorf("newest kept = %s, want %s", last, now)
	}
	hours := 0
	for _, s := range list {
		if now.Sub(s.Time) < 24*time.Hour {
			hours++
		}
	}
	if hours != 24 {
		t.Errorf("%d snapshots in the last 24h, want 24", hours)
	}
	oldest := list[0].Time
	if want := at("2026-02-28 23:15"); !oldest.Equal(want) {
		t.Errorf("oldest kept = %s, want %s (the newest of February, the 12th month back)", oldest, want)
	}
}

func TestPrune(t *testing.T) {
	lt := newLiveTree(t, map[string]string{"a": "1"})
	var taken []Info
	for range 4 {
		taken = append(taken, lt.take()) // hourly, 04:00 .. 07:00
	}
	now := lt.clock.Add(10 * time.Minute)
	plan, err := lt.store.Prune(context.Background(), Keep{Hourly: 2}, now, true)
	if err != nil {
		t.Fatal(err)
	}
	if n := countKept(plan); n != 2 {
		t.Errorf("dry run plan keeps %d, want 2", n)
	}
	if list, _ := lt.store.List(); len(list) != 4 {
		t.Errorf("dry run removed snapshots: %d left", len(list))
	}
	if _, err := lt.store.Prune(context.Background(), Keep{Hourly: 2}, now, false); err != nil {
		t.Fatal(err)
	}
	list, _ := lt.store.List()
	var got []string
	for _, s := range list {
		got = append(got, s.ID)
	}
	want := []string{taken[2].ID, taken[3].ID}
	if !slices.Equal(got, want) {
		t.Errorf("after prune: %v, want %v", got, want)
	}
	if _, err := os.Stat(lt.store.Path(taken[0].ID)); !os.IsNotExist(err) {
		t.Errorf("pruned snapshot dir still there: %v", err)
	}
	// The kept ones still hold their files (they were links to pruned ones).
	if bad := verifyAll(t, lt.store, taken[3].ID); len(bad) != 0 {
		t.Errorf("kept snapshot after prune: %v", bad)
	}
}

func countKept(ds []Decision) int {
	n := 0
	for _, d := range ds {
		if d.Keep {
			n++
		}
	}
	return n
}
