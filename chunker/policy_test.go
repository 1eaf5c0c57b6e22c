package chunker_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
)

// fixtureSamples returns the samples of a committed TS fixture.
func fixtureSamples(t testing.TB, name string) []chunker.Sample {
	t.Helper()
	mediatest.RequireTool(t, "ffmpeg")
	return demuxTS(t, fixtureTS(t, name))
}

func TestNonMonotonicDTSIsTypedError(t *testing.T) {
	samples := fixtureSamples(t, "bframes.mp4")
	for _, f := range []chunker.Format{chunker.FMP4, chunker.TS} {
		out := &collector{}
		c, err := chunker.New(chunker.Config{Format: f}, out)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		for i := 0; i < 10; i++ {
			if err := c.Write(ctx, samples[i]); err != nil {
				t.Fatal(err)
			}
		}
		bad := samples[10]
		bad.DTS = samples[8].DTS
		err = c.Write(ctx, bad)
		if !errors.Is(err, chunker.ErrNonMonotonicDTS) {
			t.Fatalf("%v: got %v, want ErrNonMonotonicDTS", f, err)
		}
		var se *chunker.SampleError
		if !errors.As(err, &se) || se.Index != 10 {
			t.Fatalf("%v: want SampleError at index 10, got %#v", f, err)
		}
		// The stream goes on after the bad sample.
		for i := 10; i < len(samples); i++ {
			if err := c.Write(ctx, samples[i]); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if got := c.Stats().Samples; got != int64(len(samples)) {
			t.Errorf("%v: %d samples written, want %d", f, got, len(samples))
		}
	}
}

func TestInvalidSamples(t *testing.T) {
	ctx := context.Background()
	c, err := chunker.New(chunker.Config{}, &collector{})
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]chunker.Sample{
		"empty au":       {},
		"empty nalu":     {NALUs: [][]byte{{}}},
		"forbidden bit":  {NALUs: [][]byte{{0x85, 1, 2}}},
		"garbage sps":    {NALUs: [][]byte{{0x67, 0xff}, {0x68, 0xee}, {0x65, 0x88}}},
		"truncated sps":  {NALUs: [][]byte{{0x67}, {0x68, 0xce}, {0x65, 0x88}}},
		"sps all zeroes": {NALUs: [][]byte{{0x67, 0, 0, 0, 0, 0, 0, 0}, {0x68, 0xce}, {0x65, 0x88}}},
		"no slice":       {NALUs: [][]byte{{0x06, 0x05, 0x01}, {0x09, 0xf0}}},
	} {
		err := c.Write(ctx, s)
		var se *chunker.SampleError
		if err == nil || !errors.As(err, &se) {
			t.Errorf("%s: got %v, want a *SampleError", name, err)
		}
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Write(ctx, chunker.Sample{NALUs: [][]byte{{0x65}}}); !errors.Is(err, chunker.ErrClosed) {
		t.Errorf("write after close: %v", err)
	}
}

func TestDropsUntilKeyframe(t *testing.T) {
	samples := fixtureSamples(t, "bframes.mp4")
	// Start in the middle of the first GOP: the first IDR after it is at 30.
	out := writeAll(t, chunker.Config{Format: chunker.FMP4, TargetDuration: time.Second}, samples[5:])
	st := len(samples[5:]) - 25
	frames := 0
	for _, s := range out.segs {
		frames += s.Frames
	}
	if frames != st {
		t.Errorf("wrote %d frames, want %d", frames, st)
	}
	c, _ := chunker.New(chunker.Config{}, &collector{})
	for _, s := range samples[5:40] {
		if err := c.Write(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.Stats().DroppedNoKey; got != 25 {
		t.Errorf("DroppedNoKey = %d, want 25", got)
	}
}

func TestTimestampJumpMarksDiscontinuity(t *testing.T) {
	samples := fixtureSamples(t, "bframes.mp4")
	// Shift the second half (from the IDR at 60) by ten minutes, as an
	// encoder restart would.
	shifted := make([]chunker.Sample, len(samples))
	copy(shifted, samples)
	for i := 60; i < len(shifted); i++ {
		shifted[i].DTS += 90000 * 600
		shifted[i].PTS += 90000 * 600
	}
	for _, f := range []chunker.Format{chunker.FMP4, chunker.TS} {
		out := writeAll(t, chunker.Config{Format: f, TargetDuration: 5 * time.Second}, shifted)
		if len(out.segs) != 2 {
			t.Fatalf("%v: got %d segments, want 2", f, len(out.segs))
		}
		a, b := out.segs[0], out.segs[1]
		if a.Discontinuity || !b.Discontinuity {
			t.Errorf("%v: discontinuity flags %v %v, want false true", f, a.Discontinuity, b.Discontinuity)
		}
		if a.Frames != 60 || b.Frames != len(samples)-60 {
			t.Errorf("%v: frames %d+%d", f, a.Frames, b.Frames)
		}
		// The output timeline runs on across the jump.
		if a.FirstDTS+a.Duration != b.FirstDTS {
			t.Errorf("%v: second segment starts at %d, first ends at %d", f, b.FirstDTS, a.FirstDTS+a.Duration)
		}
		want := mediatest.FrameHashes(t, mediatest.Testdata("bframes.mp4"))
		if d := mediatest.EqualHashes(want, decodeOutput(t, f, out)); d != "" {
			t.Errorf("%v: %s", f, d)
		}
	}
}

func TestLongSegmentWhenKeyframesAreRare(t *testing.T) {
	samples := fixtureSamples(t, "bframes.mp4") // IDR every second
	out := writeAll(t, chunker.Config{TargetDuration: 300 * time.Millisecond}, samples)
	for _, s := range out.segs[:len(out.segs)-1] {
		if s.DurationTime() != time.Second {
			t.Errorf("segment %d lasts %v, want 1s", s.Seq, s.DurationTime())
		}
		if !s.Long {
			t.Errorf("segment %d: Long not set for 1s with a 0.3s target", s.Seq)
		}
	}
	out = writeAll(t, chunker.Config{TargetDuration: 2 * time.Second}, samples)
	for _, s := range out.segs {
		if s.Long {
			t.Errorf("segment %d: Long set for %v with a 2s target", s.Seq, s.DurationTime())
		}
	}
}

func TestMetadata(t *testing.T) {
	samples := fixtureSamples(t, "bframes.mp4")
	out := writeAll(t, chunker.Config{TargetDuration: 2 * time.Second}, samples)
	in := out.inits[0]
	if in.Codec != "avc1.64000d" || in.Width != 320 || in.Height != 240 {
		t.Errorf("init: codec %q size %dx%d", in.Codec, in.Width, in.Height)
	}
	// The codec string is the hex of the SPS's first three payload bytes.
	if want := "avc1." + hex3(in.SPS[0][1:4]); in.Codec != want {
		t.Errorf("codec %q, want %q", in.Codec, want)
	}
	for _, s := range out.segs {
		if s.FrameRate < 29.9 || s.FrameRate > 30.1 {
			t.Errorf("segment %d frame rate %v", s.Seq, s.FrameRate)
		}
		if s.Keyframes < 1 || s.Init != out.inits[0] && s.Init.Seq != in.Seq {
			t.Errorf("segment %d: keyframes %d init %d", s.Seq, s.Keyframes, s.Init.Seq)
		}
		if s.FirstPTS < s.FirstDTS {
			t.Errorf("segment %d: first PTS %d < DTS %d", s.Seq, s.FirstPTS, s.FirstDTS)
		}
	}
}

func hex3(b []byte) string {
	const digits = "0123456789abcdef"
	var out []byte
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func TestSplitFramings(t *testing.T) {
	nal := [][]byte{{0x67, 1, 2, 3}, {0x68, 4}, {0x65, 0, 0, 3, 1, 9}}
	ab := chunker.AppendAnnexB(nil, nal)
	got, err := chunker.SplitAnnexB(nil, ab)
	if err != nil || len(got) != 3 {
		t.Fatalf("SplitAnnexB: %v %d", err, len(got))
	}
	for i := range nal {
		if !bytes.Equal(got[i], nal[i]) {
			t.Errorf("annexb nal %d: %x want %x", i, got[i], nal[i])
		}
	}
	// 3-byte start codes and trailing zeros.
	got, err = chunker.SplitAnnexB(nil, []byte{0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x65, 7, 0, 0})
	if err != nil || len(got) != 2 || !bytes.Equal(got[1], []byte{0x65, 7}) {
		t.Errorf("3-byte start codes: %v %x", err, got)
	}
	if _, err := chunker.SplitAnnexB(nil, []byte{0x65, 1, 2}); !errors.Is(err, chunker.ErrInvalidFraming) {
		t.Errorf("no start code: %v", err)
	}
	avcc := chunker.AppendAVCC(nil, nal)
	got, err = chunker.SplitAVCC(nil, avcc, 4)
	if err != nil || len(got) != 3 || !bytes.Equal(got[2], nal[2]) {
		t.Errorf("SplitAVCC: %v %x", err, got)
	}
	if _, err := chunker.SplitAVCC(nil, avcc[:len(avcc)-1], 4); !errors.Is(err, chunker.ErrInvalidFraming) {
		t.Errorf("truncated AVCC: %v", err)
	}
	if _, err := chunker.SplitAVCC(nil, avcc, 3); !errors.Is(err, chunker.ErrInvalidFraming) {
		t.Errorf("length size 3: %v", err)
	}
	got, err = chunker.SplitAVCC(nil, []byte{0, 2, 0x65, 1, 0, 1, 0x41}, 2)
	if err != nil || len(got) != 2 {
		t.Errorf("2-byte lengths: %v %x", err, got)
	}
}

func FuzzSplitAnnexB(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x65})
	f.Add([]byte{0, 0, 1})
	f.Add([]byte{0, 0, 0, 0, 1, 0, 0, 1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		nal, err := chunker.SplitAnnexB(nil, b)
		want, werr := splitAnnexBBytewise(b)
		if (err == nil) != (werr == nil) || !slices.EqualFunc(nal, want, bytes.Equal) {
			t.Fatalf("SplitAnnexB: %x, %v; byte by byte: %x, %v", nal, err, want, werr)
		}
		if err != nil {
			return
		}
		total := 0
		for _, n := range nal {
			if len(n) == 0 {
				t.Fatal("empty NAL unit")
			}
			total += len(n)
		}
		if total > len(b) {
			t.Fatal("NAL units longer than input")
		}
	})
}

// splitAnnexBBytewise is SplitAnnexB as it was first written, a loop over
// the bytes: the reference that FuzzSplitAnnexB and TestSplitAnnexB hold
// the faster version to.
func splitAnnexBBytewise(b []byte) ([][]byte, error) {
	var dst [][]byte
	n := len(b)
	i := 0
	for i < n && b[i] == 0 {
		i++
	}
	if i < 2 || i >= n || b[i] != 1 {
		return nil, chunker.ErrInvalidFraming
	}
	start := i + 1
	for {
		j, next := start, -1
		for j+2 < n {
			if b[j] == 0 && b[j+1] == 0 && b[j+2] == 1 {
				next = j
				break
			}
			j++
		}
		end := n
		if next >= 0 {
			end = next
		}
		e := end
		for e > start && b[e-1] == 0 {
			e--
		}
		if e > start {
			dst = append(dst, b[start:e:e])
		}
		if next < 0 {
			return dst, nil
		}
		start = next + 3
	}
}

// TestSplitAnnexB compares SplitAnnexB with the byte-by-byte reference on
// real streams (every fixture as one Annex-B stream) and on start codes at
// every position near the ends.
func TestSplitAnnexB(t *testing.T) {
	var inputs [][]byte
	for _, name := range []string{"bframes.mp4", "baseline.mp4"} {
		var b []byte
		for _, s := range fixtureSamples(t, name) {
			b = chunker.AppendAnnexB(b, s.NALUs)
		}
		inputs = append(inputs, b)
	}
	for k := range 8 {
		b := []byte{0, 0, 1, 0x65, 7, 7, 7, 7, 7, 7}
		b = append(b, make([]byte, k)...)
		b = append(b, 0, 0, 1, 0x41)
		inputs = append(inputs, b, b[:len(b)-1], b[:len(b)-2])
	}
	for i, b := range inputs {
		got, err := chunker.SplitAnnexB(nil, b)
		want, werr := splitAnnexBBytewise(b)
		if (err == nil) != (werr == nil) || !slices.EqualFunc(got, want, bytes.Equal) {
			t.Errorf("input %d (%d bytes): %d NAL units, %v; byte by byte %d, %v", i, len(b), len(got), err, len(want), werr)
		}
	}
}

// BenchmarkSplitAnnexB splits a real stream (throughput in MB/s).
func BenchmarkSplitAnnexB(b *testing.B) {
	var in []byte
	for _, s := range fixtureSamples(b, "bframes.mp4") {
		in = chunker.AppendAnnexB(in, s.NALUs)
	}
	b.SetBytes(int64(len(in)))
	var dst [][]byte
	for b.Loop() {
		var err error
		if dst, err = chunker.SplitAnnexB(dst[:0], in); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzSplitAVCC(f *testing.F) {
	f.Add([]byte{0, 0, 0, 2, 0x65, 1}, 4)
	f.Add([]byte{1, 0x65}, 1)
	f.Fuzz(func(t *testing.T, b []byte, ls int) {
		nal, err := chunker.SplitAVCC(nil, b, ls)
		if err != nil {
			return
		}
		for _, n := range nal {
			if len(n) == 0 {
				t.Fatal("empty NAL unit")
			}
		}
	})
}

// FuzzWrite feeds arbitrary access units (seeded from a real stream) into
// both chunkers: errors are fine, panics are not.
func FuzzWrite(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0x65, 0x88, 0x84}, int64(0), int64(0), byte(0))
	f.Add([]byte{0, 0, 0, 1, 0x67, 0x64, 0, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0, 0, 0, 1, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0, 0, 0, 1, 0x65, 0x88}, int64(3000), int64(0), byte(1))
	f.Fuzz(func(t *testing.T, annexb []byte, pts, dts int64, fmtb byte) {
		nal, err := chunker.SplitAnnexB(nil, annexb)
		if err != nil {
			return
		}
		c, err := chunker.New(chunker.Config{Format: chunker.Format(fmtb % 2), WrapBits: 33}, &collector{})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		for i := int64(0); i < 3; i++ {
			_ = c.Write(ctx, chunker.Sample{DTS: dts + i*3000, PTS: pts + i*3000, NALUs: nal})
		}
		_ = c.Close(ctx)
	})
}

func TestBreakMarksNextSegment(t *testing.T) {
	samples := fixtureSamples(t, "bframes.mp4")
	out := &collector{}
	c, err := chunker.New(chunker.Config{TargetDuration: 5 * time.Second}, out)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, s := range samples {
		if i == 60 {
			if err := c.Break(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Write(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if len(out.segs) != 2 || out.segs[0].Frames != 60 || out.segs[0].Discontinuity || !out.segs[1].Discontinuity {
		t.Fatalf("segments: %d, first %d frames; flags %v", len(out.segs), out.segs[0].Frames, out.segs[0].Discontinuity)
	}
}

// TestSpliceStepsBack: a stream spliced onto itself after less than the
// jump threshold (two short clips joined end to end) steps back at an IDR
// picture; that is a timestamp jump, not a bad sample: every picture is
// kept and the segment after the splice is a discontinuity. A step back
// to a picture that is not IDR stays an error (TestNonMonotonicDTSIsTypedError).
func TestSpliceStepsBack(t *testing.T) {
	samples := fixtureSamples(t, "bframes.mp4")
	n := 1
	for n < len(samples) && !chunker.IsIDR(samples[n].NALUs) {
		n++
	}
	if n == len(samples) || samples[n-1].DTS-samples[0].DTS >= 90000 {
		t.Fatalf("fixture's first GOP: %d pictures, want one that lasts less than 1 s", n)
	}
	clip := samples[:n] // one GOP, shorter than the 1 s threshold
	for _, f := range []chunker.Format{chunker.FMP4, chunker.TS} {
		out := writeAll(t, chunker.Config{Format: f}, append(slices.Clone(clip), clip...))
		st := out.stats
		if st.Samples != int64(2*n) || st.TimestampJumps != 1 || len(out.segs) != 2 || !out.segs[1].Discontinuity {
			t.Errorf("%v: %d samples (want %d), %d jumps, %d segments (want 2, the second a discontinuity)",
				f, st.Samples, 2*n, st.TimestampJumps, len(out.segs))
		}
	}
}
