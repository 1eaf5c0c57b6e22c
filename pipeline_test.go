package livechunk_test

import (
	"bytes"
	"context"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livechunk/livechunk"
	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/internal/testkit/hlscheck"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"github.com/livechunk/livechunk/internal/testkit/s3test"
	"github.com/livechunk/livechunk/sink"
	"github.com/livechunk/livechunk/source"
	"github.com/livechunk/livechunk/stitch"
	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"
)

// materialize copies every object under prefix to a new directory, so that
// ffmpeg can read a recording from any bucket.
func materialize(t *testing.T, b *blob.Bucket, prefix string) string {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	it := b.List(&blob.ListOptions{Prefix: prefix})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := b.ReadAll(ctx, obj.Key)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(obj.Key, prefix)))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func openSource(t *testing.T, inputs ...string) source.Source {
	t.Helper()
	if len(inputs) > 1 {
		c, err := source.OpenChunks(inputs, source.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	f, err := source.Open(inputs[0], source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// wantHashes decodes the inputs with ffmpeg: the frames a recording must
// reproduce, in order.
func wantHashes(t *testing.T, inputs ...string) []string {
	var all []string
	for _, in := range inputs {
		var args []string
		if strings.HasSuffix(in, ".h264") {
			args = []string{"-f", "h264"}
		}
		all = append(all, mediatest.FrameHashes(t, in, args...)...)
	}
	return all
}

func checkPlaylist(t *testing.T, b *blob.Bucket, key string) *hlscheck.Media {
	t.Helper()
	text, err := b.ReadAll(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	m, errs := hlscheck.Check(string(text))
	for _, e := range errs {
		t.Errorf("%s: %v", key, e)
	}
	if t.Failed() {
		t.Logf("%s:\n%s", key, text)
	}
	return m
}

// TestRecordEveryFixtureKind records every kind of input the source package
// reads, in both formats, into mem, file and S3 buckets, and has ffmpeg
// decode the playlist: the frames must equal the input's.
func TestRecordEveryFixtureKind(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	td := mediatest.Testdata
	inputs := map[string][]string{
		"bframes":    {td("bframes.mp4")},
		"baseline":   {td("baseline.mp4")},
		"vfr-mov600": {td("vfr.mov")},
		"fragmented": {td("fragmented.mp4")},
		"reschange":  {td("reschange.ts")},
		"ptswrap":    {td("wrap.ts")},
		"annexb":     {td("raw.h264")},
		"chunks":     {td("chunk0.mp4"), td("chunk1.mp4"), td("chunk2.mp4")},
	}
	s3 := s3test.Start(t, "media")
	buckets := map[string]func(t *testing.T) *blob.Bucket{
		"mem": func(t *testing.T) *blob.Bucket {
			b := memblob.OpenBucket(nil)
			t.Cleanup(func() { b.Close() })
			return b
		},
		"file": func(t *testing.T) *blob.Bucket {
			b, err := sink.Open(context.Background(), filepath.Join(t.TempDir(), "out"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			return b
		},
		"s3": func(t *testing.T) *blob.Bucket { return s3.Open(t, "media") },
	}
	for name, in := range inputs {
		want := wantHashes(t, in...)
		for _, format := range []chunker.Format{chunker.FMP4, chunker.TS} {
			for bname, open := range buckets {
				t.Run(name+"/"+format.String()+"/"+bname, func(t *testing.T) {
					b := open(t)
					prefix := "rec/" + name + "-" + format.String() + "/"
					st, err := livechunk.Record(context.Background(), b, openSource(t, in...), livechunk.Config{
						Format: format, SegmentDuration: time.Second, Playlist: hls.VOD, Prefix: prefix,
					})
					if err != nil {
						t.Fatal(err)
					}
					if st.Chunker.Samples != int64(len(want)) {
						t.Errorf("%d samples recorded, the input has %d frames", st.Chunker.Samples, len(want))
					}
					m := checkPlaylist(t, b, prefix+"index.m3u8")
					if int64(len(m.Entries)) != st.Chunker.Segments {
						t.Errorf("playlist lists %d segments, chunker made %d", len(m.Entries), st.Chunker.Segments)
					}
					// EXTINF sums to the exact media duration (to the microsecond).
					media := float64(st.Chunker.MediaTicks) / float64(st.Timescale)
					if d := m.TotalSeconds - media; d > 1e-5*float64(len(m.Entries)) || d < -1e-5*float64(len(m.Entries)) {
						t.Errorf("EXTINF sum %.6f s, media %.6f s", m.TotalSeconds, media)
					}
					dir := materialize(t, b, prefix)
					got := mediatest.FrameHashes(t, filepath.Join(dir, "index.m3u8"))
					if d := mediatest.EqualHashes(want, got); d != "" {
						t.Fatalf("decoded playlist differs from the input: %s", d)
					}
					if _, err := os.Stat(filepath.Join(dir, "master.m3u8")); err != nil {
						t.Errorf("no multivariant playlist: %v", err)
					}
				})
			}
		}
	}
}

// TestReaderNeverSeesMissingObject polls the playlist from another bucket
// handle while a live recording uploads to an S3 server whose PUTs finish
// out of order: no playlist version may reference an object that is not
// there yet.
func TestReaderNeverSeesMissingObject(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	srv := s3test.Start(t, "media")
	var n atomic.Int64
	srv.SetPutDelay(func(key string) time.Duration {
		if !strings.Contains(key, "seg-") {
			return 0
		}
		// Every third segment is slow: later ones overtake it.
		if n.Add(1)%3 == 0 {
			return 30 * time.Millisecond
		}
		return 0
	})
	writer := srv.Open(t, "media")
	reader := srv.Open(t, "media")
	samples, info := readAllSamples(t, mediatest.Testdata("bframes.mp4"))
	timescale := info.Timescale
	for _, format := range []chunker.Format{chunker.FMP4, chunker.TS} {
		prefix := "live-" + format.String() + "/"
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		var polls, seen atomic.Int64
		errs := make(chan string, 100)
		looked := make(chan struct{}, 1) // the reader read the playlist once more
		wg.Add(1)
		go func() {
			defer wg.Done()
			var prev *hlscheck.Media
			var prevText string
			for ctx.Err() == nil {
				text, err := reader.ReadAll(ctx, prefix+"index.m3u8")
				if err != nil {
					continue // not written yet
				}
				polls.Add(1)
				select {
				case looked <- struct{}{}:
				default:
				}
				m, cerrs := hlscheck.Check(string(text))
				if prev != nil && string(text) != prevText {
					cerrs = append(cerrs, hlscheck.CheckUpdate(prev, m)...)
				}
				for _, e := range cerrs {
					select {
					case errs <- "invalid playlist update: " + e.Error():
					default:
					}
				}
				prev, prevText = m, string(text)
				for _, e := range m.Entries {
					for _, k := range []string{e.URI, e.Map} {
						if k == "" {
							continue
						}
						seen.Add(1)
						if ok, err := reader.Exists(ctx, prefix+k); !ok && err == nil {
							select {
							case errs <- "a playlist referenced " + k + " before it existed":
							default:
							}
						}
					}
				}
			}
		}()
		p, err := livechunk.NewPipeline(ctx, writer, livechunk.Config{
			Format: format, SegmentDuration: 300 * time.Millisecond, Prefix: prefix, Playlist: hls.Event,
			Timescale: timescale,
		})
		if err != nil {
			t.Fatal(err)
		}
		// Three passes of the clip make a stream of many segments. From the
		// second GOP on (the first segment closes at its IDR picture and
		// uploads in the background) the writer waits after every GOP for
		// the reader to read the playlist once more, so that the reader
		// polls while the playlist grows however loaded the machine is (it
		// made only 2 polls once, under -race).
		for i, s := range relLoop(samples, timescale, 3) {
			if err := p.Write(ctx, s); err != nil {
				t.Fatal(err)
			}
			if i%30 == 29 && i >= 59 {
				select {
				case <-looked:
				case <-time.After(10 * time.Second):
					t.Fatalf("%v: the reader did not read the playlist for 10 s", format)
				}
			}
		}
		if err := p.Close(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Errorf("%v: %s", format, e)
		}
		t.Logf("%v: %d polls, %d references checked", format, polls.Load(), seen.Load())
		if polls.Load() < 3 || seen.Load() == 0 {
			t.Errorf("%v: reader made only %d polls (%d references); the test proved nothing", format, polls.Load(), seen.Load())
		}
		m := checkPlaylist(t, writer, prefix+"index.m3u8")
		if len(m.Entries) < 10 || !m.Ended {
			t.Errorf("%v: final playlist has %d segments, ended %v", format, len(m.Entries), m.Ended)
		}
	}
}

// readAllSamples reads a fixture into memory (NAL units copied) and returns
// the samples and the stream info.
func readAllSamples(t *testing.T, path string) ([]chunker.Sample, source.Info) {
	t.Helper()
	src := openSource(t, path)
	var out []chunker.Sample
	for {
		s, err := src.Next()
		if err == io.EOF {
			return out, src.Info()
		}
		if err != nil {
			t.Fatal(err)
		}
		var nal [][]byte
		for _, n := range s.NALUs {
			nal = append(nal, bytes.Clone(n))
		}
		s.NALUs = nal
		out = append(out, s)
	}
}

// TestResumeContinuesAfterCrash records part of a stream, stops without
// finishing (as a crash after the uploads would), records the rest into the
// same destination, and checks that nothing was overwritten, sequence
// numbers continue, a discontinuity marks the restart, and ffmpeg decodes
// the whole playlist to the recorded frames.
func TestResumeContinuesAfterCrash(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	ctx := context.Background()
	b, err := sink.Open(ctx, filepath.Join(t.TempDir(), "dest"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	in := mediatest.Testdata("bframes.mp4") // 120 frames, IDR every 30
	samples, info := readAllSamples(t, in)
	timescale := info.Timescale
	want := wantHashes(t, in)
	for _, format := range []chunker.Format{chunker.FMP4, chunker.TS} {
		prefix := format.String() + "/"
		cfg := livechunk.Config{Format: format, SegmentDuration: time.Second, Prefix: prefix, Playlist: hls.Event, Timescale: timescale,
			SPS: info.SPS, PPS: info.PPS}
		p1, err := livechunk.NewPipeline(ctx, b, cfg)
		if err != nil {
			t.Fatal(err)
		}
		// 75 samples: segments [0,30) and [30,60) close; [60,75) is open
		// when the "crash" happens and is lost.
		for _, s := range samples[:75] {
			if err := p1.Write(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
		if err := p1.Abort(ctx); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, b, prefix)
		m1 := checkPlaylist(t, b, prefix+"index.m3u8")
		if len(m1.Entries) != 2 || m1.Ended {
			t.Fatalf("after the crash: %d segments, ended %v; want 2, false", len(m1.Entries), m1.Ended)
		}

		p2, err := livechunk.NewPipeline(ctx, b, cfg)
		if err != nil {
			t.Fatal(err)
		}
		// The restarted encoder sends from sample 75 on: 76..89 are dropped
		// until the IDR at 90.
		for _, s := range samples[75:] {
			if err := p2.Write(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
		if err := p2.Close(ctx); err != nil {
			t.Fatal(err)
		}
		for k, v := range before {
			if k == prefix+"index.m3u8" || k == prefix+"master.m3u8" {
				continue
			}
			now, err := b.ReadAll(ctx, k)
			if err != nil || !bytes.Equal(now, v) {
				t.Errorf("%s changed or vanished after the resume", k)
			}
		}
		m := checkPlaylist(t, b, prefix+"index.m3u8")
		if len(m.Entries) != 3 || !m.Ended {
			t.Fatalf("final playlist: %d segments, ended %v", len(m.Entries), m.Ended)
		}
		if m.Entries[0].URI != m1.Entries[0].URI || m.Entries[1].URI != m1.Entries[1].URI {
			t.Errorf("old entries changed: %+v", m.Entries[:2])
		}
		if !m.Entries[2].Discontinuity {
			t.Errorf("no discontinuity before the resumed segment")
		}
		if m.Entries[2].URI == m1.Entries[1].URI || !strings.HasSuffix(m.Entries[2].URI, "seg-000002"+format.SegmentExt()) {
			t.Errorf("resumed segment named %s, want seg-000002", m.Entries[2].URI)
		}
		if format == chunker.FMP4 && m.Entries[2].Map != "init-1.mp4" {
			t.Errorf("resumed segment uses %q, want a new init-1.mp4", m.Entries[2].Map)
		}
		dir := materialize(t, b, prefix)
		got := mediatest.FrameHashes(t, filepath.Join(dir, "index.m3u8"))
		wantResumed := append(append([]string{}, want[:60]...), want[90:]...)
		if d := mediatest.EqualHashes(wantResumed, got); d != "" {
			t.Errorf("%v: resumed recording decodes wrong: %s", format, d)
		}
	}
}

func snapshot(t *testing.T, b *blob.Bucket, prefix string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	ctx := context.Background()
	it := b.List(&blob.ListOptions{Prefix: prefix})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := b.ReadAll(ctx, obj.Key)
		if err != nil {
			t.Fatal(err)
		}
		out[obj.Key] = data
	}
}

func TestFinishedRecordingIsNotReopened(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	st, err := livechunk.Record(ctx, b, openSource(t, mediatest.Testdata("baseline.mp4")), livechunk.Config{Playlist: hls.VOD})
	if err != nil || st.Chunker.Segments == 0 {
		t.Fatal(err, st)
	}
	if _, err := livechunk.NewPipeline(ctx, b, livechunk.Config{}); err == nil || !strings.Contains(err.Error(), "finished") {
		t.Errorf("NewPipeline on a finished recording: %v", err)
	}
}

func TestConfigWithSource(t *testing.T) {
	src, err := source.Open("testdata/av.mp4", source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	info := src.Info()
	if info.Audio == nil || len(info.SPS) == 0 || len(info.PPS) == 0 || info.Bitrate == 0 {
		t.Fatalf("fixture lacks what the test needs: %+v", info)
	}
	got := livechunk.Config{Format: chunker.TS}.WithSource(info)
	if got.Timescale != info.Timescale || got.Format != chunker.TS || got.Bitrate != info.Bitrate ||
		got.Audio == nil || !bytes.Equal(got.Audio.ASC, info.Audio.Config().ASC) ||
		!bytes.Equal(got.SPS[0], info.SPS[0]) || !bytes.Equal(got.PPS[0], info.PPS[0]) {
		t.Errorf("WithSource: %+v from %+v", got, info)
	}

	// What the caller set wins over the source (but the timing is the
	// source's: the samples come with it).
	mine := &chunker.AudioConfig{ASC: []byte{0x15, 0x88}} // AAC LC, 8 kHz, mono
	rot := [9]int32{0, 1 << 16, 0, -1 << 16, 0, 0, 0, 0, 1 << 30}
	got = livechunk.Config{Audio: mine, Bitrate: 1, Matrix: rot, Timescale: 1000}.WithSource(info)
	if got.Audio != mine || got.Bitrate != 1 || got.Matrix != rot || got.Timescale != info.Timescale {
		t.Errorf("WithSource overrode the caller: %+v", got)
	}

	// An SPS without a PPS is left to the stream's in-band parameter sets
	// (a pipeline started with only half of them would fail).
	half := info
	half.PPS = nil
	if got := (livechunk.Config{}).WithSource(half); got.SPS != nil || got.PPS != nil {
		t.Errorf("WithSource took an SPS without a PPS: %+v", got)
	}
	p, err := livechunk.NewPipeline(context.Background(), memblob.OpenBucket(nil), livechunk.Config{}.WithSource(half))
	if err != nil {
		t.Fatalf("pipeline from a source with an SPS but no PPS: %v", err)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestRecordPausedVideo records inputs whose video pauses for 2 s (a
// variable frame rate, as screen recordings have) while the audio goes on:
// progressive MP4 with and without audio (one timeline: a step forward is
// never a jump), fragmented MP4 without audio (the picture before the
// pause declares its duration) and MPEG-TS with audio (the audio tells
// the pause). The
// recording and its stitched MP4 keep every picture and audio frame, the
// playlist has no discontinuity, and the stitched file is as long as the
// input. Before, the pause was taken as a timestamp jump: the pictures up
// to the next keyframe were dropped with their audio, and stitch closed
// the gap in a TS recording, dropping its audio.
func TestRecordPausedVideo(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	for _, c := range []struct {
		name, ext  string
		noAudio    bool
		fragmented bool
		bframes    int
		segment    time.Duration
	}{
		{"mp4", ".mp4", false, false, 3, 4 * time.Second},
		{"mp4-video-only", ".mp4", true, false, 3, 4 * time.Second},
		{"fragmented-video-only", ".mp4", true, true, 3, 4 * time.Second}, // the trun durations tell the pause
		{"ts", ".ts", false, false, 3, 4 * time.Second},
		// The picture after the pause is an IDR one that starts a segment:
		// the pause lies between two segments (stitch: where the previous
		// segment's EXTINF ends).
		{"mp4-pause-between-segments", ".mp4", false, false, 0, 2 * time.Second},
	} {
		in := mediatest.PausedVideoAt(t, c.ext, c.noAudio, 4.5, 6.5, c.bframes)
		if c.fragmented {
			frag := filepath.Join(t.TempDir(), "fragmented.mp4")
			mediatest.FFmpeg(t, "-i", in, "-c", "copy", "-movflags", "frag_keyframe+empty_moov", frag)
			in = frag
		}
		want := mediatest.FrameHashes(t, in)
		wantAudio := 0
		if !c.noAudio {
			wantAudio = mediatest.PacketCount(t, in, "audio")
		}
		for _, format := range []chunker.Format{chunker.FMP4, chunker.TS} {
			t.Run(c.name+"/"+format.String(), func(t *testing.T) {
				b := memblob.OpenBucket(nil)
				defer b.Close()
				ctx := context.Background()
				st, err := livechunk.Record(ctx, b, openSource(t, in), livechunk.Config{
					Format: format, SegmentDuration: c.segment, Playlist: hls.VOD,
				})
				if err != nil {
					t.Fatal(err)
				}
				if st.Chunker.TimestampJumps != 0 || st.Chunker.DroppedNoKey != 0 || st.Chunker.AudioSamples != int64(wantAudio) {
					t.Errorf("%d jumps, %d pictures dropped, %d of %d audio frames", st.Chunker.TimestampJumps,
						st.Chunker.DroppedNoKey, st.Chunker.AudioSamples, wantAudio)
				}
				m := checkPlaylist(t, b, "index.m3u8")
				for _, e := range m.Entries {
					if e.Discontinuity {
						t.Errorf("%s: discontinuity", e.URI)
					}
				}
				if math.Abs(m.TotalSeconds-10) > 0.1 {
					t.Errorf("EXTINF sum %.3f s, want 10", m.TotalSeconds)
				}
				dir := materialize(t, b, "")
				if d := mediatest.EqualHashes(want, mediatest.FrameHashes(t, filepath.Join(dir, "index.m3u8"))); d != "" {
					t.Errorf("recording: %s", d)
				}
				sin, err := stitch.FromPlaylist(ctx, b, "index.m3u8")
				if err != nil {
					t.Fatal(err)
				}
				out := filepath.Join(dir, "stitched.mp4")
				f, err := os.Create(out)
				if err != nil {
					t.Fatal(err)
				}
				res, err := stitch.WriteMP4(ctx, f, sin, stitch.Options{})
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					t.Fatal(err)
				}
				if d := mediatest.EqualHashes(want, mediatest.FrameHashes(t, out)); d != "" {
					t.Errorf("stitched: %s", d)
				}
				if res.AudioFrames != wantAudio || (wantAudio > 0 && mediatest.PacketCount(t, out, "audio") != wantAudio) {
					t.Errorf("stitched: %d audio frames, want %d", res.AudioFrames, wantAudio)
				}
				if d := res.Duration.Seconds(); math.Abs(d-10) > 0.1 {
					t.Errorf("stitched: %.3f s, want 10", d)
				}
			})
		}
	}
}
