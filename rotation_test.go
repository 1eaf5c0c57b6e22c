package livechunk_test

import (
	"bytes"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livechunk/livechunk"
	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/internal/testkit/browsertest"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"github.com/livechunk/livechunk/stitch"
)

// TestRotation records a phone's portrait video: the picture is coded
// 320x240 and the MP4 track's matrix turns it by 90 degrees for display.
// The fMP4 recording keeps the matrix in its init segment and the stitched
// MP4 in its track: ffmpeg (which applies the rotation when it decodes,
// like every player) decodes the same upright 240x320 frames from both as
// from the input, and Chromium shows the video upright.
func TestRotation(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	mediatest.RequireTool(t, "chromium")
	input := filepath.Join(t.TempDir(), "portrait.mp4")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=6",
		"-f", "lavfi", "-i", "sine=frequency=440:duration=6",
		"-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-x264-params", "keyint=30",
		"-c:a", "aac", "-threads", "2", input)
	mediatest.SetRotation(t, input, 90)
	want := mediatest.FrameHashes(t, input)
	if dims := string(mediatest.FFmpeg(t, "-i", input, "-frames:v", "1", "-f", "framemd5", "-")); !strings.Contains(dims, "240x320") {
		t.Fatalf("ffmpeg does not rotate the input:\n%s", dims)
	}

	dir, b, _ := recordFile(t, input, livechunk.Config{Format: chunker.FMP4, SegmentDuration: time.Second, Playlist: hls.VOD})
	rot := mediatest.Run(t, "ffprobe", "-v", "error", "-show_streams", "-select_streams", "v", filepath.Join(dir, "init-0.mp4"))
	if !bytes.Contains(rot, []byte("rotation=-90")) {
		t.Errorf("init segment has no rotation:\n%s", rot)
	}
	if d := mediatest.EqualHashes(want, mediatest.FrameHashes(t, filepath.Join(dir, "index.m3u8"))); d != "" {
		t.Errorf("recording: %s", d)
	}

	out := filepath.Join(t.TempDir(), "stitched.mp4")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	in, err := stitch.FromPlaylist(t.Context(), b, "index.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stitch.WriteMP4(t.Context(), f, in, stitch.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if d := mediatest.EqualHashes(want, mediatest.FrameHashes(t, out)); d != "" {
		t.Errorf("stitched: %s", d)
	}

	srv := httptest.NewServer(hls.NewHandler(b, ""))
	t.Cleanup(srv.Close)
	res := browsertest.PlayHLS(t, srv.URL+"/master.m3u8", browsertest.Options{MinTime: 2.5, Timeout: 30 * time.Second})
	t.Log(res)
	if !res.Reached || len(res.Fatal()) > 0 {
		t.Fatalf("playback failed:\n%s", res)
	}
	if res.VideoWidth != 240 || res.VideoHeight != 320 {
		t.Errorf("Chromium shows %dx%d, want the upright 240x320", res.VideoWidth, res.VideoHeight)
	}
	for _, l := range res.Levels {
		if l.Width != 240 || l.Height != 320 {
			t.Errorf("RESOLUTION %dx%d, want the displayed 240x320", l.Width, l.Height)
		}
	}
}
