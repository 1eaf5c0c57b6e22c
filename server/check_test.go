package server

import (
	"errors"
	"os"
	"testing"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/source"
)

// TestCheckNALUsParameterSets: an access unit whose in-band SPS the
// chunker would refuse is refused with the chunk, before the stream
// depends on it; a valid one, alone or completed by the chunk's PPS,
// passes.
func TestCheckNALUsParameterSets(t *testing.T) {
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
	if err := checkNALUs(0, [][]byte{sps, pps, idr}, nil, nil); err != nil {
		t.Errorf("valid in-band sets: %v", err)
	}
	if err := checkNALUs(0, [][]byte{sps, idr}, info.SPS, info.PPS); err != nil {
		t.Errorf("valid SPS completed by the chunk's PPS: %v", err)
	}
	err = checkNALUs(0, [][]byte{sps[:3], pps, idr}, info.SPS, info.PPS)
	if !errors.Is(err, chunker.ErrBadParameterSets) {
		t.Errorf("truncated in-band SPS: %v, want ErrBadParameterSets", err)
	}
}
