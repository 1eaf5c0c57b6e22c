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
//
// # Concurrency
//
// A Chunker is driven by one goroutine: its methods are not safe for
// concurrent use, except Stats, which may be called from any goroutine.
// New starts no goroutines. The Output is called synchronously, on the
// goroutine that called Write, WriteAudio, Flush, Break or Close, and the
// context passed to those methods is handed to the Output; the Chunker
// itself neither blocks nor checks the context. [Segment.Release] may be
// called from any goroutine, and a [Pool] is safe for concurrent use.
//
// # Errors
//
// An error about one sample is a [*SampleError]; the sample is dropped. If
// it wraps ErrInvalidSample, ErrNonMonotonicDTS or ErrBadParameterSets,
// the Chunker goes on with the next sample. If it wraps ErrTimescale, the
// error is permanent.
//
// A permanent error is ErrTimescale, ErrSegmentTooLarge or an error
// returned by the Output: every later Write, WriteAudio, Flush and Break
// returns it (ErrTimescale then not in a *SampleError), and Close returns
// it once. After Close the methods return ErrClosed.
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

// String returns "fmp4", "ts", or "Format(n)" for other values.
func (f Format) String() string {
	switch f {
	case FMP4:
		return "fmp4"
	case TS:
		return "ts"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// ParseFormat parses "fmp4" (also "mp4", "cmaf", "m4s") or "ts" (also
// "mpegts").
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
// [SplitAnnexB] or [SplitAVCC] to obtain them from the two framings
// without copying. The Chunker copies what it keeps before Write returns:
// the caller may reuse the memory afterwards.
type Sample struct {
	// DTS and PTS are in ticks of Config.Timescale. Without B-frames they are
	// equal.
	DTS, PTS int64
	// Duration is optional. It is the duration of the last sample of a
	// stream (or before a timestamp jump), which cannot be derived from a
	// following sample's DTS, and it tells a pause of the video from a
	// timestamp jump (see Config.JumpThreshold).
	Duration int64
	// NALUs is the access unit: its NAL units, in order.
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
	// segment closes, and the next one is marked as a discontinuity and
	// starts at the next random access point (the pictures before it are
	// dropped, counted in Stats.DroppedNoKey); audio follows the video's
	// new timeline. Input whose pictures pause for long without saying so
	// (a screen capture that sends frames on change only) wants a
	// JumpThreshold above its longest pause, or Sample.Duration set. A larger step forward that the
	// sample before declared as its Duration, or over which the audio
	// went on without a jump of its own, is a pause of the video (variable
	// frame rate) instead, counted in Stats.VideoPauses: the picture
	// before it lasts until the next. Default: 10 frame durations, at
	// least 1 s (for audio, at least 1 s or ten AAC frames).
	JumpThreshold time.Duration
	// FirstSequence is the sequence number of the first segment (to resume
	// a recording).
	FirstSequence uint64
	// FirstInitSequence is the sequence number of the first init segment.
	FirstInitSequence uint64
	// SPS and PPS are parameter sets known out of band (for example from an
	// MP4 avcC box), used until the stream carries its own in-band. New
	// copies them.
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
	// playlist must not claim EXT-X-INDEPENDENT-SEGMENTS. ffmpeg skips the
	// leading pictures of such a segment; Chromium (hls.js or its own HLS
	// player) stops with a decode error, so browsers can play such a
	// recording from its start but not join it live or seek in it.
	//
	// When the stream starts (or restarts after a timestamp jump) at such
	// a picture, its leading pictures are dropped (Stats.DroppedLeading).
	// Without OpenGOP, a stream whose only IDR picture is its first becomes
	// one long segment; Stats.RecoveryPoints counts the points skipped.
	OpenGOP bool
	// Bitrate, when known, is the stream's average bit rate (video and
	// audio, bits per second; see source.Info.Bitrate). It sizes the
	// buffers of the first segments, which otherwise start at 1 MiB and
	// double, copying, as they fill. Zero means unknown; a wrong value
	// costs only memory or copies.
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
// negative durations, NoVideo without Audio.
func (c Config) check() error {
	if c.Format != FMP4 && c.Format != TS {
		return fmt.Errorf("%w: format %d", ErrInvalidConfig, c.Format)
	}
	if c.TargetDuration < 0 || c.JumpThreshold < 0 {
		return fmt.Errorf("%w: negative TargetDuration %v or JumpThreshold %v", ErrInvalidConfig, c.TargetDuration, c.JumpThreshold)
	}
	if c.NoVideo && c.Audio == nil {
		return fmt.Errorf("%w: NoVideo without an Audio track", ErrInvalidConfig)
	}
	if c.WrapBits > 62 {
		return fmt.Errorf("%w: WrapBits %d out of range", ErrInvalidConfig, c.WrapBits)
	}
	if c.WrapBits != 0 && c.Continue != nil {
		return fmt.Errorf("%w: no continuation of timestamps that wrap", ErrInvalidConfig)
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
// the media segments pointing to it need. For TS output there is no init
// data (Data is empty) but the record still describes the codec parameters.
// The Chunker shares one Init among the segments that use it and never
// modifies it after it is emitted; receivers must not modify it either.
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

// Segment is a closed media segment. It starts with a random access point:
// an IDR picture (with Config.OpenGOP, also an open-GOP I picture), or in an
// audio-only stream an audio frame.
type Segment struct {
	// Seq is the media sequence number.
	Seq uint64
	// Format of Data.
	Format Format
	// Init is the init section this segment needs.
	Init *Init
	// Data is the encoded segment. It is valid until Release is called;
	// it must not be modified.
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

// Release returns the segment's buffer to the Chunker's Pool for reuse and
// sets Data to nil; Data (and any slice of it) must not be used afterwards.
// Calling Release is optional (without it the buffer is garbage collected)
// and calling it again has no effect. It may be called from any goroutine,
// but not concurrently with itself or with readers of Data.
func (s *Segment) Release() {
	if s.release != nil {
		s.release()
	}
	s.release = nil
	s.Data = nil
}

// Output receives what a Chunker produces, in order: an Init before the first
// segment that needs it, then segments in sequence order. Its methods are
// called on the goroutine that drives the Chunker, with the context of the
// Chunker method being run. An Output may keep the *Init and the *Segment
// after the call returns (Segment.Data until it calls Release); it must not
// modify them. An error is permanent: the Chunker returns it from the call
// that was emitting and from every later one (see the package
// documentation).
type Output interface {
	// WriteInit receives a new init section, before the first segment
	// that needs it.
	WriteInit(ctx context.Context, init *Init) error
	// WriteSegment receives the next segment; the Output owns its buffer
	// (see Segment.Release).
	WriteSegment(ctx context.Context, seg *Segment) error
}

// Chunker cuts samples into segments. It is not safe for concurrent use
// (except Stats); one goroutine writes a stream. Write, WriteAudio, Flush,
// Break and Close may call the Output and return its error; see the package
// documentation for which errors are permanent.
type Chunker interface {
	// Write adds the next access unit in decode order. Samples before the
	// first random access point with parameter sets in force are dropped
	// and counted (Stats.DroppedNoKey). A *SampleError rejects s; unless
	// it wraps ErrTimescale, the next sample may follow.
	// With Config.NoVideo it returns an error wrapping ErrNoTrack.
	Write(ctx context.Context, s Sample) error
	// WriteAudio adds the next AAC frame of the audio track (Config.Audio),
	// in presentation order. Audio and video are written interleaved
	// roughly in time order, as a demuxer delivers them; frames that run
	// ahead of the video wait (bounded) until the video has passed them.
	WriteAudio(ctx context.Context, a AudioSample) error
	// Flush closes the open segment (if any), with all audio still
	// waiting, and emits it. The next segment opens at the next random
	// access point; samples before it are dropped and counted.
	Flush(ctx context.Context) error
	// Break closes the open segment like Flush and, once a segment has
	// been emitted, marks the next one as a discontinuity: use it when
	// input is known to be missing (a lost chunk) or the source restarted.
	Break(ctx context.Context) error
	// Close flushes and ends the stream; audio that no segment can take is
	// dropped and counted. It returns ErrNoParameterSets when samples came
	// but none could be used for want of SPS and PPS. Calling Close again
	// returns nil; the other methods return ErrClosed.
	Close(ctx context.Context) error
	// Stats reports the counters as of the last call that returned; unlike
	// the other methods it may be called from any goroutine.
	Stats() Stats
	// Continuation returns where the Chunker stands, for a Chunker that goes
	// on from there (Config.Continue). It is valid only between segments,
	// after Flush or Break; otherwise the error is ErrNotBetweenSegments.
	// With Config.WrapBits the error wraps ErrInvalidConfig.
	Continuation() (Continuation, error)
}

// Stats are counters of a Chunker, as Chunker.Stats reports them.
type Stats struct {
	Samples         int64  // samples written into segments
	DroppedNoKey    int64  // samples dropped while waiting for an IDR picture (or a random access point, see Config.OpenGOP)
	DroppedLeading  int64  // leading pictures dropped after a start at an open-GOP picture
	RecoveryPoints  int64  // open-GOP random access points seen (cut at only with Config.OpenGOP)
	AudioSamples    int64  // audio frames written into segments
	AudioDropped    int64  // audio frames dropped (before the first keyframe, overlapping, or with no segment to go to)
	Segments        int64  // segments emitted
	Inits           int64  // init sections emitted
	Discontinuities int64  // segments marked as discontinuity
	VideoPauses     int64  // steps over JumpThreshold taken as pauses of the video (see Config.JumpThreshold)
	Bytes           int64  // bytes of emitted segments
	LongSegments    int64  // segments longer than the target duration
	TimestampJumps  int64  // jumps detected
	MediaTicks      int64  // sum of segment durations in ticks
	LastSegmentSeq  uint64 // sequence number of the last segment emitted, if HaveLastSegment
	HaveLastSegment bool   // a segment has been emitted
}

// Errors of this package; test with errors.Is. Errors about one sample come
// wrapped in a *SampleError.
var (
	// ErrNonMonotonicDTS: a sample's DTS is not greater than the previous
	// one's (and the step back is too small to be a timestamp jump, and
	// not to an IDR picture, a splice), or, in an audio-only stream, an
	// audio frame's PTS is not greater than the previous one's.
	ErrNonMonotonicDTS = errors.New("chunker: non-monotonic DTS")
	// ErrInvalidSample: an access unit or audio frame that cannot be
	// segmented (see CheckAccessUnit and CheckAudioFrame), PTS < DTS, or
	// PTS more than 2^31-1 ticks after DTS.
	ErrInvalidSample = errors.New("chunker: invalid sample")
	// ErrInvalidFraming: bytes are not valid Annex-B or AVCC framing
	// (SplitAnnexB, SplitAVCC).
	ErrInvalidFraming = accessunit.ErrInvalidFraming
	// ErrBadParameterSets: an SPS or PPS that cannot be parsed, from
	// Config (New) or in-band (Write).
	ErrBadParameterSets = errors.New("chunker: bad parameter sets")
	// ErrNoParameterSets: Close of a stream that had samples but no
	// SPS/PPS.
	ErrNoParameterSets = errors.New("chunker: no SPS/PPS in stream")
	// ErrInvalidConfig: a Config that New refuses (an unknown Format, a
	// negative duration, WrapBits over 62, NoVideo without Audio, Continue
	// with WrapBits), or Continuation with WrapBits.
	ErrInvalidConfig = errors.New("chunker: invalid configuration")
	// ErrTimescale: the samples are timed in another timescale than
	// Config.Timescale: the first 16 pictures step more than twice as fast
	// as the frame rate their SPS declares, or slower by the ratio of a
	// finer clock than Config.Timescale (microseconds, 100 ns units or
	// nanoseconds, within 0.5 %). It is permanent: Write
	// returns it in a *SampleError for the sample that showed it; later
	// calls return it without one.
	ErrTimescale = errors.New("chunker: samples not in Config.Timescale")
	// ErrSegmentTooLarge: a segment grew past what its container can
	// address (2 GiB for fMP4) before a keyframe closed it. The segment is
	// lost, and the error is permanent.
	ErrSegmentTooLarge = errors.New("chunker: segment too large")
	// ErrClosed: Write, WriteAudio, Flush or Break after Close.
	ErrClosed = errors.New("chunker: closed")
	// ErrNoTrack: Write on an audio-only chunker, or WriteAudio without
	// Config.Audio.
	ErrNoTrack = errors.New("chunker: no such track")
)

// SampleError wraps an error about one sample with its position. The sample
// was dropped. Err wraps ErrInvalidSample, ErrNonMonotonicDTS or
// ErrBadParameterSets, and the Chunker goes on with the next sample, or it
// wraps ErrTimescale, and the Chunker stops: the error is permanent (see
// the package documentation).
type SampleError struct {
	Index int64 // zero-based index of the sample in Write (WriteAudio) calls
	DTS   int64 // for audio, the PTS
	Audio bool  // the sample is an AudioSample
	Err   error // the cause, wrapping one of the errors above
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
