package livechunk_test

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/livechunk/livechunk"
	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/source"
	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"
)

// Record a file into an in-memory bucket as 1-second fMP4 segments with a
// VOD playlist, and list what landed.
func ExampleRecord() {
	ctx := context.Background()
	bucket := memblob.OpenBucket(nil) // or sink.Open(ctx, "s3://bucket?region=...")
	defer bucket.Close()

	src, err := source.Open("testdata/bframes.mp4", source.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer src.Close()

	st, err := livechunk.Record(ctx, bucket, src, livechunk.Config{
		Format:          chunker.FMP4,
		SegmentDuration: time.Second,
		Playlist:        hls.VOD,
		Prefix:          "talk/",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(st.Chunker.Segments, "segments,", st.Chunker.Samples, "frames")
	it := bucket.List(&blob.ListOptions{Prefix: "talk/"})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		fmt.Println(obj.Key)
	}
	// Output:
	// 4 segments, 120 frames
	// talk/index.m3u8
	// talk/init-0.mp4
	// talk/master.m3u8
	// talk/seg-000000.m4s
	// talk/seg-000001.m4s
	// talk/seg-000002.m4s
	// talk/seg-000003.m4s
}

// Feed samples one by one (as they arrive from a camera or a decoder
// callback) into a live pipeline; each segment uploads while the next one
// fills, and the playlist lists it once it is durable.
func ExampleNewPipeline() {
	ctx := context.Background()
	bucket := memblob.OpenBucket(nil)
	defer bucket.Close()

	src, err := source.Open("testdata/baseline.mp4", source.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer src.Close()
	info := src.Info()

	p, err := livechunk.NewPipeline(ctx, bucket, livechunk.Config{
		Format:          chunker.TS,
		SegmentDuration: time.Second,
		Timescale:       info.Timescale,
		SPS:             info.SPS,
		PPS:             info.PPS,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for {
		s, err := src.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		if err := p.Write(ctx, s); err != nil {
			fmt.Println(err)
			return
		}
	}
	if err := p.Close(ctx); err != nil {
		fmt.Println(err)
		return
	}
	pl, err := hls.LoadMedia(ctx, bucket, p.PlaylistKey())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(pl.Segments), "segments, ended:", pl.Ended)
	// Output:
	// 2 segments, ended: true
}
