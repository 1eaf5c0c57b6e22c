package chunker

import (
	"fmt"

	"github.com/livechunk/livechunk/internal/accessunit"
	"github.com/livechunk/livechunk/internal/mpegts"
	"github.com/livechunk/livechunk/internal/timeline"
)

// tsPCRLead is how far (in 90 kHz ticks) the PCR runs behind the DTS it is
// sent with; the output timeline starts no earlier than this so the first
// PCR is not negative.
const tsPCRLead = mpegts.PCRLead

// tsWriter writes MPEG-TS segments with internal/mpegts's Muxer, straight
// into the segment buffer, which grows by the segment's expected size (see
// expectedSize). One muxer is used for the
// whole stream so continuity counters continue from segment to segment; PAT
// and PMT are written at every random-access point, and every segment starts
// with one: with video the IDR picture is written first, and without video
// every audio PES is a random-access point of the PCR PID.
//
// Audio is ADTS on its own PID. Contiguous frames are packed into one PES
// (up to maxAudioPES bytes, as ffmpeg does); with video a pack is written
// before the next picture, so audio trails the video by less than a frame.
type tsWriter struct {
	timescale uint32
	start     int64  // decode time of the open segment's first sample
	buf       []byte // the open segment
	mux       *mpegts.Muxer
	video     *mpegts.Stream // nil for audio only
	scratch   [][]byte
	target    int64 // target duration in the stream's ticks
	elapsed   int64 // decode time of the last picture since the segment's first (see expectedSize)

	aud     *audioTrack
	audio   *mpegts.Stream
	adts    mpegts.ADTS
	adtsHdr []byte // the pending PES's ADTS headers, 7 bytes per frame
	packBuf []byte // the pending PES's frames
	packLen []int
	packT   int64 // output time of the pack's first frame
	packEnd int64 // output time right after its last frame
}

// maxAudioPES is the payload size up to which audio frames share a PES.
const maxAudioPES = 2930

func newTSWriter(timescale uint32, video bool, aud *audioTrack) (*tsWriter, error) {
	t := &tsWriter{timescale: timescale, aud: aud}
	var streams []*mpegts.Stream
	if video {
		t.video = &mpegts.Stream{Type: mpegts.StreamH264, StreamID: mpegts.StreamIDVideo}
		streams = append(streams, t.video)
	}
	if aud != nil {
		var err error
		if t.adts, err = mpegts.NewADTS(aud.conf); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadAudioConfig, err)
		}
		t.audio = &mpegts.Stream{Type: mpegts.StreamADTS, StreamID: mpegts.StreamIDAudio}
		streams = append(streams, t.audio)
	}
	t.mux = mpegts.NewMuxer(streams...)
	t.mux.Room = t.room
	return t, nil
}

// room makes room for n more bytes in b, the open segment (see grow);
// the size it is expected to reach is worked out only when b is full.
func (t *tsWriter) room(b []byte, n int) []byte {
	return grow(b, n, expectedSize(len(b), t.elapsed, t.target))
}

func (t *tsWriter) makeInit(*paramSets) ([]byte, error) { return nil, nil }

func (t *tsWriter) begin(_ uint64, buf []byte, dts int64) {
	t.buf, t.start = buf[:0], dts
}

// to90k converts ticks of the stream timescale to the 90 kHz clock of
// MPEG-TS timestamps (timeline.Rescale: exact when the timescale divides
// 90000; converted absolute times, so durations still add up).
func (t *tsWriter) to90k(v int64) int64 { return timeline.Rescale(v, t.timescale, timeline.MPEGClock) }

func (t *tsWriter) add(au [][]byte, dts, pts int64, idr bool, ps *paramSets) error {
	if err := t.flushAudio(); err != nil {
		return err
	}
	t.elapsed = dts - t.start
	nalus := au
	if idr && !accessunit.HasParamSets(au) {
		// Every IDR carries SPS and PPS in-band, so each segment decodes
		// on its own.
		t.scratch = accessunit.AppendWithParamSets(t.scratch[:0], au, ps.sps, ps.pps)
		nalus = t.scratch
	}

	t.mux.Payload.Reset()
	t.mux.Payload.AddAccessUnit(nalus)
	t.buf = t.mux.WritePES(t.buf, t.video, t.to90k(pts), t.to90k(dts), true, idr)
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
	h := t.adts.Header(len(frame))
	t.adtsHdr = append(t.adtsHdr, h[:]...)
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
	pl := &t.mux.Payload
	pl.Reset()
	off := 0
	for i, n := range t.packLen {
		pl.Add(t.adtsHdr[7*i : 7*i+7])
		pl.Add(t.packBuf[off : off+n])
		off += n
	}
	pts := timeline.Rescale(t.packT, uint32(t.aud.outTS), timeline.MPEGClock)
	t.buf = t.mux.WritePES(t.buf, t.audio, pts, 0, false, true)
	t.packBuf, t.packLen, t.adtsHdr = t.packBuf[:0], t.packLen[:0], t.adtsHdr[:0]
	return nil
}

func (t *tsWriter) finish() (data, full []byte, err error) {
	if err := t.flushAudio(); err != nil {
		return nil, t.buf, err
	}
	b := t.buf
	t.buf = nil
	return b, b, nil
}
