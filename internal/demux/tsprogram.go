package demux

import (
	"bufio"
	"bytes"
	"errors"
	"io"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	mcts "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/internal/mpegts"
)

// Program is what livechunk reads of an MPEG-TS program: its first H.264
// stream and its first AAC (ADTS) stream that livechunk can use.
type Program struct {
	Video uint16   // the H.264 stream's PID; mpegts.NoPID when there is none
	Audio *TSAudio // nil when there is no usable AAC stream
	// IgnoredAudio names the audio streams left out, by codec ("AC-3",
	// "MPEG-1 audio (MP2/MP3)", "AAC Main", ...); further AAC streams are
	// named "AAC".
	IgnoredAudio []string
	// Unreadable are the AAC streams left out for an error (named in
	// IgnoredAudio too), for a log.
	Unreadable []TrackError
}

// TSAudio is an AAC stream of an MPEG-TS program.
type TSAudio struct {
	PID uint16
	ASC []byte          // the AudioSpecificConfig, built from its first ADTS header
	AAC chunker.AACInfo // what ASC says
}

// FindProgram reads the start of an MPEG-TS stream from r, which must
// begin at a packet, until it knows its program: the program map and the
// first PES packet of its AAC stream, which tells the audio configuration.
// It reads no more than that (a live stream starts promptly), and at most
// limit bytes. It returns the program and the bytes it consumed from r,
// which the caller demultiplexes before the rest of r; buf is used for them
// when large enough. When r is a *bufio.Reader, the search first looks at
// what r buffers without consuming it: a program found there leaves r
// where it was, and head empty.
//
// A program of H.264 and AAC streams is read here, packet by packet, as
// the bytes arrive; any other program is handed to mediacommon's Reader
// (which sees no video payload: mpegts.SkipVideo), which names the other
// codecs. An AAC stream without a frame before the end of the input is
// left out. No program map before the end of the input is ErrTruncated;
// none within limit bytes, ErrInvalid; HEVC video, or neither H.264 nor
// AAC, ErrUnsupported.
func FindProgram(r io.Reader, buf []byte, limit int) (p Program, head []byte, err error) {
	defer guard(&err, "mpegts")
	s := programSearch{f: newProgramFinder(), head: buf[:0], limit: limit}
	if br, ok := r.(*bufio.Reader); ok {
		if p, err, ok := s.peek(br); ok {
			return p, s.head, err
		}
	}
	for {
		if len(s.head) == cap(s.head) {
			s.head = growHead(s.head, limit)
		}
		n, rerr := r.Read(s.head[len(s.head):cap(s.head)])
		s.head = s.head[:len(s.head)+n]
		s.feed(s.head)
		if rerr != nil && rerr != io.EOF {
			return p, s.head, rerr
		}
		if p, err, ok := s.answer(r, rerr == io.EOF); ok {
			return p, s.head, err
		}
	}
}

// programSearch is the state of FindProgram.
type programSearch struct {
	f     *programFinder
	fed   int    // bytes of the input the finder has seen
	head  []byte // the bytes consumed from the input
	limit int
}

// peek searches what br buffers, reading more into its buffer as it
// arrives, without consuming it. ok reports an answer; otherwise the
// buffer is full, and what it holds has been moved to s.head.
func (s *programSearch) peek(br *bufio.Reader) (p Program, err error, ok bool) {
	for {
		b, perr := br.Peek(min(br.Buffered()+1, br.Size()))
		s.feed(b)
		if perr != nil && perr != io.EOF && perr != bufio.ErrBufferFull {
			return p, perr, true
		}
		if p, err, ok := s.answer(br, perr == io.EOF); ok {
			return p, err, true
		}
		if len(b) == br.Size() {
			s.head = append(s.head, b...)
			_, err := br.Discard(len(b))
			return p, err, err != nil
		}
	}
}

// feed gives the finder the whole packets of b, the input from its start,
// that it has not seen.
func (s *programSearch) feed(b []byte) {
	for s.fed+mpegts.PacketSize <= len(b) && !s.f.done() {
		if b[s.fed] != mpegts.SyncByte {
			s.fed++ // lost sync: on to the next sync byte
			continue
		}
		s.f.packet(b[s.fed : s.fed+mpegts.PacketSize])
		s.fed += mpegts.PacketSize
	}
}

// answer returns the program when what was read tells it (ok), or an
// error; r is the rest of the input, for mediacommon. eof reports the end
// of the input.
func (s *programSearch) answer(r io.Reader, eof bool) (p Program, err error, ok bool) {
	switch {
	case s.f.done() || eof && s.f.pmt:
		if p, ok := s.f.program(); ok {
			return p, nil, true
		}
		p, s.head, err = findWithMediacommon(r, s.head, s.limit)
		return p, err, true
	case eof:
		return p, errorf(ErrTruncated, "no program map table"), true
	case len(s.head) >= s.limit || s.fed >= s.limit:
		return p, errorf(ErrInvalid, "no program map table or no audio configuration in the first %d MiB", s.limit>>20), true
	}
	return p, nil, false
}

// growHead makes room in head for more of the input, up to limit bytes.
func growHead(head []byte, limit int) []byte {
	n := min(max(2*cap(head), 64<<10), max(limit, len(head)+1))
	out := make([]byte, len(head), n)
	copy(out, head)
	return out
}

// programFinder follows the program tables and the first PES packet of the
// program's AAC stream, packet by packet.
type programFinder struct {
	pat, pmtSec mpegts.Section
	pmtPID      int // -1 until the PAT is read
	pmt         bool
	streams     []mpegts.ES
	adts        mpegts.Depacketizer // the first AAC stream's
	audio       *TSAudio
	audioDone   bool // its first PES packet was read (audio nil: not usable)
}

func newProgramFinder() *programFinder {
	f := &programFinder{pmtPID: -1}
	f.pat.PID = 0
	f.adts = mpegts.Depacketizer{PID: mpegts.NoPID, OnErr: func(error) {}, Raw: f.firstADTS}
	return f
}

// done reports whether the finder knows the program or that it cannot
// read it (it is then mediacommon's).
func (f *programFinder) done() bool {
	return f.pmt && (f.adts.PID == mpegts.NoPID || f.audioDone)
}

func (f *programFinder) packet(p []byte) {
	if f.pmtPID < 0 {
		if sec := f.pat.Packet(p); sec != nil {
			if pid, ok := mpegts.PATProgram(sec); ok {
				f.pmtPID = int(pid)
				f.pmtSec.PID = pid
			}
		}
		return
	}
	if !f.pmt {
		if sec := f.pmtSec.Packet(p); sec != nil {
			f.readPMT(sec)
		}
		return
	}
	_ = f.adts.Packet(p) // its only error is a PES packet over 64 MiB
}

// readPMT takes the program map: the PID of the first AAC stream is
// followed, when it is a program of H.264 and AAC streams.
func (f *programFinder) readPMT(sec []byte) {
	var err error
	if f.streams, err = mpegts.PMTStreams(f.streams[:0], sec); err != nil {
		return
	}
	f.pmt = true
	for _, es := range f.streams {
		if es.Type == mpegts.StreamADTS {
			f.adts.PID = es.PID
			break
		}
	}
}

// firstADTS reads the configuration of the AAC stream from the header of
// the first ADTS frame of its first PES packet, as mediacommon does.
func (f *programFinder) firstADTS(_ int64, data []byte) error {
	f.audioDone = true
	f.adts.PID = mpegts.NoPID
	var pkts mpeg4audio.ADTSPackets
	if err := pkts.Unmarshal(data); err != nil || len(pkts) == 0 {
		return nil
	}
	conf := mpeg4audio.AudioSpecificConfig{Type: pkts[0].Type, SampleRate: pkts[0].SampleRate, ChannelConfig: pkts[0].ChannelConfig}
	asc, err := conf.Marshal()
	if err != nil {
		return nil
	}
	info, err := chunker.ParseAudioSpecificConfig(asc)
	if err != nil {
		return nil
	}
	f.audio = &TSAudio{PID: 0, ASC: asc, AAC: info}
	return nil
}

// program returns the program when it is one of H.264 and at most one AAC
// stream whose first frame was read and can be used (or never came); ok is
// false for any other, which mediacommon classifies.
func (f *programFinder) program() (p Program, ok bool) {
	p.Video = mpegts.NoPID
	aac := 0
	for _, es := range f.streams {
		switch es.Type {
		case mpegts.StreamH264:
			if p.Video == mpegts.NoPID {
				p.Video = es.PID
			}
		case mpegts.StreamADTS:
			if aac++; aac == 1 && f.audio != nil {
				p.Audio = f.audio
				p.Audio.PID = es.PID
			}
		default:
			return p, false
		}
	}
	switch {
	case aac > 1, aac == 1 && f.audioDone && f.audio == nil:
		return p, false // a second stream to name, or a first one that mediacommon explains
	case p.Video == mpegts.NoPID && p.Audio == nil:
		return p, false
	}
	return p, true
}

// errHeadTooLong ends mediacommon's search at the limit.
var errHeadTooLong = errors.New("head too long")

// recorder appends what is read through it to buf, up to limit bytes.
type recorder struct {
	r     io.Reader
	buf   *[]byte
	limit int
}

func (c *recorder) Read(p []byte) (int, error) {
	if len(*c.buf)+len(p) > c.limit {
		p = p[:max(c.limit-len(*c.buf), 0)]
		if len(p) == 0 {
			return 0, errHeadTooLong
		}
	}
	n, err := c.r.Read(p)
	*c.buf = append(*c.buf, p[:n]...)
	return n, err
}

// findWithMediacommon finds the program with mediacommon's Reader, which
// reads head and then as much more of r as it needs (appended to head).
func findWithMediacommon(r io.Reader, head []byte, limit int) (p Program, _ []byte, err error) {
	p.Video = mpegts.NoPID
	rec := &recorder{r: r, buf: &head, limit: limit}
	mr := &mcts.Reader{R: mpegts.SkipVideo(io.MultiReader(bytes.NewReader(head[:len(head):len(head)]), rec))}
	if err := mr.Initialize(); err != nil {
		switch {
		case errors.Is(err, errHeadTooLong):
			return p, head, errorf(ErrInvalid, "no program map table or no audio configuration in the first %d MiB", limit>>20)
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return p, head, errorf(ErrTruncated, "no program map table and first audio frame before the end of the input")
		}
		return p, head, errorf(ErrInvalid, "%v", err)
	}
	other := ""
	for _, tr := range mr.Tracks() {
		switch c := tr.Codec.(type) {
		case *codecs.H264:
			if p.Video == mpegts.NoPID {
				p.Video = tr.PID
			}
		case *codecs.H265:
			other = "HEVC"
		case *codecs.AC3:
			p.IgnoredAudio = append(p.IgnoredAudio, "AC-3")
		case *codecs.EAC3:
			p.IgnoredAudio = append(p.IgnoredAudio, "E-AC-3")
		case *codecs.MPEG1Audio:
			p.IgnoredAudio = append(p.IgnoredAudio, "MPEG-1 audio (MP2/MP3)")
		case *codecs.Opus:
			p.IgnoredAudio = append(p.IgnoredAudio, "Opus")
		case *codecs.MPEG4AudioLATM:
			p.IgnoredAudio = append(p.IgnoredAudio, "AAC in LATM")
		case *codecs.MPEG4Audio:
			p.addAAC(tr.PID, c)
		}
	}
	switch {
	case p.Video == mpegts.NoPID && other != "":
		return p, head, errorf(ErrUnsupported, "video is %s, not H.264", other)
	case p.Video == mpegts.NoPID && p.Audio == nil:
		return p, head, errorf(ErrUnsupported, "no H.264 stream (nor an AAC one)")
	}
	return p, head, nil
}

// addAAC takes an AAC stream that mediacommon found: the first usable one
// is read, the others are named.
func (p *Program) addAAC(pid uint16, c *codecs.MPEG4Audio) {
	asc, err := c.Config.Marshal()
	if err != nil {
		p.IgnoredAudio = append(p.IgnoredAudio, "AAC (unreadable)")
		p.Unreadable = append(p.Unreadable, TrackError{ID: uint32(pid), Err: err})
		return
	}
	if p.Audio != nil {
		p.IgnoredAudio = append(p.IgnoredAudio, AACName(asc))
		return
	}
	info, err := chunker.ParseAudioSpecificConfig(asc)
	if err != nil {
		p.IgnoredAudio = append(p.IgnoredAudio, UnreadableAAC(asc))
		p.Unreadable = append(p.Unreadable, TrackError{ID: uint32(pid), Err: err})
		return
	}
	p.Audio = &TSAudio{PID: pid, ASC: asc, AAC: info}
}
