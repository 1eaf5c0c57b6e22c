package embed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/livechunk/livechunk"
	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/source"
	"gocloud.dev/blob"
)

// ManyConfig configures Many.
type ManyConfig struct {
	// Input is the file every stream reads (an MP4 with or without AAC).
	Input string
	// Streams is the number of concurrent pipelines. Default 20.
	Streams int
	// Repeat is how many times each stream plays Input, joined into one
	// continuous stream (source.OpenChunks). Default 1.
	Repeat int
	// Speed paces each stream at this multiple of real time; 0 feeds as
	// fast as the pipelines take it.
	Speed float64
	// SegmentDuration of the recordings. Default 1 s.
	SegmentDuration time.Duration
	// Log receives a progress line about every 250 ms and a summary;
	// nil: none.
	Log io.Writer
}

// Many records cfg.Input as cfg.Streams concurrent streams into one bucket,
// each under its own prefix ("stream-00/", ...), each fed by its own
// goroutine, while a monitoring goroutine reads every pipeline's Stats in a
// loop until they are all closed. Then it checks each stream: Close
// succeeded; the playlist lists every segment, for the input's whole
// duration, and is ended; the final Stats count every picture and AAC frame
// of the input, and agree with each other (segments made, uploaded,
// durable, listed; bytes made and stored) and with what the monitor saw
// last; and the counters the monitor saw never went back. It returns every
// problem found, joined.
func Many(ctx context.Context, bucket *blob.Bucket, cfg ManyConfig) error {
	if cfg.Streams <= 0 {
		cfg.Streams = 20
	}
	if cfg.Repeat <= 0 {
		cfg.Repeat = 1
	}
	if cfg.SegmentDuration <= 0 {
		cfg.SegmentDuration = time.Second
	}
	logf := func(format string, a ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, format+"\n", a...)
		}
	}
	want, err := measure(cfg.Input, cfg.Repeat)
	if err != nil {
		return err
	}

	// Streams in one process share a buffer pool.
	pool := chunker.NewPool()
	type stream struct {
		prefix string
		src    source.Source
		close  func() error
		p      *livechunk.Pipeline
		err    error // of feeding and Close
		final  livechunk.Stats
	}
	streams := make([]*stream, cfg.Streams)
	defer func() {
		for _, s := range streams {
			if s != nil && s.close != nil {
				s.close()
			}
		}
	}()
	for i := range streams {
		src, closeSrc, err := open(cfg.Input, cfg.Repeat)
		if err != nil {
			return err
		}
		s := &stream{prefix: fmt.Sprintf("stream-%02d/", i), src: src, close: closeSrc}
		streams[i] = s
		if cfg.Speed > 0 {
			paced := source.NewPaced(src)
			paced.Speed = cfg.Speed
			s.src = paced
		}
		pcfg := livechunk.Config{
			Format:          chunker.FMP4,
			SegmentDuration: cfg.SegmentDuration,
			Playlist:        hls.Event, // lists every segment, for the check
			Prefix:          s.prefix,
			Pool:            pool,
		}.WithSource(src.Info())
		if s.p, err = livechunk.NewPipeline(ctx, bucket, pcfg); err != nil {
			return fmt.Errorf("%s: %w", s.prefix, err)
		}
	}

	// The monitor: reads every pipeline's Stats until all are closed.
	done := make(chan struct{})
	type seen struct {
		last      []livechunk.Stats
		snapshots int
		problems  []error
	}
	var mon seen
	var monWG sync.WaitGroup
	monWG.Go(func() {
		mon.last = make([]livechunk.Stats, len(streams))
		start, lastLog := time.Now(), time.Now()
		for {
			stop := false
			select {
			case <-done:
				stop = true // one more round, after every Close
			default:
			}
			var pictures, segments, durable int64
			for i, s := range streams {
				st := s.p.Stats()
				if err := notBack(mon.last[i], st); err != nil && len(mon.problems) < 10 {
					mon.problems = append(mon.problems, fmt.Errorf("%s: monitor: %w", s.prefix, err))
				}
				mon.last[i] = st
				pictures += st.Chunker.Samples
				segments += st.Chunker.Segments
				durable += st.Sink.Durable
			}
			mon.snapshots++
			if stop {
				return
			}
			if time.Since(lastLog) >= 250*time.Millisecond {
				lastLog = time.Now()
				logf("%6.2fs  %d streams: %d pictures, %d segments, %d objects durable",
					time.Since(start).Seconds(), len(streams), pictures, segments, durable)
			}
			time.Sleep(time.Millisecond)
		}
	})

	// The feeders: one goroutine per stream writes it and closes it.
	start := time.Now()
	var feeders sync.WaitGroup
	for _, s := range streams {
		feeders.Go(func() {
			for {
				pk, err := s.src.NextPacket()
				if err == io.EOF {
					break
				}
				if err == nil {
					err = s.p.WritePacket(ctx, pk)
				}
				if err != nil {
					s.err = err
					s.p.Abort(ctx)
					return
				}
			}
			s.err = s.p.Close(ctx)
			s.final = s.p.Stats()
		})
	}
	feeders.Wait()
	elapsed := time.Since(start)
	close(done)
	monWG.Wait()

	var problems []error
	problems = append(problems, mon.problems...)
	for i, s := range streams {
		if s.err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", s.prefix, s.err))
			continue
		}
		if err := checkStream(ctx, bucket, s.p.PlaylistKey(), s.prefix, want, s.final); err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", s.prefix, err))
		}
		if mon.last[i] != s.final {
			problems = append(problems, fmt.Errorf("%s: the monitor's last Stats %+v differ from the final ones %+v", s.prefix, mon.last[i], s.final))
		}
	}
	if len(problems) == 0 {
		logf("%d streams of %.3f s (%d pictures, %d AAC frames each) recorded in %v; %d rounds of Stats read while they ran: all complete and consistent",
			len(streams), want.seconds(), want.pictures, want.audio, elapsed.Round(time.Millisecond), mon.snapshots)
	}
	return errors.Join(problems...)
}

// notBack reports a counter of now that is lower than in before, or
// counters of one stage that contradict each other.
func notBack(before, now livechunk.Stats) error {
	for _, c := range []struct {
		name        string
		before, now int64
	}{
		{"Chunker.Samples", before.Chunker.Samples, now.Chunker.Samples},
		{"Chunker.AudioSamples", before.Chunker.AudioSamples, now.Chunker.AudioSamples},
		{"Chunker.Segments", before.Chunker.Segments, now.Chunker.Segments},
		{"Chunker.Bytes", before.Chunker.Bytes, now.Chunker.Bytes},
		{"Chunker.MediaTicks", before.Chunker.MediaTicks, now.Chunker.MediaTicks},
		{"Sink.Submitted", before.Sink.Submitted, now.Sink.Submitted},
		{"Sink.Uploaded", before.Sink.Uploaded, now.Sink.Uploaded},
		{"Sink.Durable", before.Sink.Durable, now.Sink.Durable},
		{"Sink.DurableBytes", before.Sink.DurableBytes, now.Sink.DurableBytes},
		{"Playlist.Segments", int64(before.Playlist.Segments), int64(now.Playlist.Segments)},
		{"Playlist.Writes", int64(before.Playlist.Writes), int64(now.Playlist.Writes)},
	} {
		if c.now < c.before {
			return fmt.Errorf("%s went back from %d to %d", c.name, c.before, c.now)
		}
	}
	if now.Sink.Durable > now.Sink.Submitted || now.Sink.Uploaded > now.Sink.Submitted {
		return fmt.Errorf("sink: %d durable, %d uploaded of %d submitted", now.Sink.Durable, now.Sink.Uploaded, now.Sink.Submitted)
	}
	if now.Sink.Failed != 0 {
		return fmt.Errorf("sink: %d objects failed", now.Sink.Failed)
	}
	return nil
}

// checkStream checks one closed stream against the input (want), its
// final Stats and what its bucket prefix holds.
func checkStream(ctx context.Context, bucket *blob.Bucket, playlistKey, prefix string, want inputCounts, st livechunk.Stats) error {
	var problems []error
	bad := func(format string, a ...any) { problems = append(problems, fmt.Errorf(format, a...)) }

	c, k, pub := st.Chunker, st.Sink, st.Playlist
	if c.Samples != want.pictures || c.DroppedNoKey != 0 {
		bad("%d pictures recorded (%d dropped), the input has %d", c.Samples, c.DroppedNoKey, want.pictures)
	}
	if c.AudioSamples != want.audio || c.AudioDropped != 0 {
		bad("%d AAC frames recorded and %d dropped, the input has %d", c.AudioSamples, c.AudioDropped, want.audio)
	}
	if st.Timescale != want.timescale || c.MediaTicks != want.ticks {
		bad("segments last %d ticks of 1/%d s, the input %d ticks of 1/%d s", c.MediaTicks, st.Timescale, want.ticks, want.timescale)
	}
	if objects := c.Segments + c.Inits; k.Submitted != objects || k.Uploaded != objects || k.Durable != objects || k.Failed != 0 {
		bad("%d segments and %d inits made; sink: %d submitted, %d uploaded, %d durable, %d failed",
			c.Segments, c.Inits, k.Submitted, k.Uploaded, k.Durable, k.Failed)
	}
	if !k.HaveDurableSegment || !c.HaveLastSegment || k.LastDurableSegment != c.LastSegmentSeq {
		bad("last segment made %d, last durable %d", c.LastSegmentSeq, k.LastDurableSegment)
	}
	if int64(pub.Segments) != c.Segments || pub.WriteFailures != 0 {
		bad("%d segments made, %d added to the playlist (%d writes failed)", c.Segments, pub.Segments, pub.WriteFailures)
	}

	pl, err := hls.LoadMedia(ctx, bucket, playlistKey)
	if err != nil {
		return errors.Join(append(problems, err)...)
	}
	if !pl.Ended {
		bad("the playlist has no EXT-X-ENDLIST")
	}
	if int64(len(pl.Segments)) != c.Segments {
		bad("the playlist lists %d segments, %d were made", len(pl.Segments), c.Segments)
	}
	// EXTINF gives durations to the microsecond.
	var seconds float64
	var discontinuities int64
	for _, sg := range pl.Segments {
		if sg.Discontinuity {
			discontinuities++
		}
		seconds += sg.Seconds()
	}
	if discontinuities != c.Discontinuities {
		bad("the playlist has %d discontinuities, the chunker made %d", discontinuities, c.Discontinuities)
	}
	if math.Abs(seconds-want.seconds()) > 1e-6*float64(len(pl.Segments)) {
		bad("the playlist lists %.6f s, the input lasts %.6f s", seconds, want.seconds())
	}

	// What the bucket holds under the prefix: the listed segments, the
	// inits and the playlists; their bytes are what the sink counted.
	var segBytes, objBytes int64
	var keys []string
	it := bucket.List(&blob.ListOptions{Prefix: prefix})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return errors.Join(append(problems, err)...)
		}
		keys = append(keys, strings.TrimPrefix(obj.Key, prefix))
		switch {
		case strings.HasSuffix(obj.Key, ".m3u8"):
		case strings.HasPrefix(obj.Key, prefix+"seg-"):
			segBytes += obj.Size
			objBytes += obj.Size
		default:
			objBytes += obj.Size
		}
	}
	for _, sg := range pl.Segments {
		if !slices.Contains(keys, sg.URI) {
			bad("listed segment %s is not in the bucket", sg.URI)
		}
	}
	if segBytes != c.Bytes || objBytes != k.DurableBytes || objBytes != k.UploadedBytes {
		bad("bucket holds %d bytes of segments and %d of segments and inits; chunker made %d, sink uploaded %d, durable %d",
			segBytes, objBytes, c.Bytes, k.UploadedBytes, k.DurableBytes)
	}
	return errors.Join(problems...)
}
