package hls_test

import (
	"context"
	"errors"
	"testing"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/sink"
	"gocloud.dev/blob/memblob"
)

// TestSegmentOf: the entry of a segment event names the segment and its
// init section; an init section's event (with or without a key) gives the
// zero Segment, which Add refuses with ErrInvalidSegment whatever the
// prefix, and the playlist stays as it was.
func TestSegmentOf(t *testing.T) {
	ctx := context.Background()
	init := &chunker.Init{Seq: 2, Format: chunker.FMP4, Data: []byte("init")}
	seg := &chunker.Segment{Seq: 7, Format: chunker.FMP4, Init: init, Data: make([]byte, 100),
		Timescale: 90000, Duration: 180000, Discontinuity: true}
	got := hls.SegmentOf(sink.SegmentEvent("cam/", seg), t0)
	want := hls.Segment{URI: sink.SegmentKey("", chunker.FMP4, 7), Map: sink.InitKey("", 2),
		Duration: 180000, Timescale: 90000, Discontinuity: true, ProgramDateTime: t0, Bytes: 100}
	if got != want {
		t.Errorf("SegmentOf = %+v, want %+v", got, want)
	}

	for _, ev := range []sink.Event{
		{Kind: sink.KindInit, Seq: 2, Key: sink.InitKey("cam/", 2), Init: init},
		{Kind: sink.KindInit, Seq: 0}, // MPEG-TS: no object
		{Kind: sink.Kind(9), Key: "cam/x"},
	} {
		if s := hls.SegmentOf(ev, t0); s != (hls.Segment{}) {
			t.Errorf("SegmentOf of a %v event = %+v, want the zero Segment", ev.Kind, s)
		}
		for _, prefix := range []string{"", "cam/"} {
			b := memblob.OpenBucket(nil)
			p, err := hls.NewPublisher(b, hls.PublisherConfig{Prefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Add(ctx, hls.SegmentOf(ev, t0)); !errors.Is(err, hls.ErrInvalidSegment) {
				t.Errorf("prefix %q: Add of a %v event: %v, want ErrInvalidSegment", prefix, ev.Kind, err)
			}
			if n := len(p.Playlist().Segments); n != 0 {
				t.Errorf("prefix %q: %d segments listed after a refused Add", prefix, n)
			}
			b.Close()
		}
	}
}
