package livechunk_test

// Reliability tests: faults of the store, outages, crashes of the process,
// and a real S3 gateway. RELIABILITY.md summarises what they try and what
// was lost. Run them with: go test -race -run Reliab .

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"

	"github.com/livechunk/livechunk"
	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/internal/testkit/azurite"
	"github.com/livechunk/livechunk/internal/testkit/faultblob"
	"github.com/livechunk/livechunk/internal/testkit/hlscheck"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"github.com/livechunk/livechunk/internal/testkit/versitygw"
	"github.com/livechunk/livechunk/sink"
)

// relCtx bounds a reliability test.
func relCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// relLoop returns passes copies of samples, each shifted to follow the
// previous one, as one continuous stream.
func relLoop(samples []chunker.Sample, timescale uint32, passes int) []chunker.Sample {
	span := samples[len(samples)-1].DTS - samples[0].DTS + int64(timescale)/30
	out := make([]chunker.Sample, 0, len(samples)*passes)
	for p := range int64(passes) {
		for _, s := range samples {
			s.DTS += p * span
			s.PTS += p * span
			out = append(out, s)
		}
	}
	return out
}

// waitListed waits up to 20 s until p's playlist lists n segments.
func waitListed(t *testing.T, p *livechunk.Pipeline, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for p.Stats().Playlist.Segments < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d segments not listed: %+v", n, p.Stats())
		}
		time.Sleep(time.Millisecond) // polling an observable condition
	}
}

// writeSamples writes samples to p.
func writeSamples(ctx context.Context, t *testing.T, p *livechunk.Pipeline, samples []chunker.Sample) {
	t.Helper()
	for _, s := range samples {
		if err := p.Write(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
}

// playlistWatch checks every version of a playlist a reader can see: each
// must pass hlscheck, be a legal update of the previous one, and reference
// only objects that exist in the bucket.
type playlistWatch struct {
	t       *testing.T
	b       *blob.Bucket // read directly, without faults
	key     string
	prefix  string
	mu      sync.Mutex
	prev    *hlscheck.Media
	text    string
	checked map[string]bool // objects seen to exist (immutable once written)
	// versions counts distinct versions checked; refs the references.
	versions, refs int
	problems       []string
}

func newWatch(t *testing.T, b *blob.Bucket, prefix, name string) *playlistWatch {
	return &playlistWatch{t: t, b: b, key: prefix + name, prefix: prefix, checked: map[string]bool{}}
}

// check reads the playlist and checks the version it finds. Reads are
// serialized, so that versions are compared in the order they were read.
func (w *playlistWatch) check(ctx context.Context) {
	w.mu.Lock()
	defer w.mu.Unlock()
	text, err := w.b.ReadAll(ctx, w.key)
	if err != nil {
		return // not written yet
	}
	if string(text) == w.text {
		return
	}
	fail := func(format string, a ...any) {
		if len(w.problems) < 20 {
			w.problems = append(w.problems, fmt.Sprintf(format, a...))
		}
	}
	m, errs := hlscheck.Check(string(text))
	if w.prev != nil {
		errs = append(errs, hlscheck.CheckUpdate(w.prev, m)...)
	}
	for _, e := range errs {
		fail("playlist version %d: %v", w.versions+1, e)
	}
	for _, e := range m.Entries {
		for _, k := range []string{e.URI, e.Map} {
			if k == "" || w.checked[k] {
				continue
			}
			w.refs++
			if ok, err := w.b.Exists(ctx, w.prefix+k); err != nil || !ok {
				fail("playlist version %d references %s, which does not exist (%v)", w.versions+1, k, err)
				continue
			}
			w.checked[k] = true
		}
	}
	w.prev, w.text = m, string(text)
	w.versions++
}

// poll checks the playlist until ctx ends, as a player would.
func (w *playlistWatch) poll(ctx context.Context) {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		w.check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (w *playlistWatch) report() {
	w.t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.problems {
		w.t.Error(p)
	}
}

// finalEntries checks the final playlist and returns it.
func finalPlaylist(t *testing.T, b *blob.Bucket, key string) (*hlscheck.Media, string) {
	t.Helper()
	text, err := b.ReadAll(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	m, errs := hlscheck.Check(string(text))
	for _, e := range errs {
		t.Errorf("final playlist: %v", e)
	}
	return m, string(text)
}

// TestReliabilityFaultyStore records real media through the whole pipeline
// into a store that fails, stalls, loses acknowledgements and hangs. Every
// playlist version that lands is checked when it lands (and by a polling
// reader): valid, a legal update, and referencing only existing objects. At
// the end every segment is listed once, in order, and ffmpeg decodes the
// recording to the input's frames.
func TestReliabilityFaultyStore(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	samples, info := readAllSamples(t, mediatest.Testdata("bframes.mp4")) // 4 s, 4 GOPs
	const passes = 30
	stream := relLoop(samples, info.Timescale, passes)
	want := wantHashes(t, mediatest.Testdata("bframes.mp4"))
	media := func(k string) bool { return !strings.HasSuffix(k, ".m3u8") }
	playlists := func(k string) bool { return strings.HasSuffix(k, ".m3u8") }
	rules := []faultblob.Rule{
		{Name: "reset", Ops: faultblob.OpWrite, Match: media, Prob: 0.15, FirstN: 2, Code: gcerrors.Unknown},
		{Name: "body", Ops: faultblob.OpData, Match: media, Prob: 0.05, FirstN: 1, Code: gcerrors.Unknown},
		{Name: "close-500", Ops: faultblob.OpCommit, Match: media, Prob: 0.1, FirstN: 2, Code: gcerrors.Internal},
		{Name: "slowdown", Ops: faultblob.OpCommit, Match: media, Prob: 0.05, FirstN: 2, Code: gcerrors.ResourceExhausted},
		{Name: "lostack", Ops: faultblob.OpCommit, Match: media, Prob: 0.05, FirstN: 1, Action: faultblob.LostAck},
		{Name: "hang", Ops: faultblob.OpCommit, Match: media, Prob: 0.02, FirstN: 1, Action: faultblob.Hang},
		{Name: "latency", Ops: faultblob.AllOps, Prob: 0.3, Action: faultblob.Delay, Delay: time.Millisecond},
		{Name: "playlist-latency", Ops: faultblob.OpCommit, Match: playlists, Prob: 0.2, Action: faultblob.Delay, Delay: 3 * time.Millisecond},
		{Name: "playlist-reset", Ops: faultblob.OpWrite, Match: playlists, Prob: 0.05, Code: gcerrors.Unknown},
		{Name: "playlist-500", Ops: faultblob.OpCommit, Match: playlists, Prob: 0.1, Code: gcerrors.Internal},
		{Name: "playlist-lostack", Ops: faultblob.OpCommit, Match: playlists, Prob: 0.05, Action: faultblob.LostAck},
	}
	for _, format := range []chunker.Format{chunker.FMP4, chunker.TS} {
		t.Run(format.String(), func(t *testing.T) {
			ctx := relCtx(t, 90*time.Second)
			inner := memblob.OpenBucket(nil)
			defer inner.Close()
			prefix := "live/cam1/"
			w := newWatch(t, inner, prefix, "index.m3u8")
			in := faultblob.New(inner, faultblob.Config{Seed: 11, Rules: rules, AfterCommit: func(key string) {
				if key == w.key {
					w.check(context.Background()) // every version, as it lands
				}
			}})
			pollCtx, stopPoll := context.WithCancel(ctx)
			var wg sync.WaitGroup
			wg.Go(func() { w.poll(pollCtx) })
			p, err := livechunk.NewPipeline(ctx, in.Bucket(), livechunk.Config{
				Format: format, SegmentDuration: time.Second, Prefix: prefix, Playlist: hls.Event,
				Timescale: info.Timescale, SPS: info.SPS, PPS: info.PPS,
				Sink: sink.Config{MaxInFlightBytes: 128 << 10, Retry: sink.Retry{
					MaxAttempts: 10, InitialBackoff: 2 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
					AttemptTimeout: 300 * time.Millisecond}},
			})
			if err != nil {
				t.Fatal(err)
			}
			writeSamples(ctx, t, p, stream)
			if err := p.Close(ctx); err != nil {
				t.Fatal(err)
			}
			stopPoll()
			wg.Wait()
			w.report()
			st := p.Stats()
			m, _ := finalPlaylist(t, inner, prefix+"index.m3u8")
			if !m.Ended || int64(len(m.Entries)) != st.Chunker.Segments || len(m.Entries) < 4*passes {
				t.Fatalf("final playlist: %d entries, ended %v; %d segments cut", len(m.Entries), m.Ended, st.Chunker.Segments)
			}
			for i, e := range m.Entries {
				if want := filepath.Base(sink.SegmentKey("", format, uint64(i))); e.URI != want {
					t.Fatalf("entry %d is %s, want %s", i, e.URI, want)
				}
			}
			hangs, injected := 0, 0
			for _, r := range in.Records() {
				if r.Rule != "" && r.Rule != "latency" && r.Rule != "playlist-latency" {
					injected++
				}
				if r.Action == faultblob.Hang {
					hangs++
				}
			}
			if st.Sink.Retries == 0 || st.Sink.AttemptTimeouts != int64(hangs) || st.Sink.Failed != 0 {
				t.Errorf("sink stats %+v with %d hangs", st.Sink, hangs)
			}
			if st.Playlist.WriteRetries == 0 || st.Playlist.WriteFailures != 0 {
				t.Errorf("playlist stats %+v", st.Playlist)
			}
			dir := materialize(t, inner, prefix)
			got := mediatest.FrameHashes(t, filepath.Join(dir, "index.m3u8"))
			var wantAll []string
			for range passes {
				wantAll = append(wantAll, want...)
			}
			if d := mediatest.EqualHashes(wantAll, got); d != "" {
				t.Errorf("decoded recording differs from the input: %s", d)
			}
			t.Logf("%v: %d segments, %d failures injected (%d hangs), %d upload retries, %d playlist write retries, %d playlist versions checked, %d references, %d frames decoded",
				format, len(m.Entries), injected, hangs, st.Sink.Retries, st.Playlist.WriteRetries, w.versions, w.refs, len(got))
		})
	}
}

// TestReliabilityPlaylistWriteFailures makes a third of the playlist
// writes fail. Transient errors (500s) are retried with back-off: every
// version lands and the final playlist lists everything. Permanent errors
// (403) are not retried: readers still only ever see valid playlists that
// reference existing objects, a failed write is repaired by the next one,
// and a failure of the last one is reported by Close, never silent.
func TestReliabilityPlaylistWriteFailures(t *testing.T) {
	ctx := relCtx(t, 60*time.Second)
	samples, info := readAllSamples(t, mediatest.Testdata("bframes.mp4"))
	stream := relLoop(samples, info.Timescale, 10)
	for _, code := range []gcerrors.ErrorCode{gcerrors.Internal, gcerrors.PermissionDenied} {
		permanent := code == gcerrors.PermissionDenied
		for _, seed := range []uint64{1, 2, 3, 4} {
			inner := memblob.OpenBucket(nil)
			w := newWatch(t, inner, "", "index.m3u8")
			in := faultblob.New(inner, faultblob.Config{Seed: seed, Rules: []faultblob.Rule{
				{Name: "playlist", Ops: faultblob.OpCommit, Match: func(k string) bool { return k == "index.m3u8" }, Prob: 0.33, Code: code},
			}, AfterCommit: func(key string) {
				if key == "index.m3u8" {
					w.check(context.Background())
				}
			}})
			p, err := livechunk.NewPipeline(ctx, in.Bucket(), livechunk.Config{
				SegmentDuration: time.Second, Playlist: hls.Event, Timescale: info.Timescale, SPS: info.SPS, PPS: info.PPS,
				Sink: sink.Config{Retry: sink.Retry{InitialBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond}},
			})
			if err != nil {
				t.Fatal(err)
			}
			writeSamples(ctx, t, p, stream)
			closeErr := p.Close(ctx)
			w.report()
			failed := 0
			var last faultblob.Record
			for _, r := range in.Records() {
				if r.Key == "index.m3u8" && r.Op == faultblob.OpCommit {
					last = r
					if r.Rule == "playlist" {
						failed++
					}
				}
			}
			m, _ := finalPlaylist(t, inner, "index.m3u8")
			lastFailed := last.Rule == "playlist"
			st := p.Stats().Playlist
			switch {
			case !permanent && (closeErr != nil || lastFailed || st.WriteFailures != 0 || st.WriteRetries != failed):
				t.Errorf("%v seed %d: transient faults not ridden out: Close %v, last write failed %v, stats %+v, %d faults",
					code, seed, closeErr, lastFailed, st, failed)
			case permanent && st.WriteRetries != 0:
				t.Errorf("%v seed %d: a permanent error was retried %d times", code, seed, st.WriteRetries)
			case lastFailed && closeErr == nil:
				t.Errorf("%v seed %d: the final playlist write failed but Close returned nil", code, seed)
			case !lastFailed && closeErr != nil:
				t.Errorf("%v seed %d: Close: %v", code, seed, closeErr)
			case !lastFailed && (len(m.Entries) != 40 || !m.Ended):
				t.Errorf("%v seed %d: final playlist has %d entries, ended %v", code, seed, len(m.Entries), m.Ended)
			}
			t.Logf("%v seed %d: %d of %d playlist attempts failed, %d retried; final write failed: %v; final playlist lists %d of 40 segments; Close: %v",
				code, seed, failed, last.N, st.WriteRetries, lastFailed, len(m.Entries), closeErr)
			inner.Close()
		}
	}
}

// TestReliabilitySpoolOutage keeps the store unreachable for most of a
// recording: segments beyond the in-flight bound spill to the disk spool
// without slowing the writer, and when the store returns they drain in
// order; the final playlist lists everything and decodes to the input.
func TestReliabilitySpoolOutage(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	ctx := relCtx(t, 60*time.Second)
	samples, info := readAllSamples(t, mediatest.Testdata("bframes.mp4"))
	const passes = 10
	stream := relLoop(samples, info.Timescale, passes)
	inner := memblob.OpenBucket(nil)
	defer inner.Close()
	w := newWatch(t, inner, "", "index.m3u8")
	in := faultblob.New(inner, faultblob.Config{AfterCommit: func(key string) {
		if key == w.key {
			w.check(context.Background())
		}
	}})
	spool := filepath.Join(t.TempDir(), "spool")
	p, err := livechunk.NewPipeline(ctx, in.Bucket(), livechunk.Config{
		SegmentDuration: time.Second, Playlist: hls.Event, Timescale: info.Timescale, SPS: info.SPS, PPS: info.PPS,
		Sink: sink.Config{Overflow: sink.Spool, SpoolDir: spool, MaxInFlightBytes: 64 << 10,
			Retry: sink.Retry{InitialBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond}},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The store goes away after the first pass.
	for i, s := range stream {
		if i == len(samples) {
			in.SetOutage(faultblob.AllOps, gcerrors.Unknown)
		}
		if err := p.Write(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	st := p.Stats().Sink
	if st.Spooled < 20 || st.BlockedWrites != 0 {
		t.Fatalf("during the outage: %+v", st)
	}
	in.EndOutage()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	w.report()
	m, _ := finalPlaylist(t, inner, "index.m3u8")
	if len(m.Entries) != 4*passes || !m.Ended {
		t.Fatalf("final playlist: %d entries, ended %v", len(m.Entries), m.Ended)
	}
	dir := materialize(t, inner, "")
	got := mediatest.FrameHashes(t, filepath.Join(dir, "index.m3u8"))
	if len(got) != passes*len(samples) {
		t.Errorf("decoded %d frames, want %d", len(got), passes*len(samples))
	}
	if left, _ := os.ReadDir(spool); len(left) != 0 {
		t.Errorf("spool not drained: %d files", len(left))
	}
	st = p.Stats().Sink
	t.Logf("outage: %d of %d segments spooled (peak %d bytes on disk, %d in memory), %d retries; all %d listed and decoded",
		st.Spooled, len(m.Entries), st.PeakSpoolBytes, st.PeakInFlightBytes, st.Retries, len(m.Entries))
}

// TestReliabilitySpoolResume: the process dies during an outage with
// segments in the spool. A new pipeline on the same destination and spool
// uploads and lists them first, continues the numbering after them, marks
// the gaps as discontinuities, and the recording decodes.
func TestReliabilitySpoolResume(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	ctx := relCtx(t, 60*time.Second)
	samples, info := readAllSamples(t, mediatest.Testdata("bframes.mp4"))
	stream := relLoop(samples, info.Timescale, 6)
	inner := memblob.OpenBucket(nil)
	defer inner.Close()
	spool := filepath.Join(t.TempDir(), "spool")
	cfg := livechunk.Config{
		SegmentDuration: time.Second, Playlist: hls.Event, Timescale: info.Timescale, SPS: info.SPS, PPS: info.PPS,
		Sink: sink.Config{Overflow: sink.Spool, SpoolDir: spool, MaxInFlightBytes: 64 << 10,
			Retry: sink.Retry{InitialBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond}},
	}
	in := faultblob.New(inner, faultblob.Config{})
	p1, err := livechunk.NewPipeline(ctx, in.Bucket(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	half := 3 * len(samples)
	// The first pass closes three segments (the fourth stays open until
	// the next keyframe); they land and are listed before the outage.
	for _, s := range stream[:len(samples)] {
		if err := p1.Write(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	waitListed(t, p1, 3)
	in.SetOutage(faultblob.AllOps, gcerrors.Unknown)
	for _, s := range stream[len(samples):half] {
		if err := p1.Write(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	before := snapshot(t, inner, "")
	m1, _ := finalPlaylist(t, inner, "index.m3u8")
	if len(m1.Entries) != 3 {
		t.Fatalf("%d segments listed before the crash, want 3", len(m1.Entries))
	}
	// The process dies: Abort with a dead context gives up every upload;
	// what was in memory is lost, the spool stays.
	dead, cancel := context.WithCancel(ctx)
	cancel()
	_ = p1.Abort(dead)
	spooled := p1.Stats().Sink.Spooled
	if spooled == 0 {
		t.Fatal("nothing was spooled")
	}

	p2, err := livechunk.NewPipeline(ctx, inner, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stream[half:] {
		if err := p2.Write(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := p2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	m, _ := finalPlaylist(t, inner, "index.m3u8")
	for i, e := range m1.Entries {
		if m.Entries[i].URI != e.URI || m.Entries[i].Seconds != e.Seconds {
			t.Fatalf("entry %d changed: %+v -> %+v", i, e, m.Entries[i])
		}
	}
	for k, v := range before {
		if strings.HasSuffix(k, ".m3u8") {
			continue
		}
		if now, err := inner.ReadAll(ctx, k); err != nil || !bytes.Equal(now, v) {
			t.Errorf("%s changed after the restart", k)
		}
	}
	recovered := int(p2.Stats().Sink.Recovered)
	if recovered < int(spooled) || !m.Entries[len(m1.Entries)].Discontinuity || !m.Ended {
		t.Errorf("%d spooled, %d recovered; entry after the crash %+v", spooled, recovered, m.Entries[len(m1.Entries)])
	}
	var nums []int
	for _, e := range m.Entries {
		n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(e.URI, "seg-"), ".m4s"))
		nums = append(nums, n)
	}
	if !slices.IsSorted(nums) || len(slices.Compact(slices.Clone(nums))) != len(nums) {
		t.Errorf("segment numbers %v", nums)
	}
	dir := materialize(t, inner, "")
	got := mediatest.FrameHashes(t, filepath.Join(dir, "index.m3u8"))
	frames := 0
	for _, e := range m.Entries {
		frames += int(e.Seconds*30 + 0.5)
	}
	if len(got) != frames {
		t.Errorf("decoded %d frames, the playlist lists %d", len(got), frames)
	}
	t.Logf("spool resume: %d listed before the crash, %d recovered from the spool, %d segments at the end (numbers %v), %d frames decoded",
		len(m1.Entries), recovered, len(m.Entries), nums, len(got))
}

// TestReliabilityCrashCLI records from a pipe with the livechunk command,
// kills it with SIGKILL mid-stream, starts it again on the same
// destination with the rest of the stream, and checks that every segment
// listed before the kill is still listed unchanged, nothing was
// overwritten, the numbering continues after a discontinuity, and ffmpeg
// decodes the result without errors to as many frames as the listed
// segments hold.
func TestReliabilityCrashCLI(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	mediatest.RequireTool(t, "ffprobe")
	ctx := relCtx(t, 120*time.Second)
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "livechunk")
	build := []string{"build", "-o", bin}
	if raceEnabled() {
		// Reuses the packages the test binary was built from (and checks
		// the command for races as well).
		build = append(build, "-race")
	}
	if out, err := exec.CommandContext(ctx, "go", append(build, "./cmd/livechunk")...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	input := filepath.Join(tmp, "in.ts")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=20",
		"-c:v", "libx264", "-preset", "veryfast", "-crf", "30", "-pix_fmt", "yuv420p",
		"-x264-params", "keyint=30:min-keyint=30:scenecut=0", "-threads", "2", "-f", "mpegts", input)
	ts, err := os.ReadFile(input)
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(tmp, "dest")
	playlist := filepath.Join(dest, "index.m3u8")
	listed := func() *hlscheck.Media {
		text, err := os.ReadFile(playlist)
		if err != nil {
			return &hlscheck.Media{}
		}
		m, _ := hlscheck.Check(string(text))
		return m
	}
	args := []string{"record", "-format", "fmp4", "-segment", "1s", "-event", "-", dest}

	// Run 1: feed about 45 % of the stream, wait until the playlist lists 6
	// segments, then SIGKILL.
	cut := len(ts) * 45 / 100 / 188 * 188
	cmd := exec.CommandContext(ctx, bin, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var log1 bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log1, &log1
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		for off := 0; off < cut; off += 188 * 64 {
			if _, err := stdin.Write(ts[off:min(off+188*64, cut)]); err != nil {
				return
			}
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for len(listed().Entries) < 6 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the playlist never listed 6 segments:\n%s", log1.String())
		}
		time.Sleep(5 * time.Millisecond) // polling the file: an observable condition
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	stdin.Close()
	text1, _ := os.ReadFile(playlist)
	m1, errs := hlscheck.Check(string(text1))
	for _, e := range errs {
		t.Errorf("playlist after the kill: %v", e)
	}
	before := hashObjects(t, dest)

	// Run 2: the rest of the stream, to its end.
	cmd = exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = bytes.NewReader(ts[cut:])
	out2, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("second run: %v\n%s", err, out2)
	}
	text2, _ := os.ReadFile(playlist)
	m2, errs := hlscheck.Check(string(text2))
	for _, e := range errs {
		t.Errorf("final playlist: %v", e)
	}
	if !m2.Ended || len(m2.Entries) <= len(m1.Entries) || m2.MediaSeq != m1.MediaSeq {
		t.Fatalf("final playlist: %d entries (%d before), ended %v, media sequence %d (%d before)",
			len(m2.Entries), len(m1.Entries), m2.Ended, m2.MediaSeq, m1.MediaSeq)
	}
	for i, e := range m1.Entries {
		n := m2.Entries[i]
		if n.URI != e.URI || n.Seconds != e.Seconds || n.Map != e.Map || n.Seq != e.Seq {
			t.Errorf("entry %d listed before the kill changed: %+v -> %+v", i, e, n)
		}
	}
	resumed := m2.Entries[len(m1.Entries)]
	if !resumed.Discontinuity || resumed.Seq != m1.Entries[len(m1.Entries)-1].Seq+1 {
		t.Errorf("first resumed entry %+v: want a discontinuity and the next media sequence number", resumed)
	}
	maxBefore := -1
	for k := range before {
		if n, ok := segNumber(k); ok {
			maxBefore = max(maxBefore, n)
		}
	}
	if n, _ := segNumber(resumed.URI); n <= maxBefore {
		t.Errorf("resumed segment %s does not follow the highest existing one (%d)", resumed.URI, maxBefore)
	}
	after := hashObjects(t, dest)
	for k, h := range before {
		if after[k] != h {
			t.Errorf("%s was overwritten or removed by the second run", k)
		}
	}

	// ffmpeg decodes the whole recording without a single error, to as
	// many frames as the listed segments hold.
	dec := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-i", playlist,
		"-map", "0:v:0", "-f", "framemd5", "-")
	var decOut, decErr bytes.Buffer
	dec.Stdout, dec.Stderr = &decOut, &decErr
	if err := dec.Run(); err != nil || decErr.Len() != 0 {
		t.Fatalf("ffmpeg decode: %v\n%s", err, decErr.String())
	}
	decoded := 0
	for _, l := range strings.Split(decOut.String(), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			decoded++
		}
	}
	listedFrames := 0
	for _, e := range m2.Entries {
		listedFrames += segmentFrames(t, dest, e)
	}
	if decoded != listedFrames {
		t.Errorf("decoded %d frames, the listed segments hold %d", decoded, listedFrames)
	}
	t.Logf("SIGKILL after %d listed segments; resumed at %s; final %d segments, %d frames of 600 decoded (%d lost around the kill)",
		len(m1.Entries), resumed.URI, len(m2.Entries), decoded, 600-decoded)
}

// raceEnabled reports whether the test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" && s.Value == "true" {
			return true
		}
	}
	return false
}

// hashObjects returns the SHA-256 of every segment and init section in dir.
func hashObjects(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		name := de.Name()
		if (strings.HasPrefix(name, "seg-") && strings.HasSuffix(name, ".m4s")) ||
			(strings.HasPrefix(name, "init-") && strings.HasSuffix(name, ".mp4")) {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			out[name] = sha256.Sum256(b)
		}
	}
	return out
}

func segNumber(name string) (int, bool) {
	name = filepath.Base(name)
	if !strings.HasPrefix(name, "seg-") || !strings.HasSuffix(name, ".m4s") {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, "seg-"), ".m4s"))
	return n, err == nil
}

// segmentFrames counts the video packets of one listed segment (its init
// section and its bytes) with ffprobe.
func segmentFrames(t *testing.T, dir string, e hlscheck.Entry) int {
	t.Helper()
	var parts [][]byte
	for _, name := range []string{e.Map, e.URI} {
		if name == "" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, b)
	}
	f := mediatest.ConcatFiles(t, "seg.mp4", parts...)
	out := mediatest.Run(t, "ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
		"-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", f)
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("ffprobe %s: %q", e.URI, out)
	}
	return n
}

// TestReliabilityVersityGW runs the pipeline against a real S3 gateway
// (versitygw, posix backend) on 127.0.0.1, opened by URL with request
// signing: recordings in both formats decode to the input, a large object
// goes up in multipart, and when the gateway is killed mid-recording the
// segments spill to the spool and drain after it restarts.
func TestReliabilityVersityGW(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	ctx := relCtx(t, 90*time.Second)
	g := versitygw.Start(t)
	b := g.Open(t, ctx, "media")
	in := mediatest.Testdata("bframes.mp4")
	want := wantHashes(t, in)

	t.Run("record", func(t *testing.T) {
		for _, format := range []chunker.Format{chunker.FMP4, chunker.TS} {
			prefix := "rec-" + format.String() + "/"
			st, err := livechunk.Record(ctx, b, openSource(t, in), livechunk.Config{
				Format: format, SegmentDuration: time.Second, Prefix: prefix, Playlist: hls.VOD})
			if err != nil {
				t.Fatalf("%v: %v\n%s", format, err, g.Log())
			}
			checkPlaylist(t, b, prefix+"index.m3u8")
			dir := materialize(t, b, prefix)
			if d := mediatest.EqualHashes(want, mediatest.FrameHashes(t, filepath.Join(dir, "index.m3u8"))); d != "" {
				t.Errorf("%v: %s", format, d)
			}
			a, err := b.Attributes(ctx, prefix+sink.SegmentKey("", format, 0))
			if err != nil || a.ContentType != map[chunker.Format]string{chunker.FMP4: "video/iso.segment", chunker.TS: "video/mp2t"}[format] ||
				!strings.Contains(a.CacheControl, "immutable") {
				t.Errorf("%v: attributes %+v, %v", format, a, err)
			}
			t.Logf("%v: %d segments through versitygw", format, st.Chunker.Segments)
		}
	})

	t.Run("multipart", func(t *testing.T) {
		// 20 MiB is over the S3 upload manager's multipart threshold
		// (16 MiB) and makes three 8 MiB parts.
		data := bytes.Repeat([]byte("livechunk multipart "), 20<<20/20)
		var events []sink.Event
		s := sink.New(b, sink.Config{Prefix: "big", OnDurable: func(ev sink.Event) { events = append(events, ev) }})
		seg := &chunker.Segment{Seq: 1, Format: chunker.TS, Data: data, Timescale: 90000, Duration: 90000, Frames: 1, Keyframes: 1}
		if err := s.WriteSegment(ctx, seg); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(ctx); err != nil {
			t.Fatalf("%v\n%s", err, g.Log())
		}
		got, err := b.ReadAll(ctx, "big/seg-000001.ts")
		if err != nil || !bytes.Equal(got, data) || len(events) != 1 {
			t.Fatalf("read back %d bytes, %v; %d events", len(got), err, len(events))
		}
		a, err := b.Attributes(ctx, "big/seg-000001.ts")
		if err != nil {
			t.Fatal(err)
		}
		parts := ""
		if i := strings.LastIndex(a.ETag, "-"); i >= 0 {
			parts = strings.Trim(a.ETag[i+1:], `"`)
		}
		if parts == "" {
			t.Errorf("ETag %s: not a multipart upload", a.ETag)
		}
		t.Logf("20 MiB object stored in %s parts (ETag %s)", parts, a.ETag)
	})

	t.Run("outage", func(t *testing.T) {
		samples, info := readAllSamples(t, in)
		const passes = 8
		stream := relLoop(samples, info.Timescale, passes)
		spool := filepath.Join(t.TempDir(), "spool")
		p, err := livechunk.NewPipeline(ctx, b, livechunk.Config{
			SegmentDuration: time.Second, Prefix: "outage/", Playlist: hls.Event,
			Timescale: info.Timescale, SPS: info.SPS, PPS: info.PPS,
			Sink: sink.Config{Overflow: sink.Spool, SpoolDir: spool, MaxInFlightBytes: 64 << 10,
				Retry: sink.Retry{InitialBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, AttemptTimeout: 5 * time.Second}},
		})
		if err != nil {
			t.Fatal(err)
		}
		writeSamples(ctx, t, p, stream[:2*len(samples)])
		waitListed(t, p, 4)
		listed := p.Stats().Playlist.Segments
		g.Kill() // the store disappears
		writeSamples(ctx, t, p, stream[2*len(samples):])
		st := p.Stats().Sink
		if st.Spooled == 0 || st.BlockedWrites != 0 {
			t.Errorf("while the gateway was down: %+v", st)
		}
		g.Restart() // and comes back, with what it had stored
		if err := p.Close(ctx); err != nil {
			t.Fatalf("%v\n%s", err, g.Log())
		}
		m := checkPlaylist(t, b, "outage/index.m3u8")
		if len(m.Entries) != 4*passes || !m.Ended {
			t.Fatalf("final playlist: %d entries, ended %v", len(m.Entries), m.Ended)
		}
		dir := materialize(t, b, "outage/")
		got := mediatest.FrameHashes(t, filepath.Join(dir, "index.m3u8"))
		var wantAll []string
		for range passes {
			wantAll = append(wantAll, want...)
		}
		if d := mediatest.EqualHashes(wantAll, got); d != "" {
			t.Errorf("decoded: %s", d)
		}
		st = p.Stats().Sink
		t.Logf("gateway killed with %d segments listed: %d segments spooled (peak %d bytes), %d retries; all %d listed, %d frames decoded",
			listed, st.Spooled, st.PeakSpoolBytes, st.Retries, len(m.Entries), len(got))
	})
}

// TestReliabilityAzurite runs recordings in both formats against Azure Blob
// Storage as emulated by Azurite (azurite-blob from npm) on 127.0.0.1,
// through sink.Open and an azblob:// URL with shared-key signing: they
// decode to the input, with the right content types.
func TestReliabilityAzurite(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	ctx := relCtx(t, 90*time.Second)
	az := azurite.Start(t)
	b := az.Open(t, ctx, "media")
	// A write that Azure refuses (here: no such container) is an error.
	// gocloud's azureblob before v0.49.0 panicked in Writer.Close there
	// (a nil pipe), which took a server down at its first failed upload.
	missing, err := sink.Open(ctx, "azblob://absent?protocol=http&localemu=true&domain="+az.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer missing.Close()
	sum := md5.Sum([]byte("data"))
	if err := missing.WriteAll(ctx, "x", []byte("data"), &blob.WriterOptions{ContentMD5: sum[:]}); err == nil {
		t.Error("a write into a missing container succeeded")
	}
	in := mediatest.Testdata("bframes.mp4")
	want := wantHashes(t, in)
	for _, format := range []chunker.Format{chunker.FMP4, chunker.TS} {
		prefix := "rec-" + format.String() + "/"
		st, err := livechunk.Record(ctx, b, openSource(t, in), livechunk.Config{
			Format: format, SegmentDuration: time.Second, Prefix: prefix, Playlist: hls.Event})
		if err != nil {
			t.Fatalf("%v: %v\n%s", format, err, az.Log())
		}
		checkPlaylist(t, b, prefix+"index.m3u8")
		dir := materialize(t, b, prefix)
		if d := mediatest.EqualHashes(want, mediatest.FrameHashes(t, filepath.Join(dir, "index.m3u8"))); d != "" {
			t.Errorf("%v: %s", format, d)
		}
		a, err := b.Attributes(ctx, prefix+sink.SegmentKey("", format, 1))
		if err != nil || !strings.HasPrefix(a.ContentType, "video/") || !strings.Contains(a.CacheControl, "immutable") {
			t.Errorf("%v: attributes %+v, %v", format, a, err)
		}
		t.Logf("%v: %d segments through Azurite", format, st.Chunker.Segments)
	}
}
