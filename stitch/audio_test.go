package stitch_test

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/internal/mediatest"
	"github.com/livechunk/livechunk/stitch"
)

// TestAudio stitches the audio inputs of internal/mediatest (44.1 kHz
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
			wantPackets := mediatest.PacketCount(t, in.File, "audio")
			var wantVideo []string
			var inOffset float64
			if !in.NoVideo {
				wantVideo = mediatest.FrameHashes(t, in.File)
				a, v := mediatest.FirstTimes(t, in.File)
				inOffset = a - v
			}
			frame := 1024 / float64(in.Rate)
			check := func(t *testing.T, src *stitch.Input, wantAudio []string) {
				out, res := writeFile(t, src, ".mp4", stitch.Options{})
				if got := topBoxes(t, out); !slices.Equal(got, []string{"ftyp", "moov", "mdat"}) {
					t.Errorf("top-level boxes %v", got)
				}
				if res.AudioFrames != wantPackets || res.AudioDropped != 0 {
					t.Errorf("result: %d audio frames (%d dropped), input has %d", res.AudioFrames, res.AudioDropped, wantPackets)
				}
				if got := mediatest.PacketCount(t, out, "audio"); got != wantPackets {
					t.Errorf("ffprobe reads %d audio packets, the input has %d", got, wantPackets)
				}
				if d := mediatest.EqualHashes(wantAudio, mediatest.AudioHashes(t, out, false)); d != "" {
					t.Errorf("decoded audio differs from the input's: %s", d)
				}
				if in.NoVideo {
					if res.Samples != 0 || len(mediatest.Run(t, "ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "stream=index", "-of", "csv=p=0", out)) != 0 {
						t.Errorf("audio only input: %d pictures, or a video stream", res.Samples)
					}
					return
				}
				if d := mediatest.EqualHashes(wantVideo, mediatest.FrameHashes(t, out)); d != "" {
					t.Errorf("decoded video differs from the input's: %s", d)
				}
				a, v := mediatest.FirstTimes(t, out)
				t.Logf("first audio − first video: %.5f s (input %.5f s)", a-v, inOffset)
				if d := (a - v) - inOffset; math.Abs(d) >= frame {
					t.Errorf("first audio %.5f s − first video %.5f s = %.5f s, input %.5f s (one frame is %.5f s)", a, v, a-v, inOffset, frame)
				}
			}
			for _, f := range []chunker.Format{chunker.FMP4, chunker.TS} {
				t.Run(f.String(), func(t *testing.T) {
					b, _ := fileBucket(t)
					key := record(t, b, in.File, f, "rec/", 2*time.Second)
					src, err := stitch.FromPlaylist(t.Context(), b, key)
					if err != nil {
						t.Fatal(err)
					}
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
