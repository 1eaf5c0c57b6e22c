package hls_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"time"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/sink"
	"github.com/livechunk/livechunk/source"
	"gocloud.dev/blob/memblob"
)

// mapOutput is a chunker.Output of the application's: it keeps objects in a
// map (a real one writes to a CDN, a database or a disk) and lists each
// stored segment in a playlist.
type mapOutput struct {
	objects map[string][]byte
	pub     *hls.Publisher
}

func (o *mapOutput) WriteInit(_ context.Context, in *chunker.Init) error {
	if len(in.Data) > 0 { // MPEG-TS has no init section to store
		o.objects[sink.InitKey("", in.Seq)] = bytes.Clone(in.Data)
	}
	return nil
}

func (o *mapOutput) WriteSegment(ctx context.Context, s *chunker.Segment) error {
	defer s.Release() // its buffer goes back to the chunker
	o.objects[sink.SegmentKey("", s.Format, s.Seq)] = bytes.Clone(s.Data)
	// Stored: list it. hls.SegmentOf takes the segment's name, exact
	// duration, init section and discontinuity from the event.
	return o.pub.Add(ctx, hls.SegmentOf(sink.SegmentEvent("", s), time.Time{}))
}

// A chunker whose segments go to a destination of the application's, with
// a Publisher writing the playlist that lists them (here to a bucket in
// memory, which a Handler can serve).
func ExamplePublisher_customOutput() {
	ctx := context.Background()
	playlists := memblob.OpenBucket(nil)
	defer playlists.Close()
	pub, err := hls.NewPublisher(playlists, hls.PublisherConfig{Type: hls.VOD, TargetDuration: time.Second})
	if err != nil {
		log.Fatal(err)
	}
	out := &mapOutput{objects: map[string][]byte{}, pub: pub}

	src, err := source.Open("../testdata/bframes.mp4", source.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	info := src.Info()
	c, err := chunker.New(chunker.Config{
		Timescale: info.Timescale, TargetDuration: time.Second, SPS: info.SPS, PPS: info.PPS,
	}, out)
	if err != nil {
		log.Fatal(err)
	}
	for {
		pk, err := src.NextPacket()
		if err == io.EOF {
			break
		} else if err != nil {
			log.Fatal(err)
		}
		if pk.Kind == source.KindVideo {
			if err := c.Write(ctx, pk.Video); err != nil {
				log.Fatal(err)
			}
		}
	}
	if err := c.Close(ctx); err != nil {
		log.Fatal(err)
	}
	if err := pub.Finish(ctx); err != nil { // a VOD playlist is written now
		log.Fatal(err)
	}
	text, err := playlists.ReadAll(ctx, pub.Key())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(out.objects), "objects stored")
	fmt.Print(string(text))
	// Output:
	// 5 objects stored
	// #EXTM3U
	// #EXT-X-VERSION:6
	// #EXT-X-TARGETDURATION:1
	// #EXT-X-MEDIA-SEQUENCE:0
	// #EXT-X-PLAYLIST-TYPE:VOD
	// #EXT-X-INDEPENDENT-SEGMENTS
	// #EXT-X-MAP:URI="init-0.mp4"
	// #EXTINF:1.000,
	// seg-000000.m4s
	// #EXTINF:1.000,
	// seg-000001.m4s
	// #EXTINF:1.000,
	// seg-000002.m4s
	// #EXTINF:1.000,
	// seg-000003.m4s
	// #EXT-X-ENDLIST
}
