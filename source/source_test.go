package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	mch264 "github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/internal/accessunit"
	"github.com/livechunk/livechunk/internal/mpegts"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"github.com/livechunk/livechunk/internal/timeline"
)

// readAll reads every sample of src, copying the NAL units (they alias
// the source's buffers).
func readAll(t testing.TB, src Source) []chunker.Sample {
	t.Helper()
	var out []chunker.Sample
	for {
		s, err := src.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("sample %d: %v", len(out), err)
		}
		s.NALUs = accessunit.Clone(s.NALUs)
		out = append(out, s)
	}
}

func openAll(t testing.TB, path string, opt Options) ([]chunker.Sample, Info) {
	t.Helper()
	f, err := Open(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return readAll(t, f), f.Info()
}

// writeAnnexB writes the samples' NAL units as an Annex-B byte stream.
func writeAnnexB(t testing.TB, samples []chunker.Sample) string {
	t.Helper()
	var b []byte
	for _, s := range samples {
		b = chunker.AppendAnnexB(b, s.NALUs)
	}
	p := filepath.Join(t.TempDir(), "out.h264")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// timeBase returns the denominator of ffprobe's time base of the first
// video stream (the numerator must be 1).
func timeBase(t testing.TB, path string) uint32 {
	t.Helper()
	out := strings.TrimSpace(string(mediatest.Run(t, "ffprobe", "-v", "error", "-select_streams", "v:0",
		"-show_entries", "stream=time_base", "-of", "csv=p=0", path)))
	out, _, _ = strings.Cut(out, "\n") // TS: once per program and stream
	num, den, ok := strings.Cut(out, "/")
	if !ok || num != "1" {
		t.Fatalf("time base %q", out)
	}
	d, err := strconv.ParseUint(den, 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(d)
}

// generated fixtures: made by ffmpeg from the committed ones in a temp dir,
// once per test binary run.
var genDir string

func generated(t testing.TB, name string) string {
	t.Helper()
	mediatest.RequireTool(t, "ffmpeg")
	if genDir == "" {
		d, err := os.MkdirTemp("", "livechunk-source-")
		if err != nil {
			t.Fatal(err)
		}
		genDir = d
	}
	p := filepath.Join(genDir, name)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	src := "testsrc2=size=320x240:rate=30:duration=2"
	var args []string
	switch name {
	case "emptyedit.mp4": // leading empty edit: presentation starts 0.5 s late
		args = []string{"-itsoffset", "0.5", "-i", mediatest.Testdata("bframes.mp4"), "-c", "copy", p}
	case "negcts.mp4": // ctts version 1 with negative offsets
		args = []string{"-i", mediatest.Testdata("bframes.mp4"), "-c", "copy", "-movflags", "+negative_cts_offsets", p}
	case "ts90k.mp4": // 90 kHz track timescale, B-frames
		args = []string{"-i", mediatest.Testdata("vfr.mov"), "-c", "copy", "-video_track_timescale", "90000", p}
	case "audio.mp4": // H.264 after an AAC track
		args = []string{"-f", "lavfi", "-i", "sine=duration=2", "-i", mediatest.Testdata("baseline.mp4"),
			"-map", "0:a", "-map", "1:v", "-c:a", "aac", "-c:v", "copy", p}
	case "interleaved.mp4": // 6 s of video and AAC, interleaved sample by sample as ffmpeg writes
		args = []string{"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30:duration=6", "-f", "lavfi", "-i", "sine=duration=6",
			"-c:v", "libx264", "-preset", "ultrafast", "-b:v", "3M", "-c:a", "aac", "-pix_fmt", "yuv420p", p}
	case "onlyaudio.mp4", "onlyaudio.ts":
		args = []string{"-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", p}
	case "onlyaudio_frag.mp4":
		args = []string{"-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", "-movflags", "frag_keyframe+empty_moov", p}
	case "av_frag.mp4": // fragmented copy of av.mp4, both tracks in each moof
		args = []string{"-i", mediatest.Testdata("av.mp4"), "-c", "copy",
			"-movflags", "frag_keyframe+empty_moov+default_base_moof", p}
	case "av_mono.mov": // QuickTime, AAC 48 kHz mono
		args = []string{"-f", "lavfi", "-i", "sine=sample_rate=48000:duration=2", "-i", mediatest.Testdata("bframes.mp4"),
			"-map", "1:v", "-map", "0:a", "-c:v", "copy", "-c:a", "aac", "-ac", "1", "-shortest", p}
	case "hevc.mp4", "hevc.ts":
		args = []string{"-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10:duration=1", "-c:v", "libx265",
			"-x265-params", "log-level=error", "-pix_fmt", "yuv420p", p}
	case "frag_av.mp4": // fragmented, video after audio, separate trafs
		args = []string{"-f", "lavfi", "-i", "sine=duration=2", "-f", "lavfi", "-i", src,
			"-map", "0:a", "-map", "1:v", "-c:a", "aac", "-c:v", "libx264", "-preset", "fast",
			"-x264-params", "keyint=15:bframes=2", "-pix_fmt", "yuv420p",
			"-movflags", "frag_keyframe+empty_moov", p}
	case "aud.ts": // Annex-B truth: a TS with AUDs, extracted below
		args = []string{"-f", "lavfi", "-i", src, "-c:v", "libx264", "-preset", "fast",
			"-x264-params", "keyint=20:scenecut=0:bframes=3:b-pyramid=normal", "-pix_fmt", "yuv420p", p}
	case "aud.h264":
		args = []string{"-i", generated(t, "aud.ts"), "-c", "copy", "-f", "h264", p}
	case "ntsc.ts": // 29.97 fps, 3003-tick frames
		args = []string{"-f", "lavfi", "-i", "testsrc2=size=160x120:rate=30000/1001:duration=2", "-c:v", "libx264",
			"-preset", "fast", "-x264-params", "keyint=24:bframes=2", "-pix_fmt", "yuv420p", p}
	case "ntsc.h264":
		args = []string{"-i", generated(t, "ntsc.ts"), "-c", "copy", "-f", "h264", p}
	default:
		t.Fatalf("unknown generated fixture %s", name)
	}
	mediatest.FFmpeg(t, append([]string{"-y"}, args...)...)
	return p
}

func TestMain(m *testing.M) {
	code := m.Run()
	if genDir != "" {
		os.RemoveAll(genDir)
	}
	os.Exit(code)
}

type fixture struct {
	name string
	path func(t testing.TB) string
	wrap bool // timestamps compare modulo 2^33
}

func committed(name string) func(testing.TB) string {
	return func(testing.TB) string { return mediatest.Testdata(name) }
}

func gen(name string) func(testing.TB) string {
	return func(t testing.TB) string { return generated(t, name) }
}

var containerFixtures = []fixture{
	{"baseline.mp4", committed("baseline.mp4"), false},
	{"bframes.mp4", committed("bframes.mp4"), false},
	{"vfr.mov", committed("vfr.mov"), false},
	{"fragmented.mp4", committed("fragmented.mp4"), false},
	{"chunk1.mp4", committed("chunk1.mp4"), false},
	{"reschange.ts", committed("reschange.ts"), true},
	{"wrap.ts", committed("wrap.ts"), true},
	{"emptyedit.mp4", gen("emptyedit.mp4"), false},
	{"negcts.mp4", gen("negcts.mp4"), false},
	{"ts90k.mp4", gen("ts90k.mp4"), false},
	{"audio.mp4", gen("audio.mp4"), false},
	{"frag_av.mp4", gen("frag_av.mp4"), false},
	{"aud.ts", gen("aud.ts"), true},
}

// TestMatchesFFprobe compares the samples of every container fixture with
// ffprobe's packet list of the same file: count, order, DTS and PTS (MP4:
// exactly, edit list applied by both; TS: relative to the first DTS,
// modulo 2^33) and keyframe flags.
func TestMatchesFFprobe(t *testing.T) {
	for _, fx := range containerFixtures {
		t.Run(fx.name, func(t *testing.T) {
			path := fx.path(t)
			want := mediatest.Packets(t, path)
			got, info := openAll(t, path, Options{})
			if len(got) != len(want) {
				t.Fatalf("%d samples, ffprobe has %d packets", len(got), len(want))
			}
			tb := timeBase(t, path)
			if info.Timescale != tb {
				t.Fatalf("timescale %d, ffprobe time base 1/%d", info.Timescale, tb)
			}
			var idr int
			for i, s := range got {
				w := want[i]
				gd, gp, wd, wp := s.DTS, s.PTS, w.DTS, w.PTS
				if fx.wrap {
					// relative to the first sample, modulo 2^33
					m := func(v int64) int64 { return timeline.Wrap(v, timeline.WrapBitsTS) }
					gd, gp = m(gd-got[0].DTS), m(gp-got[0].DTS)
					wd, wp = m(wd-want[0].DTS), m(wp-want[0].DTS)
				}
				if gd != wd || gp != wp {
					t.Fatalf("sample %d: dts/pts %d/%d, ffprobe %d/%d", i, gd, gp, wd, wp)
				}
				if k := chunker.IsIDR(s.NALUs); k != w.Key {
					t.Fatalf("sample %d: IDR %v, ffprobe key %v", i, k, w.Key)
				}
				if k := chunker.IsIDR(s.NALUs); k {
					idr++
				}
				if s.Duration <= 0 {
					t.Fatalf("sample %d: duration %d", i, s.Duration)
				}
				if i > 0 && !fx.wrap && got[i-1].DTS+got[i-1].Duration != s.DTS {
					t.Fatalf("sample %d: dts %d, previous dts+duration %d", i, s.DTS, got[i-1].DTS+got[i-1].Duration)
				}
			}
			if idr == 0 {
				t.Fatal("no IDR sample")
			}
			if !accessunit.HasParamSets(got[0].NALUs) {
				t.Fatal("first sample carries no SPS/PPS")
			}
			if info.Width == 0 || info.Height == 0 || len(info.SPS) == 0 || len(info.PPS) == 0 {
				t.Fatalf("info %+v", info)
			}
			if fx.wrap != (info.WrapBits == 33) {
				t.Fatalf("WrapBits %d", info.WrapBits)
			}
		})
	}
}

// TestDecodesIdentically writes the samples of every fixture back as an
// Annex-B stream and checks that ffmpeg decodes exactly the frames it
// decodes from the original file.
func TestDecodesIdentically(t *testing.T) {
	all := append(slices.Clone(containerFixtures),
		fixture{"raw.h264", committed("raw.h264"), false},
		fixture{"aud.h264", gen("aud.h264"), false},
		fixture{"ntsc.h264", gen("ntsc.h264"), false},
	)
	for _, fx := range all {
		t.Run(fx.name, func(t *testing.T) {
			path := fx.path(t)
			got, _ := openAll(t, path, Options{})
			want := mediatest.FrameHashes(t, path)
			have := mediatest.FrameHashes(t, writeAnnexB(t, got), "-f", "h264")
			if d := mediatest.EqualHashes(want, have); d != "" {
				t.Fatal(d)
			}
			if len(want) != len(got) {
				t.Fatalf("%d frames decoded, %d samples", len(want), len(got))
			}
		})
	}
}

// codedOrder returns, for each decoded frame in output order, its index
// in decode order, as ffmpeg reports it.
func codedOrder(t testing.TB, path string) []int {
	t.Helper()
	out := mediatest.Run(t, "ffprobe", "-v", "error", "-show_entries", "frame=coded_picture_number", "-of", "csv=p=0", path)
	var order []int
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.Trim(strings.TrimSpace(line), ",")
		if line == "" {
			continue
		}
		n, err := strconv.Atoi(line)
		if err != nil {
			t.Fatalf("ffprobe line %q", line)
		}
		order = append(order, n)
	}
	return order
}

// checkPOCOrder checks that sorting the samples by PTS gives the output
// order of ffmpeg's decoder, and that PTS are frameDur apart.
func checkPOCOrder(t *testing.T, path string, got []chunker.Sample, frameDur int64) {
	t.Helper()
	want := codedOrder(t, path)
	idx := make([]int, len(got))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return int(got[a].PTS - got[b].PTS) })
	if !slices.Equal(idx, want) {
		t.Fatalf("output order by PTS\n%v\nffmpeg decoder order\n%v", idx, want)
	}
	for i := range got {
		if got[i].DTS != got[0].DTS+int64(i)*frameDur || got[i].Duration != frameDur {
			t.Fatalf("sample %d: dts %d duration %d", i, got[i].DTS, got[i].Duration)
		}
		if got[i].PTS < got[i].DTS {
			t.Fatalf("sample %d: pts %d < dts %d", i, got[i].PTS, got[i].DTS)
		}
		if i > 0 && got[idx[i]].PTS != got[idx[i-1]].PTS+frameDur {
			t.Fatalf("pts not contiguous at output frame %d", i)
		}
	}
}

// TestAnnexBOutputOrder checks PTS derived from the picture order count of
// the raw fixture against the output order of ffmpeg's decoder.
func TestAnnexBOutputOrder(t *testing.T) {
	path := mediatest.Testdata("raw.h264")
	got, info := openAll(t, path, Options{})
	if info.Format != FormatAnnexB || info.Timescale != 90000 || info.Width != 320 || info.Height != 240 {
		t.Fatalf("info %+v", info)
	}
	if n := len(mediatest.FrameHashes(t, path)); n != len(got) {
		t.Fatalf("%d samples, %d frames", len(got), n)
	}
	checkPOCOrder(t, path, got, 3000)
	// VUI max_num_reorder_frames = 2: the first picture is shown 2 frames
	// after it is decoded.
	if got[0].PTS-got[0].DTS != 6000 {
		t.Fatalf("first pts-dts %d, want 6000", got[0].PTS-got[0].DTS)
	}
}

// TestAnnexBMatchesTS extracts the H.264 of a TS written by ffmpeg (with
// AUDs, B-pyramid, 29.97 fps) and checks that the Annex-B source gives the
// same DTS and PTS, relative to the first DTS, as the TS packets.
func TestAnnexBMatchesTS(t *testing.T) {
	for _, name := range []string{"aud", "ntsc"} {
		t.Run(name, func(t *testing.T) {
			got, _ := openAll(t, generated(t, name+".h264"), Options{})
			want := mediatest.Packets(t, generated(t, name+".ts"))
			if len(got) != len(want) {
				t.Fatalf("%d samples, %d packets", len(got), len(want))
			}
			for i := range got {
				gd, gp := got[i].DTS-got[0].DTS, got[i].PTS-got[0].DTS
				wd, wp := want[i].DTS-want[0].DTS, want[i].PTS-want[0].DTS
				if gd != wd || gp != wp {
					t.Fatalf("sample %d: dts/pts %d/%d, TS %d/%d", i, gd, gp, wd, wp)
				}
				if chunker.IsIDR(got[i].NALUs) != want[i].Key {
					t.Fatalf("sample %d: key flag", i)
				}
			}
		})
	}
}

// TestAnnexBWithoutVUI pretends the SPS has no VUI: then Options.FrameRate
// times the stream, the reorder delay is derived from the IDR groups, and
// without a frame rate NewAnnexB fails with ErrNoFrameRate.
func TestAnnexBWithoutVUI(t *testing.T) {
	path := mediatest.Testdata("raw.h264")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewAnnexB(bytes.NewReader(b), Options{ignoreVUI: true}); !errors.Is(err, ErrNoFrameRate) {
		t.Fatalf("err %v, want ErrNoFrameRate", err)
	}
	for _, tc := range []struct {
		fps float64
		dur int64
	}{{30, 3000}, {25, 3600}, {60, 1500}} {
		a, err := NewAnnexB(bytes.NewReader(b), Options{FrameRate: tc.fps, ignoreVUI: true})
		if err != nil {
			t.Fatal(err)
		}
		got := readAll(t, a)
		checkPOCOrder(t, path, got, tc.dur)
		// The smallest delay: B-pyramid with 2 B-frames needs 1 frame.
		if d := got[0].PTS - got[0].DTS; d != tc.dur {
			t.Fatalf("%v fps: first pts-dts %d, want %d", tc.fps, d, tc.dur)
		}
	}
	// 29.97: DTS follow 3003.003 ticks per frame exactly (rounded down).
	a, err := NewAnnexB(bytes.NewReader(b), Options{FrameRate: 29.97, ignoreVUI: true})
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, a)
	for i, s := range got {
		if want := int64(i) * 3003; s.DTS != want {
			t.Fatalf("sample %d: dts %d, want %d", i, s.DTS, want)
		}
	}
}

// TestChunks reads three self-contained chunk files as one stream.
func TestChunks(t *testing.T) {
	paths := []string{mediatest.Testdata("chunk0.mp4"), mediatest.Testdata("chunk1.mp4"), mediatest.Testdata("chunk2.mp4")}
	c, err := OpenChunks(paths, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := readAll(t, c)
	var wantHashes []string
	var total int
	start := 0
	var offset int64
	for k, p := range paths {
		pk := mediatest.Packets(t, p)
		total += len(pk)
		wantHashes = append(wantHashes, mediatest.FrameHashes(t, p)...)
		if len(got) < start+len(pk) {
			t.Fatalf("%d samples, want at least %d", len(got), start+len(pk))
		}
		part := got[start : start+len(pk)]
		if k > 0 {
			prev := got[start-1]
			if gap := part[0].DTS - prev.DTS; gap != 512 {
				t.Fatalf("file %d: DTS gap %d at the boundary, want one frame (512)", k, gap)
			}
			if prev.DTS+prev.Duration != part[0].DTS {
				t.Fatalf("file %d: previous sample ends at %d, next starts at %d", k, prev.DTS+prev.Duration, part[0].DTS)
			}
			// exactly end to start: this file's offset is the previous
			// file's DTS span
			last := mediatest.Packets(t, paths[k-1])
			offset += last[len(last)-1].DTS + 512 - last[0].DTS
		}
		for i, s := range part {
			if s.DTS != pk[i].DTS+offset || s.PTS != pk[i].PTS+offset {
				t.Fatalf("file %d sample %d: dts/pts %d/%d, want %d/%d", k, i, s.DTS, s.PTS, pk[i].DTS+offset, pk[i].PTS+offset)
			}
		}
		start += len(pk)
	}
	if len(got) != total {
		t.Fatalf("%d samples, files have %d", len(got), total)
	}
	for i := 1; i < len(got); i++ {
		if got[i].DTS <= got[i-1].DTS {
			t.Fatalf("sample %d: DTS %d not after %d", i, got[i].DTS, got[i-1].DTS)
		}
	}
	have := mediatest.FrameHashes(t, writeAnnexB(t, got), "-f", "h264")
	if d := mediatest.EqualHashes(wantHashes, have); d != "" {
		t.Fatal(d)
	}
}

// TestChunksTimescale joins files of different timescales: the second is
// converted to the first's.
func TestChunksTimescale(t *testing.T) {
	paths := []string{mediatest.Testdata("chunk0.mp4"), generated(t, "ts90k.mp4")}
	c, err := OpenChunks(paths, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, c)
	c.Close()
	first := mediatest.Packets(t, paths[0])
	second := mediatest.Packets(t, paths[1]) // 1/90000
	if len(got) != len(first)+len(second) {
		t.Fatalf("%d samples", len(got))
	}
	offset := first[len(first)-1].DTS + 512 - first[0].DTS
	for i, w := range second {
		s := got[len(first)+i]
		if s.DTS != offset+timeline.Rescale(w.DTS, 90000, 15360) || s.PTS != offset+timeline.Rescale(w.PTS, 90000, 15360) {
			t.Fatalf("sample %d: dts/pts %d/%d", i, s.DTS, s.PTS)
		}
	}
	for i := 1; i < len(got); i++ {
		if got[i].DTS <= got[i-1].DTS {
			t.Fatalf("sample %d: DTS %d not after %d", i, got[i].DTS, got[i-1].DTS)
		}
	}
}

// pipe returns a reader that is not a Seeker and delivers the file in
// small, odd-sized writes.
func pipe(t testing.TB, path string) io.Reader {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	go func() {
		for len(b) > 0 {
			n := min(len(b), 1000)
			if _, err := pw.Write(b[:n]); err != nil {
				return
			}
			b = b[n:]
		}
		pw.Close()
	}()
	t.Cleanup(func() { pr.Close() })
	return pr
}

// TestStreams reads TS, Annex-B and fragmented MP4 from a pipe (through
// NewReader's sniffing) and compares with reading the file.
func TestStreams(t *testing.T) {
	for _, name := range []string{"reschange.ts", "wrap.ts", "raw.h264", "fragmented.mp4"} {
		t.Run(name, func(t *testing.T) {
			path := mediatest.Testdata(name)
			want, _ := openAll(t, path, Options{})
			r := pipe(t, path)
			if _, ok := r.(io.Seeker); ok {
				t.Fatal("pipe seeks")
			}
			src, err := NewReader(r, Options{})
			if err != nil {
				t.Fatal(err)
			}
			got := readAll(t, src)
			if len(got) != len(want) {
				t.Fatalf("%d samples from the pipe, %d from the file", len(got), len(want))
			}
			for i := range got {
				if got[i].DTS != want[i].DTS || got[i].PTS != want[i].PTS || !accessunit.Equal(got[i].NALUs, want[i].NALUs) {
					t.Fatalf("sample %d differs", i)
				}
			}
		})
	}
	t.Run("progressive", func(t *testing.T) {
		_, err := NewReader(pipe(t, mediatest.Testdata("bframes.mp4")), Options{})
		if !errors.Is(err, ErrUnsupported) {
			t.Fatalf("err %v, want ErrUnsupported", err)
		}
	})
}

// TestReschange checks that the second SPS of the resolution change
// arrives in-band at the IDR where the size changes.
func TestReschange(t *testing.T) {
	got, info := openAll(t, mediatest.Testdata("reschange.ts"), Options{})
	if info.Width != 320 || info.Height != 240 {
		t.Fatalf("info %dx%d", info.Width, info.Height)
	}
	var spss [][]byte
	for _, s := range got {
		for _, n := range s.NALUs {
			if mch264.NALUType(n[0]&0x1f) == mch264.NALUTypeSPS && (len(spss) == 0 || !bytes.Equal(spss[len(spss)-1], n)) {
				spss = append(spss, n)
			}
		}
	}
	if len(spss) != 2 {
		t.Fatalf("%d distinct SPS in-band, want 2", len(spss))
	}
}

func TestBadInput(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile(mediatest.Testdata(name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	bframes := read("bframes.mp4")
	frag := read("fragmented.mp4")
	ts := read("reschange.ts")
	// moov of bframes.mp4 is at the end; cut inside it
	moovCut := bframes[:len(bframes)-100]
	// a sample table pointing beyond the end of a file
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"garbage", []byte(strings.Repeat("garbage!", 100)), ErrInvalid},
		{"mp4 header only", bframes[:40], ErrTruncated},
		{"mp4 moov cut", moovCut, ErrTruncated},
		{"fmp4 cut", frag[:len(frag)/2], ErrTruncated},
		{"ts one byte", ts[:1], ErrTruncated},
		{"ts partial packet", ts[:100], ErrTruncated},
		{"ts garbage after sync", append([]byte{0x47}, bytes.Repeat([]byte{1}, 1000)...), ErrInvalid},
		{"ts no pmt", ts[:188], ErrTruncated},
		{"annexb garbage", append([]byte{0, 0, 1, 0x67}, bytes.Repeat([]byte{0xff}, 50)...), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := readErr(bytes.NewReader(tc.data))
			if tc.want == nil {
				if !isTypedErr(err) {
					t.Fatalf("untyped error %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
	for _, name := range []string{"hevc.mp4", "hevc.ts"} {
		t.Run(name, func(t *testing.T) {
			_, err := Open(generated(t, name), Options{})
			if !errors.Is(err, ErrUnsupported) {
				t.Fatalf("err %v, want ErrUnsupported", err)
			}
		})
	}
	t.Run("mp4 sample beyond end", func(t *testing.T) {
		// baseline.mp4 has mdat before moov: drop bytes of the mdat
		// payload by shortening the file is not possible without moving
		// moov, so corrupt an stco entry instead.
		b := read("baseline.mp4")
		i := bytes.Index(b, []byte("stco"))
		if i < 0 {
			t.Fatal("no stco")
		}
		c := slices.Clone(b)
		copy(c[i+12:], []byte{0x7f, 0, 0, 0}) // first chunk offset
		err := readErr(bytes.NewReader(c))
		if !errors.Is(err, ErrTruncated) {
			t.Fatalf("err %v, want ErrTruncated", err)
		}
	})
}

// readErr opens r with NewReader and reads it to the end, returning the
// first error other than io.EOF.
func readErr(r io.Reader) error {
	src, err := NewReader(r, Options{FrameRate: 30})
	if err != nil {
		return err
	}
	for range 100000 {
		if _, err := src.Next(); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
	return fmt.Errorf("too many samples")
}

// TestTruncatedPrefixes reads prefixes of every fixture: each ends with
// io.EOF or a typed error, never a panic.
func TestTruncatedPrefixes(t *testing.T) {
	for _, name := range []string{"baseline.mp4", "bframes.mp4", "vfr.mov", "fragmented.mp4", "reschange.ts", "wrap.ts", "raw.h264", "chunk0.mp4"} {
		b, err := os.ReadFile(mediatest.Testdata(name))
		if err != nil {
			t.Fatal(err)
		}
		for n := 0; n < len(b); n += 1 + len(b)/97 {
			if err := readErr(bytes.NewReader(b[:n])); !isTypedErr(err) {
				t.Fatalf("%s[:%d]: untyped error %v", name, n, err)
			}
		}
	}
}

func TestSniff(t *testing.T) {
	for _, tc := range []struct {
		name string
		want Format
	}{
		{"baseline.mp4", FormatMP4}, {"vfr.mov", FormatMP4}, {"fragmented.mp4", FormatMP4},
		{"wrap.ts", FormatTS}, {"raw.h264", FormatAnnexB},
	} {
		b, err := os.ReadFile(mediatest.Testdata(tc.name))
		if err != nil {
			t.Fatal(err)
		}
		if got := Sniff(b[:min(len(b), sniffLen)]); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := Sniff([]byte("hello world")); got != FormatUnknown {
		t.Errorf("text: %v", got)
	}
	// Raw H.264 whose 0x47 bytes happen to fall 188 apart (three times)
	// stays H.264: only five in a row after other bytes make MPEG-TS.
	raw, err := os.ReadFile(mediatest.Testdata("raw.h264"))
	if err != nil {
		t.Fatal(err)
	}
	raw = slices.Clone(raw[:min(len(raw), sniffLen)])
	for i := range 3 {
		raw[1000+i*mpegts.PacketSize] = mpegts.SyncByte
	}
	if got := Sniff(raw); got != FormatAnnexB {
		t.Errorf("raw H.264 with 0x47 bytes 188 apart: %v", got)
	}
	// Other bytes need five: three 0x47 188 apart are not MPEG-TS.
	other := bytes.Repeat([]byte("x"), sniffLen)
	for i := range 3 {
		other[500+i*mpegts.PacketSize] = mpegts.SyncByte
	}
	if got := Sniff(other); got != FormatUnknown {
		t.Errorf("text with three 0x47 bytes 188 apart: %v", got)
	}
	for i := 3; i < 5; i++ {
		other[500+i*mpegts.PacketSize] = mpegts.SyncByte
	}
	if got := Sniff(other); got != FormatTS {
		t.Errorf("five sync bytes after other bytes: %v, want MPEG-TS", got)
	}
	// Inputs just long enough for the M2TS check (two packets and 4
	// bytes) are refused, not a panic.
	for n := 380; n <= 400; n++ {
		short := bytes.Repeat([]byte("y"), n)
		short[4], short[4+192] = mpegts.SyncByte, mpegts.SyncByte
		if _, err := NewReader(bytes.NewReader(short), Options{}); err == nil {
			t.Errorf("%d bytes: no error", n)
		}
	}
	// MPEG-TS captured from a PES header on starts with a start code, as
	// raw H.264 does: the packets that follow it say MPEG-TS.
	ts, err := os.ReadFile(mediatest.Testdata("av.ts"))
	if err != nil {
		t.Fatal(err)
	}
	cut := -1
	for i := 3 * mpegts.PacketSize; i+mpegts.PacketSize <= len(ts) && cut < 0; i += mpegts.PacketSize {
		if q := ts[i:]; q[1]&0x40 != 0 && q[3]&0x20 == 0 && q[4] == 0 && q[5] == 0 && q[6] == 1 {
			cut = i + 4
		}
	}
	if cut < 0 {
		t.Fatal("no PES header without adaptation field in av.ts")
	}
	if got := Sniff(ts[cut:][:sniffLen]); got != FormatTS {
		t.Errorf("MPEG-TS cut at a PES header: %v, want MPEG-TS", got)
	}
}

func TestClock(t *testing.T) {
	c := clock{num: 3003, den: 2} // 29.97 fps field periods
	for u := int64(0); u < 10; u += 2 {
		if got := c.at(u); got != u/2*3003 {
			t.Fatalf("at(%d) = %d", u, got)
		}
	}
	c = clock{num: 90000 * 1001, den: 48000} // 23.976 fps
	if got := c.at(2 * 24000); got != 1001*90000 {
		t.Fatalf("one hour-ish: %d", got)
	}
	if got := c.at(1 << 40); got <= 0 {
		t.Fatalf("overflow: %d", got)
	}
}

// discard is a chunker Output that drops what it gets.
type discard struct{ segs int }

func (d *discard) WriteInit(context.Context, *chunker.Init) error { return nil }
func (d *discard) WriteSegment(_ context.Context, s *chunker.Segment) error {
	d.segs++
	s.Release()
	return nil
}

// TestFeedsChunker writes every fixture's samples into a chunker
// configured from Info: all samples are accepted, none dropped.
func TestFeedsChunker(t *testing.T) {
	ctx := context.Background()
	all := append(slices.Clone(containerFixtures), fixture{"raw.h264", committed("raw.h264"), false})
	for _, fx := range all {
		t.Run(fx.name, func(t *testing.T) {
			f, err := Open(fx.path(t), Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			info := f.Info()
			var out discard
			c, err := chunker.New(chunker.Config{Timescale: info.Timescale, WrapBits: info.WrapBits, TargetDuration: time.Second}, &out)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for {
				s, err := f.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if err := c.Write(ctx, s); err != nil {
					t.Fatalf("sample %d: %v", n, err)
				}
				n++
			}
			if err := c.Close(ctx); err != nil {
				t.Fatal(err)
			}
			st := c.Stats()
			if st.Samples != int64(n) || st.DroppedNoKey != 0 || out.segs == 0 {
				t.Fatalf("%d samples written, stats %+v, %d segments", n, st, out.segs)
			}
		})
	}
}

// TestTSLeadingBytes: an MPEG-TS input that begins with bytes that are not
// packets (a capture started inside a packet, or a header) is read from
// its first packet on, from a file and from a pipe, as ffmpeg reads it,
// not refused as an unrecognized format. M2TS (192-byte packets) is
// refused as unsupported, by name.
func TestTSLeadingBytes(t *testing.T) {
	b, err := os.ReadFile(mediatest.Testdata("av.ts"))
	if err != nil {
		t.Fatal(err)
	}
	clean, err := NewReader(bytes.NewReader(b), Options{})
	if err != nil {
		t.Fatal(err)
	}
	wv, wa := readPackets(t, clean)
	wantV, wantA := len(wv), len(wa)
	garbage := bytes.Repeat([]byte("not a packet "), 77) // 1001 bytes, no 0x47
	for name, in := range map[string][]byte{
		"garbage":     append(slices.Clone(garbage), b...),
		"mid-packet":  b[100:], // the rest of the first packet, then packets
		"single-byte": append([]byte{'X'}, b...),
	} {
		p := filepath.Join(t.TempDir(), "in.ts")
		if err := os.WriteFile(p, in, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := Open(p, Options{})
		if err != nil {
			t.Fatalf("%s: file: %v", name, err)
		}
		fv, fa := readPackets(t, f)
		v, a := len(fv), len(fa)
		f.Close()
		pipe, err := NewReader(io.MultiReader(bytes.NewReader(in)), Options{}) // not a ReadSeeker
		if err != nil {
			t.Fatalf("%s: pipe: %v", name, err)
		}
		pvs, pas := readPackets(t, pipe)
		pv, pa := len(pvs), len(pas)
		if v != wantV || pv != wantV || a < wantA-1 || pa < wantA-1 {
			t.Errorf("%s: %d/%d pictures (file/pipe), %d/%d audio frames; the clean input has %d and %d", name, v, pv, a, pa, wantV, wantA)
		}
	}
	mediatest.RequireTool(t, "ffmpeg")
	m2ts := filepath.Join(t.TempDir(), "in.m2ts")
	mediatest.FFmpeg(t, "-i", mediatest.Testdata("av.ts"), "-c", "copy", "-f", "mpegts", "-mpegts_m2ts_mode", "1", m2ts)
	if _, err := Open(m2ts, Options{}); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "M2TS") {
		t.Errorf("M2TS: %v, want ErrUnsupported naming M2TS", err)
	}
}

// TestChunksAudioLead: MP4 chunks whose video an edit list delays 0.5 s
// behind 2.5 s of audio are joined by their pictures: the pictures step by
// one frame across every join, and the first 0.5 s of each later chunk's
// audio, which lands on the last 0.5 s of the chunk before's, is a true
// overlap and dropped (about 24 frames a join, counted by AudioDropped);
// every other frame is read, in order. A chunk whose AAC configuration
// differs from the first one's has its audio left out, its pictures read.
func TestChunksAudioLead(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	dir := t.TempDir()
	chunk := func(i int, rate string) (string, int) {
		v, a := filepath.Join(dir, fmt.Sprintf("v%d.mp4", i)), filepath.Join(dir, fmt.Sprintf("a%d.m4a", i))
		mediatest.FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=30:duration=2",
			"-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-pix_fmt", "yuv420p", v)
		mediatest.FFmpeg(t, "-f", "lavfi", "-i", "sine=frequency=440:duration=2.5:sample_rate="+rate, "-c:a", "aac", a)
		p := filepath.Join(dir, fmt.Sprintf("c%d.mp4", i))
		mediatest.FFmpeg(t, "-itsoffset", "0.5", "-i", v, "-i", a, "-map", "0:v", "-map", "1:a", "-c", "copy", p)
		return p, mediatest.PacketCount(t, p, "audio")
	}
	var paths []string
	total := 0
	for i := range 3 {
		p, n := chunk(i, "48000")
		paths, total = append(paths, p), total+n
	}
	other, _ := chunk(3, "44100")
	for _, paths := range [][]string{paths, append(slices.Clone(paths), other)} {
		src, err := OpenChunks(paths, Options{})
		if err != nil {
			t.Fatal(err)
		}
		v, a := readPackets(t, src)
		src.Close()
		dropped := int(src.AudioDropped())
		if len(v) != 60*len(paths) || len(a)+dropped != total || dropped < 2*22 || dropped > 2*26 {
			t.Errorf("%d chunks: %d pictures, %d audio frames and %d dropped; want %d pictures and %d frames less two 0.5 s overlaps",
				len(paths), len(v), len(a), dropped, 60*len(paths), total)
		}
		for i := 1; i < len(v); i++ {
			if step := v[i].DTS - v[i-1].DTS; step != v[1].DTS-v[0].DTS {
				t.Errorf("%d chunks: picture %d steps %d ticks, the frame step is %d", len(paths), i, step, v[1].DTS-v[0].DTS)
			}
		}
		for i := 1; i < len(a); i++ {
			if a[i].PTS <= a[i-1].PTS {
				t.Errorf("%d chunks: audio frame %d at %d, after %d", len(paths), i, a[i].PTS, a[i-1].PTS)
			}
		}
	}
}
