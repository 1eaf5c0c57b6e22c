package mediatest

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// AudioInput is an input with AAC audio made by ffmpeg (see AudioInputs).
type AudioInput struct {
	Name     string
	File     string
	Rate     int  // sample rate
	NoVideo  bool // audio only
	EditList bool // MP4/MOV whose edit list hides the encoder priming from a plain decode
}

var (
	audioInputsOnce sync.Once
	audioInputsDir  string
	audioInputsErr  error
)

// AudioInputs encodes the audio test inputs once per test binary run (into
// a temporary directory that stays until the machine cleans it): H.264 with
// B-frames and an IDR every 2 s, 6 s, 320x240 at 30 fps, and AAC-LC at
// 64 kbit/s: MP4 44.1 kHz stereo, MOV 48 kHz mono, MPEG-TS 44.1 kHz whose
// PTS wrap around 2^33 after about 2 s, fragmented MP4 48 kHz, and audio
// only as MP4 (48 kHz) and MPEG-TS (44.1 kHz mono).
func AudioInputs(t testing.TB) []AudioInput {
	t.Helper()
	RequireTool(t, "ffmpeg")
	RequireTool(t, "ffprobe")
	inputs := []AudioInput{
		{Name: "mp4-44k1-stereo", File: "in44.mp4", Rate: 44100, EditList: true},
		{Name: "mov-48k-mono", File: "in48mono.mov", Rate: 48000, EditList: true},
		{Name: "ts-ptswrap", File: "inwrap.ts", Rate: 44100},
		{Name: "fmp4-48k", File: "infrag.mp4", Rate: 48000},
		{Name: "audio-only-mp4", File: "onlyaudio.m4a", Rate: 48000, NoVideo: true, EditList: true},
		{Name: "audio-only-ts", File: "onlyaudio.ts", Rate: 44100, NoVideo: true},
	}
	audioInputsOnce.Do(func() {
		d, err := os.MkdirTemp("", "livechunk-audio-")
		if err != nil {
			audioInputsErr = err
			return
		}
		audioInputsDir = d
		videoIn := []string{"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=6"}
		videoOut := []string{"-c:v", "libx264", "-preset", "veryfast",
			"-x264-params", "keyint=60:min-keyint=60:scenecut=0:bframes=3:b-pyramid=normal", "-pix_fmt", "yuv420p"}
		audioIn := func(rate int) []string {
			return []string{"-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=440:sample_rate=%d:duration=6", rate)}
		}
		audioOut := func(ch int) []string { return []string{"-c:a", "aac", "-b:a", "64k", "-ac", strconv.Itoa(ch)} }
		audio := func(rate, ch int) []string { return append(audioIn(rate), audioOut(ch)...) }
		run := func(name string, args ...string) {
			FFmpeg(t, append(append([]string{"-y"}, args...), filepath.Join(d, name))...)
		}
		av := func(rate, ch int) []string {
			var args []string
			for _, part := range [][]string{videoIn, audioIn(rate), videoOut, audioOut(ch)} {
				args = append(args, part...)
			}
			return args
		}
		run("in44.mp4", av(44100, 2)...)
		run("in48mono.mov", av(48000, 1)...)
		run("inwrap.ts", append(av(44100, 2), "-output_ts_offset", "95442", "-f", "mpegts")...)
		run("infrag.mp4", append(av(48000, 2), "-movflags", "frag_keyframe+empty_moov+default_base_moof")...)
		run("onlyaudio.m4a", audio(48000, 2)...)
		run("onlyaudio.ts", append(audio(44100, 1), "-f", "mpegts")...)
	})
	if audioInputsErr != nil {
		t.Fatal(audioInputsErr)
	}
	for i := range inputs {
		inputs[i].File = filepath.Join(audioInputsDir, inputs[i].File)
	}
	return inputs
}

// PacketCount returns the number of packets of the first stream of a kind
// ("audio", "video") that ffprobe reads from input.
func PacketCount(t testing.TB, input, kind string) int {
	t.Helper()
	sel := "a:0"
	if kind == "video" {
		sel = "v:0"
	}
	out := strings.TrimSpace(string(Run(t, "ffprobe", "-v", "error", "-select_streams", sel, "-count_packets",
		"-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", input)))
	out, _, _ = strings.Cut(out, "\n")
	n, err := strconv.Atoi(strings.Trim(out, ","))
	if err != nil {
		t.Fatalf("ffprobe packet count %q", out)
	}
	return n
}

// AudioHashes returns the MD5 of every audio frame ffmpeg decodes from
// input. With allPackets, an MP4 edit list is ignored, so that the encoder
// priming frames it hides are decoded too (a segmented stream carries them
// as frames before the first picture).
func AudioHashes(t testing.TB, input string, allPackets bool) []string {
	t.Helper()
	var args []string
	if allPackets {
		args = append(args, "-ignore_editlist", "1")
	}
	args = append(args, "-i", input, "-map", "0:a:0", "-f", "framemd5", "-")
	var hashes []string
	for _, line := range strings.Split(string(FFmpeg(t, args...)), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ",")
		hashes = append(hashes, strings.TrimSpace(f[len(f)-1]))
	}
	return hashes
}

// FirstTimes returns the earliest presentation time, in seconds, of the
// first audio and of the first video stream of input, as ffprobe reads it
// (+Inf for a kind that is missing).
func FirstTimes(t testing.TB, input string) (audio, video float64) {
	t.Helper()
	out := string(Run(t, "ffprobe", "-v", "error", "-show_entries", "packet=codec_type,pts_time",
		"-of", "csv=p=0", input))
	audio, video = math.Inf(1), math.Inf(1)
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(strings.TrimSpace(line), ",")
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "audio":
			audio = min(audio, v)
		case "video":
			video = min(video, v)
		}
	}
	return audio, video
}

// AVChunks encodes n phone-style MP4 chunks of 2 s each into a temporary
// directory: H.264 320x240 at 30 fps with B-frames and an IDR every second,
// and AAC-LC at rate Hz, each chunk starting at 0 with its own encoder
// priming. It returns their paths and their total number of audio packets.
func AVChunks(t testing.TB, n, rate int) (paths []string, audioPackets int) {
	t.Helper()
	dir := t.TempDir()
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("chunk%d.mp4", i))
		FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=2",
			"-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=440:sample_rate=%d:duration=2", rate),
			"-c:v", "libx264", "-preset", "veryfast", "-x264-params", "keyint=30:scenecut=0:bframes=2", "-pix_fmt", "yuv420p",
			"-c:a", "aac", "-b:a", "64k", p)
		paths = append(paths, p)
		audioPackets += PacketCount(t, p, "audio")
	}
	return paths, audioPackets
}
