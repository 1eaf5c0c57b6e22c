package source

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/internal/timeline"
)

// joined reads a sequence of sources, each with a clock of its own (phone
// chunks, the passes of a loop), as one stream, by internal/timeline's
// joining rule: each part's pictures are presented right where the previous
// part's end, at their own frame step; its audio moves with its pictures,
// keeping the part's own audio/video offset; only audio that truly overlaps
// audio already read is dropped. Timestamps are converted to the first
// part's timescales. It is the one joining source: Chunks and Loop are
// joined sequences.
type joined struct {
	// next opens part i: io.EOF after the last, ErrPending when it has
	// not arrived yet (a later call asks again).
	next func(i int) (Source, error)
	// handOver, when set, is called with the part that ended and the one
	// that follows it (Chunks shares the parameter sets put in band; Loop
	// the read buffers).
	handOver func(prev, next Source)
	what     string // what a part is called in errors: "chunk", "pass"
	log      *slog.Logger
	info     Info
	idx      int // index of the current part
	cur      Source
	join     *timeline.Joiner
	// otherAudio: the current part's AAC configuration differs from the
	// first part's (a microphone that changed): its frames cannot go into
	// the track the first part set up, and are not read.
	otherAudio bool
	// held is the current part's audio that came before its first picture
	// (its data copied into hbuf): it waits until the picture places the
	// part. ready holds packets to return before reading on: the held
	// audio once placed, then that picture.
	held, ready []Packet
	hbuf        []byte
	// ended: the current part was read to its end and the next one is not
	// open yet (next returned ErrPending).
	ended bool
	err   error
}

// maxLeadAudio and maxLeadBytes bound the audio frames, and their bytes,
// held before a part's first picture arrives; a part with more places
// itself by its audio.
const (
	maxLeadAudio = 1024
	maxLeadBytes = 4 << 20
)

// ErrPending is returned by NextPacket of a Chunks whose open function
// returned it: the next chunk has not arrived. A later NextPacket asks for
// it again.
var ErrPending = errors.New("source: the next chunk has not arrived")

// start opens the first part, whose Info describes the stream.
func (j *joined) start() error {
	src, err := j.next(0)
	if err == io.EOF {
		return errorf(ErrInvalid, "no %ss", j.what)
	}
	if err != nil {
		return err
	}
	j.cur, j.info = src, src.Info()
	var ats uint32
	if j.info.Audio != nil {
		ats = j.info.Audio.Timescale
	}
	j.join = timeline.NewJoiner(j.info.Timescale, ats)
	j.join.Begin(j.clock())
	return nil
}

// clock returns the timescales of the current part.
func (j *joined) clock() timeline.Clock {
	in := j.cur.Info()
	cl := timeline.Clock{Video: in.Timescale}
	if in.Audio != nil {
		cl.Audio = in.Audio.Timescale
	}
	return cl
}

// closeCur closes the current part if it is an io.Closer.
func (j *joined) closeCur() error {
	if c, ok := j.cur.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// nextPacket returns the next packet of the joined stream, io.EOF after
// the last part, or ErrPending.
func (j *joined) nextPacket() (Packet, error) {
	for {
		if len(j.ready) > 0 {
			p := j.ready[0]
			j.ready = j.ready[1:]
			return p, nil
		}
		if j.err != nil {
			return Packet{}, j.err
		}
		if j.ended {
			if err := j.openNext(); err != nil {
				if errors.Is(err, ErrPending) {
					return Packet{}, err
				}
				j.err = err
			}
			continue
		}
		p, err := j.cur.NextPacket()
		if err == io.EOF {
			j.endPart()
			continue
		}
		if err != nil {
			j.err = fmt.Errorf("%s %d: %w", j.what, j.idx, err)
			continue
		}
		if p.Kind == KindAudio {
			if p, ok := j.audio(p.Audio); ok {
				return p, nil
			}
			continue
		}
		s := p.Video
		placed := j.join.Placed()
		s.DTS, s.PTS, s.Duration = j.join.Video(s.DTS, s.PTS, s.Duration)
		if !placed && len(j.held) > 0 {
			// The part's audio that came first, now placed, goes before
			// its first picture.
			j.placeHeld()
			j.ready = append(j.ready, Packet{Kind: KindVideo, Video: s})
			continue
		}
		return Packet{Kind: KindVideo, Video: s}, nil
	}
}

// endPart ends the current part.
func (j *joined) endPart() {
	if !j.join.Placed() && len(j.held) > 0 {
		// A part of audio alone: its audio continues the audio before it.
		j.join.PlaceAudio(j.held[0].Audio.PTS)
		j.placeHeld()
	}
	if err := j.closeCur(); err != nil {
		j.log.Warn("closing a "+j.what, "index", j.idx, "err", err)
	}
	j.ended = true
}

// openNext opens the part after the current one: io.EOF after the last,
// ErrPending when it has not arrived.
func (j *joined) openNext() error {
	src, err := j.next(j.idx + 1)
	if err != nil {
		return err
	}
	if j.handOver != nil {
		j.handOver(j.cur, src)
	}
	j.idx, j.cur, j.ended = j.idx+1, src, false
	a := src.Info().Audio
	j.otherAudio = j.info.Audio != nil && a != nil && !bytes.Equal(a.ASC, j.info.Audio.ASC)
	if j.otherAudio {
		j.log.Warn("the audio of a "+j.what+" is not read: its configuration differs from the first one's", "index", j.idx)
	}
	j.join.Begin(j.clock())
	return nil
}

// audio places an audio frame of the current part on the output timeline;
// ok is false for a frame that is dropped or held until the part's first
// picture.
func (j *joined) audio(a chunker.AudioSample) (Packet, bool) {
	if j.info.Audio == nil || j.cur.Info().Audio == nil || j.otherAudio {
		return Packet{}, false
	}
	if !j.join.Placed() {
		// Audio before the part's first picture waits for it, up to a
		// bound: past it, the part is placed by its audio.
		if len(j.held) >= maxLeadAudio || len(j.hbuf)+len(a.Data) > maxLeadBytes {
			first := a.PTS
			if len(j.held) > 0 {
				first = j.held[0].Audio.PTS
			}
			j.join.PlaceAudio(first)
			j.placeHeld()
			if p, ok := j.audio(a); ok {
				j.ready = append(j.ready, p) // after the held frames
			}
			return Packet{}, false
		}
		off := len(j.hbuf)
		j.hbuf = append(j.hbuf, a.Data...)
		a.Data = j.hbuf[off:len(j.hbuf):len(j.hbuf)]
		j.held = append(j.held, Packet{Kind: KindAudio, Audio: a})
		return Packet{}, false
	}
	t, d, ok := j.join.Audio(a.PTS, j.audioDuration(a))
	if !ok {
		j.log.Debug("dropping an audio frame that overlaps the audio before it", "part", j.idx, "pts", a.PTS)
		return Packet{}, false
	}
	a.PTS, a.Duration = t, d
	return Packet{Kind: KindAudio, Audio: a}, true
}

// audioDuration is the duration of an audio frame of the current part
// (timeline.FrameDuration: as the part declares it when shorter than the
// nominal frame length).
func (j *joined) audioDuration(a chunker.AudioSample) int64 {
	in := j.cur.Info().Audio
	return timeline.FrameDuration(a.Duration, timeline.Rescale(int64(in.FrameSamples), uint32(in.SampleRate), in.Timescale))
}

// placeHeld places the held audio frames of the current part, which is
// placed now, and makes them ready, dropping those that overlap.
func (j *joined) placeHeld() {
	for _, p := range j.held {
		if t, d, ok := j.join.Audio(p.Audio.PTS, j.audioDuration(p.Audio)); ok {
			p.Audio.PTS, p.Audio.Duration = t, d
			j.ready = append(j.ready, p)
		}
	}
	j.held = j.held[:0]
	j.hbuf = nil // the ready frames keep the old buffer
}
