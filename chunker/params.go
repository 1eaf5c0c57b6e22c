package chunker

import (
	"fmt"

	"github.com/Eyevinn/mp4ff/avc"
	"github.com/livechunk/livechunk/internal/accessunit"
)

// paramSets is the current SPS/PPS set and what was parsed from it.
type paramSets struct {
	sps, pps [][]byte
	parsed   *avc.SPS
	codec    string
	width    int
	height   int
	fps      float64 // from VUI timing, 0 if absent
}

func (p *paramSets) equalSPS(sps [][]byte) bool { return accessunit.Equal(p.sps, sps) }
func (p *paramSets) equalPPS(pps [][]byte) bool { return accessunit.Equal(p.pps, pps) }

// CheckParameterSets reports whether sps and pps (NAL units without
// framing, as an MP4 avcC box or Config.SPS and Config.PPS carry them) can
// start a stream, as New checks them: at least one of each, and a first
// SPS that parses, with a picture size. The error wraps
// ErrBadParameterSets. Use it to refuse input before anything of it is
// recorded.
func CheckParameterSets(sps, pps [][]byte) error {
	_, err := parseParamSets(sps, pps)
	return err
}

func parseParamSets(sps, pps [][]byte) (ps *paramSets, err error) {
	defer func() {
		if r := recover(); r != nil {
			ps, err = nil, fmt.Errorf("%w: SPS parser panicked: %v", ErrBadParameterSets, r)
		}
	}()
	if len(sps) == 0 || len(pps) == 0 {
		return nil, fmt.Errorf("%w: need at least one SPS and one PPS", ErrBadParameterSets)
	}
	parsed, err := avc.ParseSPSNALUnit(sps[0], true)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadParameterSets, err)
	}
	if parsed.Width == 0 || parsed.Height == 0 || parsed.Width > 16384 || parsed.Height > 16384 {
		return nil, fmt.Errorf("%w: picture size %dx%d", ErrBadParameterSets, parsed.Width, parsed.Height)
	}
	if len(sps[0]) < 4 {
		return nil, fmt.Errorf("%w: SPS too short", ErrBadParameterSets)
	}
	ps = &paramSets{
		sps:    accessunit.Clone(sps),
		pps:    accessunit.Clone(pps),
		parsed: parsed,
		// RFC 6381: profile_idc, constraint flags byte, level_idc, straight
		// from the SPS bytes.
		codec:  fmt.Sprintf("avc1.%02x%02x%02x", sps[0][1], sps[0][2], sps[0][3]),
		width:  int(parsed.Width),
		height: int(parsed.Height),
	}
	if v := parsed.VUI; v != nil && v.TimingInfoPresentFlag && v.NumUnitsInTick > 0 {
		ps.fps = float64(v.TimeScale) / float64(2*v.NumUnitsInTick)
	}
	return ps, nil
}
