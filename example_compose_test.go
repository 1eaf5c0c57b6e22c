package livechunk_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"sort"
	"sync"
	"time"

	"github.com/livechunk/livechunk"
	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/sink"
	"github.com/livechunk/livechunk/source"
	"gocloud.dev/blob/memblob"
)

// store is a destination of the application's (a CDN, a database, a disk):
// here a map. WriteInit and WriteSegment return nil once the object is
// stored for good, under the name the playlist will use.
type store struct {
	mu      sync.Mutex
	objects map[string][]byte
}

func (s *store) WriteInit(_ context.Context, in *chunker.Init) error {
	if len(in.Data) > 0 {
		s.put(sink.InitKey("", in.Seq), in.Data)
	}
	return nil
}

func (s *store) WriteSegment(_ context.Context, seg *chunker.Segment) error {
	defer seg.Release()
	s.put(sink.SegmentKey("", seg.Format, seg.Seq), seg.Data)
	return nil
}

func (s *store) put(name string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objects[name] = bytes.Clone(data)
}

// A Pipeline whose segments go to a destination of the application's
// (Config.Output), with hooks for closed and durable segments. The
// playlists, resume and program date times stay the pipeline's: it writes
// them to the bucket (here in memory), next to which the application
// serves its segments.
func ExampleConfig_output() {
	ctx := context.Background()
	playlists := memblob.OpenBucket(nil)
	defer playlists.Close()
	dst := &store{objects: map[string][]byte{}}

	src, err := source.Open("testdata/bframes.mp4", source.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	closed := 0
	st, err := livechunk.Record(ctx, playlists, src, livechunk.Config{
		SegmentDuration: time.Second,
		Playlist:        hls.Event,
		Output:          dst,
		// From the writing goroutine, as each segment closes.
		OnSegment: func(*chunker.Segment) { closed++ },
		// From the publishing goroutine, once stored and listed.
		OnDurable: func(ev sink.Event) {
			if ev.Kind == sink.KindSegment {
				e := hls.SegmentOf(ev, time.Time{})
				fmt.Printf("listed %s (%.3f s)\n", e.URI, e.Seconds())
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	var names []string
	for name := range dst.objects {
		names = append(names, name)
	}
	sort.Strings(names)
	fmt.Println(closed, "closed,", st.Chunker.Segments, "segments:", names)
	// Output:
	// listed seg-000000.m4s (1.000 s)
	// listed seg-000001.m4s (1.000 s)
	// listed seg-000002.m4s (1.000 s)
	// listed seg-000003.m4s (1.000 s)
	// 4 closed, 4 segments: [init-0.mp4 seg-000000.m4s seg-000001.m4s seg-000002.m4s seg-000003.m4s]
}
