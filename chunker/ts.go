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
// segment starts with one.
type tsWriter struct {
	timescale uint32
	out       segBuffer
	w         *mpegts.Writer
	track     *mpegts.Track
	scratch   [][]byte
}

// segBuffer is the io.Writer the muxer writes into: the current segment's
// buffer.
type segBuffer struct{ b []byte }

func (s *segBuffer) Write(p []byte) (int, error) {
	s.b = append(s.b, p...)
	return len(p), nil
}

func newTSWriter(timescale uint32) (*tsWriter, error) {
	t := &tsWriter{timescale: timescale}
	t.track = &mpegts.Track{Codec: &tscodecs.H264{}}
	t.w = &mpegts.Writer{W: &t.out, Tracks: []*mpegts.Track{t.track}}
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
func (t *tsWriter) to90k(v int64) int64 {
	switch ts := int64(t.timescale); {
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

func (t *tsWriter) finish() (data, full []byte, err error) {
	b := t.out.b
	t.out.b = nil
	return b, b, nil
}
