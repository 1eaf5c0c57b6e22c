package source

import (
	"io"
	"sync"
	"time"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/internal/timeline"
)

// Loop replays the Source that open returns count times (forever when count
// is 0), shifting each pass's timestamps so the stream continues without a
// gap: the next pass starts right after the previous pass's last sample of
// either track (one sample duration after its start). Audio is shifted with
// the video, so their offset is kept. Every pass must have the same
// timescales.
func Loop(open func() (Source, error), count int) (Source, error) {
	first, err := open()
	if err != nil {
		return nil, err
	}
	return &loop{open: open, cur: first, info: first.Info(), count: count, pass: 1}, nil
}

type loop struct {
	open    func() (Source, error)
	cur     Source
	info    Info
	count   int
	pass    int
	offset  int64 // added to the current pass's timestamps (Info.Timescale)
	haveFst bool  // the current pass's offset is set
	end     int64 // end of the last sample of either track, shifted
}

func (l *loop) Info() Info { return l.info }

func (l *loop) Next() (chunker.Sample, error) { return nextVideo(l.NextPacket) }

func (l *loop) NextPacket() (Packet, error) {
	ts := int64(l.info.Timescale)
	for {
		p, err := l.cur.NextPacket()
		if err == io.EOF {
			if l.count > 0 && l.pass >= l.count {
				return p, io.EOF
			}
			if c, ok := l.cur.(io.Closer); ok {
				c.Close()
			}
			next, err := l.open()
			if err != nil {
				return Packet{}, err
			}
			if o, n := asMP4(l.cur), asMP4(next); o != nil && n != nil {
				n.reuseBuffers(o)
			}
			l.cur = next
			l.pass++
			l.haveFst = false
			continue
		}
		if err != nil {
			return p, err
		}
		if p.Kind == KindAudio && l.info.Audio == nil {
			continue
		}
		// start and end of the packet in Info.Timescale ticks
		var start, end int64
		if p.Kind == KindVideo {
			d := max(p.Video.Duration, 1)
			start, end = p.Video.DTS, p.Video.DTS+d
		} else {
			a := l.info.Audio
			ats := int64(a.Timescale)
			start = timeline.Rescale(p.Audio.PTS, uint32(ats), uint32(ts))
			end = timeline.Rescale(p.Audio.PTS+timeline.Rescale(int64(a.FrameSamples), uint32(a.SampleRate), uint32(ats)), uint32(ats), uint32(ts))
		}
		if !l.haveFst {
			l.haveFst = true
			if l.pass > 1 {
				l.offset = l.end - start
			}
		}
		if p.Kind == KindVideo {
			p.Video.DTS += l.offset
			p.Video.PTS += l.offset
		} else {
			p.Audio.PTS += timeline.Rescale(l.offset, uint32(ts), l.info.Audio.Timescale)
		}
		l.end = max(l.end, end+l.offset)
		return p, nil
	}
}

// Paced delivers the samples of src no faster than real time: Next waits
// until as much wall-clock time has passed since the first sample as its
// timestamp (video DTS, audio PTS) says. Stop makes a waiting or later Next
// return io.EOF.
type Paced struct {
	// Speed is the pace as a multiple of real time; 0 means 1.
	Speed   float64
	src     Source
	start   time.Time
	first   time.Duration
	started bool
	stop    chan struct{}
	once    sync.Once
}

// NewPaced returns src paced to real time.
func NewPaced(src Source) *Paced {
	return &Paced{src: src, stop: make(chan struct{})}
}

// Info returns the source's Info.
func (p *Paced) Info() Info { return p.src.Info() }

// Stop ends the stream: Next returns io.EOF from now on.
func (p *Paced) Stop() { p.once.Do(func() { close(p.stop) }) }

// Next returns the next video sample once its time has come (audio is
// skipped).
func (p *Paced) Next() (chunker.Sample, error) { return nextVideo(p.NextPacket) }

// NextPacket returns the next packet once its time has come.
func (p *Paced) NextPacket() (Packet, error) {
	select {
	case <-p.stop:
		return Packet{}, io.EOF
	default:
	}
	pk, err := p.src.NextPacket()
	if err != nil {
		return pk, err
	}
	info := p.src.Info()
	var at time.Duration
	if pk.Kind == KindVideo {
		at = timeline.Duration(pk.Video.DTS, info.Timescale)
	} else if info.Audio != nil {
		at = timeline.Duration(pk.Audio.PTS, info.Audio.Timescale)
	}
	if !p.started {
		p.started, p.start, p.first = true, time.Now(), at
		return pk, nil
	}
	el := at - p.first
	if p.Speed > 0 {
		el = time.Duration(float64(el) / p.Speed)
	}
	due := p.start.Add(el)
	if wait := time.Until(due); wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-p.stop:
			return Packet{}, io.EOF
		}
	}
	return pk, nil
}

// asMP4 returns the MP4 source that s is or that it wraps (Open's File), or
// nil.
func asMP4(s Source) *MP4 {
	switch s := s.(type) {
	case *MP4:
		return s
	case *File:
		m, _ := s.Source.(*MP4)
		return m
	}
	return nil
}
