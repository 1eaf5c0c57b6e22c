package source

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/internal/timeline"
)

// Chunks is a Source over a sequence of self-contained MP4 files, each
// starting at time 0 (as a phone writes and uploads them), read as one
// continuous stream.
//
// The files are joined by the rule of internal/timeline's Joiner: each
// file's pictures are presented right where the previous file's end, at
// their own frame step (no hole, no stretched frame); its audio moves with
// its pictures, keeping the file's own audio/video offset (its edit lists
// applied); audio that leads or trails a file's pictures is kept, and a
// frame that lands more than half a frame inside audio already read (a true
// overlap: encoder priming, or audio that runs past the pictures into the
// next file's time) is dropped and counted (AudioDropped). Should a file's
// deeper B-frame delay put its first decode time at or before the previous
// file's last, it moves later until decode times increase. Timestamps are
// converted to the first file's timescales.
//
// SPS and PPS are put in-band at the start, and at the first IDR picture of
// a file whose parameter sets differ from the previous file's.
//
// The audio of a file whose AAC configuration differs from the first
// file's is not read (with a warning): it cannot go into the track the
// first file set up. Every file needs a video track; the first one's
// describes the stream.
type Chunks struct {
	open   func(i int) (io.Reader, error)
	opt    Options
	log    *slog.Logger
	info   Info
	idx    int // index of the current file
	cur    *MP4
	closer io.Closer
	join   *timeline.Joiner
	// the current file's AAC configuration differs from the first file's
	// (a microphone that changed)
	otherAudio bool
	// held is the current file's audio that came before its first
	// picture (its data copied into hbuf): it waits until the picture
	// places the file. ready holds packets to return before reading on:
	// the held audio once placed, then that picture.
	held, ready []Packet
	hbuf        []byte
	// ended: the current file was read to its end and the next one is
	// not open yet (open returned ErrPending).
	ended bool
	err   error
}

// maxLeadAudio bounds the audio frames held before a file's first picture
// arrives; a file with more places itself by its audio.
const maxLeadAudio = 1024

// NewChunks returns a Source over the files that open returns for i = 0,
// 1, 2, ... until it returns io.EOF. When the next file does not exist yet,
// open may block until it does, or return ErrPending: NextPacket then
// returns ErrPending (after every packet of the files before), and a later
// call asks open for the same file again (a server that feeds chunks as
// they arrive). A reader that is also an io.Closer is closed after its
// last sample. Progressive files need readers that can seek, such as
// *os.File or *bytes.Reader. The first file is opened before NewChunks
// returns; its Info describes the stream, with OneTimeline set: the files
// make one timeline, on which a step forward inside a file is a pause of
// its video.
func NewChunks(open func(i int) (io.Reader, error), opt Options) (*Chunks, error) {
	c := &Chunks{open: open, opt: opt, log: opt.logger()}
	ok, err := c.openFile(0)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errorf(ErrInvalid, "chunks: no files")
	}
	c.info = c.cur.Info()
	c.info.OneTimeline = true
	if c.info.NoVideo {
		c.Close()
		return nil, errorf(ErrUnsupported, "chunks: the first file has no H.264 video track")
	}
	var ats uint32
	if c.info.Audio != nil {
		ats = c.info.Audio.Timescale
	}
	c.join = timeline.NewJoiner(c.info.Timescale, ats)
	c.join.Begin(c.clock())
	return c, nil
}

// OpenChunks is NewChunks over the files at paths, in order.
func OpenChunks(paths []string, opt Options) (*Chunks, error) {
	return NewChunks(func(i int) (io.Reader, error) {
		if i >= len(paths) {
			return nil, io.EOF
		}
		return os.Open(paths[i])
	}, opt)
}

// openFile opens file i; ok is false after the last file.
func (c *Chunks) openFile(i int) (ok bool, err error) {
	r, err := c.open(i)
	if err == io.EOF {
		return false, nil
	}
	if errors.Is(err, ErrPending) {
		return false, err
	}
	if err != nil {
		return false, fmt.Errorf("source: chunk %d: %w", i, err)
	}
	closer, _ := r.(io.Closer)
	m, err := NewMP4(r, c.opt)
	if err != nil {
		if closer != nil {
			closer.Close()
		}
		return false, fmt.Errorf("source: chunk %d: %w", i, err)
	}
	if c.cur != nil { // only send parameter sets that change
		m.sentSPS, m.sentPPS, m.started = c.cur.sentSPS, c.cur.sentPPS, c.cur.started
	}
	other := c.info.Audio != nil && m.Info().Audio != nil && !bytes.Equal(m.Info().Audio.ASC, c.info.Audio.ASC)
	if other {
		c.log.Warn("chunks: the file's audio is not read: its configuration differs from the first file's", "index", i)
	}
	c.idx, c.cur, c.closer, c.otherAudio = i, m, closer, other
	return true, nil
}

// clock returns the timescales of the current file.
func (c *Chunks) clock() timeline.Clock {
	in := c.cur.Info()
	cl := timeline.Clock{Video: in.Timescale}
	if in.Audio != nil {
		cl.Audio = in.Audio.Timescale
	}
	return cl
}

// Info describes the stream as the first file does; Timescale is the
// first file's.
func (c *Chunks) Info() Info { return c.info }

// Close closes the current file, if open() returned an io.Closer.
func (c *Chunks) Close() error {
	if c.closer != nil {
		err := c.closer.Close()
		c.closer = nil
		return err
	}
	return nil
}

// Next returns the next video sample of the sequence, or io.EOF after the
// last file.
func (c *Chunks) Next() (chunker.Sample, error) { return nextVideo(c.NextPacket) }

// AudioDropped returns the number of audio frames dropped because they
// overlapped audio read before them.
func (c *Chunks) AudioDropped() int64 { return c.join.Stats().AudioDropped }

// ErrPending is returned by a Chunks' NextPacket when the open function
// given to NewChunks returned it: the next file has not arrived. A later
// NextPacket asks for it again.
var ErrPending = errors.New("source: the next chunk has not arrived")

// NextPacket returns the next video sample or audio frame of the sequence,
// io.EOF after the last file, or ErrPending when the next file has not
// arrived (see NewChunks).
func (c *Chunks) NextPacket() (Packet, error) {
	for {
		if len(c.ready) > 0 {
			p := c.ready[0]
			c.ready = c.ready[1:]
			return p, nil
		}
		if c.err != nil {
			return Packet{}, c.err
		}
		if c.ended {
			if err := c.openNext(); err != nil {
				if errors.Is(err, ErrPending) {
					return Packet{}, err
				}
				c.err = err
			}
			continue
		}
		p, err := c.cur.NextPacket()
		if err == io.EOF {
			c.endFile()
			continue
		}
		if err != nil {
			c.err = fmt.Errorf("chunk %d: %w", c.idx, err)
			continue
		}
		if p.Kind == KindAudio {
			if p, ok := c.audio(p.Audio); ok {
				return p, nil
			}
			continue
		}
		s := p.Video
		placed := c.join.Placed()
		s.DTS, s.PTS, s.Duration = c.join.Video(s.DTS, s.PTS, s.Duration)
		if !placed && len(c.held) > 0 {
			// The file's audio that came first, now placed, goes
			// before its first picture.
			c.placeHeld()
			c.ready = append(c.ready, Packet{Kind: KindVideo, Video: s})
			continue
		}
		return Packet{Kind: KindVideo, Video: s}, nil
	}
}

// endFile ends the current file.
func (c *Chunks) endFile() {
	if !c.join.Placed() && len(c.held) > 0 {
		// A file of audio alone: its audio continues the audio before it.
		c.join.PlaceAudio(c.held[0].Audio.PTS)
		c.placeHeld()
	}
	if cerr := c.Close(); cerr != nil {
		c.log.Warn("closing chunk", "index", c.idx, "err", cerr)
	}
	c.ended = true
}

// openNext opens the file after the current one: io.EOF after the last,
// ErrPending when it has not arrived.
func (c *Chunks) openNext() error {
	ok, err := c.openFile(c.idx + 1)
	if err != nil {
		return err
	}
	if !ok {
		return io.EOF
	}
	c.ended = false
	c.join.Begin(c.clock())
	return nil
}

// audio places an audio frame of the current file on the output timeline;
// ok is false for a frame that is dropped or held until the file's first
// picture.
func (c *Chunks) audio(a chunker.AudioSample) (Packet, bool) {
	if c.info.Audio == nil || c.cur.Info().Audio == nil || c.otherAudio {
		return Packet{}, false
	}
	if !c.join.Placed() {
		// Audio before the file's first picture waits for it.
		if len(c.held) >= maxLeadAudio {
			c.join.PlaceAudio(c.held[0].Audio.PTS)
			c.placeHeld()
			return c.audio(a)
		}
		off := len(c.hbuf)
		c.hbuf = append(c.hbuf, a.Data...)
		a.Data = c.hbuf[off:len(c.hbuf):len(c.hbuf)]
		c.held = append(c.held, Packet{Kind: KindAudio, Audio: a})
		return Packet{}, false
	}
	t, d, ok := c.join.Audio(a.PTS, c.audioDuration(a))
	if !ok {
		c.log.Debug("chunks: dropping an audio frame that overlaps the audio before it", "index", c.idx, "pts", a.PTS)
		return Packet{}, false
	}
	a.PTS, a.Duration = t, d
	return Packet{Kind: KindAudio, Audio: a}, true
}

// audioDuration is the duration of an audio frame of the current file: as
// the file declares it, else the nominal frame length.
func (c *Chunks) audioDuration(a chunker.AudioSample) int64 {
	if a.Duration > 0 {
		return a.Duration
	}
	in := c.cur.Info().Audio
	return timeline.Rescale(int64(in.FrameSamples), uint32(in.SampleRate), in.Timescale)
}

// placeHeld places the held audio frames of the current file, which is
// placed now, and makes them ready, dropping those that overlap.
func (c *Chunks) placeHeld() {
	for _, p := range c.held {
		if t, d, ok := c.join.Audio(p.Audio.PTS, c.audioDuration(p.Audio)); ok {
			p.Audio.PTS, p.Audio.Duration = t, d
			c.ready = append(c.ready, p)
		}
	}
	c.held = c.held[:0]
	c.hbuf = nil // the ready frames keep the old buffer
}
