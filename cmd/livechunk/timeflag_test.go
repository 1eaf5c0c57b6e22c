package main

import (
	"testing"
	"time"
)

// TestParseDuration: the time flags take Go's spelling, seconds, and
// ffmpeg's [[HH:]MM:]SS[.fraction]; anything else is refused.
func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"1m30s": 90 * time.Second, "500ms": 500 * time.Millisecond, "5": 5 * time.Second, "2.5": 2500 * time.Millisecond,
		"00:00:10": 10 * time.Second, "1:30": 90 * time.Second, "1:02:03.5": time.Hour + 2*time.Minute + 3500*time.Millisecond,
		"0": 0, "-3s": -3 * time.Second, "-00:00:03": -3 * time.Second, " 7 ": 7 * time.Second,
	} {
		if got, err := parseDuration(in); err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "soon", "1:75", "1:2:3:4", "::", "1::2", "a:10", "1e400", "NaN", "Inf", "-:10", "99999999999999999"} {
		if got, err := parseDuration(in); err == nil {
			t.Errorf("parseDuration(%q) = %v, want an error", in, got)
		}
	}
}
