package browsertest

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/livechunk/livechunk/internal/player"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
)

// TestPlaybackReferenceHLS plays an HLS stream that ffmpeg's own muxer wrote:
// it checks the harness (Chromium, hls.js, MSE, polling) against output that
// is not ours, so that a failure of livechunk's playback tests points at
// livechunk.
func TestPlaybackReferenceHLS(t *testing.T) {
	mediatest.RequireTool(t, "chromium")
	dir := t.TempDir()
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "4",
		"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "25",
		"-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod",
		"-hls_segment_filename", filepath.Join(dir, "seg%d.ts"), filepath.Join(dir, "index.m3u8"))

	mux := http.NewServeMux()
	mux.Handle("/player/", http.StripPrefix("/player", Handler()))
	mux.Handle("/media/", http.StripPrefix("/media", http.FileServer(http.Dir(dir))))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	res := PlayHLS(t, srv.URL+"/media/index.m3u8", Options{PageURL: srv.URL + "/player/", MinTime: 1.5, Timeout: 20 * time.Second})
	t.Log(res)
	if !res.Reached {
		t.Fatalf("playback did not reach 1.5 s")
	}
	if res.VideoWidth != 320 || res.VideoHeight != 240 {
		t.Errorf("picture %dx%d, want 320x240", res.VideoWidth, res.VideoHeight)
	}
	if len(res.Errors) > 0 {
		t.Errorf("hls.js errors: %v", res.Errors)
	}
	if res.HLSVersion != player.HLSJSVersion {
		t.Errorf("page runs hls.js %q, want the embedded %q", res.HLSVersion, player.HLSJSVersion)
	}
	if res.FragmentsLoaded < 2 {
		t.Errorf("%d fragments loaded, want at least 2", res.FragmentsLoaded)
	}
	if len(res.ForeignRequests) > 0 {
		t.Errorf("requests leaving 127.0.0.1: %v", res.ForeignRequests)
	}
}

// TestPlaybackReportsFatalError is the negative control: a missing playlist
// must come back as a fatal hls.js network error, promptly, so that "no
// errors" in the playback tests means something.
func TestPlaybackReportsFatalError(t *testing.T) {
	mediatest.RequireTool(t, "chromium")
	mux := http.NewServeMux()
	mux.Handle("/player/", http.StripPrefix("/player", Handler()))
	srv := httptest.NewServer(mux) // everything else is 404
	defer srv.Close()
	res := PlayHLS(t, srv.URL+"/missing.m3u8", Options{PageURL: srv.URL + "/player/", MinTime: 1, Timeout: 20 * time.Second})
	t.Log(res)
	fatal := res.Fatal()
	if len(fatal) == 0 {
		t.Fatalf("no fatal error for a missing playlist")
	}
	if fatal[0].Type != "networkError" || fatal[0].ResponseCode != http.StatusNotFound {
		t.Errorf("fatal error %v, want a networkError with HTTP 404", fatal[0])
	}
	if res.Reached || res.TimedOut {
		t.Errorf("reached=%v timedOut=%v, want neither", res.Reached, res.TimedOut)
	}
}

// TestPlaybackReferenceMP4 checks PlayMP4 against a faststart MP4 that
// ffmpeg wrote: it plays, seeks to the middle and plays on from there,
// with the picture size of the input and decoded audio.
func TestPlaybackReferenceMP4(t *testing.T) {
	mediatest.RequireTool(t, "chromium")
	p := filepath.Join(t.TempDir(), "ref.mp4")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=sample_rate=48000",
		"-t", "6", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "25",
		"-c:a", "aac", "-movflags", "+faststart", p)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, p) }))
	defer srv.Close()
	res := PlayMP4(t, srv.URL+"/ref.mp4", MP4Options{Timeout: 20 * time.Second})
	t.Log(res)
	if !res.Reached || res.MediaError != "" {
		t.Fatalf("did not play, seek and play on: %s", res)
	}
	if res.SeekTarget < 2.9 || res.SeekTarget > 3.1 || res.SeekedAt < 2.5 {
		t.Errorf("seek to %.3f landed at %.3f, want the middle (3 s)", res.SeekTarget, res.SeekedAt)
	}
	if res.VideoWidth != 320 || res.VideoHeight != 240 || res.AudioDecodedBytes == 0 {
		t.Errorf("picture %dx%d, %d audio bytes decoded; want 320x240 and audio", res.VideoWidth, res.VideoHeight, res.AudioDecodedBytes)
	}
	if len(res.ForeignRequests) > 0 {
		t.Errorf("requests leaving 127.0.0.1: %v", res.ForeignRequests)
	}
}
