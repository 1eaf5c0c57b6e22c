package source

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/internal/timeline"
)

// Chunks is a Source over a sequence of self-contained MP4 files, each
// starting at time 0 (as a phone writes and uploads them), read as one
// continuous stream.
//
// The files are joined so that each file's pictures are presented right
// where the previous file's end, at their own frame step (no hole, no stretched frame); its audio moves with
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
	j    joined
	open func(i int) (io.Reader, error)
	opt  Options
	// sent: the parameter sets last put in band, for the next file when
	// the sequence was resumed (ResumeChunks) and no file was read yet
	sent *sentParams
}

// sentParams is what an MP4 source last put in band.
type sentParams struct {
	SPS     [][]byte `json:"sps,omitempty"`
	PPS     [][]byte `json:"pps,omitempty"`
	Started bool     `json:"started,omitempty"`
}

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
// its video. An error of open for the first file (ErrPending included) is
// returned by NewChunks; a later one, other than ErrPending, by
// NextPacket, for good. open is called on the goroutine that calls
// NewChunks, Next or NextPacket.
func NewChunks(open func(i int) (io.Reader, error), opt Options) (*Chunks, error) {
	if open == nil {
		return nil, fmt.Errorf("%w: nil open function", ErrInvalid)
	}
	c := &Chunks{open: open, opt: opt}
	c.j = joined{next: c.openFile, handOver: shareParamSets, what: "chunk", log: opt.logger()}
	if err := c.j.start(); err != nil {
		return nil, err
	}
	c.j.info.OneTimeline = true
	if c.j.info.NoVideo {
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

// openFile opens file i as an MP4 (a File that closes its reader, when
// the reader is an io.Closer).
func (c *Chunks) openFile(i int) (Source, error) {
	r, err := c.open(i)
	if err == io.EOF || errors.Is(err, ErrPending) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("source: chunk %d: %w", i, err)
	}
	closer, _ := r.(io.Closer)
	m, err := NewMP4(r, c.opt)
	if err != nil {
		if closer != nil {
			closer.Close()
		}
		return nil, fmt.Errorf("source: chunk %d: %w", i, err)
	}
	if p := c.sent; p != nil {
		m.sentSPS, m.sentPPS, m.started = p.SPS, p.PPS, p.Started
		c.sent = nil
	}
	if closer == nil {
		return m, nil
	}
	return &File{Source: m, closer: closer}, nil
}

// shareParamSets makes the next file put in band only the parameter sets
// that change from the file before.
func shareParamSets(prev, next Source) {
	if o, n := asMP4(prev), asMP4(next); o != nil && n != nil {
		n.sentSPS, n.sentPPS, n.started = o.sentSPS, o.sentPPS, o.started
	}
}

// Info describes the stream as the first file does; Timescale is the
// first file's.
func (c *Chunks) Info() Info { return c.j.info }

// Close closes the current file, if open returned an io.Closer. The Chunks
// is not to be read afterwards.
func (c *Chunks) Close() error { return c.j.closeCur() }

// Next returns the next video sample of the sequence, or io.EOF after the
// last file.
func (c *Chunks) Next() (chunker.Sample, error) { return nextVideo(c.NextPacket) }

// AudioDropped returns the number of audio frames dropped because they
// overlapped audio read before them.
func (c *Chunks) AudioDropped() int64 { return c.j.join.Stats().AudioDropped }

// NextPacket returns the next video sample or audio frame of the sequence,
// io.EOF after the last file, or ErrPending when the next file has not
// arrived (see NewChunks).
func (c *Chunks) NextPacket() (Packet, error) { return c.j.nextPacket() }

// ChunksState is where a Chunks stands between two files: the stream as
// its first file described it, the index of the next file, the joining
// rule's state and the parameter sets last put in band. A Chunks resumed
// from it (ResumeChunks), in another process say, reads the next file
// exactly as this one would have. It marshals to JSON; its contents are
// not a stable format across versions of livechunk.
type ChunksState struct{ s chunksState }

type chunksState struct {
	Info Info               `json:"info"`
	Next int                `json:"next"`
	Join timeline.JoinState `json:"join"`
	Sent sentParams         `json:"sent"`
}

// MarshalJSON implements json.Marshaler.
func (s ChunksState) MarshalJSON() ([]byte, error) { return json.Marshal(s.s) }

// UnmarshalJSON implements json.Unmarshaler.
func (s *ChunksState) UnmarshalJSON(b []byte) error { return json.Unmarshal(b, &s.s) }

// Next returns the index of the file the state reads next.
func (s ChunksState) Next() int { return s.s.Next }

// ErrNotBetweenFiles is returned by State while a file is being read.
var ErrNotBetweenFiles = errors.New("source: chunks: not between files")

// State returns where the sequence stands. It is valid between files only:
// once NextPacket has returned ErrPending (every packet of the files so far
// returned, the next one not opened); otherwise the error is
// ErrNotBetweenFiles.
func (c *Chunks) State() (ChunksState, error) {
	j := &c.j
	if !j.ended || len(j.ready) > 0 || len(j.held) > 0 || j.err != nil {
		return ChunksState{}, ErrNotBetweenFiles
	}
	st := chunksState{Info: j.info, Next: j.idx + 1, Join: j.join.State()}
	if m := asMP4(j.cur); m != nil {
		st.Sent = sentParams{SPS: m.sentSPS, PPS: m.sentPPS, Started: m.started}
	} else if c.sent != nil {
		// Resumed, and no file read since.
		st.Sent = *c.sent
	}
	return ChunksState{st}, nil
}

// ResumeChunks returns a Chunks that goes on from a state (see State): its
// first NextPacket opens file state.Next() with open (not nil), which is
// called as by NewChunks. Its Info is the state's.
func ResumeChunks(open func(i int) (io.Reader, error), state ChunksState, opt Options) *Chunks {
	st := state.s
	c := &Chunks{open: open, opt: opt, sent: &st.Sent}
	c.j = joined{next: c.openFile, handOver: shareParamSets, what: "chunk", log: opt.logger(),
		info: st.Info, idx: st.Next - 1, ended: true, join: timeline.ResumeJoiner(st.Join)}
	return c
}
