package stitch_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"time"

	"gocloud.dev/blob/memblob"

	"github.com/livechunk/livechunk"
	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/source"
	"github.com/livechunk/livechunk/stitch"
)

// Join a recording's HLS playlist into one MP4, and cut a clip out of it.
func Example() {
	ctx := context.Background()
	bucket := memblob.OpenBucket(nil) // or sink.Open(ctx, "s3://bucket?region=...")
	defer bucket.Close()

	// A finished recording: 1-second fMP4 segments and a VOD playlist.
	src, err := source.Open("../testdata/bframes.mp4", source.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = livechunk.Record(ctx, bucket, src, livechunk.Config{
		Format:          chunker.FMP4,
		SegmentDuration: time.Second,
		Playlist:        hls.VOD,
		Prefix:          "talk/",
	})
	src.Close()
	if err != nil {
		fmt.Println(err)
		return
	}

	in, err := stitch.FromPlaylist(ctx, bucket, "talk/index.m3u8")
	if err != nil {
		fmt.Println(err)
		return
	}
	var whole bytes.Buffer
	res, err := stitch.WriteMP4(ctx, &whole, in, stitch.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("whole: %d pictures, %d keyframes, %v, boxes %v\n",
		res.Samples, res.Keyframes, res.Duration, topLevelBoxes(whole.Bytes()))

	// A lossless clip straight into the bucket: decoding starts at the
	// keyframe at 1 s, the edit list shows 1.5 s to 3.2 s.
	res, err = stitch.WriteBlob(ctx, bucket, "talk/clip.mp4", in, stitch.Options{
		From: 1500 * time.Millisecond,
		To:   3200 * time.Millisecond,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("clip: %d pictures decoded, %v shown\n", res.Samples, res.Duration)
	// Output:
	// whole: 120 pictures, 4 keyframes, 4s, boxes [ftyp moov mdat]
	// clip: 68 pictures decoded, 1.7s shown
}

// topLevelBoxes lists the types of the top-level boxes of an MP4 file.
func topLevelBoxes(b []byte) []string {
	var out []string
	for len(b) >= 8 {
		size := uint64(binary.BigEndian.Uint32(b))
		if size == 1 && len(b) >= 16 {
			size = binary.BigEndian.Uint64(b[8:])
		}
		out = append(out, string(b[4:8]))
		if size < 8 || size > uint64(len(b)) {
			break
		}
		b = b[size:]
	}
	return out
}

// Join the MP4 chunks a phone uploaded, each starting at time 0, into one
// file.
func ExampleFromFiles() {
	in := stitch.FromFiles("../testdata/chunk0.mp4", "../testdata/chunk1.mp4", "../testdata/chunk2.mp4")
	f, err := os.CreateTemp("", "broadcast-*.mp4")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.Remove(f.Name())
	defer f.Close()
	res, err := stitch.WriteMP4(context.Background(), f, in, stitch.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d chunks joined: %d pictures, %v\n", res.Parts, res.Samples, res.Duration)
	// Output:
	// 3 chunks joined: 180 pictures, 6s
}
