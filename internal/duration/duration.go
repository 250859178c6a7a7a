// Package duration holds Duration, a time.Duration that config files spell as
// Go duration strings ("1s", "250ms", "1h30m").
package duration

import (
	"fmt"
	"time"
)

// Duration is a time.Duration read from and written to text as a Go duration
// string. Its zero value means "not set"; callers apply their own default.
type Duration time.Duration

// UnmarshalText parses a Go duration string such as "1s" or "250ms".
// Negative durations are refused: no tandem setting means anything with one.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration; write it like \"1s\", \"250ms\" or \"2m\"", b)
	}
	if v < 0 {
		return fmt.Errorf("%q is negative; durations must be zero or more", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// Or returns d, or def when d is zero.
func (d Duration) Or(def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return time.Duration(d)
}

func (d Duration) String() string { return time.Duration(d).String() }
