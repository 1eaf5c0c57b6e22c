package chunker_test

import (
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
	f, err := os.Open("../testdata/chunk0.mp4")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	src, err := source.NewMP4(f, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	info := src.Info()
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
// as documented, in both formats (fMP4 used to take it).
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
