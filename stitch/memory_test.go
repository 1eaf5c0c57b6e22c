package stitch_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"github.com/livechunk/livechunk/sink"
	"github.com/livechunk/livechunk/stitch"
)

// recording is a minute of 640x360 30 fps video recorded as 1-second
// segments, generated once per test binary.
type recording struct {
	b        *blob.Bucket
	playlist string // key of the 1-minute playlist
	bytes    int64  // bytes of its segments
}

var (
	recOnce = map[chunker.Format]*sync.Once{chunker.FMP4: {}, chunker.TS: {}}
	recs    = map[chunker.Format]*recording{}
	recErr  = map[chunker.Format]error{}
	shared  struct {
		sync.Mutex
		dir     string         // removed by TestMain
		buckets []*blob.Bucket // closed by TestMain
	}
)

func TestMain(m *testing.M) {
	code := m.Run()
	shared.Lock()
	for _, b := range shared.buckets {
		b.Close()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	shared.Unlock()
	os.Exit(code)
}

// sharedDir returns a directory that lives as long as the test binary.
func sharedDir(tb testing.TB, name string) string {
	tb.Helper()
	shared.Lock()
	defer shared.Unlock()
	if shared.dir == "" {
		d, err := os.MkdirTemp("", "stitchtest")
		if err != nil {
			tb.Fatal(err)
		}
		shared.dir = d
	}
	p := filepath.Join(shared.dir, name)
	if err := os.MkdirAll(p, 0o755); err != nil {
		tb.Fatal(err)
	}
	return p
}

// minuteRecording returns a minute of 640x360 30 fps video (1 Mbit/s,
// B-frames) recorded as 1-second segments in format f, made once per test
// binary.
func minuteRecording(tb testing.TB, f chunker.Format) *recording {
	tb.Helper()
	mediatest.RequireTool(tb, "ffmpeg")
	recOnce[f].Do(func() {
		recErr[f] = func() error {
			in := filepath.Join(sharedDir(tb, "input"), "minute.mp4")
			if _, err := os.Stat(in); err != nil {
				mediatest.FFmpeg(tb, "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30:duration=60",
					"-c:v", "libx264", "-preset", "ultrafast", "-b:v", "1M", "-x264-params", "keyint=30:scenecut=0:bframes=2",
					"-pix_fmt", "yuv420p", in)
			}
			b, err := sink.Open(context.Background(), sharedDir(tb, f.String()))
			if err != nil {
				return err
			}
			shared.Lock()
			shared.buckets = append(shared.buckets, b)
			shared.Unlock()
			key := record(tb, b, in, f, "", time.Second)
			r := &recording{b: b, playlist: key}
			for _, k := range listKeys(tb, b, "", f.SegmentExt()) {
				a, err := b.Attributes(context.Background(), k)
				if err != nil {
					return err
				}
				r.bytes += a.Size
			}
			recs[f] = r
			return nil
		}()
	})
	if recErr[f] != nil {
		tb.Fatal(recErr[f])
	}
	if recs[f] == nil {
		tb.Skip("recording failed in an earlier test")
	}
	return recs[f]
}

// repeatPlaylist writes a playlist that lists the minute's segments n
// times (a discontinuity between repetitions) and returns its key.
func repeatPlaylist(tb testing.TB, r *recording, n int) string {
	tb.Helper()
	data := readAll(tb, r.b, r.playlist)
	head, body, ok := strings.Cut(string(data), "#EXTINF")
	if !ok {
		tb.Fatal("playlist without segments")
	}
	body = "#EXTINF" + strings.TrimSuffix(strings.TrimSpace(body), "#EXT-X-ENDLIST")
	var sb strings.Builder
	sb.WriteString(head)
	for i := range n {
		if i > 0 {
			sb.WriteString("#EXT-X-DISCONTINUITY\n")
		}
		sb.WriteString(strings.TrimSpace(body) + "\n")
	}
	sb.WriteString("#EXT-X-ENDLIST\n")
	key := fmt.Sprintf("repeat-%d.m3u8", n)
	if err := r.b.WriteAll(context.Background(), key, []byte(sb.String()), nil); err != nil {
		tb.Fatal(err)
	}
	return key
}

// retainedPeak stitches in into io.Discard and returns the result and the
// largest heap the process retains (HeapAlloc right after a forced garbage
// collection) at points spread over both passes: every 20th range request
// and the moment the header (ftyp+moov) is written, when the sample tables
// are largest. Forced collections make the measure deterministic; the
// heap in use between collections also holds garbage that the runtime's
// pacing (GOGC) bounds, which the benchmark's peak RSS shows.
func retainedPeak(t testing.TB, in *stitch.Input) (stitch.Result, uint64) {
	t.Helper()
	var mu sync.Mutex
	var peak uint64
	sample := func() {
		runtime.GC()
		runtime.GC() // and what sync.Pools held
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapAlloc)
	}
	calls := 0
	parts := in.Parts()
	for i := range parts {
		open := parts[i].Open
		parts[i].Open = func(ctx context.Context, off, n int64) (io.ReadCloser, int64, error) {
			mu.Lock()
			calls++
			if calls%20 == 0 {
				sample()
			}
			mu.Unlock()
			return open(ctx, off, n)
		}
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	w := &sampleOnFirstWrite{sample: func() { mu.Lock(); sample(); mu.Unlock() }}
	res, err := stitch.WriteMP4(context.Background(), w, stitch.New(parts...), stitch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return res, peak - min(peak, base)
}

type sampleOnFirstWrite struct {
	sample func()
	done   bool
}

func (w *sampleOnFirstWrite) Write(p []byte) (int, error) {
	if !w.done {
		w.done = true
		w.sample()
	}
	return len(p), nil
}

// TestMemoryBounded stitches 1, 10 and 30 minutes of segments (the same
// minute listed 10 and 30 times): the heap retained grows only with the
// sample tables (a few tens of bytes per picture), not with the media.
// The growth per picture is measured between 10 and 30 minutes, where the
// constant part (buffers of the reads in flight) is the same.
func TestMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("generates a minute of video and stitches 41 minutes of it")
	}
	for _, f := range []chunker.Format{chunker.FMP4, chunker.TS} {
		t.Run(f.String(), func(t *testing.T) {
			r := minuteRecording(t, f)
			minutes := []int{1, 10, 30}
			var results [3]stitch.Result
			var peaks [3]uint64
			for i, n := range minutes {
				key := r.playlist
				if n > 1 {
					key = repeatPlaylist(t, r, n)
				}
				in, err := stitch.FromPlaylist(context.Background(), r.b, key)
				if err != nil {
					t.Fatal(err)
				}
				results[i], peaks[i] = retainedPeak(t, in)
				if results[i].Samples != n*results[0].Samples || results[i].Duration != time.Duration(n)*results[0].Duration {
					t.Errorf("%d minutes: %+v; 1 minute: %+v", n, results[i], results[0])
				}
				t.Logf("%s: %2d min, %5d pictures, %5.1f MB of segments: peak retained heap %5.2f MB", f, n,
					results[i].Samples, float64(int64(n)*r.bytes)/1e6, float64(peaks[i])/1e6)
			}
			perPicture := float64(int64(peaks[2])-int64(peaks[1])) / float64(results[2].Samples-results[1].Samples)
			t.Logf("%s: %.1f bytes per picture from 10 to 30 minutes", f, perPicture)
			// 48 bytes per picture, and 2 MiB for the reads in flight at the
			// moment of sampling, which vary from run to run.
			if limit := peaks[1] + 48*uint64(results[2].Samples-results[1].Samples) + 2<<20; peaks[2] > limit {
				t.Errorf("30 minutes retain %d bytes, 10 minutes %d: the heap grows by %.1f bytes per picture, want at most 48", peaks[2], peaks[1], perPicture)
			}
			if limit := peaks[0] + 48*uint64(results[2].Samples) + 8<<20; peaks[2] > limit {
				t.Errorf("30 minutes retain %d bytes, 1 minute %d: more than 48 bytes per picture and 8 MiB", peaks[2], peaks[0])
			}
		})
	}
}

// BenchmarkWriteMP4 stitches the minute of segments into io.Discard.
// b.SetBytes is the size of the segments read.
func BenchmarkWriteMP4(b *testing.B) {
	for _, f := range []chunker.Format{chunker.FMP4, chunker.TS} {
		b.Run(f.String(), func(b *testing.B) {
			r := minuteRecording(b, f)
			in, err := stitch.FromPlaylist(context.Background(), r.b, r.playlist)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(r.bytes)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := stitch.WriteMP4(context.Background(), io.Discard, in, stitch.Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
