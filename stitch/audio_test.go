package stitch_test

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"github.com/livechunk/livechunk/stitch"
)

// TestAudio stitches the audio inputs of internal/testkit/mediatest (44.1 kHz
// stereo MP4, 48 kHz mono MOV, an MPEG-TS whose PTS wrap, fragmented MP4,
// audio only), recorded as fMP4 and as MPEG-TS segments, and the input
// files themselves, and has ffmpeg judge the MP4: the input's audio packet
// count, decoded audio and pictures equal to the input's, and the first
// audio and video timestamps keep the input's offset within one frame.
//
// A recording carries the encoder priming that an MP4 input's edit list
// hides as frames before the first picture, so its stitch is compared with
// the input decoded without its edit list (as TestRecordAudio compares the
// playlist); an input file stitched directly keeps its edit list, and
// decodes exactly like it.
func TestAudio(t *testing.T) {
	for _, in := range mediatest.AudioInputs(t) {
		t.Run(in.Name, func(t *testing.T) {
			t.Parallel()
			wantPackets, wantVideo, inOffset, frame := inputFacts(t, in)
			check := func(t *testing.T, src *stitch.Input, wantAudio []string) {
				out, res := writeFile(t, src, ".mp4", stitch.Options{})
				if got := topBoxes(t, out); !slices.Equal(got, []string{"ftyp", "moov", "mdat"}) {
					t.Errorf("top-level boxes %v", got)
				}
				checkAudio(t, out, res, wantPackets, wantAudio)
				if in.NoVideo {
					if res.Samples != 0 || len(mediatest.Run(t, "ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "stream=index", "-of", "csv=p=0", out)) != 0 {
						t.Errorf("audio only input: %d pictures, or a video stream", res.Samples)
					}
					return
				}
				if d := mediatest.EqualHashes(wantVideo, mediatest.FrameHashes(t, out)); d != "" {
					t.Errorf("decoded video differs from the input's: %s", d)
				}
				checkOffset(t, out, inOffset, frame)
			}
			for _, f := range []chunker.Format{chunker.FMP4, chunker.TS} {
				t.Run(f.String(), func(t *testing.T) {
					src := recorded(t, in.File, f, "rec/", 2*time.Second)
					check(t, src, mediatest.AudioHashes(t, in.File, in.EditList))
				})
			}
			if !in.NoVideo {
				t.Run("clip", func(t *testing.T) {
					// [1.5 s, 3.2 s): audio is presented over the same range,
					// with one frame before it for the decoder, hidden.
					out, res := writeFile(t, stitch.FromFiles(in.File), ".mp4", stitch.Options{From: 1500 * time.Millisecond, To: 3200 * time.Millisecond})
					a, v := mediatest.FirstTimes(t, out)
					if v > 1e-3 || a > 1e-3 || a < -2*frame || res.AudioFrames < int(1.7/frame) || res.AudioFrames > int(1.7/frame)+3 {
						t.Errorf("clip: first audio at %.4f s, first picture at %.4f s, %d audio frames (%.4f s each)", a, v, res.AudioFrames, frame)
					}
					if n := len(mediatest.AudioHashes(t, out, false)); n < int(1.7/frame) {
						t.Errorf("clip: %d audio frames decode", n)
					}
				})
			}
			t.Run("file", func(t *testing.T) {
				check(t, stitch.FromFiles(in.File), mediatest.AudioHashes(t, in.File, false))
			})
		})
	}
}

// TestAudioTS remuxes audio inputs (44.1 kHz stereo MP4, 48 kHz mono MOV,
// audio only M4A) into MPEG-TS: recorded as fMP4 segments and the input
// files themselves. The AAC track is ADTS on its own PID: ffmpeg reads the
// input's audio packet count and decodes the input's audio frames and
// pictures, and the first audio and video timestamps keep the input's
// offset within one frame. MPEG-TS has no edit list, so the encoder
// priming that an MP4 input's edit list hides is kept and played: the
// output decodes like the input decoded without its edit list (the
// recording carries the priming as frames anyway, see TestAudio).
func TestAudioTS(t *testing.T) {
	for _, in := range mediatest.AudioInputs(t) {
		switch in.Name {
		case "mp4-44k1-stereo", "mov-48k-mono", "audio-only-mp4":
		default:
			continue
		}
		t.Run(in.Name, func(t *testing.T) {
			t.Parallel()
			wantPackets, wantVideo, inOffset, frame := inputFacts(t, in)
			wantAudio := mediatest.AudioHashes(t, in.File, in.EditList)
			check := func(t *testing.T, src *stitch.Input) {
				out, res := writeFile(t, src, ".ts", stitch.Options{})
				checkAudio(t, out, res, wantPackets, wantAudio)
				if log := continuityErrors(t, out); log != "" {
					t.Errorf("ffmpeg reports continuity errors:\n%s", log)
				}
				a, v := mediatest.FirstTimes(t, out)
				if in.NoVideo {
					if res.Samples != 0 || !math.IsInf(v, 1) || math.Abs(a-1.4) > 1e-3 {
						t.Errorf("audio only: %d pictures, first picture at %v s, first audio at %.4f s (want 1.4)", res.Samples, v, a)
					}
					return
				}
				if d := mediatest.EqualHashes(wantVideo, mediatest.FrameHashes(t, out)); d != "" {
					t.Errorf("decoded video differs from the input's: %s", d)
				}
				checkOffset(t, out, inOffset, frame)
				if min(a, v) < 1.4-1e-3 {
					t.Errorf("first audio %.4f s, first video %.4f s: output starts before 1.4 s", a, v)
				}
			}
			t.Run("fmp4", func(t *testing.T) {
				src := recorded(t, in.File, chunker.FMP4, "rec/", 2*time.Second)
				check(t, src)
			})
			t.Run("file", func(t *testing.T) {
				check(t, stitch.FromFiles(in.File))
			})
			if in.NoVideo {
				return
			}
			// A clip from [2.5 s, 3.2 s) starts at the keyframe at 2 s;
			// its audio covers the pictures from there (one frame before
			// the first, for the decoder) to 3.2 s. Recorded as MPEG-TS
			// (remuxed because of the clip) and as fMP4.
			for _, f := range []chunker.Format{chunker.TS, chunker.FMP4} {
				t.Run("clip-"+f.String(), func(t *testing.T) {
					src := recorded(t, in.File, f, "rec/", 2*time.Second)
					out, res := writeFile(t, src, ".ts", stitch.Options{From: 2500 * time.Millisecond, To: 3200 * time.Millisecond})
					n := mediatest.PacketCount(t, out, "audio")
					lo, hi := int(1.2/frame), int(1.2/frame)+3
					if res.AudioFrames != n || n < lo || n > hi {
						t.Errorf("clip: %d audio frames (ffprobe reads %d), want %d to %d", res.AudioFrames, n, lo, hi)
					}
					a, v := mediatest.FirstTimes(t, out)
					t.Logf("clip: first audio %.4f s, first picture %.4f s", a, v)
					if a > v || a < v-2*frame {
						t.Errorf("clip: first audio at %.4f s, first picture at %.4f s (one frame is %.4f s)", a, v, frame)
					}
					// The clip's audio packets are a run of the unclipped
					// stream's. (Decoded frames are not compared: the
					// decoder's noise substitution depends on the frames
					// before.)
					if len(mediatest.AudioHashes(t, out, false)) < lo {
						t.Errorf("clip: fewer than %d audio frames decode", lo)
					}
					full, _ := writeFile(t, src, ".ts", stitch.Options{})
					got, all := audioPacketHashes(t, out), audioPacketHashes(t, full)
					run := false
					for k := 0; k+len(got) <= len(all) && !run; k++ {
						run = slices.Equal(all[k:k+len(got)], got)
					}
					if !run {
						t.Errorf("clip: the audio packets are not a run of the unclipped stream's")
					}
					if d := mediatest.EqualHashes(wantVideo[60:96], mediatest.FrameHashes(t, out)[:36]); d != "" {
						t.Errorf("clip: pictures are not the input's 60..95: %s", d)
					}
					// Past To, an MPEG-TS clip shows what its last reference
					// picture needs: a run of the input's pictures, no hole,
					// whichever picture of a B-frame run To falls on.
					for k := range 4 {
						to := 3200*time.Millisecond + time.Duration(k)*time.Second/30
						clip, _ := writeFile(t, src, ".ts", stitch.Options{From: 2500 * time.Millisecond, To: to})
						if got := mediatest.FrameHashes(t, clip); len(got) > 60 || 60+len(got) > len(wantVideo) {
							t.Errorf("clip to %v: %d pictures", to, len(got))
						} else if d := mediatest.EqualHashes(wantVideo[60:60+len(got)], got); d != "" {
							t.Errorf("clip to %v: its %d pictures are not a run of the input's from 60: %s", to, len(got), d)
						}
					}
				})
			}
		})
	}
}

// audioPacketHashes returns the MD5 of every packet of the first audio
// stream of input, as ffprobe reads it (not decoded).
func audioPacketHashes(t testing.TB, input string) []string {
	t.Helper()
	var hashes []string
	out := mediatest.Run(t, "ffprobe", "-v", "error", "-select_streams", "a:0", "-show_data_hash", "MD5",
		"-show_entries", "packet=data_hash", "-of", "csv=p=0", input)
	for _, line := range strings.Split(string(out), "\n") {
		if h := strings.Trim(line, ", "); h != "" {
			hashes = append(hashes, h)
		}
	}
	if len(hashes) == 0 {
		t.Fatalf("%s: no audio packets", input)
	}
	return hashes
}

// checkAudio checks the audio of a stitched file: the result's and
// ffprobe's frame counts, and the decoded frames.
func checkAudio(t *testing.T, out string, res stitch.Result, wantPackets int, wantAudio []string) {
	t.Helper()
	if res.AudioFrames != wantPackets || res.AudioDropped != 0 {
		t.Errorf("result: %d audio frames (%d dropped), input has %d", res.AudioFrames, res.AudioDropped, wantPackets)
	}
	if got := mediatest.PacketCount(t, out, "audio"); got != wantPackets {
		t.Errorf("ffprobe reads %d audio packets, the input has %d", got, wantPackets)
	}
	if d := mediatest.EqualHashes(wantAudio, mediatest.AudioHashes(t, out, false)); d != "" {
		t.Errorf("decoded audio differs from the input's: %s", d)
	}
}

// checkOffset checks that the first audio and video timestamps of a
// stitched file keep the input's offset inOffset within one frame.
func checkOffset(t *testing.T, out string, inOffset, frame float64) {
	t.Helper()
	a, v := mediatest.FirstTimes(t, out)
	t.Logf("first audio − first video: %.5f s (input %.5f s)", a-v, inOffset)
	if d := (a - v) - inOffset; math.Abs(d) >= frame {
		t.Errorf("first audio %.5f s − first video %.5f s = %.5f s, input %.5f s (one frame is %.5f s)", a, v, a-v, inOffset, frame)
	}
}

// inputFacts returns what ffmpeg reads from an audio input: its audio
// packet count, its decoded pictures, the offset of its first audio
// timestamp from its first video one, and the duration of an AAC frame.
func inputFacts(t *testing.T, in mediatest.AudioInput) (packets int, video []string, offset, frame float64) {
	t.Helper()
	packets = mediatest.PacketCount(t, in.File, "audio")
	if !in.NoVideo {
		video = mediatest.FrameHashes(t, in.File)
		a, v := mediatest.FirstTimes(t, in.File)
		offset = a - v
	}
	return packets, video, offset, 1024 / float64(in.Rate)
}

// TestTSLateAudio: an MPEG-TS recording whose audio starts 2.5 s after its
// video, so that its first segments list the AAC stream in their program
// map but hold none of its frames, stitches whole (without waiting for an
// audio frame in the first segment), with the input's pictures, every
// audio frame and the audio's offset.
func TestTSLateAudio(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	t.Parallel()
	file := filepath.Join(t.TempDir(), "late.ts")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-itsoffset", "2.5",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "6", "-map", "0:v", "-map", "1:a",
		"-c:v", "libx264", "-g", "30", "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "mpegts", file)
	in := mediatest.AudioInput{Name: "late", File: file, Rate: 48000}
	wantPackets, wantVideo, inOffset, frame := inputFacts(t, in)
	if inOffset < 2 {
		t.Fatalf("input's audio starts %.3f s after its video, want 2.5", inOffset)
	}
	wantAudio := mediatest.AudioHashes(t, file, false)
	src := recorded(t, file, chunker.TS, "rec/", time.Second)
	for _, ext := range []string{".mp4", ".ts"} {
		t.Run(ext, func(t *testing.T) {
			out, res := writeFile(t, src, ext, stitch.Options{})
			checkAudio(t, out, res, wantPackets, wantAudio)
			if d := mediatest.EqualHashes(wantVideo, mediatest.FrameHashes(t, out)); d != "" {
				t.Errorf("decoded video differs from the input's: %s", d)
			}
			checkOffset(t, out, inOffset, frame)
		})
	}
}

// TestPausedVideoFile: an MPEG-TS file (no playlist, so no EXTINF) whose
// video pauses for 2 s while its audio goes on is stitched with the pause
// kept: the audio inside the step tells it from a timestamp jump, which
// would be closed (and the audio over it dropped).
func TestPausedVideoFile(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	t.Parallel()
	in := mediatest.PausedVideo(t, ".ts", false)
	want := mediatest.FrameHashes(t, in)
	wantAudio := mediatest.PacketCount(t, in, "audio")
	out, res := writeFile(t, stitch.FromFiles(in), ".mp4", stitch.Options{})
	if d := mediatest.EqualHashes(want, mediatest.FrameHashes(t, out)); d != "" {
		t.Error(d)
	}
	if res.AudioFrames != wantAudio || res.Discontinuities != 0 || math.Abs(res.Duration.Seconds()-10) > 0.1 {
		t.Errorf("%d audio frames (want %d), %d discontinuities joined, %v (want 10 s)", res.AudioFrames, wantAudio, res.Discontinuities, res.Duration)
	}
}

// TestJoinedFilesJump: three MPEG-TS files joined end to end whose
// timestamps start at 0, 30 and 10 s are one object with two jumps: the
// third file's audio lies inside the first jump but does not fill it, so
// both jumps are joined (and not kept as pauses of the video), and each
// file's audio is placed with its own pictures.
func TestJoinedFilesJump(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	t.Parallel()
	dir := t.TempDir()
	var parts [][]byte
	for i, off := range []string{"0", "30", "10"} {
		p := filepath.Join(dir, fmt.Sprintf("%d.ts", i))
		mediatest.FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=5",
			"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=5", "-c:v", "libx264", "-g", "30",
			"-pix_fmt", "yuv420p", "-c:a", "aac", "-output_ts_offset", off, "-f", "mpegts", p)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, b)
	}
	joined := mediatest.ConcatFiles(t, "joined.ts", parts...)
	out, res := writeFile(t, stitch.FromFiles(joined), ".mp4", stitch.Options{})
	if res.Discontinuities != 2 || res.Samples != 450 {
		t.Errorf("%d jumps joined (want 2), %d pictures (want 450)", res.Discontinuities, res.Samples)
	}
	// Each file's audio follows its own pictures: the whole lasts 15 s.
	if d := res.Duration.Seconds(); math.Abs(d-15) > 0.2 {
		t.Errorf("%.3f s, want 15", d)
	}
	if n := mediatest.PacketCount(t, out, "audio"); n < 3*234-3 {
		t.Errorf("%d audio frames, want about %d", n, 3*235)
	}
	if n := len(mediatest.FrameHashes(t, out)); n != 450 {
		t.Errorf("%d pictures decode, want 450", n)
	}
}

// TestJoinedFilesLateAudio: two MPEG-TS files whose timestamps both start
// at 0, joined end to end, with the first file's last audio PES packet
// sent after the second file's first pictures (as a muxer that buffers
// audio does around an encoder restart): every audio frame is kept, each
// on its own file's timeline. The frame's time fits either timeline; that
// it follows the frame before it tells.
func TestJoinedFilesLateAudio(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	t.Parallel()
	p := filepath.Join(t.TempDir(), "a.ts")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=5",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=5", "-c:v", "libx264", "-g", "30",
		"-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "mpegts", p)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	const size = 188
	var pkts [][]byte
	for i := 0; i+size <= len(b); i += size {
		pkts = append(pkts, b[i:i+size])
	}
	pid := func(q []byte) int { return int(q[1]&0x1f)<<8 | int(q[2]) }
	pesStart := func(q []byte, streamID byte) bool { // a PUSI packet whose PES has this stream id (mask 0xf0)
		if q[1]&0x40 == 0 {
			return false
		}
		off := 4
		if q[3]&0x20 != 0 {
			off += 1 + int(q[4])
		}
		return off+4 <= size && q[off] == 0 && q[off+1] == 0 && q[off+2] == 1 && q[off+3]&0xf0 == streamID
	}
	audio, video := -1, -1
	lastAudio := -1 // first packet of the last audio PES
	for i, q := range pkts {
		switch {
		case pesStart(q, 0xc0):
			audio, lastAudio = pid(q), i
		case pesStart(q, 0xe0):
			video = pid(q)
		}
	}
	if audio < 0 || video < 0 {
		t.Fatal("no audio or video PES in the input")
	}
	var first, late, second [][]byte // file A without its last audio PES, that PES, file B
	for i, q := range pkts {
		if i >= lastAudio && pid(q) == audio {
			late = append(late, q)
		} else {
			first = append(first, q)
		}
	}
	n := 0 // file B with A's last audio PES after its second video PES start
	for _, q := range pkts {
		second = append(second, q)
		if pid(q) == video && q[1]&0x40 != 0 {
			if n++; n == 2 {
				second = append(second, late...)
			}
		}
	}
	joined := mediatest.ConcatFiles(t, "joined.ts", append(first, second...)...)
	want := 2 * mediatest.PacketCount(t, p, "audio")
	_, res := writeFile(t, stitch.FromFiles(joined), ".mp4", stitch.Options{})
	if res.AudioFrames < want-2 || res.Discontinuities != 1 {
		t.Errorf("%d audio frames of %d, %d jumps joined (want 1)", res.AudioFrames, want, res.Discontinuities)
	}
}
