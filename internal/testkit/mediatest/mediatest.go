// Package mediatest holds test helpers that judge media with ffmpeg and
// ffprobe rather than with livechunk's own parsers.
package mediatest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// RequireTool returns the path of an external tool. When the tool is missing
// the test is skipped, unless LIVECHUNK_REQUIRE_TOOLS is set (as in CI),
// where a missing tool fails the test.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("LIVECHUNK_REQUIRE_TOOLS") != "" {
		t.Fatalf("required tool %s not found: %v", name, err)
	}
	t.Skipf("%s not found; set LIVECHUNK_REQUIRE_TOOLS=1 to fail instead", name)
	return ""
}

// Testdata returns the absolute path of a file in the repository's testdata
// directory.
func Testdata(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "testdata", name)
}

// Run runs a command and returns its stdout; it fails the test with stderr
// on error.
func Run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	RequireTool(t, name)
	cmd := exec.Command(name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

// FFmpeg runs ffmpeg with -hide_banner -nostdin -loglevel error prepended.
func FFmpeg(t testing.TB, args ...string) []byte {
	t.Helper()
	return Run(t, "ffmpeg", append([]string{"-hide_banner", "-nostdin", "-loglevel", "error"}, args...)...)
}

// LargePictures writes 2 s of 640x360 10 fps noise, coded losslessly
// (about 350 KB a picture, as large as a 4K stream's keyframes), with an
// IDR picture every second, and AAC audio, into a new file of the given
// extension (".mp4", ".ts") in a temporary directory, and returns its path.
func LargePictures(t testing.TB, ext string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "noise"+ext)
	FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=10:duration=2,noise=alls=100:allf=t",
		"-f", "lavfi", "-i", "sine=frequency=440:duration=2",
		"-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-x264-params", "keyint=10",
		"-pix_fmt", "yuv420p", "-c:a", "aac", "-y", p)
	return p
}

// PausedVideo writes 10 s of 320x240 30 fps H.264 (B-frames, an IDR
// picture every 2 s) whose pictures from 4.5 to 6.5 s are left out, as a
// screen recorder leaves them out while nothing moves (a variable frame
// rate), with continuous AAC audio unless noAudio, into a new file of the
// given extension (".mp4", ".ts") in a temporary directory, and returns
// its path.
func PausedVideo(t testing.TB, ext string, noAudio bool) string {
	t.Helper()
	return PausedVideoAt(t, ext, noAudio, 4.5, 6.5, 3)
}

// PausedVideoAt is PausedVideo with the pictures from from to to seconds
// left out and at most bframes consecutive B-frames.
func PausedVideoAt(t testing.TB, ext string, noAudio bool, from, to float64, bframes int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "paused"+ext)
	args := []string{"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=10"}
	if !noAudio {
		args = append(args, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=10", "-c:a", "aac")
	}
	args = append(args, "-vf", fmt.Sprintf("select='not(between(t,%g,%g))'", from, to), "-fps_mode", "vfr",
		"-c:v", "libx264", "-preset", "veryfast", "-bf", fmt.Sprint(bframes), "-force_key_frames", "expr:gte(t,n_forced*2)",
		"-sc_threshold", "0", "-pix_fmt", "yuv420p", "-y", p)
	FFmpeg(t, args...)
	return p
}

// FrameHashes decodes the first video stream of input (any input ffmpeg
// accepts, including a playlist or concat list given through extra input
// args placed before -i) and returns the MD5 of every decoded frame, in
// output order.
func FrameHashes(t testing.TB, input string, inArgs ...string) []string {
	t.Helper()
	args := append([]string{}, inArgs...)
	args = append(args, "-i", input, "-map", "0:v:0", "-fps_mode", "passthrough", "-autoscale", "0", "-f", "framemd5", "-")
	out := FFmpeg(t, args...)
	return parseFrameMD5(out)
}

func parseFrameMD5(out []byte) []string {
	var hashes []string
	for _, line := range strings.Split(string(out), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) < 6 {
			continue
		}
		hashes = append(hashes, strings.TrimSpace(f[len(f)-1]))
	}
	return hashes
}

// ConcatFiles writes the byte concatenation of files (for example an fMP4
// init segment followed by its media segments) to a new temporary file and
// returns its path.
func ConcatFiles(t testing.TB, name string, parts ...[]byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	var all []byte
	for _, b := range parts {
		all = append(all, b...)
	}
	if err := os.WriteFile(p, all, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Packet is one packet as reported by ffprobe.
type Packet struct {
	PTS, DTS int64
	Key      bool
	Size     int
}

// Packets returns the packets of the first video stream of input.
func Packets(t testing.TB, input string) []Packet {
	t.Helper()
	out := Run(t, "ffprobe", "-v", "error", "-select_streams", "v:0",
		"-show_entries", "packet=pts,dts,flags,size", "-of", "csv=p=0", input)
	var pk []Packet
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) < 4 {
			t.Fatalf("ffprobe packet line %q", line)
		}
		var p Packet
		p.PTS, _ = strconv.ParseInt(f[0], 10, 64)
		p.DTS, _ = strconv.ParseInt(f[1], 10, 64)
		p.Size, _ = strconv.Atoi(f[2])
		p.Key = strings.HasPrefix(f[3], "K")
		pk = append(pk, p)
	}
	return pk
}

// EqualHashes reports where two frame hash lists differ, or "" if equal.
func EqualHashes(want, got []string) string {
	if len(want) != len(got) {
		return fmt.Sprintf("frame count: want %d, got %d", len(want), len(got))
	}
	for i := range want {
		if want[i] != got[i] {
			return fmt.Sprintf("frame %d differs: want %s, got %s", i, want[i], got[i])
		}
	}
	return ""
}

// AddFuzzSeeds adds the named testdata files to f's seed corpus, with
// truncated and damaged variants of each.
func AddFuzzSeeds(f *testing.F, names ...string) {
	for _, name := range names {
		b, err := os.ReadFile(Testdata(name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
		f.Add(b[:len(b)/7])
		f.Add(b[:min(len(b), 1000)])
		if len(b) > 100 {
			f.Add(b[:len(b)-100])
			c := bytes.Clone(b)
			for i := 64; i < len(c); i += 997 {
				c[i] ^= 0x5a
			}
			f.Add(c)
		}
	}
}
