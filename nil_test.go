package livechunk_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/livechunk/livechunk"
	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"github.com/livechunk/livechunk/sink"
	"github.com/livechunk/livechunk/source"
	"github.com/livechunk/livechunk/stitch"
	"gocloud.dev/blob/memblob"
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
	if _, err := stitch.WriteBlob(ctx, nil, "x.mp4", stitch.New(), stitch.Options{}); !errors.Is(err, stitch.ErrInvalid) {
		t.Errorf("stitch.WriteBlob(nil bucket): %v, want stitch.ErrInvalid", err)
	}
	mb := memblob.OpenBucket(nil)
	defer mb.Close()
	pub, err := hls.NewPublisher(mb, hls.PublisherConfig{})
	if err != nil {
		t.Fatal(err)
	}
	pub.Restore(nil) // nothing to restore
	if err := pub.Add(ctx, hls.Segment{URI: "seg-000000.m4s", Duration: 90000, Timescale: 90000}); err != nil {
		t.Errorf("Add after Restore(nil): %v", err)
	}
	rec := httptest.NewRecorder()
	(&hls.Handler{}).ServeHTTP(rec, httptest.NewRequest("GET", "/x/index.m3u8", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("a Handler with no Bucket: %d, want 500", rec.Code)
	}
}

// TestTimescaleMismatch: samples in another timescale than
// Config.Timescale, coarser (the source's 15360 at 90 kHz) or finer (an
// encoder's microseconds at 90 kHz), are refused with chunker.ErrTimescale;
// given the right timescale they are taken. Negative durations and unknown
// playlist types are refused.
func TestTimescaleMismatch(t *testing.T) {
	ctx := context.Background()
	// The fixture's timestamps are in its own timescale (15360, ffmpeg's
	// MP4 default); each case writes them in clock ticks a second (0: as
	// they are), slowed down by stretch, with Config.Timescale timescale
	// (0: the 90 kHz default, -1: the source's).
	//
	// Timestamps of a coarser clock than the configured one step faster
	// than the stream's frame rate: refused. Those of a finer clock (an
	// encoder's microseconds) step slower by that clock's exact ratio:
	// refused. A stream slower for what it is (3x slower than its SPS
	// says) is taken.
	for _, c := range []struct {
		name      string
		clock     int64
		stretch   int64
		timescale int64
		refused   bool
	}{
		{"source timescale at 90 kHz", 0, 1, 0, true},
		{"source timescale declared", 0, 1, -1, false},
		{"microseconds at 90 kHz", 1_000_000, 1, 0, true},
		{"microseconds declared", 1_000_000, 1, 1_000_000, false},
		{"100 ns units at 90 kHz", 10_000_000, 1, 0, true},
		{"a third of the declared frame rate", 90000, 3, 0, false},
	} {
		src, err := source.Open(mediatest.Testdata("bframes.mp4"), source.Options{})
		if err != nil {
			t.Fatal(err)
		}
		info := src.Info()
		if info.Timescale == 90000 {
			t.Fatal("the fixture is in 90 kHz: no mismatch to make")
		}
		clock, ts := c.clock, uint32(c.timescale)
		if clock == 0 {
			clock = int64(info.Timescale)
		}
		if c.timescale < 0 {
			ts = info.Timescale
		}
		b := memblob.OpenBucket(nil)
		p, err := livechunk.NewPipeline(ctx, b, livechunk.Config{SPS: info.SPS, PPS: info.PPS, Timescale: ts})
		if err != nil {
			t.Fatal(err)
		}
		var werr error
		for werr == nil {
			s, err := src.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			s.DTS = s.DTS * clock * c.stretch / int64(info.Timescale)
			s.PTS = s.PTS * clock * c.stretch / int64(info.Timescale)
			werr = p.Write(ctx, s)
		}
		if got := errors.Is(werr, chunker.ErrTimescale); got != c.refused || !c.refused && werr != nil {
			t.Errorf("%s: Write: %v", c.name, werr)
		}
		p.Abort(ctx)
		src.Close()
		b.Close()
	}
	b := memblob.OpenBucket(nil)
	defer b.Close()
	for name, cfg := range map[string]livechunk.Config{
		"negative segment duration": {SegmentDuration: -time.Second},
		"unknown playlist type":     {Playlist: hls.Type(7)},
		"unknown format":            {Format: chunker.Format(9)},
	} {
		if _, err := livechunk.NewPipeline(ctx, b, cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
