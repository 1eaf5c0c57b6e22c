package stitch

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"math"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/livechunk/livechunk/internal/accessunit"
	"github.com/livechunk/livechunk/internal/mpegts"
	"github.com/livechunk/livechunk/internal/timeline"
)

// tsStart is the DTS of the first picture of remuxed MPEG-TS output, in
// 90 kHz ticks (1.4 s, as ffmpeg starts), leaving room for the PCR ahead of
// it.
const tsStart = 126000

// WriteTS joins the input into one MPEG-TS stream written to w.
//
// When every part is MPEG-TS, no range is selected and the timestamps
// continue from part to part (as in a recording), the parts' packets are
// concatenated unchanged except for their continuity counters, which are
// rewritten to run on across part boundaries (so a demuxer sees no packet
// loss). That way every elementary stream of the parts is kept, AAC audio
// included (ADTS on its own PID, as the chunker writes it).
//
// Otherwise (fMP4 or MP4 input, Options.From/To set, or timestamps that
// jump, which the output joins into one timeline) the access units are
// remuxed, with the chunker's MPEG-TS muxer, into a new transport stream:
// one program with an H.264 elementary stream (PAT and PMT and in-band SPS
// and PPS before every keyframe) and the AAC track as ADTS on a PID of its
// own, its frames packed into PES packets of up to about 3 KB as ffmpeg
// does. Timestamps are continuous from 1.4 s and the audio keeps its offset
// from the video as the input has it (the one that starts first starts at
// 1.4 s). Audio frames are written before the first picture that decodes
// after them; those that start before the first picture follow it, so that
// the video PID carries the PCR. Audio-only input is remuxed alone (the
// audio PID carries the PCR). AAC that ADTS cannot signal (a sample rate
// outside its table, channel configuration 0) is rejected with
// ErrUnsupported.
//
// MPEG-TS has no edit lists, so a clip starts at the keyframe at or before
// From (not exactly at From) and ends with the last picture presented
// before To (pictures decoded before it that are presented later are
// kept); its audio covers the same span, from one frame before the first
// picture presented, and nothing is hidden: encoder priming that an MP4
// input's edit list hides is played. Unclipped, every audio frame is kept.
//
// Both ways, the first pass reads the indexes as for [WriteMP4], so input
// errors are reported before anything is written; an error of the second
// pass leaves a truncated stream.
func WriteTS(ctx context.Context, w io.Writer, in *Input, opt Options) (Result, error) {
	ix, sel, err := firstPass(ctx, in, opt)
	if err != nil {
		return Result{}, err
	}
	concat := !ix.hasMP4 && opt.From == 0 && opt.To == 0 && ix.discont == 0
	if !concat {
		if opt.From > 0 && len(ix.samples) > 0 && ix.audio != nil {
			sel.audio = ix.tsClipAudio(sel, opt.To > 0)
		}
		if sel.audio != nil {
			if _, err := adtsConfig(ix.audio.asc); err != nil {
				return Result{}, err
			}
		}
	}
	res := ix.result(sel)
	res.Timescale = timeline.MPEGClock
	res.SampleDescriptions = 0
	if len(ix.samples) > 0 {
		res.Duration = timeline.Duration(sel.editDur, ix.timescale)
	}
	cw := &countWriter{w: w}
	bw := bufio.NewWriterSize(cw, 256<<10)
	if concat {
		err = ix.concatTS(ctx, bw, opt.concurrency(), opt.logger())
	} else {
		err = ix.remuxTS(ctx, bw, sel, opt.concurrency())
	}
	if err == nil {
		err = bw.Flush()
	}
	res.Bytes = cw.n
	return res, err
}

// tsClipAudio selects the audio of a remuxed clip: MPEG-TS output
// presents the pictures from the keyframe on, so the audio covers them
// from the first picture presented (with one frame before it for the
// decoder) to the end of the selection; nil when no audio falls there.
func (ix *index) tsClipAudio(sel selection, clipEnd bool) *audioSelection {
	first := int64(math.MaxInt64) // earliest PTS, ticks after samples[0]'s DTS
	dts := sel.dtsA
	for i := sel.a; i < sel.b; i++ {
		s := &ix.samples[i]
		first = min(first, dts+int64(s.cto))
		dts += int64(s.dur)
	}
	end := int64(math.MaxInt64)
	if clipEnd {
		end = ix.toAudio(sel.end)
	}
	as, ok := ix.audio.selectAudio(ix.toAudio(first), end, false, !clipEnd)
	if !ok {
		return nil
	}
	return &as
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ccFixer rewrites MPEG-TS continuity counters so that every PID's run on
// across concatenated streams.
type ccFixer struct {
	last [8192]int8 // last counter written per PID, -1 none yet
}

func newCCFixer() *ccFixer {
	f := &ccFixer{}
	for i := range f.last {
		f.last[i] = -1
	}
	return f
}

// fix rewrites the continuity counter of one 188-byte packet.
func (f *ccFixer) fix(p []byte) {
	pid := uint16(p[1]&0x1f)<<8 | uint16(p[2])
	if pid == 0x1fff { // null packets carry no meaningful counter
		return
	}
	hasPayload := p[3]&0x10 != 0
	cc := p[3] & 0x0f
	if last := f.last[pid]; last >= 0 {
		if hasPayload {
			cc = (byte(last) + 1) & 0x0f
		} else {
			cc = byte(last) // packets without payload do not advance it
		}
	}
	p[3] = p[3]&0xf0 | cc
	f.last[pid] = int8(cc)
}

// concatTS copies the packets of every part, fixing continuity counters.
func (ix *index) concatTS(ctx context.Context, w io.Writer, depth int, log *slog.Logger) error {
	f := newCCFixer()
	pkt := make([]byte, mpegts.PacketSize)
	var br *bufio.Reader
	jobs := make([]job, len(ix.parts))
	for i := range ix.parts {
		jobs[i] = job{p: &ix.parts[i], n: -1}
	}
	return eachJob(ctx, jobs, depth, func(j *job, r io.Reader) error {
		if br == nil {
			br = bufio.NewReaderSize(r, 256<<10)
		} else {
			br.Reset(r)
		}
		for off := int64(0); ; off += mpegts.PacketSize {
			n, err := io.ReadFull(br, pkt)
			if err == io.EOF {
				return nil
			}
			if err == io.ErrUnexpectedEOF {
				// A truncated last packet: dropped, as the demuxer of the
				// first pass dropped it.
				log.Warn("stitch: partial MPEG-TS packet at the end dropped", "part", j.p.part.Name, "bytes", n)
				return nil
			}
			if err != nil {
				return err
			}
			if pkt[0] != 0x47 {
				return errorf(ErrInvalid, "no sync byte at offset %d", off)
			}
			f.fix(pkt)
			if _, err := w.Write(pkt); err != nil {
				return err
			}
		}
	})
}

// maxAudioPES is the payload size up to which contiguous AAC frames share
// a PES packet (as ffmpeg and the chunker pack them).
const maxAudioPES = 2930

// tsRemux muxes the pictures and AAC frames of a selection into a new
// transport stream, interleaved by time: before each picture (but the
// first, so that the video PID is the one that carries the PCR) the audio
// frames that start at or before its DTS are written.
type tsRemux struct {
	ix    *index
	sel   selection
	w     io.Writer
	mux   *mpegts.Muxer
	video *mpegts.Stream // nil without pictures
	audio *mpegts.Stream // nil without audio
	adts  mpegts.ADTS
	out   []byte    // the packets of one PES packet
	hdrs  [][7]byte // the ADTS headers of one

	vBase    int64 // 90 kHz output DTS = vBase + rescaled ticks after sample a's DTS
	aBase    int64 // 90 kHz output PTS = aBase + rescaled absolute audio ticks
	dts      int64 // ticks after sample a's DTS of the next picture
	pictures int   // pictures written
	withPS   [][]byte

	nextA int   // index of the next audio frame expected
	aAt   int64 // its absolute time, audio ticks
	queue []queuedFrame
	qbuf  []byte // the queued frames' bytes
	pack  [][]byte

	// The audio frames of MP4 parts, read by a second sequence of
	// requests alongside the pictures' (MPEG-TS parts deliver theirs with
	// their pictures): pull returns the next one, peeked holds it until
	// its turn comes.
	pull   func() (audioFrame, error, bool)
	peeked *audioFrame
}

// queuedFrame is an audio frame waiting to be written.
type queuedFrame struct {
	n   int   // bytes, at the start of what is left of qbuf
	at  int64 // absolute time, audio ticks
	end int64 // at + its duration
	pts int64 // output PTS, 90 kHz
}

// audioFrame is a raw AAC frame and its index.
type audioFrame struct {
	i    int
	data []byte
}

// adtsConfig returns the ADTS framing that carries the AAC track in
// MPEG-TS, or ErrUnsupported when ADTS cannot signal it (a sample rate
// outside its table, a channel layout defined by a program config element).
func adtsConfig(asc []byte) (a mpegts.ADTS, err error) {
	defer guard(&err, "AudioSpecificConfig")
	var conf mpeg4audio.AudioSpecificConfig
	if err := conf.Unmarshal(asc); err != nil {
		return a, errorf(ErrUnsupported, "AAC configuration %x: %v", asc, err)
	}
	if conf.ChannelConfig == 0 {
		return a, errorf(ErrUnsupported, "AAC channel configuration 0 (program config element) cannot be carried in ADTS (MPEG-TS)")
	}
	if a, err = mpegts.NewADTS(conf); err != nil {
		return a, errorf(ErrUnsupported, "AAC configuration %x: %v", asc, err)
	}
	return a, nil
}

// remuxTS writes the selection into a new transport stream: the pictures
// as H.264 and the AAC frames as ADTS on a PID of their own.
func (ix *index) remuxTS(ctx context.Context, w io.Writer, sel selection, depth int) (err error) {
	defer guard(&err, "mpegts writer")
	m := &tsRemux{ix: ix, sel: sel, w: w}
	var streams []*mpegts.Stream
	if sel.b > sel.a {
		m.video = &mpegts.Stream{Type: mpegts.StreamH264, StreamID: mpegts.StreamIDVideo}
		streams = append(streams, m.video)
	}
	as := sel.audio
	if as != nil {
		if m.adts, err = adtsConfig(ix.audio.asc); err != nil {
			return err
		}
		m.audio = &mpegts.Stream{Type: mpegts.StreamADTS, StreamID: mpegts.StreamIDAudio}
		streams = append(streams, m.audio)
		m.nextA, m.aAt = as.a, ix.audio.start
		for _, s := range ix.audio.samples[:as.a] {
			m.aAt += int64(s.dur)
		}
	}
	if len(streams) == 0 {
		return nil
	}
	m.mux = mpegts.NewMuxer(streams...)
	m.timeline()

	mainJobs, audioJobs := ix.remuxJobs(sel)
	if len(audioJobs) > 0 {
		next, stop := iter.Pull2(ix.audioFrames(ctx, audioJobs, depth))
		defer stop()
		m.pull = next
	}
	var rd sampleReader
	err = eachJob(ctx, mainJobs, depth, func(j *job, r io.Reader) error {
		return ix.readJob(ctx, j, r, &rd, m.picture, m.pushAudio)
	})
	if err != nil {
		return err
	}
	if err := m.pullAudio(math.MaxInt64); err != nil {
		return err
	}
	if err := m.writeAudio(math.MaxInt64, false); err != nil {
		return err
	}
	if as != nil && m.nextA != as.b {
		return fmt.Errorf("%w: %d audio frames, expected %d", ErrChanged, m.nextA-as.a, as.b-as.a)
	}
	return nil
}

// remuxJobs returns the reads of the selection for remuxing: the MPEG-TS
// parts (pictures and audio frames) and the pictures of MP4 parts, and
// apart from them the audio frames of MP4 parts.
func (ix *index) remuxJobs(sel selection) (main, audio []job) {
	for _, j := range ix.payloadJobs(sel) {
		if j.audio {
			audio = append(audio, j)
		} else {
			main = append(main, j)
		}
	}
	return main, audio
}

// audioFrames reads the audio frames of MP4 jobs in order; an error ends
// the sequence.
func (ix *index) audioFrames(ctx context.Context, jobs []job, depth int) iter.Seq2[audioFrame, error] {
	return func(yield func(audioFrame, error) bool) {
		var rd sampleReader
		stopped := false
		err := eachJob(ctx, jobs, depth, func(j *job, r io.Reader) error {
			return ix.readJob(ctx, j, r, &rd, nil, func(i int, frame []byte) error {
				if !yield(audioFrame{i: i, data: frame}, nil) {
					stopped = true
					return errStop
				}
				return nil
			})
		})
		if err != nil && !stopped {
			yield(audioFrame{}, err)
		}
	}
}

// timeline sets the output time bases: the first picture's DTS at tsStart
// (1.4 s) and the audio at the same offset from the video as in the input,
// everything later when the audio starts more than that before the video;
// audio alone starts at tsStart.
func (m *tsRemux) timeline() {
	ix, sel := m.ix, m.sel
	if m.audio == nil {
		m.vBase = tsStart
		return
	}
	ats := ix.audio.timescale
	first := timeline.Rescale(m.aAt, ats, timeline.MPEGClock)
	if m.video == nil {
		m.aBase = tsStart - first
		return
	}
	// Video output PTS is vBase + timeline.Rescale(DTS - DTS(a) + cto + ctoShift):
	// absolute video ticks v present at vBase + v - (dts0 + dtsA) + ctoShift.
	vts := ix.timescale
	m.vBase = tsStart
	m.aBase = tsStart + timeline.Rescale(sel.ctoShift, vts, timeline.MPEGClock) - timeline.Rescale(ix.dts0+sel.dtsA, vts, timeline.MPEGClock)
	if lead := tsStart - (m.aBase + first); lead > 0 {
		m.vBase += lead
		m.aBase += lead
	}
}

// picture writes picture i, after the audio frames due before it.
func (m *tsRemux) picture(i int, au [][]byte) error {
	ix := m.ix
	s := &ix.samples[i]
	d := m.vBase + timeline.Rescale(m.dts, ix.timescale, timeline.MPEGClock)
	p := m.vBase + timeline.Rescale(m.dts+int64(s.cto)+m.sel.ctoShift, ix.timescale, timeline.MPEGClock)
	m.dts += int64(s.dur)
	if m.pictures > 0 && m.audio != nil {
		if err := m.pullAudio(d); err != nil {
			return err
		}
		if err := m.writeAudio(d, false); err != nil {
			return err
		}
	}
	m.pictures++
	nalus := au
	if s.sync && !accessunit.HasParamSets(au) {
		ds := ix.descs[s.desc]
		m.withPS = accessunit.AppendWithParamSets(m.withPS[:0], au, ds.sps, ds.pps)
		nalus = m.withPS
	}
	return m.writeH264(p, d, nalus)
}

// writeH264 writes an access unit, a random-access point when it holds an
// IDR picture.
func (m *tsRemux) writeH264(pts, dts int64, au [][]byte) error {
	m.mux.Payload.AddAccessUnit(au)
	m.out = m.mux.WritePES(m.out[:0], m.video, pts, dts, true, h264.IsRandomAccess(au))
	_, err := m.w.Write(m.out)
	return err
}

// writeAACPES writes AAC frames as one PES packet of ADTS frames.
func (m *tsRemux) writeAACPES(pts int64, frames [][]byte) error {
	m.hdrs = m.hdrs[:0]
	for _, f := range frames {
		m.hdrs = append(m.hdrs, m.adts.Header(len(f)))
	}
	pl := &m.mux.Payload
	for i, f := range frames {
		pl.Add(m.hdrs[i][:])
		pl.Add(f)
	}
	m.out = m.mux.WritePES(m.out[:0], m.audio, pts, 0, false, true)
	_, err := m.w.Write(m.out)
	return err
}

// pushAudio queues audio frame i (delivered by an MPEG-TS part); audio
// alone is written as soon as a PES is full.
func (m *tsRemux) pushAudio(i int, frame []byte) error {
	if err := m.pullAudio(math.MaxInt64); err != nil { // MP4 parts' frames before it
		return err
	}
	if err := m.queueAudio(i, frame); err != nil {
		return err
	}
	if m.video == nil {
		return m.writeAudio(math.MaxInt64, true)
	}
	return nil
}

// pendingAt returns the output PTS of the next audio frame expected.
func (m *tsRemux) pendingAt() int64 {
	return m.aBase + timeline.Rescale(m.aAt, m.ix.audio.timescale, timeline.MPEGClock)
}

// queueAudio queues audio frame i, which must be the next one.
func (m *tsRemux) queueAudio(i int, frame []byte) error {
	a := m.ix.audio
	if i != m.nextA || len(frame) != int(a.samples[i].size) {
		return fmt.Errorf("%w: audio frame %d (%d bytes), expected frame %d", ErrChanged, i, len(frame), m.nextA)
	}
	end := m.aAt + int64(a.samples[i].dur)
	m.queue = append(m.queue, queuedFrame{n: len(frame), at: m.aAt, end: end, pts: m.pendingAt()})
	m.qbuf = append(m.qbuf, frame...)
	m.nextA++
	m.aAt = end
	return nil
}

// pullAudio queues the audio frames of MP4 parts that are next in turn
// and start at or before limit (90 kHz output time); audio alone is
// written as PES packets fill up.
func (m *tsRemux) pullAudio(limit int64) error {
	if m.pull == nil {
		return nil
	}
	for {
		if m.peeked == nil {
			f, err, ok := m.pull()
			if err != nil {
				return err
			}
			if !ok {
				m.pull = nil
				return nil
			}
			m.peeked = &f
		}
		if m.peeked.i != m.nextA || m.pendingAt() > limit {
			return nil // an MPEG-TS part's frame comes first, or not yet due
		}
		if err := m.queueAudio(m.peeked.i, m.peeked.data); err != nil {
			return err
		}
		m.peeked = nil
		if m.video == nil {
			if err := m.writeAudio(math.MaxInt64, true); err != nil {
				return err
			}
		}
	}
}

// writeAudio writes the queued frames that start at or before limit,
// contiguous frames packed into one PES up to maxAudioPES bytes. With
// keepLast, a pack that could still grow is kept queued.
func (m *tsRemux) writeAudio(limit int64, keepLast bool) error {
	q, off := 0, 0
	for q < len(m.queue) && m.queue[q].pts <= limit {
		k, size, n := q, 0, 0
		for k < len(m.queue) && m.queue[k].pts <= limit && (k == q || m.queue[k].at == m.queue[k-1].end) &&
			(k == q || size+m.queue[k].n+7 <= maxAudioPES) {
			size += m.queue[k].n + 7
			n += m.queue[k].n
			k++
		}
		if keepLast && k == len(m.queue) {
			break
		}
		m.pack = m.pack[:0]
		o := off
		for _, f := range m.queue[q:k] {
			m.pack = append(m.pack, m.qbuf[o:o+f.n])
			o += f.n
		}
		if err := m.writeAACPES(m.queue[q].pts, m.pack); err != nil {
			return err
		}
		q, off = k, off+n
	}
	if q > 0 {
		m.queue = append(m.queue[:0], m.queue[q:]...)
		m.qbuf = append(m.qbuf[:0], m.qbuf[off:]...)
	}
	return nil
}
