package livechunk_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/livechunk/livechunk"
	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/internal/testkit/browsertest"
	"github.com/livechunk/livechunk/internal/testkit/chunkkit"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"github.com/livechunk/livechunk/server"
	"github.com/livechunk/livechunk/sink"
	"github.com/livechunk/livechunk/source"
	"github.com/livechunk/livechunk/stitch"
)

// joiner is one of the callers that join independently timed parts: it
// takes the part files in order, numbered (a gap in the numbers is a part
// that never arrived), and returns the outputs to judge.
type joiner struct {
	name string
	join func(t *testing.T, paths []string, nums []int) []string
}

// chunkJoiners are every caller that joins phone chunks: record (fMP4 and
// MPEG-TS), the server's chunk ingest (its live playlist and its stitched
// VOD) and stitch of the chunk files (MP4 and MPEG-TS).
var chunkJoiners = []joiner{
	{"record fmp4", func(t *testing.T, paths []string, _ []int) []string { return recordChunks(t, paths, chunker.FMP4) }},
	{"record ts", func(t *testing.T, paths []string, _ []int) []string { return recordChunks(t, paths, chunker.TS) }},
	{"serve", serveChunks},
	{"stitch mp4", func(t *testing.T, paths []string, _ []int) []string { return stitchFiles(t, paths, ".mp4") }},
	{"stitch ts", func(t *testing.T, paths []string, _ []int) []string { return stitchFiles(t, paths, ".ts") }},
}

func recordChunks(t *testing.T, paths []string, format chunker.Format) []string {
	src, err := source.OpenChunks(paths, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	return recordSource(t, src, format)
}

// recordSource records src as a VOD into a directory and returns its
// playlist.
func recordSource(t *testing.T, src source.Source, format chunker.Format) []string {
	dir := t.TempDir()
	b, err := sink.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := livechunk.Record(context.Background(), b, src, livechunk.Config{Format: format, Playlist: hls.VOD}); err != nil {
		t.Fatal(err)
	}
	return []string{filepath.Join(dir, "index.m3u8")}
}

func serveChunks(t *testing.T, paths []string, nums []int) []string {
	return serve(t, func(do func(method, path string, body []byte)) {
		for i, p := range paths {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			do("PUT", fmt.Sprintf("/ingest/cam/%d", nums[i]), data)
		}
		do("POST", "/ingest/cam/end", nil)
	})
}

// serve runs a server on a directory, has ingest make requests of it
// (each must be answered 200), shuts it down (which waits for the VOD
// stitch of an ended stream) and returns the stream cam's live playlist
// and VOD file.
func serve(t *testing.T, ingest func(do func(method, path string, body []byte))) []string {
	dir := t.TempDir()
	b, err := sink.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	srv, err := server.New(server.Config{Bucket: b, Stitch: server.StitchMP4})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	ingest(func(method, path string, body []byte) {
		req, _ := http.NewRequest(method, ts.URL+path, bytes.NewReader(body))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: %s", method, path, res.Status)
		}
	})
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	return []string{filepath.Join(dir, "cam", "index.m3u8"), filepath.Join(dir, "cam", "vod.mp4")}
}

func stitchFiles(t *testing.T, paths []string, ext string) []string {
	out := filepath.Join(t.TempDir(), "stitched"+ext)
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	write := stitch.WriteMP4
	if ext == ".ts" {
		write = stitch.WriteTS
	}
	if _, err := write(context.Background(), f, stitch.FromFiles(paths...), stitch.Options{}); err != nil {
		t.Fatal(err)
	}
	return []string{out}
}

// TestJoinConformance feeds the same sequences of phone chunks, cut from
// one continuous capture as devices cut them, to every caller that joins
// them, and judges each output against the capture with ffmpeg: the
// pictures step by one frame across every join (no hole, no stretched
// frame), no audio frame is lost or added (byte for byte), and each
// chunk's audio stays within a millisecond of its pictures.
func TestJoinConformance(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	capture := chunkkit.NewCapture(t, 12, 48000, 2)
	other := chunkkit.NewCapture(t, 12, 44100, 2) // the same scene from another microphone setting
	const gops = 3                                // 3 s chunks
	for _, tc := range []struct {
		name   string
		chunks func() ([]chunkkit.Chunk, []int) // the chunks that arrive and their numbers
	}{
		{"B-frame chunks, audio leads 53 ms", func() ([]chunkkit.Chunk, []int) {
			return capture.Cut(gops, []float64{0.053}), []int{0, 1, 2, 3}
		}},
		{"audio leads and trails, iPhone timescale 600, 90 kHz", func() ([]chunkkit.Chunk, []int) {
			ch := capture.Cut(gops, []float64{0.04, -0.06, 0.02, -0.03})
			for i := range ch {
				ch[i].VideoTimescale = []uint32{600, 90000, 600, 15360}[i]
				ch[i].AudioTimescale = []uint32{48000, 90000, 48000, 48000}[i]
			}
			return ch, []int{0, 1, 2, 3}
		}},
		{"a missing chunk", func() ([]chunkkit.Chunk, []int) {
			ch := capture.Cut(gops, []float64{0.021})
			return []chunkkit.Chunk{ch[0], ch[2], ch[3]}, []int{0, 2, 3}
		}},
		{"an AAC configuration change", func() ([]chunkkit.Chunk, []int) {
			ch := capture.Cut(gops, []float64{0.03})
			// Chunk 2's audio comes from another encoder (44.1 kHz): it
			// cannot go into the stream's 48 kHz track and is left out.
			c := &ch[2]
			c.Audio = other
			c.F0, c.F1 = framesBetween(other, float64(capture.Frames[c.F0].PTS)/48000, float64(capture.Frames[c.F1].PTS)/48000)
			return ch, []int{0, 1, 2, 3}
		}},
	} {
		chunks, nums := tc.chunks()
		dir := t.TempDir()
		var paths []string
		for i, ch := range chunks {
			p := filepath.Join(dir, fmt.Sprintf("chunk%d.mp4", nums[i]))
			chunkkit.WriteChunk(t, p, capture, ch)
			paths = append(paths, p)
		}
		ex := chunkkit.ExpectChunks(capture, chunks)
		for _, j := range chunkJoiners {
			t.Run(tc.name+"/"+j.name, func(t *testing.T) {
				for _, out := range j.join(t, paths, nums) {
					v, a := chunkkit.Read(t, out)
					if err := chunkkit.Check(ex, v, a); err != nil {
						t.Errorf("%s:\n%v", filepath.Base(out), err)
					}
				}
			})
		}
	}
}

// framesBetween returns the range of c's audio frames that start from one
// time to another (seconds).
func framesBetween(c *chunkkit.Capture, from, to float64) (int, int) {
	a, b := -1, len(c.Frames)
	for i, f := range c.Frames {
		at := float64(f.PTS) / float64(c.SampleRate)
		if a < 0 && at >= from-0.0001 {
			a = i
		}
		if at < to-0.0001 {
			b = i + 1
		}
	}
	return a, b
}

// streamJoiners are every caller that reads one stream whose timestamps
// wrap, splice or pause: record (fMP4 and MPEG-TS), the server's MPEG-TS
// push (its live playlist and its VOD) and stitch (MP4 and MPEG-TS).
var streamJoiners = []joiner{
	{"record fmp4", func(t *testing.T, paths []string, _ []int) []string { return recordInput(t, paths[0], chunker.FMP4) }},
	{"record ts", func(t *testing.T, paths []string, _ []int) []string { return recordInput(t, paths[0], chunker.TS) }},
	{"serve push", pushFile},
	{"stitch mp4", func(t *testing.T, paths []string, _ []int) []string { return stitchFiles(t, paths, ".mp4") }},
	{"stitch ts", func(t *testing.T, paths []string, _ []int) []string { return stitchFiles(t, paths, ".ts") }},
}

func recordInput(t *testing.T, path string, format chunker.Format) []string {
	src, err := source.Open(path, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	return recordSource(t, src, format)
}

func pushFile(t *testing.T, paths []string, _ []int) []string {
	data, err := os.ReadFile(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, func(do func(method, path string, body []byte)) { do("POST", "/ingest/cam", data) })
}

// expectRead is what an output of the given input files joined end to
// end must hold, as ffmpeg reads each of them: one part per file, joined
// by the joining rule.
func expectRead(t *testing.T, frameStep float64, files ...string) chunkkit.Expect {
	ex := chunkkit.Expect{FrameStep: frameStep}
	for _, f := range files {
		v, a := chunkkit.Read(t, f)
		var p chunkkit.ExpectPart
		for _, x := range v {
			p.Pictures = append(p.Pictures, x.PTS)
		}
		for _, x := range a {
			p.Frames = append(p.Frames, chunkkit.ExpectFrame{At: x.PTS, Dur: x.Dur, Hash: x.Hash})
		}
		ex.Parts = append(ex.Parts, p)
	}
	return ex.Joined()
}

// TestJoinConformanceStreams feeds MPEG-TS streams whose timestamps wrap
// around 2^33, splice (two recordings joined end to end, the second
// starting before the first ends) and pause (the video stops for 1.5 s
// while the audio goes on) to every caller that reads a stream, and
// judges each output against the input with ffmpeg: pictures step by one
// frame everywhere but at the pause, which keeps its length; no audio
// frame is lost; each part's audio stays within a millisecond of its
// pictures.
func TestJoinConformanceStreams(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	dir := t.TempDir()
	encode := func(name string, seconds int, args ...string) string {
		p := filepath.Join(dir, name)
		mediatest.FFmpeg(t, append([]string{"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=320x240:rate=30:duration=%d", seconds),
			"-f", "lavfi", "-i", fmt.Sprintf("aevalsrc=sin(2*PI*(300+80*t)*t):s=48000:d=%d", seconds),
			"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-x264-params", "keyint=30:min-keyint=30:scenecut=0:bframes=2",
			"-c:a", "aac", "-b:a", "96k"}, append(args, p)...)...)
		return p
	}
	const step = 1.0 / 30
	wrap := encode("wrap.ts", 6, "-output_ts_offset", "95441.5") // 33-bit wrap 2.2 s in
	a, b := encode("a.ts", 4), encode("b.ts", 4)
	spliced := filepath.Join(dir, "spliced.ts")
	joinFiles(t, spliced, a, b)
	paused := mediatest.PausedVideoAt(t, ".ts", false, 3, 4.5, 2)
	pausedEx := expectRead(t, step, paused)
	pausedEx.Pauses = pauseAfter(pausedEx.Parts[0].Pictures, step)
	if len(pausedEx.Pauses) != 1 {
		t.Fatalf("the paused input has %d pauses", len(pausedEx.Pauses))
	}
	for _, tc := range []struct {
		name  string
		input string
		ex    chunkkit.Expect
	}{
		{"33-bit wrap", wrap, expectRead(t, step, wrap)},
		{"splice", spliced, expectRead(t, step, a, b)},
		{"pause", paused, pausedEx},
	} {
		for _, j := range streamJoiners {
			t.Run(tc.name+"/"+j.name, func(t *testing.T) {
				for _, out := range j.join(t, []string{tc.input}, nil) {
					v, a := chunkkit.Read(t, out)
					if err := chunkkit.Check(tc.ex, v, a); err != nil {
						t.Errorf("%s:\n%v", filepath.Base(out), err)
					}
				}
			})
		}
	}
}

// joinFiles writes the byte concatenation of files to path.
func joinFiles(t *testing.T, path string, files ...string) {
	var all []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	if err := os.WriteFile(path, all, 0o644); err != nil {
		t.Fatal(err)
	}
}

// pauseAfter returns the times of the pictures that follow a step of more
// than ten frames in presentation times.
func pauseAfter(pictures []float64, step float64) []float64 {
	pts := append([]float64(nil), pictures...)
	slices.Sort(pts)
	var out []float64
	for i := 1; i < len(pts); i++ {
		if pts[i]-pts[i-1] > 10*step {
			out = append(out, pts[i])
		}
	}
	return out
}

// TestPlaybackJoinedChunks plays recordings of B-frame phone chunks (the
// audio of each leading its pictures by 53 ms, as ffmpeg's segment muxer
// cuts them) with Chromium's own HLS player, through every join to the
// last chunk: before the joining rule was one, each join left a hole in
// the MPEG-TS timestamps, at the first of which Chromium's player stalled
// for good.
func TestPlaybackJoinedChunks(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	mediatest.RequireTool(t, "chromium")
	capture := chunkkit.NewCapture(t, 12, 48000, 2)
	dir := t.TempDir()
	var paths []string
	for i, ch := range capture.Cut(3, []float64{0.053}) {
		p := filepath.Join(dir, fmt.Sprintf("chunk%d.mp4", i))
		chunkkit.WriteChunk(t, p, capture, ch)
		paths = append(paths, p)
	}
	for _, format := range []chunker.Format{chunker.TS, chunker.FMP4} {
		t.Run(format.String(), func(t *testing.T) {
			out := recordChunks(t, paths, format)[0]
			srv := httptest.NewServer(http.FileServer(http.Dir(filepath.Dir(out))))
			t.Cleanup(srv.Close)
			res := browsertest.PlayMP4(t, srv.URL+"/index.m3u8", browsertest.MP4Options{MinTime: 10.5, Timeout: 60 * time.Second})
			if !res.Reached || res.MediaError != "" || res.AudioDecodedBytes == 0 {
				t.Fatalf("native HLS playback through the joins failed: %s", res)
			}
			if math.Abs(res.Duration-12) > 0.05 {
				t.Errorf("duration %.3f s, the chunks last 12 s", res.Duration)
			}
		})
	}
}
