package source

import (
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/internal/timeline"
)

// Loop replays the Source that open returns count times (forever when count
// is 0), each pass joined to the one before by the joining rule of Chunks:
// its pictures continue the previous pass's at their frame step, its audio
// moves with them (audio that runs past the pictures' end overlaps the next
// pass's start, and the overlap is dropped). Timestamps are converted to
// the first pass's timescales. A pass that is an io.Closer is closed at its
// end. The first pass is opened before Loop returns.
func Loop(open func() (Source, error), count int) (Source, error) {
	l := &loop{}
	l.j = joined{
		next: func(i int) (Source, error) {
			if count > 0 && i >= count {
				return nil, io.EOF
			}
			return open()
		},
		handOver: reuseBuffers,
		what:     "pass",
		log:      slog.New(slog.DiscardHandler),
	}
	if err := l.j.start(); err != nil {
		return nil, err
	}
	return l, nil
}

// loop is the Source of Loop.
type loop struct{ j joined }

func (l *loop) Info() Info { return l.j.info }

func (l *loop) Next() (chunker.Sample, error) { return nextVideo(l.NextPacket) }

func (l *loop) NextPacket() (Packet, error) { return l.j.nextPacket() }

// reuseBuffers lets the next pass of a loop take over the read buffers of
// the pass that ended.
func reuseBuffers(prev, next Source) {
	if o, n := asMP4(prev), asMP4(next); o != nil && n != nil {
		n.reuseBuffers(o)
	}
}

// Paced delivers the samples of src no faster than real time: Next waits
// until as much wall-clock time has passed since the first sample as its
// timestamp (video DTS, audio PTS) says. Stop, which may be called from
// any goroutine, makes a waiting or later Next return io.EOF. A Paced does
// not close src.
type Paced struct {
	// Speed is the pace as a multiple of real time; 0 means 1. Set it
	// before the first Next.
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

// Stop ends the stream: Next and NextPacket return io.EOF from now on, a
// waiting call at once. It is safe to call from any goroutine, and more
// than once.
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
