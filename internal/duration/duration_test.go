package duration

import (
	"testing"
	"time"
)

func TestUnmarshalText(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"1s", time.Second, false},
		{"250ms", 250 * time.Millisecond, false},
		{"0s", 0, false},
		{"1h30m", 90 * time.Minute, false},
		{"-1s", 0, true},
		{"10", 0, true},
		{"soon", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		var d Duration
		err := d.UnmarshalText([]byte(tt.in))
		if (err != nil) != tt.wantErr {
			t.Errorf("UnmarshalText(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if err == nil && d.Std() != tt.want {
			t.Errorf("UnmarshalText(%q) = %v, want %v", tt.in, d.Std(), tt.want)
		}
	}
}

func TestOr(t *testing.T) {
	if got := Duration(0).Or(time.Second); got != time.Second {
		t.Errorf("Duration(0).Or(1s) = %v, want 1s", got)
	}
	if got := Duration(time.Minute).Or(time.Second); got != time.Minute {
		t.Errorf("Duration(1m).Or(1s) = %v, want 1m", got)
	}
}

func FuzzUnmarshalText(f *testing.F) {
	for _, s := range []string{"1s", "-1s", "1h2m3.5s", "", "9999999999999h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var d Duration
		if err := d.UnmarshalText([]byte(s)); err == nil && d < 0 {
			t.Fatalf("UnmarshalText(%q) = %v, a negative duration without error", s, d)
		}
	})
}
