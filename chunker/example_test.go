package chunker_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"time"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/source"
)

// printOutput prints what a Chunker emits; a sink.Sink would upload it.
type printOutput struct{}

func (printOutput) WriteInit(_ context.Context, in *chunker.Init) error {
	fmt.Printf("init %d: %s %dx%d\n", in.Seq, in.Codec, in.Width, in.Height)
	return nil
}

func (printOutput) WriteSegment(_ context.Context, s *chunker.Segment) error {
	fmt.Printf("segment %d: %.3f s, %d frames, discontinuity %v\n",
		s.Seq, float64(s.Duration)/float64(s.Timescale), s.Frames, s.Discontinuity)
	return nil
}

// New cuts the access units of a file into 2-second fMP4 segments at the
// IDR pictures it finds.
func ExampleNew() {
	ctx := context.Background()
	src, err := source.Open("../testdata/bframes.mp4", source.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	info := src.Info()
	c, err := chunker.New(chunker.Config{
		Format:         chunker.FMP4,
		Timescale:      info.Timescale,
		TargetDuration: 2 * time.Second,
		SPS:            info.SPS,
		PPS:            info.PPS,
	}, printOutput{})
	if err != nil {
		log.Fatal(err)
	}
	for {
		s, err := src.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		if err := c.Write(ctx, s); err != nil {
			log.Fatal(err)
		}
	}
	if err := c.Close(ctx); err != nil {
		log.Fatal(err)
	}
	st := c.Stats()
	fmt.Printf("%d samples in %d segments, %d dropped before the first IDR\n", st.Samples, st.Segments, st.DroppedNoKey)
	// Output:
	// init 0: avc1.64000d 320x240
	// segment 0: 2.000 s, 60 frames, discontinuity false
	// segment 1: 2.000 s, 60 frames, discontinuity false
	// 120 samples in 2 segments, 0 dropped before the first IDR
}
