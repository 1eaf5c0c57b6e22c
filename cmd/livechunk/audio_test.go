package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/livechunk/livechunk/internal/testkit/mediatest"
)

// TestSampleAudio: the embedded clip has AAC audio, and recording it, or
// running the demo once through, keeps every audio packet and lists AAC in
// the multivariant playlist.
func TestSampleAudio(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	clip := writeTemp(t, sampleClip)
	want := mediatest.PacketCount(t, clip, "audio")
	if want != 564 {
		t.Errorf("sample clip has %d audio packets, want 564 (12 s at 48 kHz)", want)
	}
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if code := run([]string{"record", "-sample", "-vod", filepath.Join(dir, "out")}, &out, &errb); code != exitOK {
		t.Fatalf("record: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "564 audio frames") {
		t.Errorf("summary: %s", out.String())
	}
	store := filepath.Join(dir, "store")
	if code := run([]string{"demo", "-addr", "127.0.0.1:0", "-store", store, "-loops", "1", "-speed", "20", "-segment", "2s"}, &out, &errb); code != exitOK {
		t.Fatalf("demo: exit %d: %s", code, errb.String())
	}
	for _, d := range []string{filepath.Join(dir, "out"), filepath.Join(store, "demo")} {
		if got := mediatest.PacketCount(t, filepath.Join(d, "index.m3u8"), "audio"); got != want {
			t.Errorf("%s: %d audio packets, the clip has %d", d, got, want)
		}
		master, err := os.ReadFile(filepath.Join(d, "master.m3u8"))
		if err != nil || !bytes.Contains(master, []byte(`CODECS="avc1.64001e,mp4a.40.2"`)) {
			t.Errorf("%s: %v\n%s", d, err, master)
		}
	}
}
