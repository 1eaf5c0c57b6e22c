package source_test

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/livechunk/livechunk/source"
)

// benchInput returns a minute of 640x360 30 fps H.264 (B-frames) with AAC
// in the container of ext (".mp4" progressive, ".fmp4.mp4" fragmented,
// ".ts"), made with ffmpeg once and kept in the temporary directory, so
// that runs of the benchmark at different commits read the same bytes.
func benchInput(b *testing.B, ext string) string {
	b.Helper()
	dir := filepath.Join(os.TempDir(), "livechunk-bench")
	p := filepath.Join(dir, "av"+ext)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		b.Skip("ffmpeg not found")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	args := []string{"-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30:duration=60",
		"-f", "lavfi", "-i", "sine=duration=60", "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "1M",
		"-x264-params", "keyint=60:scenecut=0:bframes=2", "-pix_fmt", "yuv420p", "-c:a", "aac"}
	switch ext {
	case ".fmp4.mp4":
		args = append(args, "-movflags", "frag_keyframe+empty_moov")
	case ".ts":
		args = append(args, "-f", "mpegts")
	}
	tmp := filepath.Join(dir, "tmp-"+filepath.Base(p))
	if out, err := exec.Command("ffmpeg", append(args, tmp)...).CombinedOutput(); err != nil {
		b.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	if err := os.Rename(tmp, p); err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkRead reads every packet (pictures and AAC frames) of a minute
// of video in each container with source.Open. b.SetBytes is the file's
// size.
func BenchmarkRead(b *testing.B) {
	for _, c := range []struct{ name, ext string }{{"mp4", ".mp4"}, {"fmp4", ".fmp4.mp4"}, {"ts", ".ts"}} {
		b.Run(c.name, func(b *testing.B) {
			p := benchInput(b, c.ext)
			st, err := os.Stat(p)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(st.Size())
			b.ReportAllocs()
			for b.Loop() {
				src, err := source.Open(p, source.Options{})
				if err != nil {
					b.Fatal(err)
				}
				for {
					if _, err := src.NextPacket(); err == io.EOF {
						break
					} else if err != nil {
						b.Fatal(err)
					}
				}
				src.Close()
			}
		})
	}
}
