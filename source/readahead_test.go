package source

import (
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/livechunk/livechunk/internal/testkit/mediatest"
)

// countingFile counts the bytes that ReadAt returns.
type countingFile struct {
	*os.File
	read int64
}

func (c *countingFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.File.ReadAt(p, off)
	c.read += int64(n)
	return n, err
}

// TestReadsInterleavedFileOnce: a progressive MP4 whose tracks ffmpeg
// interleaved sample by sample is read about once, although each track has
// a read-ahead of its own (samples are taken from either). Reading 256 KB
// from each track's next sample read the file about twice: every window of
// one track is mostly the other's bytes.
func TestReadsInterleavedFileOnce(t *testing.T) {
	path := generated(t, "interleaved.mp4")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() < 4*readAheadSize {
		t.Fatalf("fixture of %d bytes: too small to need several read-aheads", st.Size())
	}
	cf := &countingFile{File: f}
	m, err := NewMP4(cf, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Info().Audio == nil {
		t.Fatal("fixture has no AAC track")
	}
	opened := cf.read
	var video, audio int
	for {
		p, err := m.NextPacket()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if p.Kind == KindAudio {
			audio++
		} else {
			video++
		}
	}
	if want := mediatest.PacketCount(t, path, "video"); video != want {
		t.Fatalf("%d video samples, ffprobe counts %d", video, want)
	}
	if want := mediatest.PacketCount(t, path, "audio"); audio != want {
		t.Fatalf("%d audio samples, ffprobe counts %d", audio, want)
	}
	samples := cf.read - opened
	t.Logf("file %d bytes; read %d at open and %d for the samples (%.2fx)", st.Size(), opened, samples,
		float64(samples)/float64(st.Size()))
	if samples > st.Size()*5/4 {
		t.Errorf("read %d bytes of samples from a %d-byte file", samples, st.Size())
	}
}

// TestBitrate: a progressive MP4's Info.Bitrate is its media bytes over its
// duration, within 5% of ffprobe's bit rate of the whole file.
func TestBitrate(t *testing.T) {
	for _, path := range []string{generated(t, "interleaved.mp4"), mediatest.Testdata("bframes.mp4")} {
		name := filepath.Base(path)
		out := strings.TrimSpace(string(mediatest.Run(t, "ffprobe", "-v", "error", "-show_entries", "format=bit_rate",
			"-of", "csv=p=0", path)))
		want, err := strconv.ParseFloat(out, 64)
		if err != nil {
			t.Fatalf("ffprobe bit rate %q", out)
		}
		_, info := openAll(t, path, Options{})
		if got := float64(info.Bitrate); got < want*0.95 || got > want*1.05 {
			t.Errorf("%s: bit rate %.0f, ffprobe %.0f", name, got, want)
		}
	}
	// Fragmented files and MPEG-TS do not say.
	for _, name := range []string{"fragmented.mp4", "av.ts"} {
		if _, info := openAll(t, mediatest.Testdata(name), Options{}); info.Bitrate != 0 {
			t.Errorf("%s: bit rate %d, want 0 (unknown)", name, info.Bitrate)
		}
	}
}

// TestTSReadsWithoutAllocating: the MPEG-TS reader reassembles PES packets
// in reused buffers (internal/mpegts): a handful of allocations per
// access unit at most, where mediacommon's packet path (astits) made
// dozens per access unit and copied every PES packet's payload again for
// each of its transport packets.
func TestTSReadsWithoutAllocating(t *testing.T) {
	var path string
	for _, in := range mediatest.AudioInputs(t) {
		if in.Name == "ts-ptswrap" {
			path = in.File
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	src, err := NewTS(f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	n := 0
	for {
		_, err := src.NextPacket()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	runtime.ReadMemStats(&after)
	perPacket := float64(after.Mallocs-before.Mallocs) / float64(n)
	t.Logf("%d packets, %.2f allocations and %.0f bytes per packet", n, perPacket,
		float64(after.TotalAlloc-before.TotalAlloc)/float64(n))
	if perPacket > 1 {
		t.Errorf("%.2f allocations per packet", perPacket)
	}
}
