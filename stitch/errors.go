package stitch

import (
	"errors"
	"fmt"
	"strings"
)

// Errors reported by this package; test with errors.Is. Returned errors wrap
// one of them with context, often inside a [*PartError] that names the input
// object.
var (
	// ErrNoInput: the Input has no parts, or its parts hold neither H.264
	// pictures from a keyframe on nor AAC frames (also a playlist that
	// lists no segments).
	ErrNoInput = errors.New("stitch: no input")
	// ErrInvalid: an input object is malformed: not MP4 or MPEG-TS, a box
	// or sample table that does not add up, a sample outside its object,
	// an access unit without parameter sets.
	ErrInvalid = errors.New("stitch: invalid input")
	// ErrUnsupported: well-formed input this package does not join: video
	// of another codec than H.264 (encrypted video included), neither an
	// H.264 nor an AAC track, compact sample sizes (stz2), boxes or
	// samples too large, playlist URIs outside the bucket, or AAC that
	// MPEG-TS output cannot carry in ADTS.
	ErrUnsupported = errors.New("stitch: unsupported input")
	// ErrChanged: an object read in the second pass (payloads) no longer
	// matches what the first pass (indexes) read.
	ErrChanged = errors.New("stitch: input changed while stitching")
	// ErrEmptyRange: Options.From and Options.To select no picture.
	ErrEmptyRange = errors.New("stitch: empty time range")
)

// PartError reports an error about one input object.
type PartError struct {
	// Part is the Name of the input object (a key, path or URL).
	Part string
	// Err is the underlying error.
	Err error
}

// Error returns "stitch: NAME: ERR" (with ERR's own "stitch: " left out).
func (e *PartError) Error() string {
	return fmt.Sprintf("stitch: %s: %s", e.Part, strings.TrimPrefix(e.Err.Error(), "stitch: "))
}

// Unwrap returns the underlying error.
func (e *PartError) Unwrap() error { return e.Err }

// errorf returns an error wrapping kind with a formatted message.
func errorf(kind error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", kind, fmt.Sprintf(format, args...))
}

// partErr wraps err with the part's name (once).
func partErr(name string, err error) error {
	if err == nil {
		return nil
	}
	var pe *PartError
	if errors.As(err, &pe) {
		return err
	}
	return &PartError{Part: name, Err: err}
}

// guard converts a panic of a dependency parser into an ErrInvalid error.
// Use as: defer guard(&err, "what").
func guard(err *error, what string) {
	if r := recover(); r != nil {
		*err = errorf(ErrInvalid, "%s: parser panic: %v", what, r)
	}
}
