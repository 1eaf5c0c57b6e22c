package server_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"github.com/livechunk/livechunk/server"
)

// TestChunkIngestWithAudio uploads phone-style chunks with AAC audio (each
// with its own encoder priming): the live playlist lists AAC, carries every
// chunk's audio (less the priming frames that overlap the previous chunk)
// and decodes.
func TestChunkIngestWithAudio(t *testing.T) {
	chunks, total := mediatest.AVChunks(t, 3, 44100)
	ts := start(t, server.Config{})
	for i, c := range chunks {
		if code, body := put(t, ts, "phone", i, c); code != http.StatusOK {
			t.Fatalf("chunk %d: %d %s", i, code, body)
		}
	}
	if code, body := ts.do(t, "POST", "/ingest/phone/end", nil); code != http.StatusOK {
		t.Fatalf("end: %d %s", code, body)
	}
	master, err := ts.bucket.ReadAll(context.Background(), "phone/master.m3u8")
	if err != nil || !bytes.Contains(master, []byte(`,mp4a.40.2"`)) {
		t.Errorf("multivariant playlist: %v\n%s", err, master)
	}
	got := mediatest.PacketCount(t, ts.URL+"/live/phone/index.m3u8", "audio")
	if got > total || got < total-len(chunks)+1 {
		t.Errorf("%d audio packets in the recording, the chunks have %d", got, total)
	}
	var want []string
	for _, c := range chunks {
		want = append(want, mediatest.FrameHashes(t, c)...)
	}
	if d := mediatest.EqualHashes(want, mediatest.FrameHashes(t, ts.URL+"/live/phone/index.m3u8")); d != "" {
		t.Errorf("video: %s", d)
	}
}

// TestPushMPEGTSWithAudio pushes an MPEG-TS with audio: the recording has
// every audio packet of the input.
func TestPushMPEGTSWithAudio(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	in := filepath.Join(t.TempDir(), "in.ts")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=3",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=3",
		"-c:v", "libx264", "-preset", "ultrafast", "-x264-params", "keyint=30:scenecut=0:bframes=2", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "64k", "-f", "mpegts", in)
	ts := start(t, server.Config{})
	data := mustRead(t, in)
	if code, body := ts.do(t, "POST", "/ingest/cam", bytes.NewReader(data)); code != http.StatusOK {
		t.Fatalf("push: %d %s", code, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		pl, err := hls.LoadMedia(context.Background(), ts.bucket, "cam/index.m3u8")
		if err == nil && pl.Ended {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling an observable condition
	}
	if got, want := mediatest.PacketCount(t, ts.URL+"/live/cam/index.m3u8", "audio"), mediatest.PacketCount(t, in, "audio"); got != want {
		t.Errorf("%d audio packets in the recording, the input has %d", got, want)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
