package demux

import (
	"errors"
	"fmt"
	"io"
)

// The kinds of Error, for errors.Is.
var (
	// ErrInvalid reports input that is malformed or not a recognized
	// container.
	ErrInvalid = errors.New("invalid input")
	// ErrTruncated reports input that ends in the middle of a structure
	// (a box, a table, a program map).
	ErrTruncated = errors.New("truncated input")
	// ErrUnsupported reports well-formed input that livechunk does not
	// read: no H.264 nor AAC track, HEVC, compact sample sizes, a box over
	// the size limits.
	ErrUnsupported = errors.New("unsupported input")
)

// Error is a problem of the input. Callers map Kind to their own error
// values and keep Msg.
type Error struct {
	Kind error  // ErrInvalid, ErrTruncated or ErrUnsupported
	Msg  string // what and where
}

// Error returns Msg.
func (e *Error) Error() string { return e.Msg }

// Unwrap returns Kind.
func (e *Error) Unwrap() error { return e.Kind }

// errorf returns an *Error of the given kind.
func errorf(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// guard turns a panic of a dependency's parser into ErrInvalid. Use as:
// defer guard(&err, "what").
func guard(err *error, what string) {
	if r := recover(); r != nil {
		*err = errorf(ErrInvalid, "%s: parser panic: %v", what, r)
	}
}

// readFull fills b from offset off of r, which holds what there; an end of
// input is ErrTruncated.
func readFull(r io.ReaderAt, b []byte, off int64, what string) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil // ReadAt may report io.EOF with all bytes read
	}
	if err == nil || err == io.EOF || err == io.ErrUnexpectedEOF {
		return errorf(ErrTruncated, "%s at %d+%d", what, off, len(b))
	}
	return err
}
