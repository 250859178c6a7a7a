package snapshot

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"
)

// TestScheduler runs the scheduler on the fake clock of a synctest bubble:
// a snapshot at start, one each hour, pruning to the hourly bucket, and
// one on request.
func TestScheduler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lt := newLiveTree(t, map[string]string{"a": "1"})
		s := NewScheduler(lt.store, SchedulerOptions{Every: time.Hour, Keep: Keep{Hourly: 2}, Take: lt.opts()})
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() { errc <- s.Run(ctx) }()
		synctest.Wait()
		start := time.Now()
		count := func() int {
			list, err := lt.store.List()
			if err != nil {
				t.Fatal(err)
			}
			return len(list)
		}
		if n := count(); n != 1 {
			t.Fatalf("%d snapshots at start, want 1 (none existed)", n)
		}
		st := s.Status()
		if st.LastGood == "" || !st.NextDue.Equal(start.Add(time.Hour)) || st.Taking {
			t.Errorf("Status after the first = %+v, want last good set and next due in an hour", st)
		}
		for h := 1; h <= 3; h++ {
			time.Sleep(time.Hour) // the fake clock: the timer fires, Run takes and prunes
			synctest.Wait()
		}
		if n := count(); n != 2 {
			t.Errorf("%d snapshots after 3 hours with hourly = 2, want 2", n)
		}

		// A take on request, through the control routes.
		mux := http.NewServeMux()
		s.Routes(mux)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("POST", "/snapshot/take", nil))
		var info Info
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &info) != nil || !info.Good() {
			t.Fatalf("POST /snapshot/take = %d %s", rec.Code, rec.Body)
		}
		if got := s.Status(); got.LastGood != info.ID || !got.NextDue.Equal(info.Time.Add(time.Hour)) {
			t.Errorf("Status after TakeNow = %+v, want last good %s", got, info.ID)
		}
		rec = httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", "/snapshot/status", nil))
		if rec.Code != http.StatusOK {
			t.Errorf("GET /snapshot/status = %d", rec.Code)
		}
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run = %v", err)
		}
		if _, err := s.TakeNow(t.Context()); err != ErrSchedulerStopped {
			t.Errorf("TakeNow after Run = %v, want ErrSchedulerStopped", err)
		}
	})
}
