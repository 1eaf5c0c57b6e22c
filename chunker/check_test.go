package chunker_test

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/source"
)

// TestCheckAccessUnit: what Write would refuse is refused before the
// stream depends on it (a server checks an uploaded chunk this way): an
// in-band SPS that does not parse, an empty access unit or NAL unit, no
// coded slice; valid in-band sets, alone or completed by the stream's
// PPS, pass.
func TestCheckAccessUnit(t *testing.T) {
	info := mp4Info(t, "../testdata/chunk0.mp4")
	if len(info.SPS) == 0 || len(info.PPS) == 0 {
		t.Fatal("fixture without parameter sets")
	}
	idr := []byte{0x65, 0x88, 0x84, 0x00}
	sps, pps := info.SPS[0], info.PPS[0]
	for _, tc := range []struct {
		name     string
		nalus    [][]byte
		sps, pps [][]byte
		want     error
	}{
		{"valid in-band sets", [][]byte{sps, pps, idr}, nil, nil, nil},
		{"SPS completed by the stream's PPS", [][]byte{sps, idr}, info.SPS, info.PPS, nil},
		{"no parameter sets", [][]byte{idr}, nil, nil, nil},
		{"truncated SPS", [][]byte{sps[:3], pps, idr}, info.SPS, info.PPS, chunker.ErrBadParameterSets},
		{"empty access unit", nil, nil, nil, chunker.ErrInvalidSample},
		{"empty NAL unit", [][]byte{{}, idr}, nil, nil, chunker.ErrInvalidSample},
		{"forbidden bit", [][]byte{{0xe5, 0x88}}, nil, nil, chunker.ErrInvalidSample},
		{"no coded slice", [][]byte{sps, pps}, nil, nil, chunker.ErrInvalidSample},
	} {
		err := chunker.CheckAccessUnit(tc.nalus, tc.sps, tc.pps)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestPTSBeforeDTS: a sample presented before it is decoded is refused,
// as documented, in both formats.
func TestPTSBeforeDTS(t *testing.T) {
	for _, f := range []chunker.Format{chunker.FMP4, chunker.TS} {
		c, err := chunker.New(chunker.Config{Format: f}, &collector{})
		if err != nil {
			t.Fatal(err)
		}
		err = c.Write(t.Context(), chunker.Sample{DTS: 3000, PTS: 0, NALUs: [][]byte{{0x65, 0x88, 0x84, 0x00}}})
		if !errors.Is(err, chunker.ErrInvalidSample) {
			t.Errorf("%v: PTS before DTS: %v, want ErrInvalidSample", f, err)
		}
	}
}

// TestNewErrors: every configuration New refuses wraps ErrInvalidConfig,
// and so does Continuation of timestamps that wrap.
func TestNewErrors(t *testing.T) {
	aac := &chunker.AudioConfig{ASC: []byte{0x12, 0x10}}
	for _, tc := range []struct {
		name string
		cfg  chunker.Config
		out  chunker.Output
	}{
		{"nil Output", chunker.Config{}, nil},
		{"unknown Format", chunker.Config{Format: 7}, &collector{}},
		{"negative TargetDuration", chunker.Config{TargetDuration: -1}, &collector{}},
		{"WrapBits over 62", chunker.Config{WrapBits: 63}, &collector{}},
		{"NoVideo without Audio", chunker.Config{NoVideo: true}, &collector{}},
		{"Continue with WrapBits", chunker.Config{WrapBits: 33, Audio: aac, Continue: &chunker.Continuation{}}, &collector{}},
	} {
		if _, err := chunker.New(tc.cfg, tc.out); !errors.Is(err, chunker.ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", tc.name, err)
		}
	}
	c, err := chunker.New(chunker.Config{WrapBits: 33}, &collector{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Continuation(); !errors.Is(err, chunker.ErrInvalidConfig) {
		t.Errorf("Continuation with WrapBits: %v, want ErrInvalidConfig", err)
	}
}

// TestCompositionOffsetRange: a sample whose PTS is more than 2^31-1 ticks
// after its DTS is refused before it is placed, and the segment around it
// is as if it had not come.
func TestCompositionOffsetRange(t *testing.T) {
	info := mp4Info(t, "../testdata/chunk0.mp4")
	idr := []byte{0x65, 0x88, 0x84, 0x00}
	p := []byte{0x41, 0x9a, 0x00, 0x00}
	for _, format := range []chunker.Format{chunker.FMP4, chunker.TS} {
		run := func(bad bool) *chunker.Segment {
			out := &collector{}
			c, err := chunker.New(chunker.Config{Format: format, SPS: info.SPS, PPS: info.PPS}, out)
			if err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()
			for i := range int64(10) {
				nalus := [][]byte{p}
				if i == 0 {
					nalus[0] = idr
				}
				if i == 5 && bad {
					err := c.Write(ctx, chunker.Sample{DTS: 3000*i - 1, PTS: 3000*i - 1 + 1<<31, NALUs: [][]byte{p}})
					if !errors.Is(err, chunker.ErrInvalidSample) {
						t.Errorf("%v: composition offset 2^31: %v, want ErrInvalidSample", format, err)
					}
				}
				if err := c.Write(ctx, chunker.Sample{DTS: 3000 * i, PTS: 3000 * i, NALUs: nalus}); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if len(out.segs) != 1 {
				t.Fatalf("%v: %d segments, want 1", format, len(out.segs))
			}
			return out.segs[0]
		}
		good, got := run(false), run(true)
		if got.Frames != good.Frames || got.Duration != good.Duration || !bytes.Equal(got.Data, good.Data) {
			t.Errorf("%v: with a refused sample: %d frames, %d ticks, %d bytes; want %d, %d, %d",
				format, got.Frames, got.Duration, len(got.Data), good.Frames, good.Duration, len(good.Data))
		}
	}
}

// mp4Info returns what the source package knows of an MP4 file's stream.
func mp4Info(t *testing.T, path string) source.Info {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	src, err := source.NewMP4(f, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return src.Info()
}
