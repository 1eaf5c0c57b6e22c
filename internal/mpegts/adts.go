package mpegts

import (
	"errors"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/livechunk/livechunk/internal/timeline"
)

// SplitADTS appends to dst the raw AAC frames of the ADTS frames in b
// (which alias b). A truncated or unsynchronized tail is reported; the
// frames before it are kept.
func SplitADTS(dst [][]byte, b []byte) ([][]byte, error) {
	for len(b) > 0 {
		if len(b) < 7 || b[0] != 0xff || b[1]&0xf6 != 0xf0 {
			return dst, errors.New("ADTS: lost sync")
		}
		hdr := 7
		if b[1]&1 == 0 { // protection_absent == 0: a CRC follows
			hdr = 9
		}
		n := int(b[3]&3)<<11 | int(b[4])<<3 | int(b[5]>>5)
		if n < hdr || n > len(b) {
			return dst, errors.New("ADTS: truncated frame")
		}
		if b[6]&3 != 0 {
			return dst, errors.New("ADTS: several raw data blocks in one frame")
		}
		if n > hdr {
			dst = append(dst, b[hdr:n])
		}
		b = b[n:]
	}
	return dst, nil
}

// adtsRateIndex maps the sample rates ADTS can signal to their index.
var adtsRateIndex = map[int]byte{96000: 0, 88200: 1, 64000: 2, 48000: 3, 44100: 4, 32000: 5,
	24000: 6, 22050: 7, 16000: 8, 12000: 9, 11025: 10, 8000: 11, 7350: 12}

// ADTS makes the headers of the ADTS frames of one AAC configuration.
type ADTS struct {
	h [7]byte // the fields common to every frame
}

// ErrNoADTS reports an AAC configuration that ADTS cannot signal.
var ErrNoADTS = errors.New("AAC configuration cannot be carried in ADTS (MPEG-TS)")

// NewADTS returns the ADTS framing of an AAC configuration: audio object
// type 1 to 4 (AAC Main, LC, SSR, LTP; with SBR or PS, mediacommon's
// Unmarshal leaves the core's type and rate in Type and SampleRate, which
// is what ADTS signals), a sample rate of ADTS's table and channel
// configuration 1 to 7. Others are ErrNoADTS.
func NewADTS(conf mpeg4audio.AudioSpecificConfig) (ADTS, error) {
	rate, ok := adtsRateIndex[conf.SampleRate]
	if conf.Type < 1 || conf.Type > 4 || !ok || conf.ChannelConfig < 1 || conf.ChannelConfig > 7 {
		return ADTS{}, fmt.Errorf("%w: object type %d, %d Hz, channel configuration %d",
			ErrNoADTS, conf.Type, conf.SampleRate, conf.ChannelConfig)
	}
	return ADTS{h: [7]byte{0xff, 0xf1, byte(conf.Type-1)<<6 | rate<<2 | conf.ChannelConfig>>2, (conf.ChannelConfig & 3) << 6}}, nil
}

// Header returns the header of a frame of n bytes of raw AAC: no CRC,
// buffer fullness 0x7ff (variable rate), as ffmpeg writes, one raw data
// block.
func (a ADTS) Header(n int) [7]byte {
	h := a.h
	fl := n + 7
	h[3] |= byte(fl >> 11)
	h[4] = byte(fl >> 3)
	h[5] = byte(fl)<<5 | 0x1f
	h[6] = 0xfc
	return h
}

// FrameTime returns the PTS of frame k of an ADTS PES packet whose PTS is
// pts: the frames of a packet follow each other at their nominal duration
// (samples at rate Hz), and the result wraps at 2^33 like every MPEG-TS
// timestamp.
func FrameTime(pts int64, k, samples, rate int) int64 {
	if k == 0 || rate <= 0 {
		return pts
	}
	return timeline.Wrap(pts+timeline.Rescale(int64(k*samples), uint32(rate), timeline.MPEGClock), timeline.WrapBitsTS)
}
