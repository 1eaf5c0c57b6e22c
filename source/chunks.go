package source

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/livechunk/livechunk/chunker"
)

// Chunks is a Source over a sequence of self-contained MP4 files, each
// starting at time 0 (as a phone writes and uploads them), read as one
// continuous stream.
//
// Each file's timestamps (after its edit list) are offset so that it starts
// exactly where the previous one ended: the offset of file k+1 is the
// offset of file k plus (last DTS + last sample duration − first DTS) of
// file k, widened by its audio where that runs more than two frames
// before its first picture or after its last (see ChunkExtent). Timestamps of files with a timescale other than the first one's
// are converted to the first file's timescale. Should a file's first DTS
// not exceed the previous file's last DTS (a deeper B-frame delay than its
// predecessor), the offset is raised so that DTS keeps increasing.
//
// SPS and PPS are put in-band at the start, and at the first IDR picture of
// a file whose parameter sets differ from the previous file's.
//
// Audio (when the first file has an AAC track) is shifted by the same
// offset as the video of its file, converted to the first file's audio
// timescale, so each file's audio/video offset is kept. A frame that would
// not come after the previous file's last frame (each file's encoder
// priming overlaps its predecessor's end) is dropped. The audio of a file
// whose AAC configuration differs from the first file's is not read (with
// a warning). Every file needs a video track.
type Chunks struct {
	open   func(i int) (io.Reader, error)
	opt    Options
	log    *slog.Logger
	info   Info
	idx    int // index of the current file
	cur    *MP4
	closer io.Closer

	offset   int64 // added to the current file's (rescaled) times
	first    bool  // no sample of the current file yet
	firstDTS int64 // current file's first DTS, in its timescale
	lastEnd  int64 // current file's last DTS + duration, in its timescale
	vPres    int64 // current file's earliest PTS, in its timescale
	// where the current file's recorded audio starts and ends, in its
	// video timescale, when haveA (see ChunkExtent)
	aStart, aEnd int64
	haveA        bool
	// the current file's AAC configuration differs from the first file's
	// (a microphone that changed): its frames cannot go into the track
	// the first file set up, and are not read
	otherAudio bool
	haveOut    bool
	outDTS     int64 // last DTS returned, in the output timescale
	outDur     int64
	haveAud    bool
	outPTS     int64 // last audio PTS returned, in the output audio timescale
	dropped    int64 // overlapping audio frames dropped
	err        error
}

// NewChunks returns a Source over the files that open returns for i = 0,
// 1, 2, ... until it returns io.EOF (open may block until the next file
// exists). A reader that is also an io.Closer is closed after its last
// sample. Progressive files need readers that can seek, such as *os.File.
// The first file is opened before NewChunks returns; its Info describes
// the stream.
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
	if c.info.NoVideo {
		c.Close()
		return nil, errorf(ErrUnsupported, "chunks: the first file has no H.264 video track")
	}
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
	c.idx, c.cur, c.closer, c.first, c.haveA, c.otherAudio = i, m, closer, true, false, other
	return true, nil
}

// ChunkExtent returns where a chunk of a sequence (a self-contained MP4
// starting at time 0, as a phone uploads them) begins and ends on its own
// timeline, in its video's ticks, so that the next chunk can be placed
// right after it: from its first decode time vFirst for span ticks (the
// sum of its pictures' durations), widened by as much as its audio (from
// aStart to aEnd, the end of its last frame) starts before its first
// picture is presented (at vPres) or ends after its last, when that is
// more than tol (say two AAC frames): an edit list that delays the video,
// audio that runs on. Such audio would otherwise overlap the neighbouring
// chunk and be dropped. A difference within tol (encoder priming) keeps
// the video's extent, so that the priming overlaps the chunk before and
// is dropped. Chunks uses it, and so does the server's chunk ingest.
func ChunkExtent(vFirst, span, vPres, aStart, aEnd, tol int64) (start, end int64) {
	start, end = vFirst, vFirst+span
	if lead := vPres - aStart; lead > tol {
		start -= lead
	}
	if tail := aEnd - (vPres + span); tail > tol {
		end += tail
	}
	return start, end
}

// extent is ChunkExtent of the current file, in its timescale.
func (c *Chunks) extent() (start, end int64) {
	span := c.lastEnd - c.firstDTS
	if !c.haveA {
		return c.firstDTS, c.lastEnd
	}
	a := c.info.Audio
	tol := 2 * int64(a.FrameSamples) * int64(c.cur.Info().Timescale) / int64(max(a.SampleRate, 1))
	return ChunkExtent(c.firstDTS, span, c.vPres, c.aStart, c.aEnd, tol)
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
// overlapped the previous file's audio.
func (c *Chunks) AudioDropped() int64 { return c.dropped }

// NextPacket returns the next video sample or audio frame of the sequence,
// or io.EOF after the last file.
func (c *Chunks) NextPacket() (Packet, error) {
	if c.err != nil {
		return Packet{}, c.err
	}
	for {
		p, err := c.cur.NextPacket()
		if err == io.EOF {
			if !c.first { // the file had samples: the next one starts at its end
				ts := c.cur.Info().Timescale
				start, end := c.extent()
				c.offset += rescale(end, ts, c.info.Timescale) - rescale(start, ts, c.info.Timescale)
			}
			if cerr := c.Close(); cerr != nil {
				c.log.Warn("closing chunk", "index", c.idx, "err", cerr)
			}
			ok, err := c.openFile(c.idx + 1)
			if err != nil {
				c.err = err
				return Packet{}, err
			}
			if !ok {
				c.err = io.EOF
				return Packet{}, io.EOF
			}
			continue
		}
		if err != nil {
			c.err = fmt.Errorf("chunk %d: %w", c.idx, err)
			return Packet{}, c.err
		}
		if p.Kind == KindAudio {
			a, ok := c.audio(p.Audio)
			if !ok {
				continue
			}
			return Packet{Kind: KindAudio, Audio: a}, nil
		}
		s := p.Video
		ts := c.cur.Info().Timescale
		if c.first {
			c.first = false
			c.firstDTS, c.vPres = s.DTS, s.PTS
			if c.haveOut {
				if d := c.offset + rescale(s.DTS, ts, c.info.Timescale); d <= c.outDTS {
					bump := c.outDTS + max(c.outDur, 1) - d
					c.log.Warn("chunk starts before the previous one ends; shifting it", "index", c.idx, "ticks", bump)
					c.offset += bump
				}
			}
		}
		c.lastEnd = s.DTS + s.Duration
		c.vPres = min(c.vPres, s.PTS)
		end := c.offset + rescale(s.DTS+s.Duration, ts, c.info.Timescale)
		s.DTS = c.offset + rescale(s.DTS, ts, c.info.Timescale)
		s.PTS = c.offset + rescale(s.PTS, ts, c.info.Timescale)
		s.Duration = end - s.DTS
		c.haveOut, c.outDTS, c.outDur = true, s.DTS, s.Duration
		return Packet{Kind: KindVideo, Video: s}, nil
	}
}

// audio shifts an audio frame of the current file onto the output
// timeline; ok is false for a frame to drop.
func (c *Chunks) audio(a chunker.AudioSample) (chunker.AudioSample, bool) {
	out, in := c.info.Audio, c.cur.Info().Audio
	if out == nil || in == nil || c.otherAudio {
		return a, false
	}
	// Where the file's audio lies on its own timeline (see extent).
	ts := c.cur.Info().Timescale
	t := rescale(a.PTS, in.Timescale, ts)
	frame := int64(in.FrameSamples) * int64(ts) / int64(max(in.SampleRate, 1))
	if !c.haveA {
		c.haveA, c.aStart = true, t
	}
	c.aEnd = t + frame
	a.PTS = rescale(c.offset, c.info.Timescale, out.Timescale) + rescale(a.PTS, in.Timescale, out.Timescale)
	if c.haveAud && a.PTS <= c.outPTS {
		c.dropped++
		c.log.Debug("chunks: dropping an audio frame that overlaps the previous one", "index", c.idx, "pts", a.PTS)
		return a, false
	}
	c.haveAud, c.outPTS = true, a.PTS
	return a, true
}
