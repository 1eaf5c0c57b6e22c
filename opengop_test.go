package livechunk_test

import (
	"bytes"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/livechunk/livechunk"
	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/internal/testkit/browsertest"
	"github.com/livechunk/livechunk/internal/testkit/hlscheck"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"github.com/livechunk/livechunk/sink"
	"github.com/livechunk/livechunk/source"
)

const (
	ogSeconds = 16
	ogGOP     = 2 * time.Second // keyint 50 at 25 fps
)

// openGOPInput encodes an open-GOP stream the way x264 makes one with
// --open-gop: an IDR picture at the start only, then every 2 s an I
// picture with a recovery point SEI, B-frames that lead it; plus AAC.
func openGOPInput(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "opengop.mp4")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=16",
		"-f", "lavfi", "-i", "sine=frequency=440:duration=16",
		"-c:v", "libx264", "-profile:v", "high", "-preset", "veryfast", "-crf", "30", "-pix_fmt", "yuv420p",
		"-x264-params", "keyint=50:min-keyint=50:scenecut=0:open-gop=1:bframes=3",
		"-c:a", "aac", "-b:a", "64k", "-threads", "2", p)
	return p
}

// recordFile records input into a new local directory and returns the
// directory, the bucket and the stats.
func recordFile(t *testing.T, input string, cfg livechunk.Config) (string, *blob.Bucket, livechunk.Stats) {
	t.Helper()
	dir := t.TempDir()
	b, err := sink.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	src, err := source.Open(input, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	st, err := livechunk.Record(t.Context(), b, src, cfg)
	if err != nil {
		t.Fatalf("Record: %v", err)
	}
	return dir, b, st
}

// TestOpenGOP records an open-GOP stream (one IDR picture, then recovery
// points): by default as one long segment (IDR-only cuts), and with
// Config.OpenGOP as 2 s segments cut at the recovery points, in both
// formats. The playlists pass the RFC checks, leave out
// EXT-X-INDEPENDENT-SEGMENTS, ffmpeg decodes every frame equal to the
// input's, the audio keeps every packet, and Chromium plays them.
func TestOpenGOP(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	mediatest.RequireTool(t, "chromium")
	input := openGOPInput(t)
	wantVideo := mediatest.FrameHashes(t, input)
	wantAudio := mediatest.PacketCount(t, input, "a")

	t.Run("default", func(t *testing.T) {
		var log bytes.Buffer
		_, _, st := recordFile(t, input, livechunk.Config{SegmentDuration: ogGOP, Playlist: hls.VOD,
			Logger: slog.New(slog.NewTextHandler(&log, nil))})
		if n := strings.Count(log.String(), "open-GOP keyframes"); n != 1 {
			t.Errorf("%d open-GOP warnings logged, want 1:\n%s", n, log.String())
		}
		if st.Chunker.Segments != 1 || st.Chunker.RecoveryPoints < ogSeconds/2-1 {
			t.Errorf("%d segments, %d recovery points; want 1 long segment and %d recovery points skipped",
				st.Chunker.Segments, st.Chunker.RecoveryPoints, ogSeconds/2-1)
		}
	})
	for _, format := range []chunker.Format{chunker.FMP4, chunker.TS} {
		t.Run(format.String(), func(t *testing.T) {
			dir, b, st := recordFile(t, input, livechunk.Config{
				Format: format, SegmentDuration: ogGOP, Playlist: hls.VOD, OpenGOP: true,
			})
			if st.Chunker.Segments != ogSeconds/2 || st.Chunker.DroppedLeading != 0 || st.Chunker.DroppedNoKey != 0 {
				t.Errorf("%d segments, %d leading and %d other frames dropped; want %d segments, none dropped",
					st.Chunker.Segments, st.Chunker.DroppedLeading, st.Chunker.DroppedNoKey, ogSeconds/2)
			}
			text, err := os.ReadFile(filepath.Join(dir, "index.m3u8"))
			if err != nil {
				t.Fatal(err)
			}
			m, errs := hlscheck.Check(string(text))
			for _, e := range errs {
				t.Errorf("playlist: %v", e)
			}
			if m != nil && m.Independent {
				t.Errorf("playlist claims EXT-X-INDEPENDENT-SEGMENTS:\n%s", text)
			}
			if master, err := os.ReadFile(filepath.Join(dir, "master.m3u8")); err != nil || strings.Contains(string(master), "INDEPENDENT") {
				t.Errorf("master.m3u8 (%v):\n%s", err, master)
			}
			playlist := filepath.Join(dir, "index.m3u8")
			if d := mediatest.EqualHashes(wantVideo, mediatest.FrameHashes(t, playlist)); d != "" {
				t.Errorf("video decoded from the playlist: %s", d)
			}
			if n := mediatest.PacketCount(t, playlist, "a"); n != wantAudio {
				t.Errorf("%d audio packets, input has %d", n, wantAudio)
			}
			srv := httptest.NewServer(hls.NewHandler(b, ""))
			t.Cleanup(srv.Close)
			res := browsertest.PlayHLS(t, srv.URL+"/master.m3u8", browsertest.Options{
				MinTime: 2.25 * ogGOP.Seconds(),
				Timeout: 30 * time.Second,
			})
			t.Log(res)
			if !res.Reached {
				t.Fatalf("playback did not pass %.1f s", 2.25*ogGOP.Seconds())
			}
			if res.VideoWidth != 640 || res.VideoHeight != 360 {
				t.Errorf("decoded picture %dx%d, want 640x360", res.VideoWidth, res.VideoHeight)
			}
			for _, e := range res.Errors {
				if e.Fatal {
					t.Errorf("hls.js fatal error: %s", e)
				}
			}
		})
	}
}

// TestOpenGOPJoin starts recording an open-GOP MPEG-TS in the middle, the
// way a server joins a camera's stream: the first picture it can use is a
// recovery point, whose leading pictures refer to what was not received.
// They are dropped, and every frame recorded decodes equal to the same
// frame of the whole input.
func TestOpenGOPJoin(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	// A camera repeats its parameter sets at every keyframe
	// (repeat-headers), or nobody could join its stream.
	ts := filepath.Join(t.TempDir(), "whole.ts")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=16",
		"-f", "lavfi", "-i", "sine=frequency=440:duration=16",
		"-c:v", "libx264", "-profile:v", "high", "-preset", "veryfast", "-crf", "30", "-pix_fmt", "yuv420p",
		"-x264-params", "keyint=50:min-keyint=50:scenecut=0:open-gop=1:bframes=3:repeat-headers=1",
		"-c:a", "aac", "-b:a", "64k", "-threads", "2", "-f", "mpegts", ts)
	whole, err := os.ReadFile(ts)
	if err != nil {
		t.Fatal(err)
	}
	cut := len(whole) * 2 / 5 / 188 * 188 // 40% in, on a packet boundary
	joined := filepath.Join(t.TempDir(), "joined.ts")
	if err := os.WriteFile(joined, whole[cut:], 0o644); err != nil {
		t.Fatal(err)
	}
	want := mediatest.FrameHashes(t, ts)
	for _, format := range []chunker.Format{chunker.FMP4, chunker.TS} {
		t.Run(format.String(), func(t *testing.T) {
			dir, _, st := recordFile(t, joined, livechunk.Config{
				Format: format, SegmentDuration: ogGOP, Playlist: hls.VOD, OpenGOP: true,
			})
			if st.Chunker.DroppedLeading == 0 {
				t.Errorf("no leading frames dropped (stats %+v)", st.Chunker)
			}
			got := mediatest.FrameHashes(t, filepath.Join(dir, "index.m3u8"))
			if len(got) < len(want)/3 {
				t.Fatalf("%d frames recorded of %d", len(got), len(want))
			}
			i := slices.Index(want, got[0])
			if i < 0 || i+len(got) != len(want) || !slices.Equal(want[i:], got) {
				t.Errorf("the %d recorded frames are not the last %d frames of the input (first at %d)", len(got), len(got), i)
			}
		})
	}
}
