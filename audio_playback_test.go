package livechunk_test

// Browser playback of recordings with audio: hls.js in headless Chromium
// must find the AAC track, decode it, and buffer audio and video with the
// input's offset between them. Needs ffmpeg and chromium, like
// playback_test.go. Run with: go test -run PlaybackAudio .

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/internal/testkit/browsertest"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"github.com/livechunk/livechunk/sink"
)

// playbackAudioInput encodes the playback input (see playbackInput) with
// AAC-LC audio at rate, or audio alone.
func playbackAudioInput(t *testing.T, rate, channels int, noVideo bool) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "input.mp4")
	var args []string
	if !noVideo {
		args = append(args, "-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=30:duration=%d", pbWidth, pbHeight, pbSeconds))
	}
	args = append(args, "-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=440:sample_rate=%d:duration=%d", rate, pbSeconds))
	if !noVideo {
		args = append(args, "-c:v", "libx264", "-profile:v", "high", "-preset", "veryfast", "-crf", "28", "-pix_fmt", "yuv420p",
			"-x264-params", "keyint=60:min-keyint=60:scenecut=0:bframes=3:b-pyramid=normal")
	}
	args = append(args, "-c:a", "aac", "-b:a", "96k", "-ac", fmt.Sprint(channels), "-threads", "2", p)
	mediatest.FFmpeg(t, args...)
	return p
}

// sourceBufferStart returns where the SourceBuffer whose MIME type starts
// with kind ("audio" or "video") begins, and whether there is one.
func sourceBufferStart(res browsertest.Result, kind string) (float64, bool) {
	for _, sb := range res.SourceBuffers {
		if strings.HasPrefix(sb.MimeType, kind+"/") && len(sb.Buffered) > 0 {
			return sb.Buffered[0][0], true
		}
	}
	return 0, false
}

// TestPlaybackAudio records inputs with audio (48 kHz stereo in both
// formats, 44.1 kHz mono as MPEG-TS) as VOD and plays them in Chromium: hls.js must
// parse AAC-LC from the multivariant playlist, Chromium must decode audio,
// and the whole recording must play without an hls.js error.
//
// Where audio and video land on the browser's timeline can be read for
// MPEG-TS only (hls.js transmuxes it into one SourceBuffer per track; an
// fMP4 segment with both tracks goes into one muxed SourceBuffer, where MSE
// keeps the container's offsets, which TestRecordAudio checks). hls.js
// re-times MPEG-TS audio (it moves it by a frame or two to align with the
// video), so the reference is ffmpeg's own HLS output of the same input,
// played by the same hls.js: audio and video must start where they start
// for it.
func TestPlaybackAudio(t *testing.T) {
	playbackRequireTools(t)
	for _, in := range []struct {
		rate, channels int
		formats        []chunker.Format
	}{
		{48000, 2, []chunker.Format{chunker.FMP4, chunker.TS}},
		{44100, 1, []chunker.Format{chunker.TS}},   // hls.js re-times 44.1 kHz MPEG-TS audio differently
		{48000, 6, []chunker.Format{chunker.FMP4}}, // a 5.1 camera
	} {
		input := playbackAudioInput(t, in.rate, in.channels, false)
		a, v := mediatest.FirstTimes(t, input)
		for _, format := range in.formats {
			t.Run(fmt.Sprintf("%d-%dch/%s", in.rate, in.channels, format), func(t *testing.T) {
				res := recordAndPlay(t, input, format, pbMinPlay, func(r browsertest.Result) bool { return r.FragmentsBuffered >= pbSegments })
				playbackCheck(t, res)
				checkAudioPlayback(t, res, "avc1.64")
				if format == chunker.FMP4 {
					if len(res.SourceBuffers) != 1 || !strings.Contains(res.SourceBuffers[0].MimeType, "mp4a.40.2") ||
						!strings.Contains(strings.ToLower(res.SourceBuffers[0].MimeType), "avc1.64") {
						t.Errorf("source buffers %+v, want one for both tracks", res.SourceBuffers)
					}
					return
				}
				as, aok := sourceBufferStart(res, "audio")
				vs, vok := sourceBufferStart(res, "video")
				if !aok || !vok {
					t.Fatalf("source buffers %+v: want one for audio and one for video", res.SourceBuffers)
				}
				ref := playFFmpegHLS(t, input)
				ras, _ := sourceBufferStart(ref, "audio")
				rvs, _ := sourceBufferStart(ref, "video")
				t.Logf("buffered: audio from %.5f s, video from %.5f s (ffmpeg's HLS: %.5f s, %.5f s; input offset %.5f s)", as, vs, ras, rvs, a-v)
				if math.Abs(as-ras) > 1e-3 || math.Abs(vs-rvs) > 1e-3 {
					t.Errorf("audio buffered from %.5f s, video from %.5f s; for ffmpeg's HLS output from %.5f s and %.5f s", as, vs, ras, rvs)
				}
			})
		}
	}
}

// playFFmpegHLS segments input with ffmpeg's HLS muxer (MPEG-TS, stream
// copy) and plays it like recordAndPlay does.
func playFFmpegHLS(t *testing.T, input string) browsertest.Result {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, filepath.FromSlash(pbPrefix))
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	mediatest.FFmpeg(t, "-i", input, "-c", "copy", "-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod",
		"-master_pl_name", "master.m3u8", filepath.Join(out, "index.m3u8"))
	b, err := sink.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	mediaURL, pageURL := playbackServer(t, b, true)
	res := browsertest.PlayHLS(t, mediaURL+"master.m3u8", browsertest.Options{
		PageURL: pageURL,
		MinTime: 1,
		Until:   func(r browsertest.Result) bool { return r.FragmentsBuffered >= 1 },
		Timeout: 30 * time.Second,
	})
	if !res.Reached {
		t.Fatalf("ffmpeg's HLS output did not play: %s", res)
	}
	return res
}

// TestPlaybackAudioOnly plays an audio-only recording in both formats.
func TestPlaybackAudioOnly(t *testing.T) {
	playbackRequireTools(t)
	input := playbackAudioInput(t, 48000, 2, true)
	for _, format := range []chunker.Format{chunker.FMP4, chunker.TS} {
		t.Run(format.String(), func(t *testing.T) {
			res := recordAndPlay(t, input, format, 2.5, nil) // past the first segment
			checkAudioPlayback(t, res, "")
			for _, sb := range res.SourceBuffers {
				if !strings.HasPrefix(sb.MimeType, "audio/") {
					t.Errorf("source buffer %s for an audio-only stream", sb.MimeType)
				}
			}
		})
	}
}

// recordAndPlay records input as a VOD and plays its multivariant playlist
// past minTime seconds (and until, if set).
func recordAndPlay(t *testing.T, input string, format chunker.Format, minTime float64, until func(browsertest.Result) bool) browsertest.Result {
	t.Helper()
	ctx := t.Context()
	b, err := sink.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	recordVOD(t, b, input, format, pbSegment)
	mediaURL, pageURL := playbackServer(t, b, true)
	res := browsertest.PlayHLS(t, mediaURL+"master.m3u8", browsertest.Options{
		PageURL: pageURL,
		MinTime: minTime,
		Until:   until,
		Timeout: 30 * time.Second,
	})
	t.Log(res)
	if !res.Reached {
		t.Fatalf("playback did not pass %.1f s", minTime)
	}
	return res
}

// checkAudioPlayback asserts that hls.js played an AAC track: the variant
// lists AAC-LC (and the video codec when videoCodec is set), a SourceBuffer
// takes AAC, Chromium decoded audio, and no hls.js error fired (but a
// stall on a starved CPU, or the start-up seek described below).
func checkAudioPlayback(t *testing.T, res browsertest.Result, videoCodec string) {
	t.Helper()
	for _, l := range res.Levels {
		if l.AudioCodec != "mp4a.40.2" || videoCodec != "" && !strings.HasPrefix(l.VideoCodec, videoCodec) {
			t.Errorf("variant as hls.js parsed it: %+v, want audio mp4a.40.2", l)
		}
	}
	aac := false
	for _, sb := range res.SourceBuffers {
		aac = aac || strings.Contains(sb.MimeType, "mp4a.40.2")
	}
	if !aac {
		t.Errorf("no SourceBuffer for AAC: %+v", res.SourceBuffers)
	}
	if res.AudioDecodedBytes <= 0 {
		t.Errorf("Chromium decoded no audio (webkitAudioDecodedByteCount %d)", res.AudioDecodedBytes)
	}
	for _, e := range res.Errors {
		if e.Starved() {
			t.Logf("tolerated: playback stalled with %.1f s buffered: %s", e.BufferLen, e)
			continue
		}
		if e.Details == "bufferSeekOverHole" && !e.Fatal && e.CurrentTime < 0.5 {
			// hls.js at times seeks over the start of MPEG-TS with audio
			// and B-frames (video buffered from the first picture's PTS,
			// audio before it); ffmpeg's own HLS output of the same input
			// triggers it as often.
			t.Logf("tolerated: %s", e)
			continue
		}
		t.Errorf("hls.js error event: %s", e)
	}
}
