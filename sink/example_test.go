package sink_test

import (
	"context"
	"fmt"
	"log"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/sink"
)

// ExampleNew uploads an init section and three segments to an in-memory
// bucket and prints the durable events, which arrive in order.
func ExampleNew() {
	ctx := context.Background()
	bucket, err := sink.Open(ctx, "mem://") // or "/var/rec", or "s3://bucket?region=..." with import _ "gocloud.dev/blob/s3blob"
	if err != nil {
		log.Fatal(err)
	}
	defer bucket.Close()

	s := sink.New(bucket, sink.Config{
		Prefix:           "live/cam1",
		MaxInFlightBytes: 32 << 20,
		OnDurable: func(ev sink.Event) {
			fmt.Printf("durable %s %d: %s (%d bytes)\n", ev.Kind, ev.Seq, ev.Key, ev.Bytes)
		},
	})

	// A chunker.Chunker normally produces these; here they are made by hand.
	init := &chunker.Init{Seq: 0, Format: chunker.FMP4, Data: []byte("ftyp moov"), Codec: "avc1.64001f"}
	if err := s.WriteInit(ctx, init); err != nil {
		log.Fatal(err)
	}
	for seq := uint64(1); seq <= 3; seq++ {
		seg := &chunker.Segment{
			Seq: seq, Format: chunker.FMP4, Init: init,
			Data:      []byte(fmt.Sprintf("styp moof mdat %d", seq)),
			Timescale: 90000, Duration: 5 * 90000, Frames: 150, Keyframes: 1,
		}
		if err := s.WriteSegment(ctx, seg); err != nil {
			log.Fatal(err)
		}
	}
	// Close waits for the uploads.
	if err := s.Close(ctx); err != nil {
		log.Fatal(err)
	}

	attrs, err := bucket.Attributes(ctx, sink.SegmentKey("live/cam1", chunker.FMP4, 2))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(attrs.ContentType, "|", attrs.CacheControl)
	// Output:
	// durable init 0: live/cam1/init-0.mp4 (9 bytes)
	// durable segment 1: live/cam1/seg-000001.m4s (16 bytes)
	// durable segment 2: live/cam1/seg-000002.m4s (16 bytes)
	// durable segment 3: live/cam1/seg-000003.m4s (16 bytes)
	// video/iso.segment | public, max-age=31536000, immutable
}
