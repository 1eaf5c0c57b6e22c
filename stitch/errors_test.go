package stitch_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob/memblob"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"github.com/livechunk/livechunk/stitch"
)

// TestErrors feeds bad input and bad options: every failure is a typed
// error, and nothing is written before the input is known to be good.
func TestErrors(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	record(t, b, mediatest.Testdata("bframes.mp4"), chunker.FMP4, "f/", time.Second)
	record(t, b, mediatest.Testdata("bframes.mp4"), chunker.TS, "t/", time.Second)
	seg := readAll(t, b, "f/seg-000001.m4s")
	tsSeg := readAll(t, b, "t/seg-000001.ts")
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(b.WriteAll(ctx, "bad/escape.m3u8", []byte("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n../../seg-000001.m4s\n"), nil))
	must(b.WriteAll(ctx, "bad/url.m3u8", []byte("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nhttps://example.com/a.ts\n"), nil))
	must(b.WriteAll(ctx, "bad/missing.m3u8", []byte("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nnope.ts\n"), nil))
	must(b.WriteAll(ctx, "bad/garbage", bytes.Repeat([]byte("not media "), 100), nil))
	must(b.WriteAll(ctx, "bad/empty", nil, nil))
	must(b.WriteAll(ctx, "bad/truncated.m4s", seg[:len(seg)/2], nil))
	must(b.WriteAll(ctx, "bad/truncated.ts", tsSeg[:len(tsSeg)-100], nil))

	bytesPart := func(name string, data []byte) stitch.Part {
		return stitch.ReaderAtPart(name, bytes.NewReader(data), int64(len(data)))
	}
	errOpen := errors.New("network down")
	failing := stitch.Part{Name: "failing", Open: func(context.Context, int64, int64) (io.ReadCloser, int64, error) {
		return nil, 0, errOpen
	}}

	tests := []struct {
		name string
		in   func(t *testing.T) *stitch.Input
		opt  stitch.Options
		want error
	}{
		{"no-parts", func(*testing.T) *stitch.Input { return stitch.New() }, stitch.Options{}, stitch.ErrNoInput},
		{"nil-input", func(*testing.T) *stitch.Input { return nil }, stitch.Options{}, stitch.ErrNoInput},
		{"garbage", func(*testing.T) *stitch.Input { return stitch.FromObjects(b, "bad/garbage") }, stitch.Options{}, stitch.ErrInvalid},
		{"empty-object", func(*testing.T) *stitch.Input { return stitch.FromObjects(b, "bad/empty") }, stitch.Options{}, stitch.ErrInvalid},
		{"segment-without-init", func(*testing.T) *stitch.Input { return stitch.FromObjects(b, "f/seg-000001.m4s") }, stitch.Options{}, stitch.ErrInvalid},
		{"init-only", func(*testing.T) *stitch.Input { return stitch.FromObjects(b, "f/init-0.mp4") }, stitch.Options{}, stitch.ErrNoInput},
		{"truncated-fmp4", func(*testing.T) *stitch.Input {
			return stitch.FromObjects(b, "f/init-0.mp4", "f/seg-000000.m4s", "bad/truncated.m4s")
		}, stitch.Options{}, stitch.ErrInvalid},
		{"open-fails", func(*testing.T) *stitch.Input { return stitch.New(failing) }, stitch.Options{}, errOpen},
		{"missing-object", func(*testing.T) *stitch.Input { return stitch.FromObjects(b, "nope.mp4") }, stitch.Options{}, nil},
		{"no-open-func", func(*testing.T) *stitch.Input { return stitch.New(stitch.Part{Name: "x"}) }, stitch.Options{}, stitch.ErrInvalid},
		{"ac3-only", func(t *testing.T) *stitch.Input {
			p := filepath.Join(t.TempDir(), "audio.mp4")
			mediatest.FFmpeg(t, "-f", "lavfi", "-i", "sine=duration=1", "-c:a", "ac3", p)
			return stitch.FromFiles(p)
		}, stitch.Options{}, stitch.ErrUnsupported},
		{"from-after-end", func(*testing.T) *stitch.Input { return stitch.FromObjects(b, "t/seg-000000.ts") }, stitch.Options{From: time.Hour}, stitch.ErrEmptyRange},
		{"to-before-from", func(*testing.T) *stitch.Input { return stitch.FromObjects(b, "t/seg-000000.ts") }, stitch.Options{From: 2 * time.Second, To: time.Second}, stitch.ErrEmptyRange},
		{"negative-from", func(*testing.T) *stitch.Input { return stitch.FromObjects(b, "t/seg-000000.ts") }, stitch.Options{From: -time.Second}, stitch.ErrEmptyRange},
		{"canceled", func(*testing.T) *stitch.Input { return stitch.FromObjects(b, "t/seg-000000.ts") }, stitch.Options{}, context.Canceled},
		{"not-a-keyframe-anywhere", func(t *testing.T) *stitch.Input {
			// PAT and PMT, then the second half of a TS segment:
			// pictures, but no IDR.
			half := append(bytes.Clone(tsSeg[:2*188]), tsSeg[len(tsSeg)/2/188*188:]...)
			return stitch.New(bytesPart("half.ts", half))
		}, stitch.Options{}, stitch.ErrNoInput},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.want == context.Canceled {
				c, cancel := context.WithCancel(ctx)
				cancel()
				ctx = c
			}
			for _, format := range []string{"mp4", "ts"} {
				var w bytes.Buffer
				var err error
				if format == "ts" {
					_, err = stitch.WriteTS(ctx, &w, tc.in(t), tc.opt)
				} else {
					_, err = stitch.WriteMP4(ctx, &w, tc.in(t), tc.opt)
				}
				if err == nil {
					t.Fatalf("%s: no error", format)
				}
				if tc.want != nil && !errors.Is(err, tc.want) {
					t.Errorf("%s: error %v, want %v", format, err, tc.want)
				}
				if w.Len() != 0 {
					t.Errorf("%s: %d bytes written before the error", format, w.Len())
				}
			}
		})
	}

	t.Run("part-error-names-the-object", func(t *testing.T) {
		_, err := stitch.WriteMP4(ctx, io.Discard, stitch.FromObjects(b, "t/seg-000000.ts", "bad/garbage"), stitch.Options{})
		var pe *stitch.PartError
		if !errors.As(err, &pe) || pe.Part != "bad/garbage" {
			t.Errorf("error %v, want a PartError for bad/garbage", err)
		}
		// The package's prefix once: "stitch: bad/garbage: invalid input: ...".
		if msg := err.Error(); strings.Count(msg, "stitch: ") != 1 || !strings.HasPrefix(msg, "stitch: bad/garbage: ") {
			t.Errorf("error %q, want one \"stitch: \", before the object's name", msg)
		}
	})
	t.Run("truncated-ts", func(t *testing.T) {
		// A TS segment cut inside a packet: MPEG-TS cannot tell what is
		// lost; stitching goes on with what the demuxer delivers.
		in := stitch.FromObjects(b, "t/seg-000000.ts", "bad/truncated.ts")
		for _, write := range []func(context.Context, io.Writer, *stitch.Input, stitch.Options) (stitch.Result, error){stitch.WriteMP4, stitch.WriteTS} {
			res, err := write(ctx, io.Discard, in, stitch.Options{})
			if err != nil || res.Samples < 31 || res.Samples > 60 {
				t.Errorf("result %+v, %v", res, err)
			}
		}
	})
	t.Run("playlist-uri-outside-bucket", func(t *testing.T) {
		for _, k := range []string{"bad/escape.m3u8", "bad/url.m3u8"} {
			if _, err := stitch.FromPlaylist(ctx, b, k); !errors.Is(err, stitch.ErrUnsupported) {
				t.Errorf("%s: %v, want ErrUnsupported", k, err)
			}
		}
		if _, err := stitch.FromPlaylist(ctx, b, "bad/nope.m3u8"); err == nil {
			t.Error("missing playlist: no error")
		}
	})
	t.Run("changed-between-passes", func(t *testing.T) {
		// The object grows after the first pass read its index.
		calls := 0
		p := stitch.Part{Name: "changing", Open: func(ctx context.Context, off, n int64) (io.ReadCloser, int64, error) {
			calls++
			data := seg
			if calls > 1 {
				data = append(bytes.Clone(seg), make([]byte, 100)...)
			}
			return bytesPart("x", data).Open(ctx, off, n)
		}}
		initPart := stitch.BucketPart(b, "f/init-0.mp4")
		p.Init = &initPart
		var w bytes.Buffer
		_, err := stitch.WriteMP4(ctx, &w, stitch.New(p), stitch.Options{})
		if !errors.Is(err, stitch.ErrChanged) {
			t.Errorf("error %v, want ErrChanged", err)
		}
	})
	t.Run("ts-changed-between-passes", func(t *testing.T) {
		calls := 0
		p := stitch.Part{Name: "changing.ts", Open: func(ctx context.Context, off, n int64) (io.ReadCloser, int64, error) {
			calls++
			data := tsSeg
			if calls > 2 { // after the first pass's sniffing and demuxing
				data = readAll(t, b, "t/seg-000002.ts")
			}
			return bytesPart("x", data).Open(ctx, off, n)
		}}
		_, err := stitch.WriteMP4(ctx, io.Discard, stitch.New(p), stitch.Options{})
		if !errors.Is(err, stitch.ErrChanged) {
			t.Errorf("error %v, want ErrChanged", err)
		}
	})
}

// FuzzStitch feeds arbitrary bytes as a self-contained object and as an
// fMP4 segment after a valid init section: never a panic, and an error
// or a result that holds together.
func FuzzStitch(f *testing.F) {
	b := memblob.OpenBucket(nil)
	defer b.Close()
	record(f, b, mediatest.Testdata("bframes.mp4"), chunker.FMP4, "f/", time.Second)
	record(f, b, mediatest.Testdata("bframes.mp4"), chunker.TS, "t/", time.Second)
	init := readAll(f, b, "f/init-0.mp4")
	f.Add(readAll(f, b, "f/seg-000001.m4s"))
	f.Add(readAll(f, b, "t/seg-000001.ts")[:188*20])
	for _, name := range []string{"chunk0.mp4", "fragmented.mp4"} {
		data, err := os.ReadFile(mediatest.Testdata(name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data[:min(len(data), 4096)])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ip := stitch.ReaderAtPart("init", bytes.NewReader(init), int64(len(init)))
		seg := stitch.ReaderAtPart("seg", bytes.NewReader(data), int64(len(data)))
		withInit := seg
		withInit.Init = &ip
		for _, in := range []*stitch.Input{stitch.New(seg), stitch.New(withInit)} {
			var w bytes.Buffer
			res, err := stitch.WriteMP4(context.Background(), &w, in, stitch.Options{})
			if err == nil && int64(w.Len()) != res.Bytes {
				t.Fatalf("wrote %d bytes, result says %d", w.Len(), res.Bytes)
			}
			w.Reset()
			_, _ = stitch.WriteTS(context.Background(), &w, in, stitch.Options{From: time.Millisecond})
		}
	})
}

// TestCancelledWriteReturns: a stitch whose context is cancelled before
// or while it runs returns (context.Canceled, or success if it finished
// first), every time: the fetcher gives back only the places it took, and
// never waits for ever.
func TestCancelledWriteReturns(t *testing.T) {
	in := recorded(t, mediatest.Testdata("bframes.mp4"), chunker.FMP4, "f/", 200*time.Millisecond)
	for i := range 50 {
		ctx, cancel := context.WithCancel(context.Background())
		if i%2 == 0 {
			cancel()
		}
		done := make(chan error, 1)
		go func() {
			_, err := stitch.WriteMP4(ctx, io.Discard, in, stitch.Options{})
			done <- err
		}()
		time.Sleep(time.Duration(i) * 100 * time.Microsecond) // the moment of the cancel, 0-5 ms in: what is tested
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Fatalf("call %d: %v", i, err)
			}
		case <-time.After(time.Minute): // a failure detector, not a synchronization
			t.Fatalf("call %d: WriteMP4 with a cancelled context has not returned after a minute", i)
		}
	}
}
