// Package chunker cuts a stream of timestamped H.264 access units, and
// optionally AAC audio frames, into closed, keyframe-aligned segments
// (fragmented MP4 or MPEG-TS) without re-encoding.
//
// A [Chunker] receives [Sample]s in decode order. It finds random-access
// points (IDR pictures) itself, cuts a segment at the first IDR at or after
// the target duration, and hands every closed segment to an [Output] (for
// example a sink that uploads it). Time is integer ticks of a declared
// timescale; sample durations are derived from the next sample's DTS, so the
// durations of all segments add up exactly to the input's.
//
// Audio ([AudioSample], configured with [Config].Audio) goes into the same
// segments: fMP4 segments get a second track fragment, MPEG-TS segments an
// ADTS elementary stream. Each audio frame lands in the segment its
// presentation time belongs to (cuts stay on video keyframes), on the same
// output timeline as the video, so the input's audio/video offset is kept.
// With Config.NoVideo the stream is audio only and segments are cut on
// audio frame boundaries.
package chunker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/livechunk/livechunk/internal/accessunit"
	"github.com/livechunk/livechunk/internal/timeline"
)

// Format is the container of emitted segments.
type Format int

const (
	// FMP4 is fragmented MP4 (CMAF style): an init segment (ftyp+moov) and
	// media segments (styp+moof+mdat).
	FMP4 Format = iota
	// TS is MPEG-2 transport stream: self-contained segments that start with
	// PAT and PMT.
	TS
)

// String returns "fmp4" or "ts".
func (f Format) String() string {
	switch f {
	case FMP4:
		return "fmp4"
	case TS:
		return "ts"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// ParseFormat parses "fmp4" (also "mp4", "cmaf") or "ts" (also "mpegts").
func ParseFormat(s string) (Format, error) {
	switch s {
	case "fmp4", "mp4", "cmaf", "m4s":
		return FMP4, nil
	case "ts", "mpegts":
		return TS, nil
	}
	return 0, fmt.Errorf("chunker: unknown format %q (want fmp4 or ts)", s)
}

// SegmentExt returns the file extension of media segments: ".m4s" or ".ts".
func (f Format) SegmentExt() string {
	if f == TS {
		return ".ts"
	}
	return ".m4s"
}

// Sample is one H.264 access unit (one picture) with its timing.
//
// NALUs holds the NAL units without start codes or length prefixes. Use
// [SplitAnnexB] or [SplitAVCC] to obtain them from the two real framings
// without copying. The chunker copies what it needs before Write returns, so
// the caller may reuse the memory afterwards.
type Sample struct {
	// DTS and PTS are in ticks of Config.Timescale. Without B-frames they are
	// equal.
	DTS, PTS int64
	// Duration is optional. It is used only for the last sample of a stream
	// (or before a timestamp jump), whose duration cannot be derived from a
	// following sample's DTS.
	Duration int64
	// NALUs is the access unit.
	NALUs [][]byte
}

// Config configures a Chunker. The zero value is usable: fMP4, 90 kHz, 5 s.
type Config struct {
	// Format of the segments. Default FMP4.
	Format Format
	// Timescale of Sample timestamps in ticks per second. Default 90000.
	// fMP4 segments keep this timescale; TS segments are converted to
	// 90 kHz exactly when the timescale divides 90000, else by rounding
	// absolute timestamps (durations still add up).
	Timescale uint32
	// TargetDuration is the nominal segment length. A segment is cut at the
	// first IDR picture (or open-GOP random access point, see OpenGOP)
	// whose PTS is at least TargetDuration after the segment start's.
	// Default 5 s.
	TargetDuration time.Duration
	// WrapBits, when non-zero, declares that input timestamps of both
	// tracks wrap around at 2^WrapBits ticks (33 for MPEG-TS); the chunker
	// unwraps them, audio on the same side of a wrap as the video.
	WrapBits uint
	// JumpThreshold is the largest DTS step still treated as continuous.
	// A larger step forward (or any large step backward, or any step
	// backward to an IDR picture: a splice) is a timestamp jump: the
	// segment closes, and the next one is marked as a discontinuity; audio
	// follows the video's new timeline. A larger step forward that the
	// sample before declared as its Duration, or over which the audio
	// went on without a jump of its own, is a pause of the video (variable
	// frame rate) instead, counted in Stats.VideoPauses: the picture
	// before it lasts until the next. Default: 10
	// frame durations, at least 1 s (for audio, at least 1 s or ten AAC
	// frames).
	JumpThreshold time.Duration
	// FirstSequence is the sequence number of the first segment (to resume
	// a recording). InitSequence likewise for init segments.
	FirstSequence uint64
	// FirstInitSequence is the sequence number of the first init segment.
	FirstInitSequence uint64
	// SPS and PPS are parameter sets known out of band (for example from an
	// MP4 avcC box), used until the stream carries its own in-band.
	SPS, PPS [][]byte
	// StartWithDiscontinuity marks the first segment as a discontinuity
	// (for example when resuming after a restart).
	StartWithDiscontinuity bool
	// Audio, when set, adds an AAC track written with WriteAudio.
	Audio *AudioConfig
	// NoVideo declares an audio-only stream (Audio must be set): segments
	// are cut at the first audio frame at or after TargetDuration, and
	// Write is an error.
	NoVideo bool
	// Matrix is the video's transformation matrix for display (an MP4
	// tkhd matrix, {a, b, u, c, d, v, x, y, w}, 16.16 fixed point, u, v and
	// w 2.30; see source.Info.Matrix): fMP4 init segments carry it, so a
	// phone's portrait video plays upright. Zero means the identity. MPEG-TS
	// has no place for it.
	Matrix [9]int32
	// OpenGOP lets segments start at open-GOP random access points as well
	// as at IDR pictures: I pictures that a recovery point SEI marks (see
	// [IsRecoveryPoint]; x264 --open-gop and many broadcast and camera
	// encoders make them, and such a stream may have no IDR picture after
	// its first). Off by default, because a segment that starts there is
	// not independent: its leading pictures (after the I picture in decode
	// order, before it in presentation order) refer to the previous
	// segment, so segments decode in sequence but not alone, and the
	// playlist must not claim EXT-X-INDEPENDENT-SEGMENTS
	// (livechunk.Config.OpenGOP leaves it out). Players differ on a start or
	// a seek into such a segment: ffmpeg skips the leading pictures, but
	// Chromium (through hls.js and with its own HLS player alike) stops
	// with a decode error on the first of them, so a browser can play such
	// a recording from its start only, not join it live nor seek in it.
	// ffmpeg's own HLS output of the same stream behaves the same. Use it
	// for recordings that are played from the start, stitched, or
	// processed by ffmpeg.
	// When the stream itself starts (or restarts after a timestamp jump) at
	// such a picture, its leading pictures are dropped (Stats.DroppedLeading).
	// Without OpenGOP, a stream whose only IDR picture is its first becomes
	// one long segment; Stats.RecoveryPoints counts the points skipped.
	OpenGOP bool
	// Bitrate, when known, is the stream's average bit rate (video and
	// audio, bits per second; see source.Info.Bitrate). It sizes the
	// buffers of the first segments, which otherwise start at 1 MiB and
	// double as they fill, copying what they hold each time (the first
	// segment of a 5 Mbit/s stream cost three allocations and 3 MB of
	// copying, and with them the process's first garbage collections).
	// Zero means unknown; a wrong value costs only memory or copies.
	Bitrate int64
	// Pool, when set, supplies the segment buffers (see [Pool]); share one
	// among the chunkers of many streams. Default: a pool of the Chunker's
	// own.
	Pool *Pool
	// Continue, when set, makes the Chunker go on where another one
	// stopped (see [Continuation]): its sequence numbers, init section and
	// output timeline; FirstSequence, FirstInitSequence and
	// StartWithDiscontinuity are then taken from it. The other fields must
	// be those the stream was recorded with. Timestamps that wrap
	// (WrapBits) cannot be continued.
	Continue *Continuation
}

// check refuses values no default stands for: an unknown Format,
// negative durations.
func (c Config) check() error {
	if c.Format != FMP4 && c.Format != TS {
		return fmt.Errorf("%w: format %d", ErrInvalidConfig, c.Format)
	}
	if c.TargetDuration < 0 || c.JumpThreshold < 0 {
		return fmt.Errorf("%w: negative TargetDuration %v or JumpThreshold %v", ErrInvalidConfig, c.TargetDuration, c.JumpThreshold)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Timescale == 0 {
		c.Timescale = timeline.MPEGClock
	}
	if c.TargetDuration <= 0 {
		c.TargetDuration = 5 * time.Second
	}
	return c
}

// Init is an initialization section: the fMP4 init segment (ftyp+moov) that
// media segments with the same InitSeq need. For TS output there is no init
// data (Data is empty) but the record still describes the codec parameters.
type Init struct {
	// Seq numbers init segments from Config.FirstInitSequence.
	Seq uint64
	// Format of the segments that use this init.
	Format Format
	// Data is the encoded init segment (fMP4 only).
	Data []byte
	// SPS and PPS are the parameter sets (NAL units without framing).
	SPS, PPS [][]byte
	// Codec is the RFC 6381 codec string, for example "avc1.64001f".
	Codec string
	// Width and Height are the coded picture size after cropping.
	Width, Height int
	// Timescale is the track timescale of the media segments (for an
	// audio-only stream, the audio one).
	Timescale uint32
	// AudioCodec is the RFC 6381 codec string of the audio track, for
	// example "mp4a.40.2"; empty without audio. Codec is empty for an
	// audio-only stream.
	AudioCodec string
	// ASC is the AAC AudioSpecificConfig of the audio track.
	ASC []byte
	// AudioTimescale is the timescale of the audio track in segments: its
	// sample rate (the output rate with explicit SBR).
	AudioTimescale uint32
	// SampleRate and Channels describe the audio (see AACInfo).
	SampleRate, Channels int
}

// Codecs returns the RFC 6381 codec strings of the tracks, video first, as
// HLS CODECS lists them.
func (in *Init) Codecs() []string {
	var out []string
	if in.Codec != "" {
		out = append(out, in.Codec)
	}
	if in.AudioCodec != "" {
		out = append(out, in.AudioCodec)
	}
	return out
}

// Segment is a closed media segment. It starts with an IDR picture (or, in
// an audio-only stream, with an audio frame).
type Segment struct {
	// Seq is the media sequence number.
	Seq uint64
	// Format of Data.
	Format Format
	// Init is the init section this segment needs.
	Init *Init
	// Data is the encoded segment. It is valid until Release is called.
	Data []byte
	// Timescale of the timestamps and Duration below (the video track
	// timescale; for an audio-only stream the audio one).
	Timescale uint32
	// FirstDTS and FirstPTS of the first sample on the output timeline.
	FirstDTS, FirstPTS int64
	// Duration is the exact sum of the sample durations in ticks.
	Duration int64
	// Frames is the number of video access units.
	Frames int
	// Keyframes is the number of random access points: IDR access units,
	// and open-GOP I pictures with Config.OpenGOP (at least 1 with video).
	Keyframes int
	// AudioFrames is the number of AAC frames in the segment.
	AudioFrames int
	// AudioPTS is the first audio frame's time and AudioDuration the sum of
	// the audio frame durations, in Init.AudioTimescale ticks, on the same
	// output timeline as the video (zero without audio frames).
	AudioPTS, AudioDuration int64
	// Discontinuity is true when this segment does not continue the previous
	// one (first segment after a parameter-set change, a timestamp jump or
	// a resumed recording).
	Discontinuity bool
	// Long is true when the segment exceeds the target duration because no
	// keyframe came in time.
	Long bool
	// FrameRate is frames per second measured over the segment.
	FrameRate float64

	release func()
}

// DurationTime returns Duration as a time.Duration.
func (s *Segment) DurationTime() time.Duration {
	return timeline.Duration(s.Duration, s.Timescale)
}

// Size returns the number of bytes of Data.
func (s *Segment) Size() int { return len(s.Data) }

// Release returns the segment's buffer to the chunker for reuse. Data must not
// be used afterwards. Calling Release is optional (without it the buffer is
// garbage collected) and calling it twice is harmless.
func (s *Segment) Release() {
	if s.release != nil {
		s.release()
	}
	s.release = nil
	s.Data = nil
}

// Output receives what a Chunker produces, in order: an Init before the first
// segment that needs it, then segments in sequence order. An Output may keep
// the *Segment after the call returns (until it calls Release); it must not
// modify it. An error stops the Chunker and is returned from Write.
type Output interface {
	WriteInit(ctx context.Context, init *Init) error
	WriteSegment(ctx context.Context, seg *Segment) error
}

// Chunker cuts samples into segments. Implementations are not safe for
// concurrent use; one goroutine writes a stream.
type Chunker interface {
	// Write adds the next access unit in decode order.
	Write(ctx context.Context, s Sample) error
	// WriteAudio adds the next AAC frame of the audio track (Config.Audio),
	// in presentation order. Audio and video are written interleaved
	// roughly in time order, as a demuxer delivers them; frames that run
	// ahead of the video wait (bounded) until the video has passed them.
	WriteAudio(ctx context.Context, a AudioSample) error
	// Flush closes the open segment (if any) and emits it. The next sample
	// must start with an IDR picture to open a new one (others are dropped
	// and counted).
	Flush(ctx context.Context) error
	// Break closes the open segment like Flush and marks the next segment as
	// a discontinuity: use it when input is known to be missing (a lost
	// chunk) or the source restarted.
	Break(ctx context.Context) error
	// Close flushes and ends the stream. Write after Close is an error.
	Close(ctx context.Context) error
	// Stats reports the counters as of the last call that returned; unlike
	// the other methods it may be called from any goroutine.
	Stats() Stats
	// Continuation returns where the chunker stands between segments
	// (after Flush), for a Chunker that goes on from there
	// (Config.Continue).
	Continuation() (Continuation, error)
}

// Stats are counters of a Chunker.
type Stats struct {
	Samples         int64 // samples written into segments
	DroppedNoKey    int64 // samples dropped while waiting for an IDR picture (or a random access point, see Config.OpenGOP)
	DroppedLeading  int64 // leading pictures dropped after a start at an open-GOP picture
	RecoveryPoints  int64 // open-GOP random access points seen (cut at only with Config.OpenGOP)
	AudioSamples    int64 // audio frames written into segments
	AudioDropped    int64 // audio frames dropped (before the first keyframe, overlapping, or with no segment to go to)
	Segments        int64 // segments emitted
	Inits           int64 // init sections emitted
	Discontinuities int64 // segments marked as discontinuity
	VideoPauses     int64 // steps over JumpThreshold taken as pauses of the video (see Config.JumpThreshold)
	Bytes           int64 // bytes of emitted segments
	LongSegments    int64 // segments longer than the target duration
	TimestampJumps  int64 // jumps detected
	MediaTicks      int64 // sum of segment durations in ticks
	LastSegmentSeq  uint64
	HaveLastSegment bool
}

// Errors returned by a Chunker; test with errors.Is.
var (
	// ErrNonMonotonicDTS: a sample's DTS is not greater than the previous
	// one's (and the step back is too small to be a timestamp jump, and
	// not to an IDR picture, a splice), or, in an audio-only stream, an
	// audio frame's PTS is not greater than the previous one's.
	ErrNonMonotonicDTS = errors.New("chunker: non-monotonic DTS")
	// ErrInvalidSample: empty access unit, empty NAL unit, or PTS < DTS.
	ErrInvalidSample = errors.New("chunker: invalid sample")
	// ErrInvalidFraming: bytes are not valid Annex-B or AVCC framing.
	ErrInvalidFraming = accessunit.ErrInvalidFraming
	// ErrBadParameterSets: an SPS or PPS that cannot be parsed.
	ErrBadParameterSets = errors.New("chunker: bad parameter sets")
	// ErrNoParameterSets: the stream ended with samples but no SPS/PPS.
	ErrNoParameterSets = errors.New("chunker: no SPS/PPS in stream")
	// ErrInvalidConfig: a Config value that no default stands for (an
	// unknown Format, a negative duration, WrapBits over 62).
	ErrInvalidConfig = errors.New("chunker: invalid configuration")
	// ErrTimescale: the first pictures step more than twice as fast as
	// the frame rate their SPS declares: the samples are timed in
	// another timescale than Config.Timescale. The chunker takes no more
	// input.
	ErrTimescale = errors.New("chunker: samples not in Config.Timescale")
	// ErrClosed: Write after Close.
	ErrClosed = errors.New("chunker: closed")
	// ErrNoTrack: Write on an audio-only chunker, or WriteAudio without
	// Config.Audio.
	ErrNoTrack = errors.New("chunker: no such track")
)

// SampleError wraps an error about one sample with its position.
type SampleError struct {
	Index int64 // zero-based index of the sample in Write (WriteAudio) calls
	DTS   int64 // for audio, the PTS
	Audio bool  // the sample is an AudioSample
	Err   error
}

// Error describes the sample and what was wrong with it.
func (e *SampleError) Error() string {
	if e.Audio {
		return fmt.Sprintf("audio frame %d (pts %d): %v", e.Index, e.DTS, e.Err)
	}
	return fmt.Sprintf("sample %d (dts %d): %v", e.Index, e.DTS, e.Err)
}

// Unwrap returns the underlying error.
func (e *SampleError) Unwrap() error { return e.Err }
