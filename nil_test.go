package livechunk_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/sink"
	"github.com/livechunk/livechunk/source"
	"github.com/livechunk/livechunk/stitch"
)

// TestNilArgumentsAreErrors: a nil bucket, reader or handler field gives
// a typed error (or a 500 answer), not a panic.
func TestNilArgumentsAreErrors(t *testing.T) {
	ctx := context.Background()
	s := sink.New(nil, sink.Config{})
	if err := s.WriteSegment(ctx, &chunker.Segment{Format: chunker.FMP4, Data: []byte{1}}); !errors.Is(err, sink.ErrInvalid) {
		t.Errorf("sink.New(nil).WriteSegment: %v, want sink.ErrInvalid", err)
	}
	if err := s.WriteInit(ctx, &chunker.Init{Data: []byte{1}}); !errors.Is(err, sink.ErrInvalid) {
		t.Errorf("sink.New(nil).WriteInit: %v, want sink.ErrInvalid", err)
	}
	for name, open := range map[string]func() error{
		"NewReader": func() error { _, err := source.NewReader(nil, source.Options{}); return err },
		"NewMP4":    func() error { _, err := source.NewMP4(nil, source.Options{}); return err },
		"NewTS":     func() error { _, err := source.NewTS(nil, source.Options{}); return err },
		"NewAnnexB": func() error { _, err := source.NewAnnexB(nil, source.Options{}); return err },
		"NewChunks": func() error { _, err := source.NewChunks(nil, source.Options{}); return err },
	} {
		if err := open(); !errors.Is(err, source.ErrInvalid) {
			t.Errorf("source.%s(nil): %v, want source.ErrInvalid", name, err)
		}
	}
	if _, err := stitch.WriteMP4(ctx, httptest.NewRecorder(), stitch.New(stitch.ReaderAtPart("x", nil, 100)), stitch.Options{}); !errors.Is(err, stitch.ErrInvalid) {
		t.Errorf("stitch of ReaderAtPart(nil): %v, want stitch.ErrInvalid", err)
	}
	rec := httptest.NewRecorder()
	(&hls.Handler{}).ServeHTTP(rec, httptest.NewRequest("GET", "/x/index.m3u8", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("a Handler with no Bucket: %d, want 500", rec.Code)
	}
}
