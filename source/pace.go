package source

import (
	"io"
	"sync"
	"time"

	"github.com/livechunk/livechunk/chunker"
)

// Loop replays the Source that open returns count times (forever when count
// is 0), shifting each pass's timestamps so the stream continues without a
// gap: the next pass starts one sample duration after the previous pass's
// last sample. Every pass must have the same timescale.
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
	offset  int64 // added to the current pass's timestamps
	first   int64 // first DTS of the current pass
	haveFst bool
	end     int64 // DTS + duration of the last sample, shifted
}

func (l *loop) Info() Info { return l.info }

func (l *loop) Next() (chunker.Sample, error) {
	for {
		s, err := l.cur.Next()
		if err == io.EOF {
			if l.count > 0 && l.pass >= l.count {
				return s, io.EOF
			}
			if c, ok := l.cur.(io.Closer); ok {
				c.Close()
			}
			next, err := l.open()
			if err != nil {
				return chunker.Sample{}, err
			}
			l.cur = next
			l.pass++
			l.haveFst = false
			continue
		}
		if err != nil {
			return s, err
		}
		if !l.haveFst {
			l.haveFst = true
			l.first = s.DTS
			if l.pass > 1 {
				l.offset = l.end - s.DTS
			}
		}
		s.DTS += l.offset
		s.PTS += l.offset
		d := s.Duration
		if d <= 0 {
			d = 1
		}
		l.end = s.DTS + d
		return s, nil
	}
}

// Paced delivers the samples of src no faster than real time: Next waits
// until as much wall-clock time has passed since the first sample as its
// DTS says. Stop makes a waiting or later Next return io.EOF.
type Paced struct {
	// Speed is the pace as a multiple of real time; 0 means 1.
	Speed   float64
	src     Source
	start   time.Time
	first   int64
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

// Next returns the next sample once its time has come.
func (p *Paced) Next() (chunker.Sample, error) {
	select {
	case <-p.stop:
		return chunker.Sample{}, io.EOF
	default:
	}
	s, err := p.src.Next()
	if err != nil {
		return s, err
	}
	if !p.started {
		p.started, p.start, p.first = true, time.Now(), s.DTS
		return s, nil
	}
	ts := int64(p.src.Info().Timescale)
	if ts <= 0 {
		ts = 90000
	}
	el := time.Duration((s.DTS - p.first) * int64(time.Second) / ts)
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
			return chunker.Sample{}, io.EOF
		}
	}
	return s, nil
}
