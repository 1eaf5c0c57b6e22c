package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/sink"
	"github.com/livechunk/livechunk/source"
	"gocloud.dev/blob/memblob"
)

// TestStatusOf: every error of the domain code maps to its status in one
// place, wrapped as the code wraps it; what is not a refusal of the
// client's input is a 503 when the store failed or was too slow, else a
// 500.
func TestStatusOf(t *testing.T) {
	wrap := func(errs ...error) error {
		err := errs[len(errs)-1]
		for i := len(errs) - 2; i >= 0; i-- {
			err = fmt.Errorf("%w: %w", errs[i], err)
		}
		return fmt.Errorf("chunk 3 of \"cam\": %w", err)
	}
	_, storeErr := memblob.OpenBucket(nil).ReadAll(context.Background(), "chunk-0000003")
	for _, tc := range []struct {
		err  error
		want int
	}{
		{ErrShuttingDown, http.StatusServiceUnavailable},
		{wrap(ErrTooManyStreams), http.StatusServiceUnavailable},
		{wrap(ErrNoStream), http.StatusNotFound},
		{wrap(ErrEnded), http.StatusConflict},
		{wrap(ErrBusy), http.StatusConflict},
		{wrap(ErrConflict), http.StatusConflict},
		{wrap(ErrTooLarge), http.StatusRequestEntityTooLarge},
		{wrap(ErrRareKeyframes), http.StatusUnprocessableEntity},
		{wrap(ErrOverloaded), http.StatusServiceUnavailable},
		{wrap(ErrInvalidChunk, source.ErrUnsupported), http.StatusUnsupportedMediaType},
		{wrap(ErrInvalidChunk, source.ErrTruncated), http.StatusBadRequest},
		{wrap(ErrInvalidChunk, errors.New("empty body")), http.StatusBadRequest},
		{wrap(chunker.ErrBadParameterSets), http.StatusBadRequest},
		{wrap(source.ErrInvalid), http.StatusBadRequest},
		{fmt.Errorf("reading chunk 3: %w", storeErr), http.StatusServiceUnavailable},
		{wrap(&sink.UploadError{Err: errors.New("reset")}), http.StatusServiceUnavailable},
		{fmt.Errorf("journaling chunk 3: %w", context.DeadlineExceeded), http.StatusServiceUnavailable},
		{errors.New("a bug"), http.StatusInternalServerError},
	} {
		if got := statusOf(tc.err); got != tc.want {
			t.Errorf("statusOf(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}
