package stitch_test

import (
	"context"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livechunk/livechunk/internal/testkit/blobtest"

	"gocloud.dev/blob"

	"github.com/livechunk/livechunk"
	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"github.com/livechunk/livechunk/sink"
	"github.com/livechunk/livechunk/source"
	"github.com/livechunk/livechunk/stitch"
)

// record records a fixture (or any input file) into b under prefix as a VOD
// playlist of segments of segDur, and returns the playlist key.
func record(t testing.TB, b *blob.Bucket, input string, f chunker.Format, prefix string, segDur time.Duration) string {
	t.Helper()
	src, err := source.Open(input, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	_, err = livechunk.Record(context.Background(), b, src, livechunk.Config{
		Format:          f,
		SegmentDuration: segDur,
		Playlist:        hls.VOD,
		Prefix:          prefix,
	})
	if err != nil {
		t.Fatalf("record %s as %s: %v", input, f, err)
	}
	return prefix + "index.m3u8"
}

// recorded records input into a new file bucket as record does, and opens
// the playlist for stitching.
func recorded(t testing.TB, input string, f chunker.Format, prefix string, segDur time.Duration) *stitch.Input {
	t.Helper()
	b, _ := fileBucket(t)
	src, err := stitch.FromPlaylist(t.Context(), b, record(t, b, input, f, prefix, segDur))
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// fileBucket opens a file bucket in a new temporary directory.
func fileBucket(t testing.TB) (*blob.Bucket, string) {
	t.Helper()
	dir := t.TempDir()
	b, err := sink.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, dir
}

// writeFile stitches in into a new temporary file with the given extension.
func writeFile(t testing.TB, in *stitch.Input, ext string, opt stitch.Options) (string, stitch.Result) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "out"+ext)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	var res stitch.Result
	if ext == ".ts" {
		res, err = stitch.WriteTS(context.Background(), f, in, opt)
	} else {
		res, err = stitch.WriteMP4(context.Background(), f, in, opt)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("stitch: %v", err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != res.Bytes {
		t.Errorf("Result.Bytes = %d, file has %d", res.Bytes, st.Size())
	}
	return p, res
}

// topBoxes returns the types of the top-level boxes of an MP4 file, read
// from the box headers.
func topBoxes(t testing.TB, p string) []string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	var out []string
	var h [16]byte
	for off := int64(0); off < st.Size(); {
		if _, err := f.ReadAt(h[:8], off); err != nil {
			t.Fatalf("box header at %d: %v", off, err)
		}
		size := int64(binary.BigEndian.Uint32(h[:4]))
		if size == 1 {
			if _, err := f.ReadAt(h[:16], off); err != nil {
				t.Fatal(err)
			}
			size = int64(binary.BigEndian.Uint64(h[8:16]))
		}
		if size < 8 || off+size > st.Size() {
			t.Fatalf("box %q at %d: size %d, file %d", h[4:8], off, size, st.Size())
		}
		out = append(out, string(h[4:8]))
		off += size
	}
	return out
}

// probe is what ffprobe reports about the first video stream.
type probe struct {
	duration float64 // format duration, seconds (NaN when not known)
	pts      []float64
	dts      []float64
	key      []bool // packet flags (from stss for MP4)
	keyShown []int  // display indices of the pictures decoded as key frames
}

func ffprobe(t testing.TB, p string) probe {
	t.Helper()
	var pr probe
	out := mediatest.Run(t, "ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", p)
	pr.duration = math.NaN()
	if v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err == nil {
		pr.duration = v
	}
	out = mediatest.Run(t, "ffprobe", "-v", "error", "-select_streams", "v:0",
		"-show_entries", "packet=pts_time,dts_time,flags", "-of", "compact", p)
	for _, l := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(l, "packet|") {
			continue
		}
		f := fields(l)
		pts, _ := strconv.ParseFloat(f["pts_time"], 64)
		dts, _ := strconv.ParseFloat(f["dts_time"], 64)
		pr.pts = append(pr.pts, pts)
		pr.dts = append(pr.dts, dts)
		pr.key = append(pr.key, strings.HasPrefix(f["flags"], "K"))
	}
	out = mediatest.Run(t, "ffprobe", "-v", "error", "-select_streams", "v:0",
		"-show_entries", "frame=key_frame", "-of", "compact", p)
	i := 0
	for _, l := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(l, "frame|") {
			continue
		}
		if fields(l)["key_frame"] == "1" {
			pr.keyShown = append(pr.keyShown, i)
		}
		i++
	}
	return pr
}

func fields(l string) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Split(l, "|")[1:] {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// keyPacketsShown returns the display indices of the packets flagged as
// keyframes (for MP4: listed in stss).
func (p probe) keyPacketsShown() []int {
	order := make([]int, len(p.pts))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case p.pts[a] < p.pts[b]:
			return -1
		case p.pts[a] > p.pts[b]:
			return 1
		}
		return 0
	})
	var out []int
	for rank, i := range order {
		if p.key[i] {
			out = append(out, rank)
		}
	}
	slices.Sort(out)
	return out
}

// maxFrameDur is the longest distance between consecutive presentation
// times.
func (p probe) maxFrameDur() float64 {
	s := slices.Clone(p.pts)
	slices.Sort(s)
	d := 0.0
	for i := 1; i < len(s); i++ {
		d = max(d, s[i]-s[i-1])
	}
	return d
}

// relPTS returns the presentation times relative to the first displayed.
func (p probe) relPTS() []float64 {
	if len(p.pts) == 0 {
		return nil
	}
	m := slices.Min(p.pts)
	out := make([]float64, len(p.pts))
	for i, v := range p.pts {
		out[i] = v - m
	}
	return out
}

// readAll reads an object of a bucket.
func readAll(t testing.TB, b *blob.Bucket, key string) []byte {
	t.Helper()
	data, err := b.ReadAll(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// listKeys lists the keys under prefix with the given suffix, sorted.
func listKeys(t testing.TB, b *blob.Bucket, prefix, suffix string) []string {
	t.Helper()
	var keys []string
	for _, k := range blobtest.Keys(t, b, prefix) {
		if strings.HasSuffix(k, suffix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}
