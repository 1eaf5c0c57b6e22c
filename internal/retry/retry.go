// Package retry is the one retry loop of livechunk's writes to a bucket:
// the sink's uploads and the playlist writes of hls both call [Do], so both
// agree on what is transient, how long to pause and when to give up.
//
// Pauses grow exponentially with full jitter: before retry n the loop
// sleeps a uniformly random time in (0, min(InitialBackoff·2ⁿ⁻¹,
// MaxBackoff)]. Spreading retries over the whole interval keeps many
// writers that failed together (an outage of the store) from retrying in
// lockstep.
package retry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"gocloud.dev/gcerrors"
)

// Policy says how often and how patiently to retry. It has the fields of
// sink.Retry, the public type, which converts to it.
type Policy struct {
	// MaxAttempts is the number of tries, the first included; 1 disables
	// retries and a negative value retries until the context ends. Zero
	// means 1 in [Do] (fill it with [Policy.WithDefaults]).
	MaxAttempts int
	// InitialBackoff bounds the first pause.
	InitialBackoff time.Duration
	// MaxBackoff bounds every pause.
	MaxBackoff time.Duration
	// AttemptTimeout bounds each attempt; zero or negative means no bound.
	AttemptTimeout time.Duration
}

// WithDefaults returns p with its zero fields (for the backoffs, its fields
// that are not positive) taken from d, and MaxBackoff raised to
// InitialBackoff if it is smaller. A negative MaxAttempts or AttemptTimeout
// is kept: it means no limit.
func (p Policy) WithDefaults(d Policy) Policy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = d.MaxAttempts
	}
	if p.InitialBackoff <= 0 {
		p.InitialBackoff = d.InitialBackoff
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = d.MaxBackoff
	}
	if p.MaxBackoff < p.InitialBackoff {
		p.MaxBackoff = p.InitialBackoff
	}
	if p.AttemptTimeout == 0 {
		p.AttemptTimeout = d.AttemptTimeout
	}
	return p
}

// Transient reports whether a write that failed with err may succeed when
// tried again: its gcerrors code is Unknown (a reset connection, or any
// error a driver did not classify), Internal (a 500), ResourceExhausted
// (throttling) or DeadlineExceeded (a hung attempt), and it was not marked
// with [Permanent]. Every other code says the request itself is wrong, or
// the bucket or a permission is missing, or the write was cancelled: trying
// again would fail the same way.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	var p *permanentError
	if errors.As(err, &p) {
		return false
	}
	switch gcerrors.Code(err) {
	case gcerrors.Unknown, gcerrors.Internal, gcerrors.ResourceExhausted, gcerrors.DeadlineExceeded:
		return true
	}
	return false
}

// Permanent marks err as not worth retrying, for a failure the caller knows
// will not go away although gcerrors would code it Unknown (an error of the
// caller's own, not the driver's). The result reads like err and matches it
// with errors.Is and errors.As. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// TimeoutError is the error of an attempt that ran out of
// Policy.AttemptTimeout while the caller's context was still live. It
// matches context.DeadlineExceeded (so it is transient), not the error the
// abandoned attempt returned, whose code may say Canceled.
type TimeoutError struct {
	After time.Duration // the AttemptTimeout
	Err   error         // what the attempt returned
}

// Error names the timeout and the attempt's own error.
func (e *TimeoutError) Error() string {
	return fmt.Sprintf("attempt timed out after %v: %v", e.After, e.Err)
}

// Unwrap returns context.DeadlineExceeded.
func (e *TimeoutError) Unwrap() error { return context.DeadlineExceeded }

// Do calls attempt until it returns nil, returns an error that is not
// [Transient], has been called p.MaxAttempts times, or ctx ends. Each call
// gets a context bounded by p.AttemptTimeout; an attempt that outlives it
// fails with a [*TimeoutError]. Before each pause, onRetry (if not nil) is
// called with the number of the attempt that failed, the pause about to
// start and that attempt's error.
//
// Do returns the number of attempts made and the last attempt's error, or,
// when ctx ended, an error wrapping context.Cause(ctx) that also names the
// last attempt's error.
func Do(ctx context.Context, p Policy, attempt func(context.Context) error, onRetry func(attempt int, pause time.Duration, err error)) (attempts int, err error) {
	b := backoff{next: p.InitialBackoff, max: p.MaxBackoff}
	for attempts = 1; ; attempts++ {
		err = try(ctx, p.AttemptTimeout, attempt)
		switch {
		case err == nil:
			return attempts, nil
		case ctx.Err() != nil:
			return attempts, canceled(ctx, err)
		case !Transient(err) || p.MaxAttempts >= 0 && attempts >= p.MaxAttempts:
			return attempts, err
		}
		pause := b.pause()
		if onRetry != nil {
			onRetry(attempts, pause, err)
		}
		if !sleep(ctx, pause) {
			return attempts, canceled(ctx, err)
		}
	}
}

// try makes one attempt bounded by timeout (none if not positive).
func try(ctx context.Context, timeout time.Duration, attempt func(context.Context) error) error {
	if timeout <= 0 {
		return attempt(ctx)
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := attempt(actx)
	if err != nil && actx.Err() != nil && ctx.Err() == nil {
		return &TimeoutError{After: timeout, Err: err}
	}
	return err
}

// canceled is the error of a loop that ctx ended after an attempt failed
// with err.
func canceled(ctx context.Context, err error) error {
	return fmt.Errorf("%w (last attempt: %v)", context.Cause(ctx), err)
}

// backoff yields the pauses: full jitter under a bound that doubles from
// its first value up to max.
type backoff struct{ next, max time.Duration }

func (b *backoff) pause() time.Duration {
	bound := max(b.next, 1)
	if bound > b.max/2 {
		b.next = b.max
	} else {
		b.next = 2 * bound
	}
	return time.Duration(1 + rand.Int64N(int64(bound)))
}

// sleep waits for d and reports whether it did so before ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
