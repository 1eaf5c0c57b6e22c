package retry

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"
)

func TestTransient(t *testing.T) {
	b := memblob.OpenBucket(nil)
	defer b.Close()
	_, notFound := b.Attributes(t.Context(), "missing")
	if gcerrors.Code(notFound) != gcerrors.NotFound {
		t.Fatalf("want a NotFound error, got %v", notFound)
	}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("connection reset"), true},
		{context.DeadlineExceeded, true},
		{fmt.Errorf("put: %w", context.DeadlineExceeded), true},
		{&TimeoutError{After: time.Second, Err: context.Canceled}, true},
		{context.Canceled, false},
		{notFound, false},
		{Permanent(errors.New("conflict")), false},
		{fmt.Errorf("open spool: %w", Permanent(fs.ErrNotExist)), false},
	} {
		if got := Transient(tc.err); got != tc.want {
			t.Errorf("Transient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	if Permanent(nil) != nil {
		t.Error("Permanent(nil) is not nil")
	}
	if err := Permanent(fs.ErrNotExist); !errors.Is(err, fs.ErrNotExist) || err.Error() != fs.ErrNotExist.Error() {
		t.Errorf("Permanent hides its error: %v", err)
	}
}

func TestWithDefaults(t *testing.T) {
	d := Policy{MaxAttempts: 8, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 10 * time.Second, AttemptTimeout: time.Minute}
	for _, tc := range []struct {
		in, want Policy
	}{
		{Policy{}, d},
		{Policy{MaxAttempts: -1, AttemptTimeout: -1}, Policy{MaxAttempts: -1, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 10 * time.Second, AttemptTimeout: -1}},
		{Policy{InitialBackoff: time.Second, MaxBackoff: time.Millisecond}, Policy{MaxAttempts: 8, InitialBackoff: time.Second, MaxBackoff: time.Second, AttemptTimeout: time.Minute}},
		{Policy{InitialBackoff: -time.Second, MaxBackoff: 20 * time.Second}, Policy{MaxAttempts: 8, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 20 * time.Second, AttemptTimeout: time.Minute}},
	} {
		if got := tc.in.WithDefaults(d); got != tc.want {
			t.Errorf("%+v.WithDefaults = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

// script returns an attempt function that fails with errs[i] on call i
// (nil once they run out) and counts its calls.
func script(calls *int, errs ...error) func(context.Context) error {
	return func(context.Context) error {
		*calls++
		if *calls <= len(errs) {
			return errs[*calls-1]
		}
		return nil
	}
}

func TestDo(t *testing.T) {
	internal := fmt.Errorf("500: %w", errors.New("internal"))
	denied := Permanent(errors.New("denied"))
	fast := Policy{InitialBackoff: time.Microsecond, MaxBackoff: 10 * time.Microsecond}
	for _, tc := range []struct {
		name         string
		maxAttempts  int
		errs         []error
		wantAttempts int
		wantErr      error
	}{
		{"success", 3, nil, 1, nil},
		{"transient then success", 3, []error{internal, internal}, 3, nil},
		{"out of attempts", 3, []error{internal, internal, internal, internal}, 3, internal},
		{"permanent", 3, []error{denied}, 1, denied},
		{"one attempt", 1, []error{internal}, 1, internal},
		{"zero means one", 0, []error{internal}, 1, internal},
		{"no limit", -1, []error{internal, internal, internal, internal, internal, internal, internal, internal, internal, internal}, 11, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := fast
			p.MaxAttempts = tc.maxAttempts
			calls, retried := 0, 0
			attempts, err := Do(t.Context(), p, script(&calls, tc.errs...), func(n int, pause time.Duration, err error) {
				retried++
				if n != retried || err != tc.errs[n-1] {
					t.Errorf("onRetry(%d, %v, %v) after %d retries", n, pause, err, retried-1)
				}
			})
			if attempts != tc.wantAttempts || calls != attempts || retried != attempts-1 {
				t.Errorf("%d attempts, %d calls, %d retries; want %d attempts", attempts, calls, retried, tc.wantAttempts)
			}
			if err != tc.wantErr {
				t.Errorf("err %v, want %v", err, tc.wantErr)
			}
		})
	}
}

// TestDoAttemptTimeout: an attempt that hangs past AttemptTimeout is
// abandoned with a *TimeoutError (transient, so the next attempt follows);
// one that returns in time is not affected.
func TestDoAttemptTimeout(t *testing.T) {
	calls := 0
	hangOnce := func(ctx context.Context) error {
		calls++
		if calls == 1 {
			<-ctx.Done()
			return fmt.Errorf("write: %w", ctx.Err())
		}
		return nil
	}
	var first error
	p := Policy{MaxAttempts: 3, InitialBackoff: time.Microsecond, MaxBackoff: time.Microsecond, AttemptTimeout: 20 * time.Millisecond}
	attempts, err := Do(t.Context(), p, hangOnce, func(_ int, _ time.Duration, err error) { first = err })
	if err != nil || attempts != 2 {
		t.Fatalf("Do = %d, %v; want 2 attempts and success", attempts, err)
	}
	var te *TimeoutError
	if !errors.As(first, &te) || te.After != p.AttemptTimeout || !errors.Is(first, context.DeadlineExceeded) ||
		gcerrors.Code(first) != gcerrors.DeadlineExceeded {
		t.Errorf("first attempt's error %v (code %v), want a TimeoutError after %v", first, gcerrors.Code(first), p.AttemptTimeout)
	}

	p.MaxAttempts = 1
	calls = 0
	_, err = Do(t.Context(), p, hangOnce, nil)
	if !errors.As(err, &te) {
		t.Errorf("last attempt timed out, Do returned %v", err)
	}
}

// TestDoContextEnds: a context that ends during a pause or during an
// attempt ends the loop with its cause, naming the last attempt's error.
func TestDoContextEnds(t *testing.T) {
	cause := errors.New("sink closed")
	internal := errors.New("500")

	ctx, cancel := context.WithCancelCause(t.Context())
	p := Policy{MaxAttempts: -1, InitialBackoff: time.Hour, MaxBackoff: time.Hour}
	attempts, err := Do(ctx, p, func(context.Context) error { return internal },
		func(int, time.Duration, error) { cancel(cause) })
	if attempts != 1 || !errors.Is(err, cause) || errors.Is(err, internal) || !strings.Contains(err.Error(), "last attempt: 500") {
		t.Errorf("cancelled in a pause: %d attempts, %v", attempts, err)
	}

	ctx, cancel = context.WithCancelCause(t.Context())
	attempts, err = Do(ctx, p, func(ctx context.Context) error {
		cancel(cause)
		return fmt.Errorf("write: %w", ctx.Err())
	}, nil)
	if attempts != 1 || !errors.Is(err, cause) || gcerrors.Code(err) == gcerrors.DeadlineExceeded {
		t.Errorf("cancelled in an attempt: %d attempts, %v", attempts, err)
	}
}

// TestBackoff draws many pause sequences: every pause is within its bound
// (InitialBackoff doubling per retry, capped by MaxBackoff) and above zero,
// and with full jitter the mean of each position is close to half its
// bound.
func TestBackoff(t *testing.T) {
	const initial, maxPause, runs, steps = time.Millisecond, 8 * time.Millisecond, 4000, 6
	bounds := []time.Duration{1, 2, 4, 8, 8, 8}
	var sums [steps]time.Duration
	for range runs {
		b := backoff{next: initial, max: maxPause}
		for i := range steps {
			d := b.pause()
			if bound := bounds[i] * time.Millisecond; d <= 0 || d > bound {
				t.Fatalf("pause %d = %v, bound %v", i+1, d, bound)
			}
			sums[i] += d
		}
	}
	for i, s := range sums {
		mean, half := s/runs, bounds[i]*time.Millisecond/2
		if mean < half*9/10 || mean > half*11/10 {
			t.Errorf("mean pause %d = %v, want about %v", i+1, mean, half)
		}
	}
	if d := (&backoff{}).pause(); d != 1 {
		t.Errorf("zero backoff paused %v, want 1ns", d)
	}
}
