package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// durationValue is a flag.Value for a length of time, spelled as Go does
// ("1m30s", "500ms"), as seconds ("5", "2.5"), or as ffmpeg's
// [[HH:]MM:]SS[.fraction] ("00:01:30", "1:30.5"): the one rule of the
// command's time flags. positive refuses zero.
type durationValue struct {
	d        *time.Duration
	positive bool
}

// durationFlag defines a time flag of fs (see durationValue).
func durationFlag(fs *flag.FlagSet, p *time.Duration, name string, value time.Duration, positive bool, usage string) {
	*p = value
	fs.Var(durationValue{d: p, positive: positive}, name, usage)
}

func (v durationValue) String() string {
	if v.d == nil {
		return "0s" // the zero value, which flag's usage leaves unsaid
	}
	return v.d.String()
}

func (v durationValue) Set(s string) error {
	d, err := parseDuration(s)
	if err != nil {
		return err
	}
	if d < 0 || v.positive && d == 0 {
		return fmt.Errorf("%q: must be more than 0", s)
	}
	*v.d = d
	return nil
}

// parseDuration reads a length of time as durationValue spells it.
func parseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, errors.New("empty time")
	}
	if d, err := time.ParseDuration(t); err == nil {
		return d, nil
	}
	neg := strings.HasPrefix(t, "-")
	t = strings.TrimPrefix(t, "-")
	parts := strings.Split(t, ":")
	if len(parts) > 3 {
		return 0, fmt.Errorf("%q: not a time (1m30s, 90, 00:01:30)", s)
	}
	var secs float64
	for i, p := range parts {
		last := i == len(parts)-1
		var n float64
		var err error
		if last {
			n, err = strconv.ParseFloat(p, 64)
		} else {
			var k uint64
			k, err = strconv.ParseUint(p, 10, 32)
			n = float64(k)
		}
		if err != nil || p == "" || math.IsInf(n, 0) || math.IsNaN(n) || n < 0 || (i > 0 && n >= 60) {
			return 0, fmt.Errorf("%q: not a time (1m30s, 90, 00:01:30)", s)
		}
		secs = secs*60 + n
	}
	if secs > float64(math.MaxInt64)/float64(time.Second) {
		return 0, fmt.Errorf("%q: too long", s)
	}
	d := time.Duration(math.Round(secs * float64(time.Second)))
	if neg {
		d = -d
	}
	return d, nil
}
