package chunker

import (
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"
)

// tsPCRLead is how far (in 90 kHz ticks) the PCR runs ahead of the first DTS
// in mediacommon's writer; the output timeline starts no earlier than this so
// the first PCR is not negative.
const tsPCRLead = 9000

// tsWriter writes MPEG-TS segments through mediacommon's muxer. One muxer is
// used for the whole stream so continuity counters continue from segment to
// segment; PAT and PMT are written at every random-access point, and every
// segment starts with one: with video the IDR picture is written first, and
// without video every audio PES is a random-access point of the PCR PID.
//
// Audio is ADTS on its own PID. Contiguous frames are packed into one PES
// (up to maxAudioPES bytes, as ffmpeg does); with video a pack is written
// before the next picture, so audio trails the video by less than a frame.
type tsWriter struct {
	timescale uint32
	out       segBuffer
	w         *mpegts.Writer
	track     *mpegts.Track // video, nil for audio only
	scratch   [][]byte

	aud     *audioTrack
	atrack  *mpegts.Track
	pack    [][]byte // frames of the pending audio PES (alias packBuf)
	packBuf []byte
	packLen []int
	packT   int64 // output time of the pack's first frame
	packEnd int64 // output time right after its last frame
}

// maxAudioPES is the payload size up to which audio frames share a PES.
const maxAudioPES = 2930

// segBuffer is the io.Writer the muxer writes into: the current segment's
// buffer.
type segBuffer struct{ b []byte }

func (s *segBuffer) Write(p []byte) (int, error) {
	s.b = append(s.b, p...)
	return len(p), nil
}

func newTSWriter(timescale uint32, video bool, aud *audioTrack) (*tsWriter, error) {
	t := &tsWriter{timescale: timescale, aud: aud}
	var tracks []*mpegts.Track
	if video {
		t.track = &mpegts.Track{Codec: &tscodecs.H264{}}
		tracks = append(tracks, t.track)
	}
	if aud != nil {
		conf := aud.conf
		// mediacommon's ADTS writer still reads the deprecated field.
		//lint:ignore SA1019 mediacommon v2.9.5 still reads ChannelCount
		conf.ChannelCount = int(conf.ChannelConfig)
		if conf.ChannelConfig == 7 {
			//lint:ignore SA1019 see above
			conf.ChannelCount = 8
		}
		t.atrack = &mpegts.Track{Codec: &tscodecs.MPEG4Audio{Config: conf}}
		tracks = append(tracks, t.atrack)
	}
	t.w = &mpegts.Writer{W: &t.out, Tracks: tracks}
	if err := t.w.Initialize(); err != nil {
		return nil, fmt.Errorf("chunker: mpegts writer: %w", err)
	}
	return t, nil
}

func (t *tsWriter) makeInit(*paramSets) ([]byte, error) { return nil, nil }

func (t *tsWriter) begin(_ uint64, buf []byte, _ int64) {
	t.out.b = buf[:0]
}

// to90k converts ticks of the stream timescale to 90 kHz.
func (t *tsWriter) to90k(v int64) int64 { return to90k(v, int64(t.timescale)) }

// to90k converts ticks of timescale ts to 90 kHz: exactly when ts divides
// 90000, else by flooring absolute values (so durations still add up).
func to90k(v, ts int64) int64 {
	switch {
	case ts == 90000:
		return v
	case 90000%ts == 0:
		return v * (90000 / ts)
	default:
		// floor division, also for negative values
		n := v * 90000
		q := n / ts
		if n%ts != 0 && n < 0 {
			q--
		}
		return q
	}
}

func (t *tsWriter) add(au [][]byte, dts, pts int64, idr bool, ps *paramSets) error {
	if err := t.flushAudio(); err != nil {
		return err
	}
	nalus := au
	if idr {
		hasSPS, hasPPS := false, false
		for _, n := range au {
			switch naluType(n) {
			case naluSPS:
				hasSPS = true
			case naluPPS:
				hasPPS = true
			}
		}
		if !hasSPS || !hasPPS {
			// Every IDR carries SPS and PPS in-band, so each segment decodes
			// on its own. They go after a leading AUD, if any.
			t.scratch = t.scratch[:0]
			rest := au
			if naluType(au[0]) == naluAUD {
				t.scratch = append(t.scratch, au[0])
				rest = au[1:]
			}
			t.scratch = append(t.scratch, ps.sps...)
			t.scratch = append(t.scratch, ps.pps...)
			for _, n := range rest {
				if tp := naluType(n); tp != naluSPS && tp != naluPPS {
					t.scratch = append(t.scratch, n)
				}
			}
			nalus = t.scratch
		}
	}
	const mask = 1<<33 - 1
	d := t.to90k(dts) & mask
	p := t.to90k(pts) & mask
	if err := t.w.WriteH264(t.track, p, d, nalus); err != nil {
		return fmt.Errorf("chunker: mpegts: %w", err)
	}
	return nil
}

func (t *tsWriter) setDuration(int64) {}

func (t *tsWriter) addAudio(frame []byte, at int64) error {
	n := len(t.packLen)
	if n > 0 && (at != t.packEnd || len(t.packBuf)+len(frame)+7*(n+1) > maxAudioPES) {
		if err := t.flushAudio(); err != nil {
			return err
		}
		n = 0
	}
	if n == 0 {
		t.packT = at
	}
	t.packBuf = append(t.packBuf, frame...)
	t.packLen = append(t.packLen, len(frame))
	t.packEnd = at + t.aud.frame
	return nil
}

// setAudioDuration: ADTS frames carry no duration; a gap shows in the next
// PES's PTS (frames of one PES are contiguous).
func (t *tsWriter) setAudioDuration(int64) {}

// flushAudio writes the pending audio frames as one PES.
func (t *tsWriter) flushAudio() error {
	if len(t.packLen) == 0 {
		return nil
	}
	t.pack = t.pack[:0]
	off := 0
	for _, n := range t.packLen {
		t.pack = append(t.pack, t.packBuf[off:off+n:off+n])
		off += n
	}
	const mask = 1<<33 - 1
	pts := to90k(t.packT, t.aud.outTS) & mask
	t.packBuf, t.packLen = t.packBuf[:0], t.packLen[:0]
	if err := t.w.WriteMPEG4Audio(t.atrack, pts, t.pack); err != nil {
		return fmt.Errorf("chunker: mpegts: %w", err)
	}
	return nil
}

func (t *tsWriter) finish() (data, full []byte, err error) {
	if err := t.flushAudio(); err != nil {
		return nil, t.out.b, err
	}
	b := t.out.b
	t.out.b = nil
	return b, b, nil
}
