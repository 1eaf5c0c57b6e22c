package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/livechunk/livechunk/internal/testkit/mediatest"
)

// TestStitchCommand records the B-frame fixture with "record", in both
// segment formats, and stitches the playlist to MP4 and MPEG-TS: every
// output decodes to the input's pictures, and the MP4 is faststart.
func TestStitchCommand(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	in := mediatest.Testdata("bframes.mp4")
	want := mediatest.FrameHashes(t, in)
	for _, format := range []string{"fmp4", "ts"} {
		dir := t.TempDir()
		rec := filepath.Join(dir, "rec")
		var out, errb bytes.Buffer
		if code := run([]string{"record", "-format", format, "-segment", "1s", "-vod", in, rec}, &out, &errb); code != exitOK {
			t.Fatalf("record: exit %d: %s", code, errb.String())
		}
		for _, src := range []string{filepath.Join(rec, "index.m3u8"), "file://" + filepath.ToSlash(rec) + "/index.m3u8"} {
			for _, ext := range []string{".mp4", ".ts"} {
				name := format + ext
				if strings.HasPrefix(src, "file:") {
					name = format + "-url" + ext
				}
				t.Run(name, func(t *testing.T) {
					dst := filepath.Join(dir, name)
					var out, errb bytes.Buffer
					if code := run([]string{"stitch", "-o", dst, src}, &out, &errb); code != exitOK {
						t.Fatalf("exit %d: %s", code, errb.String())
					}
					if !strings.Contains(out.String(), "120 frames") {
						t.Errorf("summary: %s", out.String())
					}
					if d := mediatest.EqualHashes(want, mediatest.FrameHashes(t, dst)); d != "" {
						t.Errorf("decoded pictures differ from the input's: %s", d)
					}
					data, err := os.ReadFile(dst)
					if err != nil {
						t.Fatal(err)
					}
					if ext == ".mp4" {
						if i, j := bytes.Index(data, []byte("moov")), bytes.Index(data, []byte("mdat")); i < 0 || j < 0 || i > j {
							t.Error("moov is not before mdat")
						}
					} else if len(data) == 0 || len(data)%188 != 0 || data[0] != 0x47 {
						t.Errorf("not a transport stream: %d bytes", len(data))
					}
				})
			}
		}
	}
}

// TestStitchChunksAndClip stitches phone-style MP4 chunks given as files,
// and clips a recording with -from and -to to a bucket URL.
func TestStitchChunksAndClip(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	dir := t.TempDir()
	var chunks, want []string
	for _, c := range []string{"chunk0.mp4", "chunk1.mp4", "chunk2.mp4"} {
		p := mediatest.Testdata(c)
		chunks = append(chunks, p)
		want = append(want, mediatest.FrameHashes(t, p)...)
	}
	dst := filepath.Join(dir, "phone.mp4")
	var out, errb bytes.Buffer
	if code := run(append([]string{"stitch", "-o", dst}, chunks...), &out, &errb); code != exitOK {
		t.Fatalf("chunks: exit %d: %s", code, errb.String())
	}
	if d := mediatest.EqualHashes(want, mediatest.FrameHashes(t, dst)); d != "" {
		t.Errorf("chunks: decoded pictures differ from the chunks': %s", d)
	}

	in := mediatest.Testdata("bframes.mp4") // 30 fps
	all := mediatest.FrameHashes(t, in)
	rec := filepath.Join(dir, "rec")
	if code := run([]string{"record", "-segment", "1s", "-vod", in, rec}, &out, &errb); code != exitOK {
		t.Fatalf("record: exit %d: %s", code, errb.String())
	}
	url := "file://" + filepath.ToSlash(dir) + "/clips/clip.mp4"
	if code := run([]string{"stitch", "-from", "1.5s", "-to", "3.2s", "-o", url, filepath.Join(rec, "index.m3u8")}, &out, &errb); code != exitOK {
		t.Fatalf("clip: exit %d: %s", code, errb.String())
	}
	if d := mediatest.EqualHashes(all[45:96], mediatest.FrameHashes(t, filepath.Join(dir, "clips", "clip.mp4"))); d != "" {
		t.Errorf("clip [1.5 s, 3.2 s) is not the input's pictures 45..95: %s", d)
	}
}

// TestStitchUsage checks the exit codes: 2 for usage errors, 1 for
// failures (and no output file left behind), 0 for -h.
func TestStitchUsage(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.mp4")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("not a video "), 100), 0o644); err != nil {
		t.Fatal(err)
	}
	outFile := filepath.Join(dir, "out.mp4")
	runCases(t, []cliCase{
		{[]string{"stitch"}, exitUsage, "Usage: livechunk stitch"},
		{[]string{"stitch", "a.m3u8"}, exitUsage, "Usage: livechunk stitch"},
		{[]string{"stitch", "-o", outFile}, exitUsage, "Usage: livechunk stitch"},
		{[]string{"stitch", "-from", "x", "-o", outFile, "a.mp4"}, exitUsage, "invalid value"},
		{[]string{"stitch", "-from", "3s", "-to", "2s", "-o", outFile, "a.mp4"}, exitUsage, "-from < -to"},
		{[]string{"stitch", "-o", outFile, "a.m3u8", "b.m3u8"}, exitUsage, "only source"},
		{[]string{"stitch", "-o", "s3://bucket", garbage}, exitUsage, "names no object"},
		{[]string{"stitch", "-o", outFile, filepath.Join(dir, "missing.m3u8")}, exitFailure, "no such file"},
		{[]string{"stitch", "-o", outFile, filepath.Join(dir, "missing.mp4")}, exitFailure, "no such file"},
		{[]string{"stitch", "-o", outFile, garbage}, exitFailure, "invalid"},
		{[]string{"stitch", "-h"}, exitOK, "Examples:"},
		{[]string{"-h"}, exitOK, "stitch -o OUT SOURCE..."},
	})
	if left, _ := filepath.Glob(filepath.Join(dir, "*out.mp4*")); len(left) != 0 {
		t.Errorf("failed stitches left %v", left)
	}
}
