package stitch_test

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"github.com/livechunk/livechunk/internal/testkit/s3test"
	"github.com/livechunk/livechunk/stitch"
)

// TestPlaylist records every fixture as fMP4 and as MPEG-TS segments,
// stitches the playlist into one MP4, and lets ffmpeg judge the result
// against the original file.
func TestPlaylist(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	fixtures := []string{"bframes.mp4", "baseline.mp4", "vfr.mov", "fragmented.mp4", "wrap.ts", "raw.h264"}
	for _, name := range fixtures {
		input := mediatest.Testdata(name)
		want := mediatest.FrameHashes(t, input)
		in := ffprobe(t, input)
		for _, f := range []chunker.Format{chunker.FMP4, chunker.TS} {
			t.Run(name+"/"+f.String(), func(t *testing.T) {
				src := recorded(t, input, f, "rec/", time.Second)
				out, res := writeFile(t, src, ".mp4", stitch.Options{})

				if got := topBoxes(t, out); !slices.Equal(got, []string{"ftyp", "moov", "mdat"}) {
					t.Errorf("top-level boxes %v, want ftyp moov mdat", got)
				}
				if d := mediatest.EqualHashes(want, mediatest.FrameHashes(t, out)); d != "" {
					t.Errorf("decoded frames differ from the input's: %s", d)
				}
				pr := ffprobe(t, out)
				frame := in.maxFrameDur()
				if !math.IsNaN(in.duration) && math.Abs(pr.duration-in.duration) > frame+1e-6 {
					t.Errorf("duration %.6f s, input %.6f s (more than one frame, %.4f s, apart)", pr.duration, in.duration, frame)
				}
				if got, want := pr.keyPacketsShown(), in.keyShown; !slices.Equal(got, want) {
					t.Errorf("keyframes (stss) at displayed pictures %v, input's key frames at %v", got, want)
				}
				if res.Samples != len(pr.pts) || res.Keyframes != len(in.keyShown) || res.SampleDescriptions != 1 {
					t.Errorf("result %+v: want %d samples, %d keyframes, 1 sample description", res, len(pr.pts), len(in.keyShown))
				}
				if name == "raw.h264" {
					return // no timestamps in the input to compare with
				}
				// Presentation times (after the edit list) match the
				// input's, relative to the first displayed picture.
				got, exp := pr.relPTS(), in.relPTS()
				if len(got) != len(exp) {
					t.Fatalf("%d packets, input %d", len(got), len(exp))
				}
				for i := range got {
					if math.Abs(got[i]-exp[i]) > 1e-3 {
						t.Fatalf("packet %d: pts %.6f, input %.6f", i, got[i], exp[i])
					}
				}
				if math.Abs(slices.Min(pr.pts)) > 1e-9 {
					t.Errorf("first picture presented at %.6f s, want 0 (edit list)", slices.Min(pr.pts))
				}
			})
		}
	}
}

// TestPlaylistExact checks what a remux must keep bit for bit: the
// bframes fixture recorded as fMP4 keeps its 15360 Hz timescale, so the
// stitched packets have the input's exact presentation and decode times,
// and their payload is the input's.
func TestPlaylistExact(t *testing.T) {
	mediatest.RequireTool(t, "ffprobe")
	input := mediatest.Testdata("bframes.mp4")
	src := recorded(t, input, chunker.FMP4, "", time.Second)
	out, res := writeFile(t, src, ".mp4", stitch.Options{})
	got, want := mediatest.Packets(t, out), mediatest.Packets(t, input)
	if len(got) != len(want) {
		t.Fatalf("%d packets, input %d", len(got), len(want))
	}
	for i := range got {
		if got[i].PTS != want[i].PTS || got[i].DTS != want[i].DTS || got[i].Key != want[i].Key {
			t.Fatalf("packet %d: %+v, input %+v", i, got[i], want[i])
		}
	}
	if res.Timescale != 15360 || res.Duration != 4*time.Second || res.IndexReads != 5 {
		t.Errorf("result %+v: want timescale 15360, 4 s, 5 index reads (init + 4 segments)", res)
	}
}

// TestChunks stitches self-contained MP4 chunks, each starting at time 0,
// as a phone uploads them: the result decodes to the chunks' frames in
// sequence and lasts as long as they do together.
func TestChunks(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	var paths []string
	var want []string
	var dur float64
	for _, c := range []string{"chunk0.mp4", "chunk1.mp4", "chunk2.mp4"} {
		p := mediatest.Testdata(c)
		paths = append(paths, p)
		want = append(want, mediatest.FrameHashes(t, p)...)
		dur += ffprobe(t, p).duration
	}
	check := func(t *testing.T, in *stitch.Input) {
		out, res := writeFile(t, in, ".mp4", stitch.Options{})
		if got := topBoxes(t, out); !slices.Equal(got, []string{"ftyp", "moov", "mdat"}) {
			t.Errorf("top-level boxes %v", got)
		}
		if d := mediatest.EqualHashes(want, mediatest.FrameHashes(t, out)); d != "" {
			t.Errorf("frames differ from the chunks': %s", d)
		}
		pr := ffprobe(t, out)
		if math.Abs(pr.duration-dur) > 1.0/30 {
			t.Errorf("duration %.4f s, chunks together %.4f s", pr.duration, dur)
		}
		if res.Discontinuities != 2 || res.SampleDescriptions != 1 || res.Parts != 3 {
			t.Errorf("result %+v: want 2 joins, 1 sample description, 3 parts", res)
		}
		// Presentation runs on without holes or overlaps.
		s := slices.Clone(pr.pts)
		slices.Sort(s)
		for i := 1; i < len(s); i++ {
			if d := s[i] - s[i-1]; math.Abs(d-1.0/30) > 1e-3 {
				t.Fatalf("pictures %d and %d presented %.4f s apart", i-1, i, d)
			}
		}
	}
	t.Run("files", func(t *testing.T) { check(t, stitch.FromFiles(paths...)) })
	t.Run("readerat", func(t *testing.T) {
		var parts []stitch.Part
		for _, p := range paths {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			parts = append(parts, stitch.ReaderAtPart(filepath.Base(p), bytes.NewReader(data), int64(len(data))))
		}
		check(t, stitch.New(parts...))
	})
	t.Run("s3", func(t *testing.T) {
		srv := s3test.Start(t, "uploads")
		b := srv.Open(t, "uploads")
		var keys []string
		for i, p := range paths {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			k := "phone/chunk-" + string(rune('0'+i)) + ".mp4"
			if err := b.WriteAll(context.Background(), k, data, nil); err != nil {
				t.Fatal(err)
			}
			keys = append(keys, k)
		}
		check(t, stitch.FromObjects(b, keys...))
	})
}

// TestClip cuts [1.5 s, 3.2 s) out of the bframes fixture (30 fps): ffmpeg
// shows exactly the input's pictures 45 to 95, starting with the one at
// 1.5 s, although decoding starts at the keyframe at 1.0 s.
func TestClip(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	input := mediatest.Testdata("bframes.mp4")
	all := mediatest.FrameHashes(t, input)
	ms := time.Millisecond
	tests := []struct {
		name          string
		from, to      time.Duration
		first, frames int     // expected pictures: all[first : first+frames]
		dur           float64 // expected duration, s
	}{
		{"middle", 1500 * ms, 3200 * ms, 45, 51, 1.7},
		{"from-inside-a-frame", 1510 * ms, 3200 * ms, 45, 51, 1.7},
		{"head", 0, 1990 * ms, 0, 60, 1.99},
		{"tail", 2 * time.Second, 0, 60, 60, 2},
		{"one-frame", 2000 * ms, 2010 * ms, 60, 1, 0.01},
	}
	for _, f := range []chunker.Format{chunker.FMP4, chunker.TS} {
		src := recorded(t, input, f, "", time.Second)
		for _, tc := range tests {
			t.Run(f.String()+"/"+tc.name, func(t *testing.T) {
				out, res := writeFile(t, src, ".mp4", stitch.Options{From: tc.from, To: tc.to})
				got := mediatest.FrameHashes(t, out)
				if d := mediatest.EqualHashes(all[tc.first:tc.first+tc.frames], got); d != "" {
					t.Errorf("displayed pictures are not the input's %d..%d: %s", tc.first, tc.first+tc.frames-1, d)
				}
				pr := ffprobe(t, out)
				if math.Abs(pr.duration-tc.dur) > 1e-3 {
					t.Errorf("duration %.4f s, want %.4f", pr.duration, tc.dur)
				}
				if topBoxes(t, out)[1] != "moov" {
					t.Error("moov is not before mdat")
				}
				if !pr.key[0] || res.Samples < tc.frames {
					t.Errorf("first packet key=%v, %d samples for %d pictures", pr.key[0], res.Samples, tc.frames)
				}
			})
		}
	}
}

// TestWriteTS checks MPEG-TS output: concatenation of TS segments with
// continuity counters fixed, and remuxing of fMP4 segments.
func TestWriteTS(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	input := mediatest.Testdata("bframes.mp4")
	want := mediatest.FrameHashes(t, input)
	for _, f := range []chunker.Format{chunker.TS, chunker.FMP4} {
		t.Run(f.String(), func(t *testing.T) {
			src := recorded(t, input, f, "", time.Second)
			out, res := writeFile(t, src, ".ts", stitch.Options{})
			if d := mediatest.EqualHashes(want, mediatest.FrameHashes(t, out)); d != "" {
				t.Errorf("frames differ: %s", d)
			}
			if log := continuityErrors(t, out); log != "" {
				t.Errorf("ffmpeg reports continuity errors:\n%s", log)
			}
			pr := ffprobe(t, out)
			if math.Abs(pr.duration-4) > 1.0/30 || res.Samples != 120 {
				t.Errorf("duration %.4f s, %d samples; want 4 s, 120", pr.duration, res.Samples)
			}
		})
	}
	t.Run("concatenated", func(t *testing.T) {
		// Consecutive segments of a recording, whose timestamps continue:
		// the output is their packets, unchanged.
		b, dir := fileBucket(t)
		record(t, b, input, chunker.TS, "", time.Second)
		var want []byte
		for _, name := range []string{"seg-000001.ts", "seg-000002.ts"} {
			data, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, data...)
		}
		out, res := writeFile(t, stitch.FromObjects(b, "seg-000001.ts", "seg-000002.ts"), ".ts", stitch.Options{})
		if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, want) {
			t.Errorf("output is not the concatenation (%v)", err)
		}
		if res.Samples != 60 || res.Discontinuities != 0 {
			t.Errorf("result %+v, want 60 samples and no discontinuity", res)
		}
	})
	t.Run("rejoined", func(t *testing.T) {
		// The same segment twice: its timestamps step back, so the
		// output joins them into one timeline (a plain concatenation
		// would also repeat the continuity counters, which ffmpeg
		// reports).
		b, dir := fileBucket(t)
		record(t, b, input, chunker.TS, "", time.Second)
		data, err := os.ReadFile(filepath.Join(dir, "seg-000001.ts"))
		if err != nil {
			t.Fatal(err)
		}
		cat := filepath.Join(t.TempDir(), "cat.ts")
		if err := os.WriteFile(cat, append(slices.Clone(data), data...), 0o644); err != nil {
			t.Fatal(err)
		}
		if continuityErrors(t, cat) == "" {
			t.Fatal("control: ffmpeg finds no continuity error in a plain concatenation")
		}
		out, res := writeFile(t, stitch.FromObjects(b, "seg-000001.ts", "seg-000001.ts"), ".ts", stitch.Options{})
		if log := continuityErrors(t, out); log != "" {
			t.Errorf("continuity errors after stitching:\n%s", log)
		}
		one := mediatest.FrameHashes(t, filepath.Join(dir, "seg-000001.ts"))
		if d := mediatest.EqualHashes(append(slices.Clone(one), one...), mediatest.FrameHashes(t, out)); d != "" {
			t.Errorf("frames: %s", d)
		}
		pk := mediatest.Packets(t, out)
		pts := make([]int64, len(pk))
		for i, p := range pk {
			pts[i] = p.PTS
		}
		slices.Sort(pts)
		for i := 1; i < len(pts); i++ {
			if d := pts[i] - pts[i-1]; d != 3000 {
				t.Errorf("presentation step %d ticks before picture %d, want one frame (3000)", d, i)
			}
		}
		if res.Samples != 60 || res.Discontinuities != 1 {
			t.Errorf("result %+v, want 60 samples and 1 discontinuity", res)
		}
	})
	t.Run("clip", func(t *testing.T) {
		// MPEG-TS has no edit list: the clip starts at the keyframe at
		// or before From (1.0 s) and holds every picture up to To.
		src := recorded(t, input, chunker.TS, "", time.Second)
		out, _ := writeFile(t, src, ".ts", stitch.Options{From: 1500 * time.Millisecond, To: 3200 * time.Millisecond})
		got := mediatest.FrameHashes(t, out)
		if len(got) < 66 {
			t.Fatalf("%d pictures, want at least 66", len(got))
		}
		if d := mediatest.EqualHashes(want[30:96], got[:66]); d != "" {
			t.Errorf("pictures are not the input's 30..95: %s", d)
		}
		// Pictures decoded before the last one presented before To, but
		// presented after it, are there too (a reference picture).
		for _, h := range got[66:] {
			if !slices.Contains(want[96:], h) {
				t.Errorf("picture %s is not one of the input's after 3.2 s", h)
			}
		}
	})
}

// continuityErrors returns ffmpeg's continuity complaints about a TS file.
func continuityErrors(t testing.TB, p string) string {
	t.Helper()
	out := mediatest.Run(t, "sh", "-c", `ffmpeg -nostdin -hide_banner -v debug -i "$1" -f null - 2>&1 | grep -i "continuity check failed" || true`, "sh", p)
	return strings.TrimSpace(string(out))
}

// TestResolutionChange stitches a recording whose SPS changes mid-stream
// (320x240, then 480x270). The MP4 gets a second sample description; ffmpeg
// switches to it (new extradata side data) and decodes every picture at its
// own size.
func TestResolutionChange(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	input := mediatest.Testdata("reschange.ts")
	want := mediatest.FrameHashes(t, input)
	for _, f := range []chunker.Format{chunker.FMP4, chunker.TS} {
		t.Run(f.String(), func(t *testing.T) {
			src := recorded(t, input, f, "", time.Second)
			out, res := writeFile(t, src, ".mp4", stitch.Options{})
			if d := mediatest.EqualHashes(want, mediatest.FrameHashes(t, out)); d != "" {
				t.Errorf("frames differ: %s", d)
			}
			if res.SampleDescriptions != 2 {
				t.Errorf("%d sample descriptions, want 2", res.SampleDescriptions)
			}
			// The moov: two avc1 entries, the second used from the first
			// 480x270 picture on.
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			mf, err := mp4.DecodeFile(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			stbl := mf.Moov.Trak.Mdia.Minf.Stbl
			var sizes []string
			for _, e := range stbl.Stsd.Children {
				v := e.(*mp4.VisualSampleEntryBox)
				sizes = append(sizes, e.Type()+":"+strconv.Itoa(int(v.Width))+"x"+strconv.Itoa(int(v.Height)))
			}
			if !slices.Equal(sizes, []string{"avc1:320x240", "avc1:480x270"}) {
				t.Errorf("sample descriptions %v", sizes)
			}
			first := 0 // first sample using description 2
			for i, e := range stbl.Stsc.Entries {
				if stbl.Stsc.GetSampleDescriptionID(i+1) == 2 {
					first = int(e.FirstSampleNr)
					break
				}
			}
			if first != 61 {
				t.Errorf("sample description 2 starts at sample %d, want 61", first)
			}
			// ffmpeg reports the switch as new extradata on that packet.
			side := mediatest.Run(t, "ffprobe", "-v", "error", "-select_streams", "v:0",
				"-show_entries", "packet=pts_time:packet_side_data=side_data_type", "-of", "compact", out)
			if !strings.Contains(string(side), "New Extradata") {
				t.Error("ffprobe sees no new extradata at the change")
			}
			ts, _ := writeFile(t, src, ".ts", stitch.Options{})
			if d := mediatest.EqualHashes(want, mediatest.FrameHashes(t, ts)); d != "" {
				t.Errorf("TS output: frames differ: %s", d)
			}
		})
	}
}

// TestS3 stitches a recording held in an S3 bucket (an in-process S3
// server) into an object of the same bucket: one range request per object
// for the indexes, one per segment for the payloads.
func TestS3(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	input := mediatest.Testdata("bframes.mp4")
	srv := s3test.Start(t, "media")
	b := srv.Open(t, "media")
	key := record(t, b, input, chunker.FMP4, "live/cam1/", time.Second)
	src, err := stitch.FromPlaylist(context.Background(), b, key)
	if err != nil {
		t.Fatal(err)
	}
	res, err := stitch.WriteBlob(context.Background(), b, "archive/cam1.mp4", src, stitch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.IndexReads != 5 {
		t.Errorf("%d range requests for indexes, want 5 (init + 4 segments)", res.IndexReads)
	}
	data := readAll(t, b, "archive/cam1.mp4")
	if int64(len(data)) != res.Bytes {
		t.Errorf("object has %d bytes, result says %d", len(data), res.Bytes)
	}
	p := filepath.Join(t.TempDir(), "cam1.mp4")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if d := mediatest.EqualHashes(mediatest.FrameHashes(t, input), mediatest.FrameHashes(t, p)); d != "" {
		t.Errorf("frames differ: %s", d)
	}
	attrs, err := b.Attributes(context.Background(), "archive/cam1.mp4")
	if err != nil || attrs.ContentType != "video/mp4" {
		t.Errorf("attributes %v, %v: want Content-Type video/mp4", attrs, err)
	}
	// TS output to a .ts key.
	if _, err := stitch.WriteBlob(context.Background(), b, "archive/cam1.ts", src, stitch.Options{}); err != nil {
		t.Fatal(err)
	}
	if ts := readAll(t, b, "archive/cam1.ts"); len(ts)%188 != 0 || ts[0] != 0x47 {
		t.Errorf("archive/cam1.ts is not MPEG-TS (%d bytes)", len(ts))
	}
	// A failed write leaves no object behind.
	_, err = stitch.WriteBlob(context.Background(), b, "archive/bad.mp4", src, stitch.Options{From: time.Hour})
	if !errors.Is(err, stitch.ErrEmptyRange) {
		t.Errorf("err %v, want ErrEmptyRange", err)
	}
	if ok, _ := b.Exists(context.Background(), "archive/bad.mp4"); ok {
		t.Error("a failed stitch left an object")
	}
}

// TestForeignTS stitches MPEG-TS files written by ffmpeg directly (not
// recorded by livechunk): one whose 33-bit timestamps wrap around 1.5 s in,
// and one whose resolution changes; each also twice in a row, the second
// copy's timestamps going back and joined on.
func TestForeignTS(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	for _, name := range []string{"wrap.ts", "reschange.ts"} {
		t.Run(name, func(t *testing.T) {
			p := mediatest.Testdata(name)
			want := mediatest.FrameHashes(t, p)
			in := ffprobe(t, p)
			out, res := writeFile(t, stitch.FromFiles(p), ".mp4", stitch.Options{})
			if d := mediatest.EqualHashes(want, mediatest.FrameHashes(t, out)); d != "" {
				t.Errorf("frames differ: %s", d)
			}
			pr := ffprobe(t, out)
			if math.Abs(pr.duration-in.duration) > in.maxFrameDur()+1e-6 {
				t.Errorf("duration %.4f s, input %.4f s", pr.duration, in.duration)
			}
			if res.Discontinuities != 0 {
				t.Errorf("%d discontinuities in one continuous file", res.Discontinuities)
			}
			out2, res2 := writeFile(t, stitch.FromFiles(p, p), ".mp4", stitch.Options{})
			if d := mediatest.EqualHashes(append(slices.Clone(want), want...), mediatest.FrameHashes(t, out2)); d != "" {
				t.Errorf("twice: frames differ: %s", d)
			}
			if d := ffprobe(t, out2).duration; math.Abs(d-2*pr.duration) > 1e-3 || res2.Discontinuities != 1 {
				t.Errorf("twice: duration %.4f s, %d discontinuities; want %.4f s, 1", d, res2.Discontinuities, 2*pr.duration)
			}
		})
	}
}

// TestLargeFirstPicture: in an MPEG-TS segment whose first picture is
// larger than the 256 KiB first searched for the streams (a 4K or
// lossless keyframe), the first audio frame comes after it; the segment
// is searched further, and the stitched file has every picture and audio
// frame.
func TestLargeFirstPicture(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	input := mediatest.LargePictures(t, ".mp4")
	if size := mediatest.Packets(t, input)[0].Size; size <= 256<<10 {
		t.Fatalf("first picture of %d bytes: the test needs one over 256 KiB", size)
	}
	want := mediatest.FrameHashes(t, input)
	wantAudio := mediatest.PacketCount(t, input, "audio")
	for _, ext := range []string{".mp4", ".ts"} {
		out, res := writeFile(t, recorded(t, input, chunker.TS, "rec/", time.Second), ext, stitch.Options{})
		if d := mediatest.EqualHashes(want, mediatest.FrameHashes(t, out)); d != "" {
			t.Errorf("%s: decoded frames differ from the input's: %s", ext, d)
		}
		if got := mediatest.PacketCount(t, out, "audio"); got != wantAudio {
			t.Errorf("%s: %d audio frames, input %d (result %+v)", ext, got, wantAudio, res)
		}
	}
}
