package livechunk_test

// Browser playback tests: what livechunk writes must play in a real browser.
// Headless Chromium runs the embedded hls.js (internal/player) on Media
// Source Extensions; internal/testkit/browsertest drives it. Every test here needs
// ffmpeg and chromium, and is skipped without them unless
// LIVECHUNK_REQUIRE_TOOLS is set. Run them with: go test -run Playback .

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/livechunk/livechunk"
	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/internal/player"
	"github.com/livechunk/livechunk/internal/testkit/browsertest"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"github.com/livechunk/livechunk/internal/testkit/s3test"
	"github.com/livechunk/livechunk/sink"
	"github.com/livechunk/livechunk/source"
)

// The playback input: 12 s of 640x360 at 30 fps, H.264 High with B-frames
// (B-pyramid), an IDR every 2 s and no scene-cut keyframes, so that 2 s
// segments hold exactly one GOP each.
const (
	pbWidth    = 640
	pbHeight   = 360
	pbSeconds  = 12
	pbSegment  = 2 * time.Second
	pbSegments = pbSeconds / 2
	pbPrefix   = "rec/cam1/"
	// pbMinPlay is "more than two segment durations" of playback.
	pbMinPlay = 4.5
)

// playbackInput encodes the playback input with ffmpeg into a new MP4 file.
func playbackInput(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "input.mp4")
	mediatest.FFmpeg(t, "-f", "lavfi",
		"-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=30:duration=%d", pbWidth, pbHeight, pbSeconds),
		"-c:v", "libx264", "-profile:v", "high", "-preset", "veryfast", "-crf", "28", "-pix_fmt", "yuv420p",
		"-x264-params", "keyint=60:min-keyint=60:scenecut=0:bframes=3:b-pyramid=normal",
		"-threads", "2", p)
	return p
}

// playbackRequireTools skips (or, with LIVECHUNK_REQUIRE_TOOLS, fails) the
// test before any work when a tool is missing.
func playbackRequireTools(t *testing.T) {
	t.Helper()
	mediatest.RequireTool(t, "ffmpeg")
	mediatest.RequireTool(t, "chromium")
}

// playbackServer serves the recording under pbPrefix of b at /media/ and,
// when samePage is set, the player page at /player/ on the same origin.
// It returns the playlist base URL and the page URL ("" lets PlayHLS serve
// the page from another origin, so that CORS is exercised).
func playbackServer(t *testing.T, b *blob.Bucket, samePage bool) (mediaURL, pageURL string) {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/media/", http.StripPrefix("/media", hls.NewHandler(b, pbPrefix)))
	if samePage {
		mux.Handle("/player/", http.StripPrefix("/player", browsertest.Handler()))
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	if samePage {
		pageURL = srv.URL + "/player/"
	}
	return srv.URL + "/media/", pageURL
}

// playbackS3Bucket starts an in-process S3 server and opens a bucket on it
// the way a user would: an s3:// URL through sink.Open, with credentials
// from the environment.
func playbackS3Bucket(t *testing.T) *blob.Bucket {
	t.Helper()
	srv := s3test.Start(t, "media")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	u := "s3://media?endpoint=" + srv.URL + "&use_path_style=true&region=us-east-1&disable_https=true" +
		"&request_checksum_calculation=when_required&response_checksum_validation=when_required"
	b, err := sink.Open(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// recordVOD records input into b under pbPrefix as a VOD of segments of
// segDur, and returns its media playlist.
func recordVOD(t *testing.T, b *blob.Bucket, input string, format chunker.Format, segDur time.Duration) *hls.MediaPlaylist {
	t.Helper()
	src, err := source.Open(input, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, err := livechunk.Record(t.Context(), b, src, livechunk.Config{
		Format: format, SegmentDuration: segDur, Prefix: pbPrefix, Playlist: hls.VOD,
	}); err != nil {
		t.Fatalf("Record: %v", err)
	}
	pl, err := hls.LoadMedia(t.Context(), b, pbPrefix+"index.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

// playbackCheck asserts what every playback must show.
func playbackCheck(t *testing.T, res browsertest.Result) {
	t.Helper()
	if res.HLSVersion != player.HLSJSVersion {
		t.Errorf("page ran hls.js %q, want the embedded %s", res.HLSVersion, player.HLSJSVersion)
	}
	if res.VideoWidth != pbWidth || res.VideoHeight != pbHeight {
		t.Errorf("decoded picture %dx%d, want %dx%d", res.VideoWidth, res.VideoHeight, pbWidth, pbHeight)
	}
	for _, l := range res.Levels {
		if l.Width != pbWidth || l.Height != pbHeight || !strings.HasPrefix(l.VideoCodec, "avc1.64") {
			t.Errorf("variant as hls.js parsed it: %+v, want %dx%d avc1.64xxxx (High)", l, pbWidth, pbHeight)
		}
	}
	if len(res.ForeignRequests) > 0 {
		t.Errorf("the page requested something off 127.0.0.1: %v", res.ForeignRequests)
	}
}

// TestPlaybackVOD records the input as a VOD into a file bucket and into
// S3, as fMP4 and as MPEG-TS, and plays each recording's multivariant
// playlist in Chromium until every segment is buffered and the video has
// played past two segment durations: with the right picture size, one
// contiguous buffered range over the whole recording, and no hls.js error
// event at all, fatal or not (only a stall with over a second buffered
// ahead is tolerated: that is the test machine's CPU, see
// browsertest.HLSError.Starved).
//
// MPEG-TS with B-frames starts with a gap: hls.js 1.7.4 anchors the
// timeline of transmuxed TS on the first frame's DTS, so the video is
// buffered from the first frame's PTS-DTS (the reorder delay, 2 frames
// here), and playback starting at 0 either has Chromium jump the gap or
// hls.js seek over it (a non-fatal bufferSeekOverHole to buffer start +
// 0.1 s), whichever comes first. No valid TS can avoid it (every B-frame
// needs PTS >= DTS, so the first picture's PTS exceeds its DTS), and
// ffmpeg's own HLS output of the same input is buffered from the same
// point: the test checks that, and tolerates exactly that seek.
func TestPlaybackVOD(t *testing.T) {
	playbackRequireTools(t)
	input := playbackInput(t)
	var tsStart float64 // where ffmpeg's TS output of input is buffered from
	var tsOnce sync.Once
	for _, store := range []string{"file", "s3"} {
		for _, format := range []chunker.Format{chunker.FMP4, chunker.TS} {
			t.Run(store+"/"+format.String(), func(t *testing.T) {
				ctx := t.Context()
				var b *blob.Bucket
				if store == "s3" {
					b = playbackS3Bucket(t)
				} else {
					var err error
					if b, err = sink.Open(ctx, t.TempDir()); err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { b.Close() })
				}
				pl := recordVOD(t, b, input, format, pbSegment)
				if len(pl.Segments) != pbSegments || !pl.Ended {
					t.Fatalf("recorded %d segments (ended=%v), want %d", len(pl.Segments), pl.Ended, pbSegments)
				}

				// The S3 recording is played cross-origin, the file one
				// from the same origin.
				mediaURL, pageURL := playbackServer(t, b, store == "file")
				res := browsertest.PlayHLS(t, mediaURL+"master.m3u8", browsertest.Options{
					PageURL: pageURL,
					MinTime: pbMinPlay,
					Until:   func(r browsertest.Result) bool { return r.FragmentsBuffered >= pbSegments },
					Timeout: 30 * time.Second,
				})
				t.Log(res)
				if !res.Reached {
					t.Fatalf("playback did not pass %.1f s with all %d segments buffered", pbMinPlay, pbSegments)
				}
				playbackCheck(t, res)
				// No error event at all, except a stall with plenty of data
				// buffered (a starved CPU: the test machine, not the stream).
				var start float64 // where the video is buffered from
				if len(res.Buffered) > 0 {
					start = res.Buffered[0][0]
				}
				if format == chunker.TS {
					tsOnce.Do(func() {
						ref := playFFmpegHLS(t, input)
						tsStart, _ = sourceBufferStart(ref, "video")
					})
					t.Logf("video buffered from %.5f s; ffmpeg's TS output of the input from %.5f s", start, tsStart)
					if math.Abs(start-tsStart) > 1e-3 {
						t.Errorf("video buffered from %.5f s; ffmpeg's TS output of the input from %.5f s", start, tsStart)
					}
				}
				for _, e := range res.Errors {
					if e.Starved() {
						t.Logf("tolerated: playback stalled with %.1f s buffered (%d frames dropped): %s", e.BufferLen, res.DroppedFrames, e)
						continue
					}
					if format == chunker.TS && startGapSeek(e, start) {
						t.Logf("tolerated: hls.js seeked over the start gap [0, %.5f] of TS (see above): %s", start, e)
						continue
					}
					t.Errorf("hls.js error event: %s", e)
				}
				if res.FragmentsLoaded != pbSegments {
					t.Errorf("hls.js loaded %d fragments, want %d", res.FragmentsLoaded, pbSegments)
				}
				if res.Live {
					t.Errorf("hls.js took the VOD playlist for live")
				}
				if d := res.Duration; d < pbSeconds-0.1 || d > pbSeconds+0.1 {
					t.Errorf("video.duration %.3f, want %d", d, pbSeconds)
				}
				// Segments must join without holes: one buffered range from
				// the start to the end of the recording.
				if len(res.Buffered) != 1 || res.Buffered[0][0] > 0.1 || res.Buffered[0][1] < pbSeconds-0.1 {
					t.Errorf("buffered ranges %v, want one range [0, %d]", res.Buffered, pbSeconds)
				}
			})
		}
	}
}

// startGapSeek reports whether e is hls.js seeking, at start-up, from
// before the first buffered frame (at start seconds) over the gap to it
// (hls.js seeks to the gap's end plus 0.1 s).
func startGapSeek(e browsertest.HLSError, start float64) bool {
	var from, to float64
	if e.Fatal || e.Details != "bufferSeekOverHole" || start <= 0 || start > 0.2 {
		return false
	}
	if _, err := fmt.Sscanf(e.Reason, "fragment loaded with buffer holes, seeking from %g to %g", &from, &to); err != nil {
		return false
	}
	return from < start && to >= start && to <= start+0.1+1e-3
}

// TestPlaybackLive plays a recording while it is being made. The test
// feeds the input's samples to a Pipeline on its own goroutine: first the
// first two segments at once (hls.js needs more than one segment to start a
// live stream), then, once the browser reports that playback has begun,
// the rest at the pace of their timestamps. The pipeline is closed only
// after the browser is done, so the video must pass two segment durations
// of playback while the playlist is still live (no EXT-X-ENDLIST), with no
// fatal hls.js error (nor a non-fatal one other than a stall), and the
// browser must see the playlist grow.
//
// The native/ cases play it with Chromium's own HLS player (a plain
// <video src>, no hls.js): it refuses a live playlist shorter than three
// target durations (DEMUXER_ERROR_COULD_NOT_PARSE), so the pipeline holds
// its first playlist back until then (Config.StartDuration); the video
// must play on past two segment durations at the right size, with no media
// error, while Chromium keeps reloading the playlist.
func TestPlaybackLive(t *testing.T) {
	playbackRequireTools(t)
	input := playbackInput(t)
	samples, info := playbackSamples(t, input)
	for _, tc := range []struct {
		format chunker.Format
		typ    hls.Type
	}{
		{chunker.FMP4, hls.Live},
		{chunker.TS, hls.Event},
	} {
		for _, native := range []bool{false, true} {
			name := tc.format.String() + "/" + tc.typ.String()
			if native {
				name = "native/" + name
			}
			t.Run(name, func(t *testing.T) {
				playbackLive(t, samples, info, tc.format, tc.typ, native)
			})
		}
	}
}

// playbackLive records samples paced in real time into a live (or event)
// playlist and plays it while it grows: with hls.js, or with Chromium's own
// HLS player when native is set (whose first playlist must last three
// target durations, see Config.StartDuration).
func playbackLive(t *testing.T, samples []chunker.Sample, info source.Info, format chunker.Format, typ hls.Type, native bool) {
	var startDuration time.Duration // hls.js starts on the first segment
	if native {
		startDuration = 3 * pbSegment
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	b, err := sink.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p, err := livechunk.NewPipeline(ctx, b, livechunk.Config{
		Format:          format,
		SegmentDuration: pbSegment,
		Timescale:       info.Timescale,
		WrapBits:        info.WrapBits,
		Prefix:          pbPrefix,
		Playlist:        typ,
		StartDuration:   startDuration,
	})
	if err != nil {
		t.Fatal(err)
	}
	// The feeder owns p until it returns (Pipeline.Write is single-goroutine).
	// It writes the pre-roll (two segments, three for the native player)
	// at once, the rest paced once the browser plays.
	prerollSegs := int64(2)
	if native {
		prerollSegs = 3
	}
	preroll := samples[0].DTS + prerollSegs*int64(pbSegment/time.Millisecond)*int64(info.Timescale)/1000
	playing := make(chan struct{}) // closed when the browser plays
	stop := make(chan struct{})    // closed when the browser is done
	feedDone := make(chan struct{})
	var feedErr error
	go func() {
		defer close(feedDone)
		feedErr = playbackFeed(ctx, p, samples, info.Timescale, preroll, playing, stop)
	}()
	stopFeed := sync.OnceFunc(func() { close(stop); <-feedDone })
	closed := false
	defer func() {
		// On every path: the feeder is gone before the pipeline closes.
		stopFeed()
		if !closed {
			_ = p.Close(context.Background())
		}
	}()

	// Start the browser once the playlist lists the two pre-rolled
	// segments: they close when the first sample past the pre-roll (an IDR)
	// arrives, and are listed once uploaded.
	playbackWaitSegments(t, ctx, b, pbPrefix+"index.m3u8", 2, feedDone)

	var once sync.Once
	onStart := func(start float64) { // called at every poll of the page
		if start >= 0 {
			once.Do(func() { close(playing) })
		}
	}
	var check func() // the player's own assertions, once the pipeline is closed
	if native {
		check = playbackLiveNative(t, b, onStart)
	} else {
		check = playbackLiveHLS(t, b, onStart)
	}
	// The recording is still open: its playlist must not have ended.
	pl, err := hls.LoadMedia(ctx, b, pbPrefix+"index.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	stillLive := !pl.Ended
	stopFeed()
	if feedErr != nil {
		t.Errorf("feeding the pipeline: %v", feedErr)
	}
	closed = true
	if err := p.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	if !stillLive {
		t.Errorf("the playlist had EXT-X-ENDLIST before the pipeline was closed")
	}
	check()

	// After Close the playlist has ended and lists the whole input.
	pl, err = hls.LoadMedia(ctx, b, pbPrefix+"index.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	if !pl.Ended {
		t.Errorf("no EXT-X-ENDLIST after Close")
	}
}

// playbackLiveHLS plays the growing recording with hls.js, calling onStart
// with the start position at every poll, and returns its assertions.
func playbackLiveHLS(t *testing.T, b *blob.Bucket, onStart func(float64)) (check func()) {
	mediaURL, pageURL := playbackServer(t, b, true)
	res := browsertest.PlayHLS(t, mediaURL+"master.m3u8", browsertest.Options{
		PageURL:   pageURL,
		MinPlayed: pbMinPlay,
		Timeout:   30 * time.Second,
		OnPoll:    func(r browsertest.Result) { onStart(r.StartTime) },
	})
	return func() {
		t.Log(res)
		if !res.Reached {
			t.Fatalf("live playback did not advance %.1f s", pbMinPlay)
		}
		if !res.Live {
			t.Errorf("hls.js did not see a live playlist (ENDLIST present)")
		}
		playbackCheck(t, res)
		// No fatal error; and of the non-fatal ones only stalls, which a
		// player close to the live edge may hit.
		for _, e := range res.Errors {
			if e.Stall() {
				t.Logf("tolerated live: %s", e)
				continue
			}
			if len(res.Buffered) > 0 && startGapSeek(e, res.Buffered[0][0]) {
				// The start gap of TS with B-frames (see TestPlaybackVOD;
				// fMP4 is buffered from 0, which startGapSeek refuses).
				t.Logf("tolerated: %s", e)
				continue
			}
			t.Errorf("hls.js error event: %s", e)
		}
		if n := len(res.PlaylistSizes); n < 2 || res.PlaylistSizes[n-1] <= res.PlaylistSizes[0] {
			t.Errorf("hls.js saw playlist sizes %v: the playlist did not grow during playback", res.PlaylistSizes)
		}
		if res.FragmentsLoaded < 3 {
			t.Errorf("hls.js loaded %d fragments, want at least 3", res.FragmentsLoaded)
		}
	}
}

// playbackSamples reads every sample of the file, copying the NAL units
// (a Source may reuse their memory).
func playbackSamples(t *testing.T, path string) ([]chunker.Sample, source.Info) {
	t.Helper()
	src, err := source.Open(path, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var out []chunker.Sample
	for {
		s, err := src.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		nalus := make([][]byte, len(s.NALUs))
		for i, n := range s.NALUs {
			nalus[i] = bytes.Clone(n)
		}
		s.NALUs = nalus
		out = append(out, s)
	}
	if len(out) != pbSeconds*30 {
		t.Fatalf("read %d samples, want %d", len(out), pbSeconds*30)
	}
	return out, src.Info()
}

// playbackFeed writes samples to p: those with a DTS before preroll at
// once, then, after playing is closed, each one when the wall clock since
// then reaches its DTS past preroll (a 10 ms ticker drives the pacing). It
// returns when every sample is written or stop is closed, without closing
// p.
func playbackFeed(ctx context.Context, p *livechunk.Pipeline, samples []chunker.Sample, timescale uint32, preroll int64, playing, stop <-chan struct{}) error {
	i := 0
	// The pre-roll, and the first sample after it: the IDR that closes the
	// second segment.
	for ; i < len(samples) && samples[i].DTS < preroll; i++ {
		if err := p.Write(ctx, samples[i]); err != nil {
			return err
		}
	}
	if i < len(samples) {
		if err := p.Write(ctx, samples[i]); err != nil {
			return err
		}
		i++
	}
	select {
	case <-playing:
	case <-stop:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for i < len(samples) {
		elapsed := time.Since(start)
		for i < len(samples) && time.Duration((samples[i].DTS-preroll)*int64(time.Second)/int64(timescale)) <= elapsed {
			if err := p.Write(ctx, samples[i]); err != nil {
				return err
			}
			i++
		}
		select {
		case <-tick.C:
		case <-stop:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// playbackWaitSegments polls the media playlist in b until it lists n
// segments; it fails the test when the feeder stops first or after 20 s.
func playbackWaitSegments(t *testing.T, ctx context.Context, b *blob.Bucket, key string, n int, feedDone <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		pl, err := hls.LoadMedia(ctx, b, key)
		if err == nil && len(pl.Segments) >= n {
			return
		}
		select {
		case <-tick.C:
		case <-feedDone:
			t.Fatalf("the feeder stopped before %d segments were listed", n)
		case <-ctx.Done():
			t.Fatalf("%s does not list %d segments: %v", key, n, errors.Join(err, ctx.Err()))
		}
	}
}

// TestPlaybackDiscontinuity plays, to its end, a recording whose resolution
// changes mid-stream (testdata/reschange.ts: 320x240, then 480x270 from
// 2 s; H.264 High with B-frames): the chunker starts a new init section and
// the playlist marks an EXT-X-DISCONTINUITY there. The picture must switch
// size, the segments must join without a hole, and the video must end.
//
// This caught a real bug: fMP4 segments whose first presentation time was
// tfdt plus the B-frame delay made hls.js 1.7.4 leave a two-frame hole at
// the discontinuity and stall before the end. The chunker now shifts fMP4
// decode times so the first PTS equals tfdt.
func TestPlaybackDiscontinuity(t *testing.T) {
	playbackRequireTools(t)
	for _, format := range []chunker.Format{chunker.FMP4, chunker.TS} {
		t.Run(format.String(), func(t *testing.T) {
			ctx := t.Context()
			b, err := sink.Open(ctx, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			pl := recordVOD(t, b, mediatest.Testdata("reschange.ts"), format, time.Second)
			disc := 0
			for _, s := range pl.Segments {
				if s.Discontinuity {
					disc++
				}
			}
			if disc != 1 {
				t.Fatalf("playlist has %d discontinuities, want 1", disc)
			}

			mediaURL, pageURL := playbackServer(t, b, true)
			var sizes []string // picture sizes seen, in order
			res := browsertest.PlayHLS(t, mediaURL+"master.m3u8", browsertest.Options{
				PageURL: pageURL,
				Until:   func(r browsertest.Result) bool { return r.Ended },
				Timeout: 15 * time.Second,
				OnPoll: func(r browsertest.Result) {
					if r.VideoWidth == 0 {
						return
					}
					if s := fmt.Sprintf("%dx%d", r.VideoWidth, r.VideoHeight); len(sizes) == 0 || sizes[len(sizes)-1] != s {
						sizes = append(sizes, s)
					}
				},
			})
			t.Log(res)
			if !res.Ended {
				t.Fatalf("playback did not end")
			}
			if want := []string{"320x240", "480x270"}; fmt.Sprint(sizes) != fmt.Sprint(want) {
				t.Errorf("picture sizes seen %v, want %v", sizes, want)
			}
			for _, e := range res.Errors {
				if e.Starved() {
					t.Logf("tolerated: %s", e)
					continue
				}
				if format == chunker.TS && len(res.Buffered) > 0 && startGapSeek(e, res.Buffered[0][0]) {
					// TS with B-frames starts at the reorder delay: hls.js
					// may seek over it (see TestPlaybackVOD); seen in a
					// clean-clone CI run.
					t.Logf("tolerated: %s", e)
					continue
				}
				t.Errorf("hls.js error event: %s", e)
			}
			if len(res.Buffered) != 1 || res.Buffered[0][0] > 0.1 || res.Buffered[0][1] < 3.9 {
				t.Errorf("buffered ranges %v, want one range [0, 4]", res.Buffered)
			}
			if len(res.ForeignRequests) > 0 {
				t.Errorf("the page requested something off 127.0.0.1: %v", res.ForeignRequests)
			}
		})
	}
}

// TestPlaybackPausedVideo plays the recording of a video that pauses for
// 2 s while its audio goes on (a variable frame rate, as in screen
// recordings; see TestRecordPausedVideo) in Chromium, as fMP4 and as
// MPEG-TS, to past the pause and the end: one buffered range over the whole
// 10 s, every fragment loaded, no hls.js error but a tolerated seek over
// the TS start gap (see TestPlaybackVOD) or a starved stall.
func TestPlaybackPausedVideo(t *testing.T) {
	playbackRequireTools(t)
	input := mediatest.PausedVideo(t, ".mp4", false)
	for _, format := range []chunker.Format{chunker.FMP4, chunker.TS} {
		t.Run(format.String(), func(t *testing.T) {
			b, err := sink.Open(t.Context(), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			pl := recordVOD(t, b, input, format, 4*time.Second)
			mediaURL, pageURL := playbackServer(t, b, true)
			res := browsertest.PlayHLS(t, mediaURL+"index.m3u8", browsertest.Options{
				PageURL: pageURL,
				MinTime: 9,
				Until:   func(r browsertest.Result) bool { return r.FragmentsBuffered >= len(pl.Segments) },
				Timeout: 40 * time.Second,
			})
			t.Log(res)
			if !res.Reached {
				t.Fatalf("playback did not pass 9 s with all %d segments buffered", len(pl.Segments))
			}
			var start float64
			if len(res.Buffered) > 0 {
				start = res.Buffered[0][0]
			}
			for _, e := range res.Errors {
				if e.Starved() || (format == chunker.TS && startGapSeek(e, start)) {
					t.Logf("tolerated: %s", e)
					continue
				}
				t.Errorf("hls.js error event: %s", e)
			}
			if d := res.Duration; d < 9.9 || d > 10.2 {
				t.Errorf("video.duration %.3f, want 10", d)
			}
			if len(res.Buffered) != 1 || res.Buffered[0][0] > 0.1 || res.Buffered[0][1] < 9.9 {
				t.Errorf("buffered ranges %v, want one range [0, 10]", res.Buffered)
			}
		})
	}
}
