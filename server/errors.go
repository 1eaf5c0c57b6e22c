package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/sink"
	"github.com/livechunk/livechunk/source"
	"gocloud.dev/gcerrors"
)

// Errors of the server's streams; test with errors.Is. New and the
// methods of Server return them wrapped with their context; the HTTP
// routes answer each with the status given in parentheses and a JSON body
// {"error": "..."}.
var (
	// ErrShuttingDown: the server is shutting down and takes no new
	// ingest (503).
	ErrShuttingDown = errors.New("server is shutting down")
	// ErrNoStream: no live stream of that name (404).
	ErrNoStream = errors.New("no live stream")
	// ErrTooManyStreams: Config.MaxStreams streams are ingesting (503).
	ErrTooManyStreams = errors.New("too many streams")
	// ErrEnded: the stream has ended; it takes no more input (409).
	ErrEnded = errors.New("stream has ended")
	// ErrBusy: the stream is recorded from another input (a push, or
	// chunks while a push is tried) (409).
	ErrBusy = errors.New("stream is being recorded from another input")
	// ErrConflict: a chunk that the stream cannot take: one received
	// before with other bytes, or one that the stream went on without
	// (a discontinuity at its place) (409). It is not recorded.
	ErrConflict = errors.New("chunk not recorded")
	// ErrInvalidChunk: an upload that is not a chunk the stream can
	// read (400; 415 when it also wraps source.ErrUnsupported).
	ErrInvalidChunk = errors.New("invalid chunk")
	// ErrTooLarge: an upload over Config.MaxChunkBytes (413).
	ErrTooLarge = errors.New("chunk too large")
	// ErrOverloaded: the server has no room (Config.MaxUploadBytes) or no
	// disk to hold an upload (503 with Retry-After: nothing of it is
	// recorded; send it again).
	ErrOverloaded = errors.New("server at its upload limit")
	// ErrInvalid: a Config that New refuses (no bucket, a bad Prefix,
	// BasePath, KeySecret or AllowOrigins), or an invalid argument of
	// Ingest or MintKey (a stream name ValidStreamName refuses, a nil
	// source).
	ErrInvalid = errors.New("invalid argument")
	// ErrSlowUpload: an upload whose body came slower than
	// Config.MinUploadRate (408; nothing of it is recorded: send it again).
	ErrSlowUpload = errors.New("upload too slow")
)

// statusOf maps an error of the server's domain code to an HTTP status:
// refusals of the client's input are 4xx; the store failing or too slow (a
// write that ran out of the lease's time, an upload that failed) is 503,
// with Retry-After: nothing was acknowledged, and the same request may
// succeed soon; anything else is 500.
func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrShuttingDown), errors.Is(err, ErrTooManyStreams), errors.Is(err, ErrOverloaded), errors.As(err, new(*ownedError)),
		errors.Is(err, errStale), errors.Is(err, errGone):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrNoStream):
		return http.StatusNotFound
	case errors.Is(err, ErrKeyInvalid), errors.Is(err, ErrKeyExpired):
		return http.StatusUnauthorized
	case errors.Is(err, ErrKeyStream):
		return http.StatusForbidden
	case errors.Is(err, ErrEnded), errors.Is(err, ErrBusy), errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrRareKeyframes):
		return http.StatusUnprocessableEntity
	case errors.Is(err, ErrSlowUpload):
		return http.StatusRequestTimeout
	case errors.Is(err, source.ErrUnsupported):
		return http.StatusUnsupportedMediaType
	case errors.Is(err, ErrInvalidChunk), isInputError(err):
		return http.StatusBadRequest
	case isStoreError(err):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// isInputError reports whether err refuses a stream's own input: what the
// source or the chunker finds wrong with it.
func isInputError(err error) bool {
	for _, e := range []error{source.ErrInvalid, source.ErrTruncated, source.ErrNoFrameRate,
		chunker.ErrInvalidSample, chunker.ErrInvalidFraming, chunker.ErrBadParameterSets,
		chunker.ErrNonMonotonicDTS, chunker.ErrBadAudioConfig, chunker.ErrTimescale, chunker.ErrSegmentTooLarge} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// isStoreError reports whether err is the store's (a gocloud error with
// a code, an upload that failed) or a deadline that ran out.
func isStoreError(err error) bool {
	if c := gcerrors.Code(err); c != gcerrors.OK && c != gcerrors.Unknown {
		return true
	}
	return errors.As(err, new(*sink.UploadError)) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, context.Canceled)
}

// fail writes err as the JSON error answer, with the status statusOf
// gives it; what says which request it was about goes before.
func fail(w http.ResponseWriter, err error, format string, a ...any) {
	msg := err.Error()
	if format != "" {
		msg = fmt.Sprintf(format, a...) + ": " + msg
	}
	status := statusOf(err)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfter(err))
	}
	writeJSON(w, status, apiError{Error: msg})
}
