package livechunk_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livechunk/livechunk/internal/testkit/blobtest"

	"github.com/livechunk/livechunk"
	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/internal/testkit/faultblob"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"github.com/livechunk/livechunk/sink"
	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"
)

// dirOutput is a destination of the caller's: it writes each object into a
// directory under the names the pipeline's playlist uses, refuses to
// overwrite one, and can be told to fail at a segment.
type dirOutput struct {
	dir    string
	failAt uint64 // fail WriteSegment of this sequence number (0: never)
	mu     sync.Mutex
	names  []string
}

var errOutputFull = errors.New("dirOutput: full")

func (o *dirOutput) put(name string, data []byte) error {
	f, err := os.OpenFile(filepath.Join(o.dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	o.mu.Lock()
	o.names = append(o.names, name)
	o.mu.Unlock()
	return f.Close()
}

func (o *dirOutput) WriteInit(_ context.Context, in *chunker.Init) error {
	if len(in.Data) == 0 {
		return nil // MPEG-TS: nothing to store
	}
	return o.put(sink.InitKey("", in.Seq), in.Data)
}

func (o *dirOutput) WriteSegment(_ context.Context, s *chunker.Segment) error {
	defer s.Release()
	if o.failAt != 0 && s.Seq == o.failAt {
		return errOutputFull
	}
	return o.put(sink.SegmentKey("", s.Format, s.Seq), s.Data)
}

// TestCustomOutput records into a destination of the caller's (segments in
// a directory, playlists in a memory bucket) with hooks for closed and
// durable segments: ffmpeg decodes the playlist next to the segments into
// the input's frames, the hooks see every segment in order, and a second
// recording resumes after the first without overwriting a name.
func TestCustomOutput(t *testing.T) {
	in := mediatest.AudioInputs(t)[0].File // H.264 and AAC, 6 s
	for _, format := range []chunker.Format{chunker.FMP4, chunker.TS} {
		t.Run(format.String(), func(t *testing.T) {
			ctx := context.Background()
			b := memblob.OpenBucket(nil)
			defer b.Close()
			out := &dirOutput{dir: t.TempDir()}
			var closed []uint64
			var durable []sink.Event
			cfg := livechunk.Config{
				Format: format, SegmentDuration: time.Second, Prefix: "cam/", Playlist: hls.Event,
				Output:    out,
				OnSegment: func(s *chunker.Segment) { closed = append(closed, s.Seq) },
				OnDurable: func(ev sink.Event) { durable = append(durable, ev) },
			}
			st, err := livechunk.Record(ctx, b, openSource(t, in), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if st.Chunker.Segments < 3 || int64(len(closed)) != st.Chunker.Segments {
				t.Fatalf("OnSegment saw %d segments, the chunker made %d", len(closed), st.Chunker.Segments)
			}
			var segs []uint64
			for _, ev := range durable {
				if ev.Kind == sink.KindSegment {
					segs = append(segs, ev.Seq)
					if ev.Key != "cam/"+sink.SegmentKey("", format, ev.Seq) {
						t.Errorf("durable event key %q", ev.Key)
					}
				}
			}
			if fmt.Sprint(segs) != fmt.Sprint(closed) {
				t.Errorf("OnDurable saw segments %v, OnSegment %v", segs, closed)
			}
			if st.Sink != (sink.Stats{}) {
				t.Errorf("sink stats %+v with Output", st.Sink)
			}
			m := checkPlaylist(t, b, "cam/index.m3u8")
			if int64(len(m.Entries)) != st.Chunker.Segments {
				t.Fatalf("playlist lists %d segments, chunker made %d", len(m.Entries), st.Chunker.Segments)
			}
			// The playlist goes next to the segments; ffmpeg plays it.
			text, err := b.ReadAll(ctx, "cam/index.m3u8")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(out.dir, "index.m3u8"), text, 0o644); err != nil {
				t.Fatal(err)
			}
			if d := mediatest.EqualHashes(wantHashes(t, in), mediatest.FrameHashes(t, filepath.Join(out.dir, "index.m3u8"))); d != "" {
				t.Fatalf("decoded playlist differs from the input: %s", d)
			}
			// The bucket holds the playlists only.
			keys := blobtest.Keys(t, b, "")
			if fmt.Sprint(keys) != "[cam/index.m3u8 cam/master.m3u8]" {
				t.Errorf("bucket holds %v", keys)
			}
		})
	}
}

// TestCustomOutputResumes: a recording into a destination of the caller's
// that stops unfinished (Abort) is resumed by the next pipeline after the
// segments its playlist lists, without overwriting any of them.
func TestCustomOutputResumes(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	out := &dirOutput{dir: t.TempDir()}
	cfg := livechunk.Config{SegmentDuration: time.Second, Output: out}
	write := func(abort bool) {
		src := openSource(t, mediatest.Testdata("av.mp4"))
		p, err := livechunk.NewPipeline(ctx, b, cfg.WithSource(src.Info()))
		if err != nil {
			t.Fatal(err)
		}
		for {
			pk, err := src.NextPacket()
			if err != nil {
				break
			}
			if err := p.WritePacket(ctx, pk); err != nil {
				t.Fatal(err)
			}
		}
		if abort {
			if err := p.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if err := p.Abort(ctx); err != nil {
				t.Fatal(err)
			}
			return
		}
		if err := p.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	write(true)
	first := len(out.names)
	write(false) // dirOutput refuses to overwrite: Write would fail
	if len(out.names) <= first {
		t.Fatalf("resumed recording stored nothing new: %v", out.names)
	}
	m := checkPlaylist(t, b, "index.m3u8")
	if !m.Ended {
		t.Error("resumed playlist not ended")
	}
}

// TestCustomOutputError: an error of Config.Output stops the recording: Write
// returns it (and keeps returning it), Close reports it, and the playlist
// lists what was stored before it, unfinished.
func TestCustomOutputError(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	out := &dirOutput{dir: t.TempDir(), failAt: 2}
	var durable int
	cfg := livechunk.Config{
		SegmentDuration: time.Second, Output: out, Playlist: hls.Event,
		OnDurable: func(ev sink.Event) {
			if ev.Kind == sink.KindSegment {
				durable++
			}
		},
	}
	src := openSource(t, mediatest.Testdata("bframes.mp4"))
	p, err := livechunk.NewPipeline(ctx, b, cfg.WithSource(src.Info()))
	if err != nil {
		t.Fatal(err)
	}
	var werr error
	for werr == nil {
		pk, err := src.NextPacket()
		if err != nil {
			t.Fatalf("input ended (%v) before the output failed", err)
		}
		werr = p.WritePacket(ctx, pk)
	}
	if !errors.Is(werr, errOutputFull) {
		t.Fatalf("Write returned %v, want the output's error", werr)
	}
	pk, _ := src.NextPacket()
	if err := p.WritePacket(ctx, pk); !errors.Is(err, errOutputFull) {
		t.Errorf("Write after the failure returned %v", err)
	}
	if err := p.Close(ctx); !errors.Is(err, errOutputFull) {
		t.Errorf("Close returned %v", err)
	}
	if err := p.WritePacket(ctx, pk); !errors.Is(err, chunker.ErrClosed) {
		t.Errorf("Write after Close returned %v", err)
	}
	m := checkPlaylist(t, b, "index.m3u8")
	if len(m.Entries) != 2 || durable != 2 {
		t.Errorf("playlist lists %d segments, OnDurable saw %d; want segments 0 and 1", len(m.Entries), durable)
	}
	if m.Ended {
		t.Error("the playlist was finished though a segment was not stored")
	}
}

// TestSinkOnDurableIsChained: a user's sink.Config.OnDurable is called for
// every object, and the pipeline's playlist still lists every segment.
func TestSinkOnDurableIsChained(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	var mu sync.Mutex
	var keys []string
	cfg := livechunk.Config{SegmentDuration: time.Second, Playlist: hls.VOD, Sink: sink.Config{
		OnDurable: func(ev sink.Event) {
			mu.Lock()
			keys = append(keys, ev.Key)
			mu.Unlock()
		},
	}}
	st, err := livechunk.Record(ctx, b, openSource(t, mediatest.Testdata("bframes.mp4")), cfg)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if int64(len(keys)) != st.Chunker.Segments+st.Chunker.Inits {
		t.Errorf("user OnDurable saw %d objects, the chunker made %d segments and %d inits", len(keys), st.Chunker.Segments, st.Chunker.Inits)
	}
	m := checkPlaylist(t, b, "index.m3u8")
	if int64(len(m.Entries)) != st.Chunker.Segments {
		t.Errorf("playlist lists %d of %d segments", len(m.Entries), st.Chunker.Segments)
	}
}

// TestAsChunker drives a Pipeline through the chunker.Chunker interface.
func TestAsChunker(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	src := openSource(t, mediatest.Testdata("bframes.mp4"))
	p, err := livechunk.NewPipeline(ctx, b, livechunk.Config{SegmentDuration: time.Second, Playlist: hls.VOD}.WithSource(src.Info()))
	if err != nil {
		t.Fatal(err)
	}
	var c chunker.Chunker = p.AsChunker()
	for {
		pk, err := src.NextPacket()
		if err != nil {
			break
		}
		if err := c.Write(ctx, pk.Video); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := c.Stats(), p.Stats().Chunker; got != want || got.Segments == 0 {
		t.Errorf("AsChunker().Stats() = %+v, Pipeline.Stats().Chunker = %+v", got, want)
	}
	m := checkPlaylist(t, b, "index.m3u8")
	if int64(len(m.Entries)) != c.Stats().Segments {
		t.Errorf("playlist lists %d segments, chunker made %d", len(m.Entries), c.Stats().Segments)
	}
}

// TestCloseAfterFailedUploadResumes: an upload that fails for good makes
// Write or Wait return the *sink.UploadError; Close reports it once and
// leaves the event playlist unfinished, so that a pipeline started once the
// store is back resumes the recording (after a discontinuity) instead of
// finding it finished.
func TestCloseAfterFailedUploadResumes(t *testing.T) {
	ctx := relCtx(t, 60*time.Second)
	samples, info := readAllSamples(t, mediatest.Testdata("bframes.mp4"))
	stream := relLoop(samples, info.Timescale, 2)
	inner := memblob.OpenBucket(nil)
	defer inner.Close()
	in := faultblob.New(inner, faultblob.Config{})
	cfg := livechunk.Config{
		SegmentDuration: time.Second, Playlist: hls.Event, Timescale: info.Timescale, SPS: info.SPS, PPS: info.PPS,
	}
	p, err := livechunk.NewPipeline(ctx, in.Bucket(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stream[:len(samples)] {
		if err := p.Write(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	waitListed(t, p, 3)
	// The store refuses writes for good (a permanent error class).
	in.SetOutage(faultblob.WriteOps, gcerrors.PermissionDenied)
	var werr error
	for _, s := range stream[len(samples):] {
		if werr = p.Write(ctx, s); werr != nil {
			break
		}
	}
	if werr == nil {
		werr = p.Flush(ctx)
	}
	if werr == nil {
		werr = p.Wait(ctx)
	}
	var ue *sink.UploadError
	if !errors.As(werr, &ue) {
		t.Fatalf("Write/Flush/Wait during the refusal returned %v, want a *sink.UploadError", werr)
	}
	// More pictures: segments that close now meet the failed sink in
	// Write (the chunker keeps that error too).
	for _, s := range stream[len(samples):] {
		_ = p.Write(ctx, s)
	}
	in.EndOutage()
	cerr := p.Close(ctx)
	if !errors.As(cerr, &ue) {
		t.Fatalf("Close returned %v, want the *sink.UploadError", cerr)
	}
	if n := strings.Count(cerr.Error(), ue.Error()); n != 1 {
		t.Errorf("Close reports the upload error %d times: %v", n, cerr)
	}
	m, _ := finalPlaylist(t, inner, "index.m3u8")
	if m.Ended {
		t.Fatal("the playlist of a recording whose uploads failed was finished")
	}
	listed := len(m.Entries)

	p2, err := livechunk.NewPipeline(ctx, inner, cfg)
	if err != nil {
		t.Fatalf("resuming after the store came back: %v", err)
	}
	for _, s := range stream[:len(samples)] {
		if err := p2.Write(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := p2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	m, _ = finalPlaylist(t, inner, "index.m3u8")
	if !m.Ended || len(m.Entries) <= listed || m.DiscBeforeHead == 0 {
		t.Errorf("resumed playlist: %d entries (%d before), ended %v, %d discontinuities", len(m.Entries), listed, m.Ended, m.DiscBeforeHead)
	}
}

// TestNoRoomIsNotPermanent: a segment that closes while the sink has no
// room, when the writing call's context ends (or under the Fail policy),
// makes that call return the refusal, and nothing else: the sample was
// taken, the segment is held and goes to the sink at the next call, and
// the recording ends complete.
func TestNoRoomIsNotPermanent(t *testing.T) {
	samples, info := readAllSamples(t, mediatest.Testdata("bframes.mp4"))
	for _, c := range []struct {
		name     string
		overflow sink.OverflowPolicy
		want     error
	}{
		{"ctx ends", sink.Block, context.Canceled},
		{"fail policy", sink.Fail, sink.ErrOverflow},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := relCtx(t, 60*time.Second)
			inner := memblob.OpenBucket(nil)
			defer inner.Close()
			in := hangFirstSegment(inner)
			p, err := livechunk.NewPipeline(ctx, in.Bucket(), livechunk.Config{
				SegmentDuration: time.Second, Playlist: hls.Event, Timescale: info.Timescale, SPS: info.SPS, PPS: info.PPS,
				Sink: oneInFlight(c.overflow),
			})
			if err != nil {
				t.Fatal(err)
			}
			dead, cancel := context.WithCancel(ctx)
			cancel()
			wctx := ctx
			refused := 0
			for _, s := range samples {
				if err := p.Write(wctx, s); err != nil {
					if !errors.Is(err, c.want) {
						t.Fatalf("Write: %v, want %v", err, c.want)
					}
					refused++
				}
				if wctx == ctx && c.overflow == sink.Block && p.Stats().Chunker.Segments > 0 {
					// Segment 0 went to the sink: once its upload hangs,
					// the next segment finds no room.
					if err := in.WaitHung(ctx, 1); err != nil {
						t.Fatal(err)
					}
					wctx = dead
				}
			}
			if refused == 0 {
				t.Fatal("no Write was refused: the test made no backpressure")
			}
			// Segment 0 hangs once it goes to the sink (under the Fail
			// policy it may still be held, handed by Close): release it
			// then.
			go func() {
				if in.WaitHung(ctx, 1) == nil {
					in.Release()
				}
			}()
			if err := p.Close(ctx); err != nil {
				t.Fatalf("Close: %v", err)
			}
			st := p.Stats()
			if st.Chunker.Samples != int64(len(samples)) {
				t.Errorf("%d of %d samples taken", st.Chunker.Samples, len(samples))
			}
			m, _ := finalPlaylist(t, inner, "index.m3u8")
			if !m.Ended || int64(len(m.Entries)) != st.Chunker.Segments {
				t.Errorf("playlist: %d entries of %d segments, ended %v (%d Writes refused)", len(m.Entries), st.Chunker.Segments, m.Ended, refused)
			}
		})
	}
}

// TestCloseWithNoRoomResumes: a Close whose context ends with segments
// still held reports it and leaves the playlist open; the next pipeline
// resumes after a discontinuity.
func TestCloseWithNoRoomResumes(t *testing.T) {
	ctx := relCtx(t, 60*time.Second)
	samples, info := readAllSamples(t, mediatest.Testdata("bframes.mp4"))
	inner := memblob.OpenBucket(nil)
	defer inner.Close()
	in := hangFirstSegment(inner)
	cfg := livechunk.Config{
		SegmentDuration: time.Second, Playlist: hls.Event, Timescale: info.Timescale, SPS: info.SPS, PPS: info.PPS,
		Sink: oneInFlight(sink.Block),
	}
	p, err := livechunk.NewPipeline(ctx, in.Bucket(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	dead, cancel := context.WithCancel(ctx)
	cancel()
	wctx := ctx
	for _, s := range samples {
		if wctx == ctx && p.Stats().Chunker.Segments > 0 {
			// Segment 0 went to the sink: once its upload hangs, the next
			// segment finds no room.
			if err := in.WaitHung(ctx, 1); err != nil {
				t.Fatal(err)
			}
			wctx = dead
		}
		if err := p.Write(wctx, s); err != nil && !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
	}
	if err := p.Close(dead); err == nil {
		t.Fatal("Close with an ended context and segments held: no error")
	}
	in.Release()
	if text, err := inner.ReadAll(ctx, "index.m3u8"); err == nil && strings.Contains(string(text), "#EXT-X-ENDLIST") {
		t.Fatalf("the playlist was finished though segments never went to the sink:\n%s", text)
	}
	p2, err := livechunk.NewPipeline(ctx, inner, cfg)
	if err != nil {
		t.Fatalf("resuming: %v", err)
	}
	for _, s := range samples {
		if err := p2.Write(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := p2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if m, _ := finalPlaylist(t, inner, "index.m3u8"); !m.Ended || len(m.Entries) == 0 {
		t.Errorf("resumed playlist: %d entries, ended %v", len(m.Entries), m.Ended)
	}
}

// listingOutput is a dirOutput that lists what it stored.
type listingOutput struct{ *dirOutput }

func (o listingOutput) StoredNames(context.Context) ([]string, error) {
	entries, err := os.ReadDir(o.dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, err
}

// TestOutputListerResumes: a VOD recording into a destination of the
// caller's lists nothing until Close; aborted, it is resumed by a pipeline
// that numbers after what the destination holds (an OutputLister),
// without overwriting any of it. Without the lister the resumed pipeline
// would take the stored names again (dirOutput refuses that).
func TestOutputListerResumes(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	out := listingOutput{&dirOutput{dir: t.TempDir()}}
	samples, info := readAllSamples(t, mediatest.Testdata("bframes.mp4"))
	cfg := livechunk.Config{SegmentDuration: time.Second, Playlist: hls.VOD, Output: out,
		Timescale: info.Timescale, SPS: info.SPS, PPS: info.PPS}
	p, err := livechunk.NewPipeline(ctx, b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range samples {
		if err := p.Write(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	stored := len(out.names)
	if stored < 2 {
		t.Fatalf("the first run stored %d objects", stored)
	}
	p2, err := livechunk.NewPipeline(ctx, b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range samples {
		if err := p2.Write(ctx, s); err != nil {
			t.Fatalf("resumed Write: %v", err)
		}
	}
	if err := p2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if len(out.names) <= stored {
		t.Errorf("the resumed run stored nothing")
	}
}

// TestClosedPipelineRefuses: after Abort (or Close) every writing call is
// chunker.ErrClosed, and nothing more reaches the destination.
func TestClosedPipelineRefuses(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	out := &dirOutput{dir: t.TempDir()}
	samples, info := readAllSamples(t, mediatest.Testdata("bframes.mp4"))
	p, err := livechunk.NewPipeline(ctx, b, livechunk.Config{SegmentDuration: time.Second, Output: out,
		Timescale: info.Timescale, SPS: info.SPS, PPS: info.PPS})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range samples[:20] {
		if err := p.Write(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	before := len(out.names)
	for name, call := range map[string]func() error{
		"Write":        func() error { return p.Write(ctx, samples[20]) },
		"Flush":        func() error { return p.Flush(ctx) },
		"Break":        func() error { return p.Break(ctx) },
		"Continuation": func() error { _, err := p.Continuation(); return err },
	} {
		if err := call(); !errors.Is(err, chunker.ErrClosed) {
			t.Errorf("%s after Abort: %v, want chunker.ErrClosed", name, err)
		}
	}
	if len(out.names) != before {
		t.Errorf("objects stored after Abort: %v", out.names[before:])
	}
}

// TestConfigRefused: values no default stands for are refused by
// NewPipeline with chunker.ErrInvalidConfig, and Record of a nil source
// too.
func TestConfigRefused(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	for name, cfg := range map[string]livechunk.Config{
		"playlist named like an init":  {PlaylistName: "init-0.mp4"},
		"playlist named like segment":  {PlaylistName: "seg-000001.m4s"},
		"playlist in a directory":      {PlaylistName: "sub/i.m3u8"},
		"playlist climbing out":        {PlaylistName: "../x.m3u8"},
		"playlist named as the master": {PlaylistName: "master.m3u8"},
		"multivariant as the playlist": {MultivariantName: "index.m3u8"},
		"negative window":              {Window: -time.Second},
		"negative progress interval":   {ProgressInterval: -time.Second},
		"playlist name with a #":       {PlaylistName: "a#b.m3u8"},
		"playlist name with a space":   {PlaylistName: "a b.m3u8"},
		"master name with a ?":         {MultivariantName: "a?b.m3u8"},
		"playlist name too long":       {PlaylistName: strings.Repeat("a", 300) + ".m3u8"},
		"negative start duration":      {StartDuration: -time.Second},
	} {
		if _, err := livechunk.NewPipeline(ctx, b, cfg); !errors.Is(err, chunker.ErrInvalidConfig) {
			t.Errorf("%s: %v, want chunker.ErrInvalidConfig", name, err)
		}
	}
	if _, err := livechunk.Record(ctx, b, nil, livechunk.Config{}); !errors.Is(err, chunker.ErrInvalidConfig) {
		t.Errorf("Record of a nil source: %v", err)
	}
	if keys := blobtest.Keys(t, b, ""); len(keys) != 0 {
		t.Errorf("refused configurations wrote %v", keys)
	}
}

// TestVODResumes: a VOD recording stopped before Close finished it (Abort,
// or a Close after a failed upload) keeps the list of what landed in an
// unfinished playlist, and the pipeline that resumes it writes a VOD
// playlist of every segment of both runs, which ffmpeg decodes.
func TestVODResumes(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	samples, info := readAllSamples(t, mediatest.Testdata("bframes.mp4"))
	for _, stop := range []string{"abort", "failed close"} {
		t.Run(stop, func(t *testing.T) {
			ctx := relCtx(t, 60*time.Second)
			inner := memblob.OpenBucket(nil)
			defer inner.Close()
			in := faultblob.New(inner, faultblob.Config{})
			cfg := livechunk.Config{SegmentDuration: time.Second, Playlist: hls.VOD,
				Timescale: info.Timescale, SPS: info.SPS, PPS: info.PPS}
			p, err := livechunk.NewPipeline(ctx, in.Bucket(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range samples {
				if err := p.Write(ctx, s); err != nil {
					t.Fatal(err)
				}
			}
			waitListed(t, p, 3)
			first := p.Stats().Playlist.Segments
			if stop == "abort" {
				if err := p.Abort(ctx); err != nil {
					t.Fatal(err)
				}
			} else {
				// The last segment's upload is refused for good.
				in.SetOutage(faultblob.WriteOps, gcerrors.PermissionDenied)
				if err := p.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				_ = p.Wait(ctx)
				in.EndOutage()
				if err := p.Close(ctx); err == nil {
					t.Fatal("Close after a refused upload: no error")
				}
			}
			p2, err := livechunk.NewPipeline(ctx, inner, cfg)
			if err != nil {
				t.Fatalf("resuming: %v", err)
			}
			// The encoder goes on (its clock too: ffmpeg, the judge, drops
			// pictures whose time goes back at a discontinuity).
			for _, s := range relLoop(samples, info.Timescale, 2)[len(samples):] {
				if err := p2.Write(ctx, s); err != nil {
					t.Fatal(err)
				}
			}
			if err := p2.Close(ctx); err != nil {
				t.Fatal(err)
			}
			m, text := finalPlaylist(t, inner, "index.m3u8")
			if !m.Ended || m.Type != "VOD" || len(m.Entries) != first+int(p2.Stats().Chunker.Segments) {
				t.Fatalf("final playlist: %d entries (%d from the first run, %d from the second), type %q, ended %v:\n%s",
					len(m.Entries), first, p2.Stats().Chunker.Segments, m.Type, m.Ended, text)
			}
			got := mediatest.FrameHashes(t, filepath.Join(materialize(t, inner, ""), "index.m3u8"))
			want := 0
			for _, e := range m.Entries {
				want += int(math.Round(e.Seconds * 30))
			}
			if len(got) != want {
				t.Errorf("decoded %d frames, the playlist lists %d", len(got), want)
			}
		})
	}
}

// TestRefusalReportedOnce: under the Fail policy a refusal of room is
// reported by the call that met it; once Wait has handed the held segment
// over, the next call reports nothing, and Continuation waits for that.
func TestRefusalReportedOnce(t *testing.T) {
	ctx := relCtx(t, 60*time.Second)
	samples, info := readAllSamples(t, mediatest.Testdata("bframes.mp4"))
	inner := memblob.OpenBucket(nil)
	defer inner.Close()
	in := hangFirstSegment(inner)
	p, err := livechunk.NewPipeline(ctx, in.Bucket(), livechunk.Config{
		SegmentDuration: time.Second, Playlist: hls.Event, Timescale: info.Timescale, SPS: info.SPS, PPS: info.PPS,
		Sink: oneInFlight(sink.Fail),
	})
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for ; i < len(samples); i++ {
		err := p.Write(ctx, samples[i])
		if errors.Is(err, sink.ErrOverflow) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if i == len(samples) {
		t.Fatal("no Write was refused")
	}
	if _, err := p.Continuation(); !errors.Is(err, chunker.ErrNotBetweenSegments) {
		t.Errorf("Continuation with a segment held: %v", err)
	}
	go func() {
		if in.WaitHung(ctx, 1) == nil {
			in.Release()
		}
	}()
	if err := p.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	// The next picture closes no segment: nothing to report.
	if err := p.Write(ctx, samples[i+1]); err != nil {
		t.Errorf("Write after Wait handed the held segment over: %v", err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestAbortListsHeldBackPlaylist: a live or event recording whose first
// playlist write StartDuration holds back is listed by Abort, so that what
// landed is not lost to the recording that resumes it.
func TestAbortListsHeldBackPlaylist(t *testing.T) {
	samples, info := readAllSamples(t, mediatest.Testdata("bframes.mp4"))
	for _, typ := range []hls.Type{hls.Live, hls.Event} {
		t.Run(typ.String(), func(t *testing.T) {
			ctx := context.Background()
			b := memblob.OpenBucket(nil)
			defer b.Close()
			p, err := livechunk.NewPipeline(ctx, b, livechunk.Config{
				SegmentDuration: time.Second, Playlist: typ, StartDuration: time.Hour,
				Timescale: info.Timescale, SPS: info.SPS, PPS: info.PPS,
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range samples {
				if err := p.Write(ctx, s); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			if err := p.Abort(ctx); err != nil {
				t.Fatal(err)
			}
			m, text := finalPlaylist(t, b, "index.m3u8")
			if m.Ended || len(m.Entries) != 3 {
				t.Errorf("after Abort: %d entries, ended %v; want the 3 landed, open:\n%s", len(m.Entries), m.Ended, text)
			}
		})
	}
}

// hangFirstSegment wraps inner so that the first upload of segment 0 hangs
// until Release: with room for one object in flight (oneInFlight), the
// next segment finds none.
func hangFirstSegment(inner *blob.Bucket) *faultblob.Injector {
	return faultblob.New(inner, faultblob.Config{Rules: []faultblob.Rule{{
		Ops: faultblob.OpWrite, Match: func(k string) bool { return k == "seg-000000.m4s" },
		Prob: 1, FirstN: 1, Action: faultblob.Hang,
	}}})
}

// oneInFlight is a sink that uploads one object at a time, with room for
// one, under the overflow policy o.
func oneInFlight(o sink.OverflowPolicy) sink.Config {
	return sink.Config{MaxInFlightBytes: 1, Concurrency: 1, Overflow: o}
}
