package stitch_test

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/stitch"
)

// avBench is a minute of 640x360 30 fps video (B-frames) with AAC audio:
// the progressive file, and its recording as 1-second segments of each
// format, made once per test binary (the file is kept in the temporary
// directory, so that runs at different commits read the same bytes).
var avBench struct {
	once sync.Once
	file string
	b    map[chunker.Format]*blob.Bucket
	err  error
}

func avMinute(b *testing.B) (string, map[chunker.Format]*blob.Bucket) {
	b.Helper()
	avBench.once.Do(func() {
		dir := filepath.Join(os.TempDir(), "livechunk-bench")
		p := filepath.Join(dir, "av.mp4")
		if _, err := os.Stat(p); err != nil {
			if _, err := exec.LookPath("ffmpeg"); err != nil {
				avBench.err = err
				return
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				avBench.err = err
				return
			}
			tmp := filepath.Join(dir, "tmp-av.mp4")
			out, err := exec.Command("ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30:duration=60",
				"-f", "lavfi", "-i", "sine=duration=60", "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "1M",
				"-x264-params", "keyint=60:scenecut=0:bframes=2", "-pix_fmt", "yuv420p", "-c:a", "aac", tmp).CombinedOutput()
			if err != nil {
				avBench.err = err
				b.Logf("%s", out)
				return
			}
			if avBench.err = os.Rename(tmp, p); avBench.err != nil {
				return
			}
		}
		avBench.file = p
		avBench.b = map[chunker.Format]*blob.Bucket{}
		for _, f := range []chunker.Format{chunker.FMP4, chunker.TS} {
			bk, err := fileblob.OpenBucket(sharedDir(b, "av-"+f.String()), nil)
			if err != nil {
				avBench.err = err
				return
			}
			shared.Lock()
			shared.buckets = append(shared.buckets, bk)
			shared.Unlock()
			record(b, bk, p, f, "", time.Second)
			avBench.b[f] = bk
		}
	})
	if avBench.err != nil {
		b.Skip(avBench.err)
	}
	return avBench.file, avBench.b
}

// BenchmarkStitchAV stitches the minute with audio: its recording in each
// format into one MP4 and into MPEG-TS (fMP4 segments are remuxed, MPEG-TS
// segments concatenated, or remuxed for a clip), and three copies of the
// progressive file end to end into one MP4. b.SetBytes is the size of the
// input read.
func BenchmarkStitchAV(b *testing.B) {
	type job struct {
		name string
		in   func() *stitch.Input
		ts   bool
		opt  stitch.Options
	}
	playlist := func(f chunker.Format) func() *stitch.Input {
		return func() *stitch.Input {
			_, bks := avMinute(b)
			in, err := stitch.FromPlaylist(context.Background(), bks[f], "index.m3u8")
			if err != nil {
				b.Fatal(err)
			}
			return in
		}
	}
	for _, j := range []job{
		{"fmp4-to-mp4", playlist(chunker.FMP4), false, stitch.Options{}},
		{"ts-to-mp4", playlist(chunker.TS), false, stitch.Options{}},
		{"fmp4-to-ts", playlist(chunker.FMP4), true, stitch.Options{}},
		{"ts-to-ts", playlist(chunker.TS), true, stitch.Options{}},
		{"ts-clip-to-ts", playlist(chunker.TS), true, stitch.Options{From: time.Second}},
		{"progressive-to-mp4", func() *stitch.Input {
			p, _ := avMinute(b)
			return stitch.FromFiles(p, p, p)
		}, false, stitch.Options{}},
	} {
		b.Run(j.name, func(b *testing.B) {
			in := j.in()
			var size int64
			for _, p := range in.Parts() {
				r, n, err := p.Open(context.Background(), 0, 0)
				if err != nil {
					b.Fatal(err)
				}
				r.Close()
				size += n
			}
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if j.ts {
					_, err = stitch.WriteTS(context.Background(), io.Discard, in, j.opt)
				} else {
					_, err = stitch.WriteMP4(context.Background(), io.Discard, in, j.opt)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
