package sink

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Errors of this package; test with errors.Is. ErrSkipped and
// ErrSpoolConflict are found in an [UploadError]'s objects.
var (
	// ErrOverflow is returned by WriteInit and WriteSegment under the
	// [Fail] policy when accepting the object would exceed
	// Config.MaxInFlightBytes. The object was not taken: the caller still
	// owns it and may retry, drop or store it elsewhere.
	ErrOverflow = errors.New("sink: too many bytes in flight")
	// ErrClosed is returned by WriteInit and WriteSegment after Close.
	ErrClosed = errors.New("sink: closed")
	// ErrInvalid is returned for a nil init, segment or bucket, a segment
	// of unknown format, an empty bucket URL, or a URL whose driver is not
	// linked into the program (a [*DriverError], see [Open]).
	ErrInvalid = errors.New("sink: invalid argument")
	// ErrSkipped is the error of an object that was never attempted because
	// an earlier object had already failed (see [UploadError]).
	ErrSkipped = errors.New("sink: not attempted after an earlier failure")
	// ErrSpoolFull says that the spool could not take an object: it would
	// exceed Config.SpoolMaxBytes, or the disk failed. Under the Fail
	// SpoolFull policy it is returned wrapped together with ErrOverflow.
	ErrSpoolFull = errors.New("sink: spool full")
	// ErrSpoolConflict is the error of an object recovered from the spool
	// whose key already holds different bytes in the bucket: the object is
	// not overwritten, and the spool keeps its copy.
	ErrSpoolConflict = errors.New("sink: recovered object conflicts with the bucket")
)

// ObjectError describes one object that did not land in the bucket. It is
// an error that wraps Err.
type ObjectError struct {
	// Kind, Seq and Key identify the object.
	Kind Kind
	Seq  uint64 // init or segment sequence number
	Key  string // object key, without any prefix the bucket adds
	// Attempts is the number of uploads tried (0 when skipped).
	Attempts int
	// Err is the last upload error, ErrSkipped, or, for an upload that
	// Close gave up on, an error wrapping the error of Close's context.
	Err error

	idx uint64 // submission order
}

// Error names the object, the number of attempts, if any, and Err.
func (e ObjectError) Error() string {
	if e.Attempts == 0 {
		return fmt.Sprintf("sink: %s %d %q: %v", e.Kind, e.Seq, e.Key, e.Err)
	}
	return fmt.Sprintf("sink: %s %d %q after %d attempt(s): %v", e.Kind, e.Seq, e.Key, e.Attempts, e.Err)
}

// Unwrap returns Err.
func (e ObjectError) Unwrap() error { return e.Err }

// sortObjects sorts objs by submission order.
func sortObjects(objs []ObjectError) {
	slices.SortFunc(objs, func(a, b ObjectError) int { return cmp.Compare(a.idx, b.idx) })
}

// UploadError reports that a Sink failed: an upload failed permanently (or
// ran out of retries, or was aborted by Close). It lists every object that did
// not land, in submission order. Objects uploaded before the failure stay in
// the bucket; nothing is deleted.
type UploadError struct {
	// Objects that did not land, in the order they were submitted.
	Objects []ObjectError
	// Err is the cause: the error of the object whose upload failed
	// first in time. Uploads run concurrently, so that object need not be
	// Objects[0]; Err is never ErrSkipped.
	Err error
}

// Error names the keys that did not land and the cause.
func (e *UploadError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sink: %d object(s) did not land (", len(e.Objects))
	for i, o := range e.Objects {
		if i > 0 {
			b.WriteString(", ")
		}
		if i == 8 && len(e.Objects) > 9 {
			fmt.Fprintf(&b, "and %d more", len(e.Objects)-i)
			break
		}
		fmt.Fprintf(&b, "%s %d %q", o.Kind, o.Seq, o.Key)
	}
	b.WriteString(")")
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *UploadError) Unwrap() error { return e.Err }

// Keys returns the keys of the objects that did not land.
func (e *UploadError) Keys() []string {
	keys := make([]string, len(e.Objects))
	for i, o := range e.Objects {
		keys[i] = o.Key
	}
	return keys
}
