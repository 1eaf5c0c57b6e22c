package chunker

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/livechunk/livechunk/internal/timeline"
)

// Limits of the audio path.
const (
	// maxAudioFrame is the largest AAC frame accepted: what ADTS can frame
	// (13-bit length including the 7-byte header).
	maxAudioFrame = 1<<13 - 1 - 7
	// maxAudioQueue bounds the frames waiting for the video to pass them.
	// More means the audio runs far ahead of the video (or the video is
	// missing): the oldest frames then go into the open segment, or are
	// dropped when none is open.
	maxAudioQueue = 2048
	// maxTime is later than any timestamp.
	maxTime = math.MaxInt64
)

// audioTrack is the state of the AAC track of a chunker.
//
// Timelines: input PTS (unwrapped) are in ticks of inTS. Output times are
// in ticks of outTS (the sample rate): output = round(input·outTS/inTS) +
// off, where off is the video's output offset converted to outTS (or, in
// an audio-only stream, chosen like the video's). Consecutive frames whose
// output times differ from the nominal frame duration by no more than the
// input's quantization (tol) are placed exactly one frame apart, so a
// 90 kHz input does not leave 1023/1025-tick durations at 44.1 kHz.
type audioTrack struct {
	info  AACInfo
	conf  mpeg4audio.AudioSpecificConfig
	asc   []byte
	inTS  int64 // timescale of AudioSample.PTS
	outTS int64 // timescale in segments: the sample rate
	frame int64 // nominal frame duration in outTS ticks
	tol   int64 // timestamp quantization absorbed when snapping, outTS ticks

	// input
	index  int64 // WriteAudio calls, for errors
	unwrap timeline.Unwrapper
	haveIn bool
	lastIn int64             // unwrapped input PTS of the previous frame
	run    timeline.AudioRun // the frames that continue each other, in input video ticks

	// frames waiting for the video (audio with video only)
	queue []queuedAudio
	head  int
	qbuf  []byte

	// output
	off     int64 // output offset in outTS ticks
	offFrom int64 // the video offset off was converted from
	offSet  bool
	haveOut bool
	lastOut int64 // output time of the last frame put in a segment

	// frames starting at or before floor (input video ticks) are dropped:
	// they end before a keyframe that followed dropped pictures
	floor     int64
	haveFloor bool

	// open segment
	segFrames int
	segStart  int64
	lastDur   int64 // duration of the segment's last frame
}

// queuedAudio is a frame waiting in audioTrack.queue; its bytes are
// qbuf[off:off+n].
type queuedAudio struct {
	pts int64 // unwrapped input PTS
	dur int64 // declared duration (AudioSample.Duration), input ticks; 0: nominal
	pv  int64 // the same in input video ticks (floor)
	off int
	n   int
}

// adtsRates are the sample rates an ADTS header can signal.
var adtsRates = map[int]bool{96000: true, 88200: true, 64000: true, 48000: true, 44100: true, 32000: true,
	24000: true, 22050: true, 16000: true, 12000: true, 11025: true, 8000: true, 7350: true}

func newAudioTrack(cfg Config) (*audioTrack, error) {
	conf, info, err := parseASC(cfg.Audio.ASC)
	if err != nil {
		return nil, err
	}
	if cfg.Format == TS {
		// ADTS carries the core object type, rate and channel layout.
		if !adtsRates[conf.SampleRate] {
			return nil, fmt.Errorf("%w: sample rate %d cannot be carried in ADTS (MPEG-TS)", ErrBadAudioConfig, conf.SampleRate)
		}
		if conf.ChannelConfig == 0 {
			return nil, fmt.Errorf("%w: channel configuration 0 (program config element) is not supported in MPEG-TS output", ErrBadAudioConfig)
		}
	}
	a := &audioTrack{
		info:  info,
		conf:  conf,
		asc:   append([]byte(nil), cfg.Audio.ASC...),
		inTS:  int64(cfg.Audio.Timescale),
		outTS: int64(info.SampleRate),
		frame: int64(info.FrameSamples),
	}
	a.unwrap.Bits = cfg.WrapBits
	if a.inTS == 0 {
		a.inTS = a.outTS
	}
	if a.inTS != a.outTS {
		a.tol = 1 + a.outTS/a.inTS
	}
	return a, nil
}

func absi(a int64) int64 {
	if a < 0 {
		return -a
	}
	return a
}

// unwrapAudio unwraps an audio PTS (Config.WrapBits applies to both
// tracks). The first audio frame is unwrapped near the video's timeline,
// so both stay on the same side of a wrap.
func (k *chunker) unwrapAudio(pts int64) int64 {
	a := k.aud
	if v := &k.clk.unwrap; v.Started() && !a.unwrap.Started() {
		return a.unwrap.Start(pts, timeline.Rescale(v.Last(), k.cfg.Timescale, uint32(a.inTS)))
	}
	return a.unwrap.Unwrap(pts)
}

// CheckAudioFrame reports what WriteAudio would refuse in an AAC frame:
// an empty one, or one larger than ADTS can frame (8 KiB). The error wraps
// ErrInvalidSample. Use it, with CheckAccessUnit, to refuse input that
// arrives whole before any of it is recorded.
func CheckAudioFrame(data []byte) error {
	switch {
	case len(data) == 0:
		return fmt.Errorf("%w: empty audio frame", ErrInvalidSample)
	case len(data) > maxAudioFrame:
		return fmt.Errorf("%w: audio frame of %d bytes", ErrInvalidSample, len(data))
	}
	return nil
}

// audioJumpThreshold is the largest PTS step (input audio ticks) still
// treated as continuous: Config.JumpThreshold, else timeline.Threshold of
// an AAC frame.
func (k *chunker) audioJumpThreshold() int64 {
	a := k.aud
	if k.cfg.JumpThreshold > 0 {
		return timeline.Ticks(k.cfg.JumpThreshold, uint32(a.inTS))
	}
	return timeline.Threshold(timeline.Rescale(a.frame, uint32(a.outTS), uint32(a.inTS)), uint32(a.inTS))
}

func (k *chunker) WriteAudio(ctx context.Context, s AudioSample) error {
	defer k.publish()
	if err := k.usable(); err != nil {
		return err
	}
	a := k.aud
	if a == nil {
		return fmt.Errorf("%w: WriteAudio without Config.Audio", ErrNoTrack)
	}
	idx := a.index
	a.index++
	fail := func(err error) error { return &SampleError{Index: idx, DTS: s.PTS, Audio: true, Err: err} }
	if err := CheckAudioFrame(s.Data); err != nil {
		return fail(err)
	}
	pts := k.unwrapAudio(s.PTS)
	step := timeline.Continue
	if a.haveIn {
		step = timeline.Classify(timeline.Evidence{Step: pts - a.lastIn, Threshold: k.audioJumpThreshold()})
	}
	if step == timeline.Back && k.cfg.NoVideo {
		return fail(fmt.Errorf("%w: audio PTS %d after %d", ErrNonMonotonicDTS, pts, a.lastIn))
	}
	a.haveIn, a.lastIn = true, pts
	if k.cfg.NoVideo {
		return k.writeAudioOnly(ctx, pts, s.Duration, s.Data, step == timeline.Jump)
	}
	// With video, a step back is no error: audio is placed on the video's
	// timeline (which steps back at a splice, see Write), a jump of the
	// audio alone is taken as is, and a frame that would not follow the
	// one before it is dropped and counted. A frame waits until the video
	// has passed it.
	return k.queueAudio(ctx, pts, s.Duration, s.Data)
}

// queueAudio queues a frame of a stream with video, then moves what the
// video has passed into the open segment (or into a segment whose cut
// waits for the audio).
func (k *chunker) queueAudio(ctx context.Context, pts, dur int64, data []byte) error {
	a := k.aud
	a.compact()
	vts := k.cfg.Timescale
	pv := timeline.Rescale(pts, uint32(a.inTS), vts)
	a.run.Add(pv, timeline.Rescale(a.frame, uint32(a.outTS), vts), timeline.Rescale(k.audioJumpThreshold(), uint32(a.inTS), vts))
	a.queue = append(a.queue, queuedAudio{pts: pts, dur: dur, pv: pv, off: len(a.qbuf), n: len(data)})
	a.qbuf = append(a.qbuf, data...)
	switch {
	case k.cut.pending && k.cut.jump:
		// Audio of the old timeline closes with the segment; audio of
		// the new one ends the wait.
		if err := k.releaseAudioBeforeJump(ctx, k.cut.oldLast, k.cut.newFirst); err != nil {
			return err
		}
		if absi(pv-k.cut.oldLast) > absi(pv-k.cut.newFirst) {
			if err := k.resolveCut(ctx); err != nil {
				return err
			}
		}
	case k.cut.pending:
		// The closing segment takes the audio before the cut; audio
		// at or after it ends the wait.
		if err := k.releaseAudio(ctx, k.cut.pts, false); err != nil {
			return err
		}
		if pv >= k.cut.pts {
			if err := k.resolveCut(ctx); err != nil {
				return err
			}
		}
	case k.seg.open:
		if err := k.releaseAudio(ctx, k.clk.lastIn, true); err != nil {
			return err
		}
	}
	for len(a.queue)-a.head > maxAudioQueue {
		q, data := a.pop()
		if err := k.putAudio(q.pts, q.dur, data); err != nil {
			return err
		}
	}
	return nil
}

// audioRanOn reports whether the audio went on through the video's step
// from the decode time from to to (input video ticks), as
// timeline.AudioRun.RanOn tells: the video paused there (a variable frame
// rate, as in screen recordings) rather than its timestamps jumping.
func (k *chunker) audioRanOn(from, to int64) bool {
	a := k.aud
	if a == nil {
		return false
	}
	vts := k.cfg.Timescale
	return a.run.RanOn(from, to, timeline.Rescale(a.frame, uint32(a.outTS), vts), vts)
}

// pop removes the oldest queued frame. Its data stays valid until the next
// frame is queued.
func (a *audioTrack) pop() (queuedAudio, []byte) {
	q := a.queue[a.head]
	data := a.qbuf[q.off : q.off+q.n : q.off+q.n]
	a.head++
	if a.head == len(a.queue) {
		a.clearQueue()
	}
	return q, data
}

// compact moves the waiting frames to the front of the queue's buffers
// once the consumed part dominates, so the buffers stop growing.
func (a *audioTrack) compact() {
	if a.head < 64 || 2*a.head < len(a.queue) {
		return
	}
	start := a.queue[a.head].off
	n := copy(a.qbuf, a.qbuf[start:])
	a.qbuf = a.qbuf[:n]
	m := copy(a.queue, a.queue[a.head:])
	a.queue, a.head = a.queue[:m], 0
	for i := range a.queue {
		a.queue[i].off -= start
	}
}

func (a *audioTrack) clearQueue() {
	a.queue, a.head, a.qbuf = a.queue[:0], 0, a.qbuf[:0]
}

// releaseAudio moves the queued frames with a video-timescale PTS before
// limit (up to and including it when inclusive) into the open segment.
func (k *chunker) releaseAudio(ctx context.Context, limit int64, inclusive bool) error {
	a := k.aud
	if a == nil || !k.seg.open {
		return nil
	}
	for a.head < len(a.queue) {
		q := a.queue[a.head]
		if q.pv > limit || q.pv == limit && !inclusive {
			break
		}
		q, data := a.pop()
		if a.haveFloor && q.pv <= a.floor {
			k.stats.AudioDropped++ // late audio from before the first picture
			continue
		}
		if err := k.putAudio(q.pts, q.dur, data); err != nil {
			return err
		}
	}
	return nil
}

// releaseAudioBeforeJump moves the queued frames that are nearer the old
// timeline (oldDTS) than the new one (newDTS) into the open segment, or
// drops them when none is open.
func (k *chunker) releaseAudioBeforeJump(ctx context.Context, oldDTS, newDTS int64) error {
	a := k.aud
	if a == nil {
		return nil
	}
	for a.head < len(a.queue) {
		q := a.queue[a.head]
		if absi(q.pv-oldDTS) > absi(q.pv-newDTS) {
			break
		}
		q, data := a.pop()
		if err := k.putAudio(q.pts, q.dur, data); err != nil {
			return err
		}
	}
	return nil
}

// dropAudioBefore drops the frames that end at or before pts (input video
// ticks), queued now or arriving later: audio from before a keyframe that a
// segment opens with, when the pictures before that keyframe were dropped.
func (k *chunker) dropAudioBefore(pts int64) {
	a := k.aud
	if a == nil {
		return
	}
	a.floor, a.haveFloor = pts-timeline.Rescale(a.frame, uint32(a.outTS), k.cfg.Timescale), true
	for a.head < len(a.queue) && a.queue[a.head].pv <= a.floor {
		a.pop()
		k.stats.AudioDropped++
	}
}

// outTime returns the output time of the frame with input PTS pts.
func (a *audioTrack) outTime(pts int64) int64 {
	t := timeline.Rescale(pts, uint32(a.inTS), uint32(a.outTS)) + a.off
	if a.haveOut {
		if exp := a.lastOut + a.frame; absi(t-exp) <= a.tol {
			t = exp
		}
	}
	return t
}

// putAudio writes a frame into the open segment, or drops it (counted)
// when no segment is open or it would not come after the previous frame.
// Its duration is the nominal one unless the input declared a shorter one
// (dur, input ticks; an MP4's short last frame, see
// timeline.FrameDuration): the next frame's time overrides it when one
// follows in the same segment.
func (k *chunker) putAudio(pts, dur int64, data []byte) error {
	a := k.aud
	if !k.seg.open {
		k.stats.AudioDropped++
		return nil
	}
	if vo := k.audioVideoOffset(); !k.cfg.NoVideo && (!a.offSet || a.offFrom != vo) {
		a.off = timeline.Rescale(vo, k.cfg.Timescale, uint32(a.outTS))
		a.offFrom, a.offSet = vo, true
	}
	t := a.outTime(pts)
	if t < 0 || a.haveOut && t <= a.lastOut {
		k.stats.AudioDropped++
		return nil
	}
	if a.segFrames > 0 {
		d := t - a.lastOut
		k.c.setAudioDuration(d)
	} else {
		a.segStart = t
	}
	if err := k.c.addAudio(data, t); err != nil {
		return err
	}
	d := a.frame
	if dur > 0 {
		in, out := uint32(a.inTS), uint32(a.outTS)
		d = timeline.FrameDuration(timeline.Rescale(pts+dur, in, out)-timeline.Rescale(pts, in, out), a.frame)
		if d != a.frame {
			k.c.setAudioDuration(d)
		}
	}
	a.segFrames++
	a.haveOut, a.lastOut, a.lastDur = true, t, d
	k.stats.AudioSamples++
	return nil
}

// writeAudioOnly segments an audio-only stream: a segment is cut at the
// first frame at or after the target duration.
func (k *chunker) writeAudioOnly(ctx context.Context, pts, dur int64, data []byte, jump bool) error {
	a := k.aud
	if jump {
		k.stats.TimestampJumps++
		if k.seg.open {
			if err := k.emit(ctx); err != nil {
				return err
			}
		}
		k.seg.discont = true
		if a.haveOut {
			// Continue the output timeline right after the previous frame.
			a.off = a.lastOut + a.lastDur - timeline.Rescale(pts, uint32(a.inTS), uint32(a.outTS))
		}
	}
	if !a.offSet {
		m := k.minTime(uint32(a.outTS))
		if t0 := timeline.Rescale(pts, uint32(a.inTS), uint32(a.outTS)); t0 < m {
			a.off = m - t0
		}
		a.offSet = true
	}
	t := a.outTime(pts)
	if t < 0 || a.haveOut && t <= a.lastOut {
		k.stats.AudioDropped++
		return nil
	}
	if k.seg.open && t-k.seg.start >= k.target {
		if d := t - a.lastOut; d > 0 && a.segFrames > 0 {
			k.c.setAudioDuration(d)
			a.lastDur = d
		}
		if err := k.emit(ctx); err != nil {
			return err
		}
	}
	if !k.seg.open {
		if err := k.openSegment(ctx, t, t); err != nil {
			return err
		}
	}
	return k.putAudio(pts, dur, data)
}

// Limits of a deferred cut: the pictures that wait, and how long (video
// time from the keyframe).
const (
	maxCutSamples = 256
	maxCutWait    = time.Second
)

// deferredCut is a cut that waits for the audio. A keyframe that cuts a
// segment arrives at its decode time, but the audio up to its presentation
// time often arrives later: demuxers deliver by decode time and muxers
// buffer audio (ffmpeg's MPEG-TS muxer by up to 0.7 s). So when audio
// before the keyframe's PTS may still come, the segment stays open for
// audio while the keyframe and the pictures after it wait in a stash
// (their NAL units copied into one reusable buffer), until an audio frame
// at or after the keyframe's PTS arrives, maxCutWait passes, or the stream
// flushes; then the segment closes with all of its audio and the stash
// opens the next one.
//
// A timestamp jump of the video waits the same way for the audio of the old
// timeline (told apart from the new one by which side of the jump it is
// nearer), which keeps the old timeline's offset.
type deferredCut struct {
	pending bool
	pts     int64 // input PTS of the keyframe: audio before it closes with the segment

	// at a jump
	jump      bool
	oldLast   int64 // input DTS of the last sample before the jump
	newFirst  int64 // input DTS of the first one after it
	oldOffset int64 // output offset of the old timeline

	// the stash
	samples []stashedSample
	nalus   []stashedNALU
	buf     []byte
	scratch [][]byte
}

type stashedSample struct {
	index      int64
	inDTS      int64
	inPTS      int64
	dts, pts   int64 // output times
	dur        int64 // -1 until the next sample
	idr        bool
	first, end int // nalus[first:end]
}

type stashedNALU struct{ off, n int }

func (c *deferredCut) start(pts int64) {
	c.pending, c.pts, c.jump = true, pts, false
	c.samples, c.nalus, c.buf = c.samples[:0], c.nalus[:0], c.buf[:0]
}

func (c *deferredCut) startJump(oldLast, newFirst, oldOffset int64) {
	c.start(0)
	c.jump, c.oldLast, c.newFirst, c.oldOffset = true, oldLast, newFirst, oldOffset
}

// audioVideoOffset is the video output offset that audio put into the open
// segment is shifted by: the old timeline's while a jump waits.
func (k *chunker) audioVideoOffset() int64 {
	if k.cut.pending && k.cut.jump {
		return k.cut.oldOffset
	}
	return k.clk.offset
}

// audioMayLagJump reports whether audio of the old timeline may still
// arrive at a jump from oldLast to newFirst (input video ticks): the latest
// audio frame is nearer the old timeline.
func (k *chunker) audioMayLagJump(oldLast, newFirst int64) bool {
	a := k.aud
	if a == nil || !a.haveIn {
		return false
	}
	pv := timeline.Rescale(a.lastIn, uint32(a.inTS), k.cfg.Timescale)
	return absi(pv-oldLast) <= absi(pv-newFirst)
}

func (c *deferredCut) add(index int64, s Sample, dts, pts int64, idr bool) {
	first := len(c.nalus)
	for _, n := range s.NALUs {
		c.nalus = append(c.nalus, stashedNALU{len(c.buf), len(n)})
		c.buf = append(c.buf, n...)
	}
	c.samples = append(c.samples, stashedSample{index: index, inDTS: s.DTS, inPTS: s.PTS, dts: dts, pts: pts, dur: -1,
		idr: idr, first: first, end: len(c.nalus)})
}

func (c *deferredCut) setLastDur(d int64) {
	if n := len(c.samples); n > 0 {
		c.samples[n-1].dur = d
	}
}

// audioMayLag reports whether audio before pts (input video ticks) may
// still arrive: the stream has audio, and the latest frame is before pts
// but not by more than maxCutWait (audio that far behind has ended or
// paused; waiting would not bring it).
func (k *chunker) audioMayLag(pts int64) bool {
	a := k.aud
	if a == nil || !a.haveIn {
		return false
	}
	pv := timeline.Rescale(a.lastIn, uint32(a.inTS), k.cfg.Timescale)
	return pv < pts && pts-pv <= k.maxCutWait()
}

func (k *chunker) maxCutWait() int64 { return timeline.Ticks(maxCutWait, k.cfg.Timescale) }

// resolveCut closes the waiting segment with its audio and opens the next
// one with the stashed pictures.
func (k *chunker) resolveCut(ctx context.Context) error {
	c := &k.cut
	var err error
	if c.jump {
		err = k.releaseAudioBeforeJump(ctx, c.oldLast, c.newFirst)
	} else {
		err = k.releaseAudio(ctx, c.pts, false)
	}
	c.pending = false
	if err != nil {
		return err
	}
	if err := k.emit(ctx); err != nil {
		return err
	}
	if c.jump {
		k.seg.discont = true
		c.jump = false
	}
	for i, st := range c.samples {
		if i == 0 {
			if k.videoDropped {
				k.dropAudioBefore(st.inPTS)
				k.videoDropped = false
			}
			if err := k.openSegment(ctx, st.dts, st.pts); err != nil {
				return err
			}
		}
		c.scratch = c.scratch[:0]
		for _, n := range c.nalus[st.first:st.end] {
			c.scratch = append(c.scratch, c.buf[n.off:n.off+n.n:n.off+n.n])
		}
		if err := k.c.add(c.scratch, st.dts, st.pts, st.idr, k.par.ps); err != nil {
			return &SampleError{Index: st.index, DTS: st.inDTS, Err: err}
		}
		k.seg.frames++
		if st.idr {
			k.seg.keys++
			k.clk.reorder = st.pts - st.dts
		}
		k.stats.Samples++
		if st.dur >= 0 {
			k.c.setDuration(st.dur)
			k.seg.dur += st.dur
		}
		if err := k.releaseAudio(ctx, st.inDTS, true); err != nil {
			return err
		}
	}
	c.samples, c.nalus, c.buf = c.samples[:0], c.nalus[:0], c.buf[:0]
	return nil
}
