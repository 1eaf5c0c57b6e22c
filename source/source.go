// Package source demuxes real inputs into [chunker.Sample]s: the H.264
// access units of one video track, in decode order, with their PTS and DTS,
// and the [chunker.AudioSample]s of one AAC track beside it.
//
// [Source.Next] yields the video alone; [Source.NextPacket] yields both
// tracks interleaved as the input carries them (progressive MP4 in time
// order, fragments and MPEG-TS in file order), as a live stream would. Audio
// timestamps keep the input's relation to the video (edit lists, encoder
// priming), so audio/video sync survives segmenting. An input with an AAC
// track and no H.264 one is read as audio only (Info.NoVideo).
//
// Four framings are read:
//
//   - progressive MP4 and QuickTime MOV ([NewMP4]), with any timescale,
//     variable frame rate, B-frames (ctts, also signed) and edit lists;
//     sample data is read lazily from the file, never loaded as a whole;
//   - fragmented MP4 ([NewMP4]), read fragment by fragment, also from a pipe;
//   - MPEG-TS ([NewTS]), streamed from any io.Reader;
//   - raw H.264 Annex-B ([NewAnnexB]), timed from the SPS VUI or a given frame
//     rate, with PTS derived from the picture order count.
//
// [NewChunks] joins a sequence of self-contained MP4 files, each starting at
// time 0 (as phones upload them), into one continuous stream. [Open] and
// [NewReader] detect the container from its first bytes.
//
// Bad input yields an error that matches [ErrInvalid], [ErrTruncated],
// [ErrUnsupported] or [ErrNoFrameRate] with errors.Is; panics of the
// dependency parsers are recovered and reported as [ErrInvalid]. Errors of
// the underlying reader are returned wrapped. Errors are permanent: once
// Next or NextPacket has returned one (io.EOF included), every later call
// returns it again. The one exception is [ErrPending] of a [Chunks].
//
// A Source is not safe for concurrent use, except [Paced.Stop]. No
// constructor starts a goroutine. Next and NextPacket block on reads of the
// input (and Paced on the clock, Chunks on its open function); a Source
// over an io.Reader keeps it, and does not close it unless it says so
// ([File], [Chunks]).
package source

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/internal/demux"
)

// Source yields the H.264 samples of one video track in decode order, and
// the AAC frames of one audio track. It is not safe for concurrent use.
type Source interface {
	// Info describes the stream. It does not change as the stream is
	// read; its slices and Audio are shared and must not be modified.
	Info() Info
	// Next returns the next video sample, or io.EOF after the last one,
	// skipping audio. The sample's NAL units may alias an internal buffer
	// that stays valid until the next call of Next or NextPacket.
	Next() (chunker.Sample, error)
	// NextPacket returns the next video sample or audio frame, interleaved
	// as the input carries them (video by DTS, audio by PTS; MPEG-TS muxers
	// often deliver audio late), or io.EOF after the last one. The chunker
	// accepts either order. Its data may alias an internal
	// buffer that stays valid until the next call of Next or NextPacket.
	// Mixing Next and NextPacket calls is allowed (Next skips audio).
	NextPacket() (Packet, error)
}

// Kind tells which track a Packet belongs to.
type Kind uint8

const (
	// KindVideo is an H.264 access unit (Packet.Video).
	KindVideo Kind = iota
	// KindAudio is an AAC frame (Packet.Audio).
	KindAudio
)

// Packet is one access unit of either track.
type Packet struct {
	Kind  Kind                // which of Video and Audio is set
	Video chunker.Sample      // when Kind is KindVideo
	Audio chunker.AudioSample // when Kind is KindAudio
}

// AudioInfo describes an AAC track.
type AudioInfo struct {
	// ASC is the AudioSpecificConfig (from the esds box, or built from the
	// ADTS header for MPEG-TS).
	ASC []byte
	// Timescale is the number of ticks per second of AudioSample.PTS: the
	// MP4 track (mdhd) timescale, or 90000 for MPEG-TS.
	Timescale uint32
	// AACInfo is what the ASC says: codec string, rates, channels.
	chunker.AACInfo
}

// Config returns the chunker configuration of the track (nil for a nil
// a). The ASC is shared, not copied.
func (a *AudioInfo) Config() *chunker.AudioConfig {
	if a == nil {
		return nil
	}
	return &chunker.AudioConfig{ASC: a.ASC, Timescale: a.Timescale}
}

// AudioNote tells a user, in one sentence, which audio tracks of an input
// are not recorded (ignored, as in Info.IgnoredAudio) and why; recorded
// reports whether an AAC track is. It is "" when nothing is left out.
func AudioNote(recorded bool, ignored []string) string {
	switch {
	case len(ignored) == 0:
		return ""
	case recorded:
		return fmt.Sprintf("one audio track is recorded (the first AAC-LC or HE-AAC one); not recorded: %s", strings.Join(ignored, ", "))
	}
	return fmt.Sprintf("the input's audio (%s) is not recorded: livechunk records readable AAC-LC and HE-AAC audio only", strings.Join(ignored, ", "))
}

// Format is a container format recognized by [Open] and [NewReader].
type Format int

const (
	// FormatUnknown is not a recognized format.
	FormatUnknown Format = iota
	// FormatMP4 is ISO BMFF: progressive or fragmented MP4, or QuickTime MOV.
	FormatMP4
	// FormatTS is MPEG-2 transport stream with 188-byte packets.
	FormatTS
	// FormatAnnexB is a raw H.264 byte stream (ITU-T H.264 Annex B).
	FormatAnnexB
)

// String returns "mp4", "ts", "h264" or "unknown".
func (f Format) String() string {
	switch f {
	case FormatMP4:
		return "mp4"
	case FormatTS:
		return "ts"
	case FormatAnnexB:
		return "h264"
	}
	return "unknown"
}

// Info describes a stream.
type Info struct {
	// Format is the container that was read.
	Format Format
	// Timescale is the number of sample ticks per second: the MP4 track
	// (mdhd) timescale, or 90000 for MPEG-TS and Annex-B.
	Timescale uint32
	// WrapBits is 33 for MPEG-TS, whose raw timestamps are passed through
	// and wrap at 2^33 ticks (set chunker.Config.WrapBits to it); 0 when
	// timestamps do not wrap.
	WrapBits uint
	// SPS and PPS are the first parameter sets of the stream (NAL units
	// without framing), when known before the first sample.
	SPS, PPS [][]byte
	// Width and Height are the picture size after cropping, when known.
	Width, Height int
	// Matrix is the video track's transformation matrix from an MP4 or MOV
	// tkhd box ({a, b, u, c, d, v, x, y, w}, 16.16 fixed point, u, v and w
	// 2.30): how the picture is rotated or flipped for display, as phones
	// record portrait video. Zero when the input has none or the identity
	// (see chunker.Config.Matrix).
	Matrix [9]int32
	// Audio describes the AAC track that NextPacket interleaves with the
	// video; nil when the input has none (or only audio of another codec).
	Audio *AudioInfo
	// OneTimeline reports that the decode times are those of one
	// recording (a progressive MP4's sample tables, or a sequence of them as
	// chunks, each continuing the one before): a step forward is a pause
	// of the video (variable frame rate, as in screen recordings), never a
	// timestamp jump. Config.WithSource in package livechunk then turns
	// the chunker's jump detection off.
	OneTimeline bool
	// IgnoredAudio names the audio tracks that are not read, by codec
	// ("AC-3", "MP3", "Opus", "AAC Main", ...): livechunk records one
	// track of AAC-LC or HE-AAC (v1 or v2), the first; the other AAC
	// tracks of such an input are named too ("AAC").
	IgnoredAudio []string
	// Bitrate is the input's average bit rate in bits per second, when the
	// container tells it before the first sample (a progressive MP4 or MOV
	// file: its size without the moov box over the movie's duration); 0
	// when unknown. It is a hint (see chunker.Config.Bitrate).
	Bitrate int64
	// NoVideo reports an input with an AAC track and no H.264 one: Next
	// returns io.EOF at once, NextPacket yields the audio, and the
	// video fields above are zero.
	NoVideo bool
}

// Options configures a Source. The zero value is usable.
type Options struct {
	// FrameRate, in frames per second, times raw Annex-B input whose SPS
	// carries no VUI timing information. It is not used when the SPS has
	// timing, nor for other formats.
	FrameRate float64
	// Logger receives warnings about recoverable problems in the input
	// (for example MPEG-TS decode errors). Default: discard.
	Logger *slog.Logger

	ignoreVUI bool // tests: treat the SPS as if it had no VUI
}

func (o Options) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Errors reported for bad input; test with errors.Is. Returned errors wrap
// one of them with context.
var (
	// ErrInvalid reports input that is malformed or not a recognized
	// container.
	ErrInvalid = errors.New("source: invalid input")
	// ErrTruncated reports input that ends in the middle of a structure
	// (a box, a sample, a header).
	ErrTruncated = errors.New("source: truncated input")
	// ErrUnsupported reports well-formed input that this package does not
	// read: neither an H.264 video nor an AAC audio track, HEVC, encrypted
	// samples, a progressive MP4 on a stream that cannot seek, chunk
	// sequences without video.
	ErrUnsupported = errors.New("source: unsupported input")
	// ErrNoFrameRate reports raw H.264 without VUI timing information when
	// Options.FrameRate is not set.
	ErrNoFrameRate = errors.New("source: raw H.264 without timing information; set Options.FrameRate")
)

// errorf returns an error that wraps kind and formats the context.
func errorf(kind error, format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{kind}, args...)...)
}

// recoverInvalid converts a panic of a dependency parser into ErrInvalid.
// Use as: defer recoverInvalid(&err, "what").
func recoverInvalid(err *error, what string) {
	if r := recover(); r != nil {
		*err = errorf(ErrInvalid, "%s: parser panic: %v", what, r)
	}
}

// isTypedErr reports whether err is nil, io.EOF or one of the sentinels.
func isTypedErr(err error) bool {
	return err == nil || err == io.EOF || errors.Is(err, ErrInvalid) || errors.Is(err, ErrTruncated) ||
		errors.Is(err, ErrUnsupported) || errors.Is(err, ErrNoFrameRate)
}

// sniffLen is the number of leading bytes that Sniff looks at.
const sniffLen = demux.SniffLen

// Sniff detects the format of an input from its first bytes (up to 8 KiB
// are examined): an MP4 box type at offset 4 (ftyp, moov, styp, ...),
// MPEG-TS sync bytes every 188 bytes (from the start, or after some bytes
// that are not packets), or an Annex-B start code.
func Sniff(b []byte) Format {
	switch demux.Sniff(b) {
	case demux.MP4:
		return FormatMP4
	case demux.TS:
		return FormatTS
	case demux.AnnexB:
		return FormatAnnexB
	}
	return FormatUnknown
}

// nextVideo implements Next over a NextPacket function: it skips audio.
func nextVideo(next func() (Packet, error)) (chunker.Sample, error) {
	for {
		p, err := next()
		if err != nil {
			return chunker.Sample{}, err
		}
		if p.Kind == KindVideo {
			return p.Video, nil
		}
	}
}

// File is a Source opened by [Open]; Info().Format tells the detected
// container. Close releases the file.
type File struct {
	// Source reads the file; its methods are the File's.
	Source
	closer io.Closer
}

// Close closes the underlying file. Closing standard input is a no-op.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	c := f.closer
	f.closer = nil
	return c.Close()
}

// Open opens the file at path and detects its format with [Sniff]. The path
// "-" reads standard input, which may be MPEG-TS, Annex-B or fragmented MP4
// (a progressive MP4 needs a seekable file).
func Open(path string, opt Options) (*File, error) {
	if path == "-" {
		src, err := newSniffed(os.Stdin, opt)
		if err != nil {
			return nil, fmt.Errorf("source: stdin: %w", err)
		}
		return &File{Source: src}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	src, err := newSniffed(f, opt)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("source: %s: %w", path, err)
	}
	return &File{Source: src, closer: f}, nil
}

// NewReader detects the format of r with [Sniff] and returns the matching
// Source. When r is an io.ReadSeeker it must be positioned at the start of
// the input; otherwise MP4 input must be fragmented.
func NewReader(r io.Reader, opt Options) (Source, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: nil reader", ErrInvalid)
	}
	return newSniffed(r, opt)
}

func newSniffed(r io.Reader, opt Options) (Source, error) {
	if rs, ok := r.(io.ReadSeeker); ok {
		if start, err := rs.Seek(0, io.SeekCurrent); err == nil {
			head := make([]byte, sniffLen)
			n, err := io.ReadFull(rs, head)
			if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
				return nil, fmt.Errorf("source: %w", err)
			}
			if _, err := rs.Seek(start, io.SeekStart); err != nil {
				return nil, fmt.Errorf("source: %w", err)
			}
			return newFormat(rs, head[:n], opt)
		}
	}
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(sniffLen)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return nil, fmt.Errorf("source: %w", err)
	}
	return newFormat(br, head, opt)
}

// newFormat opens r as the format that Sniff finds in head, its first
// bytes.
func newFormat(r io.Reader, head []byte, opt Options) (Source, error) {
	var (
		src Source
		err error
	)
	switch Sniff(head) {
	case FormatMP4:
		src, err = NewMP4(r, opt)
	case FormatTS:
		src, err = NewTS(r, opt)
	case FormatAnnexB:
		src, err = NewAnnexB(r, opt)
	default:
		if len(head) == 0 {
			return nil, errorf(ErrTruncated, "empty input")
		}
		if demux.IsM2TS(head) {
			return nil, errorf(ErrUnsupported, "M2TS (192-byte packets, as Blu-ray and AVCHD cameras write) is not read; remux it with ffmpeg -c copy -f mpegts")
		}
		return nil, errorf(ErrInvalid, "unrecognized format (not MP4, MPEG-TS or H.264 Annex-B)")
	}
	if err != nil {
		return nil, err
	}
	return src, nil
}
