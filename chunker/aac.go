package chunker

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// AudioSample is one AAC access unit (a raw AAC frame, no ADTS header) with
// its presentation time. AAC has no reordering: the PTS is also the decode
// time.
type AudioSample struct {
	// PTS is in ticks of AudioConfig.Timescale.
	PTS int64
	// Duration, in the same ticks, is optional: the frame's duration when
	// the container declares one. Only a duration shorter than the nominal
	// frame length is taken (an MP4 track's last frame often ends early:
	// the end of the recorded audio); 0, or a longer one, means the
	// nominal length (see AACInfo).
	Duration int64
	// Data is one raw AAC frame (raw_data_block). The chunker copies it
	// before WriteAudio returns.
	Data []byte
}

// AudioConfig describes the AAC track of a stream.
type AudioConfig struct {
	// ASC is the MPEG-4 AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1), as
	// carried in an MP4 esds box. fMP4 init segments carry these exact
	// bytes; sample rate, channels and frame length are read from them.
	ASC []byte
	// Timescale of AudioSample.PTS in ticks per second, for example the
	// MP4 track timescale or 90000 for MPEG-TS. Default: the sample rate.
	// Output segments always use the sample rate as audio timescale.
	Timescale uint32
}

// AACInfo is what [ParseAudioSpecificConfig] reads from an
// AudioSpecificConfig.
type AACInfo struct {
	// ObjectType is the signalled audio object type: 2 for AAC-LC, 5 for
	// HE-AAC (explicit SBR), 29 for HE-AACv2 (explicit PS). HE-AAC with
	// implicit (backward compatible) signalling reads as 2.
	ObjectType int
	// SampleRate is the output sample rate in Hz: with explicit SBR the
	// extension rate, otherwise the core rate. It is the timescale of the
	// audio track in segments.
	SampleRate int
	// CoreSampleRate is the AAC core sample rate (ADTS carries this one).
	CoreSampleRate int
	// ChannelConfig is the channel configuration (0: defined by a program
	// config element).
	ChannelConfig int
	// Channels is the number of output channels (2 for HE-AACv2 parametric
	// stereo; counted from the program config element for configuration 0;
	// 0 when unknown).
	Channels int
	// FrameSamples is the duration of one frame in SampleRate ticks: 1024
	// (960 with the short frame flag), doubled with explicit SBR.
	FrameSamples int
	// Codec is the RFC 6381 codec string, for example "mp4a.40.2".
	Codec string
}

// ErrBadAudioConfig reports an AudioSpecificConfig that cannot be parsed or
// describes audio that livechunk does not segment (object types other than
// AAC-LC, HE-AAC and HE-AACv2, or a sample rate out of range).
var ErrBadAudioConfig = errors.New("chunker: bad or unsupported AAC AudioSpecificConfig")

// ParseAudioSpecificConfig parses an AAC AudioSpecificConfig and derives
// what segmenting needs. The error wraps ErrBadAudioConfig.
func ParseAudioSpecificConfig(asc []byte) (info AACInfo, err error) {
	_, info, err = parseASC(asc)
	return info, err
}

func parseASC(asc []byte) (conf mpeg4audio.AudioSpecificConfig, info AACInfo, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: parser panicked: %v", ErrBadAudioConfig, r)
		}
	}()
	if len(asc) < 2 {
		return conf, info, fmt.Errorf("%w: %d bytes", ErrBadAudioConfig, len(asc))
	}
	if err := conf.Unmarshal(asc); err != nil {
		return conf, info, fmt.Errorf("%w: %v", ErrBadAudioConfig, err)
	}
	core := conf.SampleRate
	if core < 1000 || core > 192000 {
		return conf, info, fmt.Errorf("%w: sample rate %d", ErrBadAudioConfig, core)
	}
	info = AACInfo{
		ObjectType:     int(conf.Type),
		SampleRate:     core,
		CoreSampleRate: core,
		ChannelConfig:  int(conf.ChannelConfig),
		FrameSamples:   1024,
	}
	if conf.FrameLengthFlag {
		info.FrameSamples = 960
	}
	switch conf.ChannelConfig {
	case 7:
		info.Channels = 8
	case 0:
		info.Channels = pceChannels(asc, conf)
	default:
		info.Channels = int(conf.ChannelConfig)
	}
	if conf.ExtensionType == mpeg4audio.ObjectTypeSBR || conf.ExtensionType == mpeg4audio.ObjectTypePS {
		info.ObjectType = int(conf.ExtensionType)
		ext := conf.ExtensionSampleRate
		switch {
		case ext == core:
		case ext == 2*core:
			info.FrameSamples *= 2
		default:
			return conf, info, fmt.Errorf("%w: SBR rate %d with core rate %d", ErrBadAudioConfig, ext, core)
		}
		info.SampleRate = ext
		if conf.ExtensionType == mpeg4audio.ObjectTypePS && info.Channels == 1 {
			info.Channels = 2
		}
	}
	info.Codec = "mp4a.40." + strconv.Itoa(info.ObjectType)
	return conf, info, nil
}

// pceChannels counts the channels of the program config element that
// follows the GASpecificConfig of an AudioSpecificConfig with channel
// configuration 0; 0 when it cannot be read.
func pceChannels(asc []byte, conf mpeg4audio.AudioSpecificConfig) int {
	r := bitReader{b: asc}
	r.skip(5) // object type (LC, SBR or PS: never escaped)
	if r.read(4) == 15 {
		r.skip(24)
	}
	r.skip(4) // channel configuration
	if conf.ExtensionType == mpeg4audio.ObjectTypeSBR || conf.ExtensionType == mpeg4audio.ObjectTypePS {
		if r.read(4) == 15 {
			r.skip(24)
		}
		r.skip(5)
	}
	r.skip(1) // frameLengthFlag
	if r.read(1) == 1 {
		r.skip(14) // coreCoderDelay
	}
	r.skip(1) // extensionFlag
	// program_config_element (ISO/IEC 14496-3 table 4.2)
	r.skip(4 + 2 + 4) // element_instance_tag, object_type, sampling_frequency_index
	front, side, back := r.read(4), r.read(4), r.read(4)
	lfe := r.read(2)
	r.skip(3 + 4) // num_assoc_data_elements, num_valid_cc_elements
	for range 2 { // mono and stereo mixdown
		if r.read(1) == 1 {
			r.skip(4)
		}
	}
	if r.read(1) == 1 { // matrix mixdown
		r.skip(3)
	}
	n := int(lfe)
	for range front + side + back {
		n += 1 + int(r.read(1)) // is_cpe
		r.skip(4)
	}
	if r.bad {
		return 0
	}
	return n
}

// bitReader reads big-endian bit fields; reading past the end sets bad and
// returns zeros.
type bitReader struct {
	b   []byte
	pos int
	bad bool
}

func (r *bitReader) read(n int) uint64 {
	var v uint64
	for range n {
		if r.pos >= 8*len(r.b) {
			r.bad = true
			return 0
		}
		v = v<<1 | uint64(r.b[r.pos/8]>>(7-r.pos%8)&1)
		r.pos++
	}
	return v
}

func (r *bitReader) skip(n int) { r.read(n) }
