package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// MP4Options tunes [PlayMP4]. The zero value plays to 0.5 s, seeks to the
// middle, and plays 1 s from there, within 30 s.
type MP4Options struct {
	// MinTime is the position playback must reach before the seek.
	// Default 0.5 s.
	MinTime float64
	// SeekTo is the position to seek to. Default: the middle
	// (video.duration / 2).
	SeekTo float64
	// PlayAfterSeek is how far playback must advance past the position
	// where the seek landed. Default 1 s.
	PlayAfterSeek float64
	// Timeout bounds the playback, seek included. Default 30 s.
	Timeout time.Duration
	// MinPlayed, when positive, replaces the seek: playback must advance
	// this far past the position where it started (a live stream starts
	// near its live edge, not at 0).
	MinPlayed float64
	// OnPoll, when set, is called with the state at every poll.
	OnPoll func(MP4Result)
}

// MP4Result is what the page saw when PlayMP4 returned. Of the embedded
// Result, the hls.js fields stay empty; Reached reports that playback
// reached MinTime, the seek completed, and playback advanced
// PlayAfterSeek past it.
type MP4Result struct {
	Result
	// SeekTarget is the position PlayMP4 seeked to (-1: no seek yet).
	SeekTarget float64
	// SeekedAt is video.currentTime at the "seeked" event (-1: none).
	SeekedAt float64
}

// String summarizes the result.
func (r MP4Result) String() string {
	return fmt.Sprintf("progressive: seek to %.3f landed at %.3f; %s", r.SeekTarget, r.SeekedAt,
		strings.Replace(r.Result.String(), "hls.js :", "video:", 1))
}

// mp4State is what livechunkMP4State() returns.
type mp4State struct {
	state
	SeekTarget float64 `json:"seekTarget"`
	SeekedAt   float64 `json:"seekedAt"`
}

// mp4Page plays one URL in a plain <video src> element: the browser's own
// progressive download (HTTP range requests) and demuxer, no MSE.
const mp4Page = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>livechunk progressive test</title></head>
<body>
<video id="video" muted playsinline width="640" height="360"></video>
<script>
(function () {
  "use strict";
  var st = {startTime: null, mediaError: "", seekTarget: -1, seekedAt: -1};
  var v = document.getElementById("video");
  v.addEventListener("playing", function () {
    if (st.startTime === null) { st.startTime = v.currentTime; }
  });
  v.addEventListener("error", function () {
    var me = v.error;
    st.mediaError = me ? (me.code + ": " + me.message) : "unknown";
  });
  v.addEventListener("seeked", function () { st.seekedAt = v.currentTime; });
  window.livechunkPlayMP4 = function (src) {
    v.muted = true;
    v.src = src;
    var p = v.play();
    if (p && p.catch) { p.catch(function (e) { st.mediaError = st.mediaError || ("play: " + e); }); }
    return true;
  };
  window.livechunkSeek = function (t) {
    if (t < 0) { t = v.duration / 2; }
    st.seekTarget = t;
    v.currentTime = t;
    var p = v.play();
    if (p && p.catch) { p.catch(function () {}); }
    return t;
  };
  function ranges(r) {
    var out = [];
    for (var i = 0; i < r.length; i++) { out.push([r.start(i), r.end(i)]); }
    return out;
  }
  window.livechunkMP4State = function () {
    var q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : null;
    return {
      currentTime: v.currentTime,
      startTime: st.startTime === null ? -1 : st.startTime,
      duration: isFinite(v.duration) ? v.duration : -1,
      videoWidth: v.videoWidth,
      videoHeight: v.videoHeight,
      ended: v.ended,
      paused: v.paused,
      readyState: v.readyState,
      buffered: ranges(v.buffered),
      mediaError: st.mediaError,
      decodedFrames: q ? q.totalVideoFrames : 0,
      droppedFrames: q ? q.droppedVideoFrames : 0,
      audioBytes: typeof v.webkitAudioDecodedByteCount === "number" ? v.webkitAudioDecodedByteCount : 0,
      seekTarget: st.seekTarget,
      seekedAt: st.seekedAt
    };
  };
})();
</script>
</body>
</html>
`

// PlayMP4 plays mediaURL (an MP4 file served with range support, on
// 127.0.0.1) in a plain <video src> element of a fresh headless Chromium:
// the progressive case, where Chromium downloads and demuxes the file
// itself. It waits until playback reaches opts.MinTime, seeks to
// opts.SeekTo (default: the middle), and waits until playback advanced
// opts.PlayAfterSeek past where the seek landed; a media element error,
// the end of the video or the timeout stop it earlier. Like [PlayHLS], it
// reports playback failures in the result and fails the test only for
// failures of the machinery; it skips the test without Chromium unless
// LIVECHUNK_REQUIRE_TOOLS is set.
func PlayMP4(t testing.TB, mediaURL string, opts MP4Options) MP4Result {
	t.Helper()
	if opts.MinTime <= 0 {
		opts.MinTime = 0.5
	}
	if opts.PlayAfterSeek <= 0 {
		opts.PlayAfterSeek = 1
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, mp4Page)
	}))
	defer srv.Close()

	b := openPage(t, srv.URL+"/")
	defer b.close(t)
	sctx, scancel := context.WithTimeout(b.ctx, startupTimeout)
	defer scancel()
	src, _ := json.Marshal(mediaURL)
	start := time.Now()
	if _, err := chromedp.Run(sctx, chromedp.Evaluate[bool](fmt.Sprintf("livechunkPlayMP4(%s)", src))); err != nil {
		t.Fatalf("browsertest: starting playback: %v", err)
	}
	t.Logf("browsertest: <video src> playing %s", mediaURL)

	res := MP4Result{SeekTarget: -1, SeekedAt: -1}
	seeking := false
	timedOut := poll(t, b, opts.Timeout, "livechunkMP4State()", func(ctx context.Context, st mp4State) bool {
		res.Result = st.result()
		res.SeekTarget, res.SeekedAt = st.SeekTarget, st.SeekedAt
		res.Elapsed = time.Since(start)
		if opts.OnPoll != nil {
			opts.OnPoll(res)
		}
		if res.MediaError != "" {
			return true
		}
		switch {
		case opts.MinPlayed > 0:
			if res.StartTime >= 0 && res.CurrentTime >= res.StartTime+opts.MinPlayed {
				res.Reached = true
				return true
			}
			return res.Ended
		case !seeking && res.CurrentTime >= opts.MinTime && res.Duration > 0:
			target := opts.SeekTo
			if target <= 0 {
				target = -1 // the middle, computed in the page
			}
			if _, err := chromedp.Run(ctx, chromedp.Evaluate[float64](fmt.Sprintf("livechunkSeek(%v)", target))); err != nil {
				t.Fatalf("browsertest: seeking: %v", err)
			}
			seeking = true
		case seeking && res.SeekedAt >= 0 && res.CurrentTime >= res.SeekedAt+opts.PlayAfterSeek:
			res.Reached = true
			return true
		case res.Ended:
			return true
		}
		return false
	})
	res.TimedOut = timedOut
	res.Console, res.Requests, res.ForeignRequests = b.events()
	if (res.TimedOut || res.MediaError != "") && len(res.Console) > 0 {
		t.Logf("browsertest: page console:\n  %s", strings.Join(res.Console, "\n  "))
	}
	return res
}
