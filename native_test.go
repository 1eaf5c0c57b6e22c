package livechunk_test

import (
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/livechunk/livechunk"
	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/internal/testkit/browsertest"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
)

// TestPlaybackNativeHLS plays recordings with Chromium's own HLS player: a
// plain <video src="master.m3u8">, no hls.js and no MSE (Chromium
// 156 answers canPlayType("application/vnd.apple.mpegurl") with "maybe",
// so a page that prefers native playback gets it). Each recording must
// play past MinTime, seek to the middle and play on from there, at the
// right picture size, with audio decoded when the input has audio, and
// with no media element error. The inputs: AAC with video (MP4 with an
// edit list, MPEG-TS whose PTS wrap), audio only, a variable-frame-rate
// MOV, an MPEG-TS whose resolution changes (a discontinuity with a new
// init segment), and a phone's portrait video (shown upright). (An
// open-GOP recording cannot be seeked in Chromium, see
// chunker.Config.OpenGOP.)
func TestPlaybackNativeHLS(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	mediatest.RequireTool(t, "chromium")
	type tc struct {
		name        string
		input       string
		formats     []chunker.Format
		w, h        int // picture size at the end of the playback (0: audio only)
		audio       bool
		minTime     float64
		durationSec float64
	}
	both := []chunker.Format{chunker.FMP4, chunker.TS}
	var cases []tc
	for _, in := range mediatest.AudioInputs(t) {
		switch in.Name {
		case "mp4-44k1-stereo", "ts-ptswrap", "audio-only-mp4":
		default:
			continue
		}
		c := tc{name: in.Name, input: in.File, formats: both, w: 320, h: 240, audio: true, minTime: 2.5, durationSec: 6}
		if in.NoVideo {
			c.w, c.h = 0, 0
		}
		cases = append(cases, c)
	}
	cases = append(cases,
		tc{name: "vfr-mov", input: mediatest.Testdata("vfr.mov"), formats: []chunker.Format{chunker.FMP4}, w: 320, h: 240, minTime: 1.5},
		tc{name: "reschange-ts", input: mediatest.Testdata("reschange.ts"), formats: both, w: 480, h: 270, minTime: 2.8, durationSec: 4},
	)
	portrait := filepath.Join(t.TempDir(), "portrait.mp4")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=6",
		"-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-x264-params", "keyint=30", portrait)
	mediatest.SetRotation(t, portrait, 90)
	cases = append(cases, tc{name: "portrait", input: portrait, formats: []chunker.Format{chunker.FMP4}, w: 240, h: 320, minTime: 2.5, durationSec: 6})

	for _, c := range cases {
		for _, format := range c.formats {
			t.Run(fmt.Sprintf("%s/%s", c.name, format), func(t *testing.T) {
				cfg := livechunk.Config{Format: format, SegmentDuration: time.Second, Playlist: hls.VOD}
				_, b, _ := recordFile(t, c.input, cfg)
				srv := httptest.NewServer(hls.NewHandler(b, ""))
				t.Cleanup(srv.Close)
				res := browsertest.PlayMP4(t, srv.URL+"/master.m3u8", browsertest.MP4Options{MinTime: c.minTime, Timeout: 40 * time.Second})
				t.Log(res)
				if !res.Reached || res.MediaError != "" {
					t.Fatalf("native HLS playback failed: %s", res)
				}
				if res.VideoWidth != c.w || res.VideoHeight != c.h {
					t.Errorf("picture %dx%d, want %dx%d", res.VideoWidth, res.VideoHeight, c.w, c.h)
				}
				if c.audio && res.AudioDecodedBytes == 0 {
					t.Errorf("no audio decoded")
				}
				if c.durationSec > 0 && math.Abs(res.Duration-c.durationSec) > 0.2 {
					t.Errorf("duration %.3f s, want %.1f", res.Duration, c.durationSec)
				}
			})
		}
	}
}

// playbackLiveNative plays the growing recording in a plain <video src>
// (Chromium's own HLS player), calling onStart with the start position at
// every poll, and returns its assertions.
func playbackLiveNative(t *testing.T, b *blob.Bucket, onStart func(float64)) (check func()) {
	var playlistGets atomic.Int64
	h := http.StripPrefix("/media", hls.NewHandler(b, pbPrefix))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/index.m3u8") {
			playlistGets.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	res := browsertest.PlayMP4(t, srv.URL+"/media/master.m3u8", browsertest.MP4Options{
		MinPlayed: pbMinPlay,
		Timeout:   30 * time.Second,
		OnPoll:    func(r browsertest.MP4Result) { onStart(r.StartTime) },
	})
	return func() {
		t.Log(res)
		if !res.Reached || res.MediaError != "" {
			t.Fatalf("native live playback did not advance %.1f s: %s (console %v)", pbMinPlay, res, res.Console)
		}
		if res.VideoWidth != pbWidth || res.VideoHeight != pbHeight {
			t.Errorf("picture %dx%d, want %dx%d", res.VideoWidth, res.VideoHeight, pbWidth, pbHeight)
		}
		if n := playlistGets.Load(); n < 2 {
			t.Errorf("the media playlist was requested %d times: Chromium did not follow the live playlist", n)
		}
	}
}
