package livechunk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/internal/timeline"
	"github.com/livechunk/livechunk/sink"
	"github.com/livechunk/livechunk/source"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// Config configures a Pipeline. The zero value records fMP4 segments of
// about 5 s and a live sliding-window playlist index.m3u8 at the bucket root.
type Config struct {
	// Format of the segments (chunker.FMP4 or chunker.TS).
	Format chunker.Format
	// SegmentDuration is the target segment length. Default 5 s.
	SegmentDuration time.Duration
	// Timescale of the samples written (ticks per second). Record sets it
	// from the source. Default 90000.
	Timescale uint32
	// WrapBits declares timestamps that wrap at 2^WrapBits (33 for
	// MPEG-TS). Record sets it from the source.
	WrapBits uint
	// JumpThreshold is the largest step of the decode times still taken
	// as continuous (see chunker.Config.JumpThreshold; default 1 s or ten
	// frames). Record sets it out of reach for an input of one timeline
	// (source.Info.OneTimeline), so that a pause of the video is kept as
	// a pause. A segment lasts at least as long as the pauses in it: one
	// longer than the target duration makes a live or event playlist
	// raise EXT-X-TARGETDURATION, with a warning, as rare keyframes do.
	JumpThreshold time.Duration
	// SPS and PPS are parameter sets known out of band (an MP4 avcC); Record
	// sets them from the source.
	SPS, PPS [][]byte
	// Audio adds an AAC track (written with WriteAudio); Record sets it
	// from the source.
	Audio *chunker.AudioConfig
	// NoVideo records an audio-only stream (Audio must be set); Record
	// sets it from the source.
	NoVideo bool
	// Prefix is the key prefix of every object of the recording, for
	// example "streams/cam1/".
	Prefix string
	// Playlist is the media playlist type: hls.Live (default, a sliding
	// window), hls.Event or hls.VOD (written once, complete, on Close; a
	// recording stopped unfinished gets an EVENT playlist without
	// EXT-X-ENDLIST until the Close of the pipeline that resumes it).
	Playlist hls.Type
	// PlaylistName is the media playlist's name: NAME.m3u8, without "/"
	// (it lies next to its segments). Default "index.m3u8".
	PlaylistName string
	// MultivariantName is the multivariant playlist's name, spelled as
	// PlaylistName and different from it. Default "master.m3u8"; "-"
	// writes none.
	MultivariantName string
	// Window is the least duration a live playlist lists, and it lists at
	// least six segments whatever the Window (hls.PublisherConfig's
	// MinSegments). Default six segment durations.
	Window time.Duration
	// KeepSegments keeps segments that slid out of a live window in the
	// bucket (by default they are deleted after RFC 8216's grace period).
	KeepSegments bool
	// StartTime is the wall-clock capture time of the first sample, used for
	// EXT-X-PROGRAM-DATE-TIME. Default: the time of the first Write.
	StartTime time.Time
	// NoResume starts from sequence 0 even when the destination holds an
	// unfinished recording. By default a recording continues after the last
	// object found (never overwriting one) and marks the restart as a
	// discontinuity.
	NoResume bool
	// StartDuration, when positive, holds back the first write of a live
	// or event playlist until its segments last this long (see
	// hls.PublisherConfig.StartDuration): three segment durations make a
	// new stream's first playlist playable in Chromium's own HLS player,
	// at the price of a later start and of segments that a crash before
	// that write leaves unlisted.
	StartDuration time.Duration
	// Matrix is the video's display transformation matrix (rotation of
	// a phone's portrait video); Record sets it from the source. See
	// chunker.Config.Matrix.
	Matrix [9]int32
	// Bitrate is the stream's average bit rate (bits per second) when known
	// in advance, a hint that sizes the first segment buffers; Record sets
	// it from the source. See chunker.Config.Bitrate.
	Bitrate int64
	// OpenGOP also cuts segments at open-GOP random access points (I
	// pictures with a recovery point SEI), for streams whose encoder makes
	// no IDR picture after the first; the playlists then leave out
	// EXT-X-INDEPENDENT-SEGMENTS. See chunker.Config.OpenGOP.
	OpenGOP bool
	// Pool, when set, supplies the segment buffers: pipelines of many
	// streams in one process that share a chunker.Pool hold fewer idle
	// buffers (see chunker.Pool).
	Pool *chunker.Pool
	// Sink tunes uploads (in-flight bound, concurrency, retries). Its
	// Prefix is set by the pipeline. Its OnDurable, when set, is called
	// as the sink documents it (from an upload goroutine, in order), after
	// the pipeline has taken the event for its playlist. Its Retry also
	// applies to playlist writes (with the playlist defaults of
	// hls.PublisherConfig.Retry for zero fields). With Output, only Retry
	// is used.
	Sink sink.Config
	// Output, when set, is where the segments and init sections go,
	// instead of an upload to the bucket; the bucket then holds the
	// playlists only. Output's WriteInit and WriteSegment are called from
	// the writing goroutine (in Write, WriteAudio, Flush, Break and
	// Close), and nil from them means that the object is stored for good
	// under the name sink.InitKey or sink.SegmentKey gives (without
	// Prefix), next to the playlist that then lists it. An error stops
	// the pipeline, as a failed upload does. The pipeline neither closes
	// Output nor deletes from it: segments that slide out of a live
	// window stay (KeepSegments is implied).
	Output chunker.Output
	// OnSegment, when set, is called with each segment when it closes,
	// before it goes to the sink (or Output), from the writing goroutine.
	// It must not modify the segment or keep it after returning.
	OnSegment func(*chunker.Segment)
	// OnDurable, when set, is called with each init section and segment
	// once it is durable and the pipeline has handled it (for a segment:
	// after the playlist write that lists it was attempted; for a live or
	// event playlist held back by StartDuration, after the segment was
	// added), in order, from the pipeline's publishing goroutine. A
	// segment's hls.Segment is hls.SegmentOf of the event. It must not
	// block for long: the playlist waits for it.
	OnDurable func(sink.Event)
	// Continue, when set, makes the pipeline go on with a recording where
	// another one stopped between segments (see Pipeline.Continuation),
	// in this process or another: the same init section and sequence
	// numbers, output times that continue, no discontinuity. The
	// destination's playlist is taken over without the segments from
	// Continue's next sequence number on (a crash may have listed
	// segments that the continuation makes again, with the same names).
	// NoResume does not apply. The other fields must be the recording's.
	Continue *chunker.Continuation
	// Logger receives progress and warnings. Default: discard.
	Logger *slog.Logger
	// Progress, when set, is called by Record with the counters so far,
	// from the goroutine that reads the source: about every
	// ProgressInterval while it reads, and once more at the end. It must
	// not block for long.
	Progress func(Stats)
	// ProgressInterval is the least time between Progress calls. Default
	// 250 ms.
	ProgressInterval time.Duration
}

func (c Config) withDefaults() Config {
	if c.SegmentDuration <= 0 {
		c.SegmentDuration = 5 * time.Second
	}
	if c.Timescale == 0 {
		c.Timescale = timeline.MPEGClock
	}
	if c.PlaylistName == "" {
		c.PlaylistName = "index.m3u8"
	}
	if c.MultivariantName == "" {
		c.MultivariantName = "master.m3u8"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Prefix = sink.CleanPrefix(c.Prefix)
	return c
}

// ErrFinished is returned by NewPipeline when the destination holds a
// recording that already ended (its playlist has EXT-X-ENDLIST): it is never
// appended to or overwritten.
var ErrFinished = errors.New("livechunk: destination holds a finished recording")

// Pipeline wires a chunker, a sink (or Config.Output) and a playlist
// publisher: samples written to it become segments that upload while later
// samples arrive, and each durable segment is added to the playlist.
//
// Write, WriteAudio, WritePacket, Flush, Break, Wait, Continuation, Close
// and Abort must not be called concurrently: one goroutine (the writer)
// calls them, or several take turns under a lock. Stats and PlaylistKey
// may be called from any goroutine at any time. NewPipeline starts the
// sink's upload goroutines and one publishing goroutine, which run until
// Close or Abort returns; a Pipeline that is neither closed nor aborted
// keeps them (and its open segment) alive.
//
// Pipeline has the methods of chunker.Chunker except Stats, which reports
// every stage (Stats); AsChunker gives it as a chunker.Chunker.
type Pipeline struct {
	cfg      Config
	bucket   *blob.Bucket
	chunk    chunker.Chunker
	sink     *sink.Sink // nil with Config.Output
	pub      *hls.Publisher
	pubRetry sink.Retry
	started  time.Time
	// writes counts Write calls; warnedOpenGOP: the open-GOP warning was
	// logged (see Write).
	writes        int64
	warnedOpenGOP bool
	// failed is the error that stopped the pipeline for good: of
	// Config.Output, or the sink's failure met when handing held objects
	// over. held are objects the sink has not taken yet (see handHeld),
	// and heldErr the refusal that the writing call reports. The writer
	// alone uses these.
	failed  error
	held    []heldObject
	heldErr error

	mu       sync.Mutex
	wall     map[uint64]time.Time // segment seq -> program date time
	base     time.Time            // wall clock of timeline origin
	baseDTS  int64
	haveBase bool
	lastEnd  time.Time
	queue    []sink.Event
	qcond    *sync.Cond
	qclosed  bool
	pubErr   error
	// queued and published count the durable events, for Wait; lastErr
	// is the error of the last playlist write (nil once one succeeds)
	queued, published int64
	lastErr           error
	// resumed: the wall-clock time where the playlist taken over
	// (Config.Continue) ends, for the program date times that follow
	resumed time.Time
	pubDone chan struct{}
	bw      hls.BandwidthMeter // durable segments' bit rates, for the multivariant
	nsegs   int                // durable segments
	init    *chunker.Init
	frames  int64
	secs    float64
	closed  bool
}

// NewPipeline prepares a recording into b. When b already holds an
// unfinished recording under cfg.Prefix (and cfg.NoResume is not set) the
// new segments continue its sequence numbers after every existing object,
// and the first one is marked as a discontinuity.
//
// ctx bounds only the reads of the destination made here (the existing
// playlist and objects); the goroutines NewPipeline starts (see Pipeline)
// do not stop with it. The errors are ErrFinished, an error wrapping
// chunker.ErrInvalidConfig or hls.ErrInvalidConfig for a configuration
// no default stands for (a nil b among them), and the store's error when
// reading the destination fails.
func NewPipeline(ctx context.Context, b *blob.Bucket, cfg Config) (*Pipeline, error) {
	if b == nil {
		return nil, fmt.Errorf("%w: nil bucket", chunker.ErrInvalidConfig)
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	p := &Pipeline{cfg: cfg, bucket: b, wall: map[uint64]time.Time{}, pubDone: make(chan struct{})}
	p.bw.TargetSeconds = cfg.SegmentDuration.Seconds()
	p.qcond = sync.NewCond(&p.mu)

	ccfg := cfg.chunkerConfig()
	old, err := resume(ctx, b, cfg, &ccfg)
	if err != nil {
		return nil, err
	}
	pcfg := cfg.publisherConfig()
	if cfg.Output != nil {
		// The pipeline deletes from the bucket only.
		pcfg.KeepSegments = true
	}
	if p.pub, err = hls.NewPublisher(b, pcfg); err != nil {
		if errors.Is(err, hls.ErrInvalidConfig) {
			err = fmt.Errorf("%w: %w", chunker.ErrInvalidConfig, err)
		}
		return nil, err
	}
	if old != nil {
		p.pub.Restore(old)
		if n := len(old.Segments); n > 0 && cfg.Continue != nil {
			last := old.Segments[n-1]
			p.resumed = last.ProgramDateTime.Add(timeline.Duration(last.Duration, last.Timescale))
		}
	}
	p.pubRetry = pcfg.Retry
	if cfg.Output == nil {
		p.startSink(&ccfg)
	}
	if p.chunk, err = chunker.New(ccfg, (*pipelineOutput)(p)); err != nil {
		if p.sink != nil {
			_ = p.sink.Close(ctx)
		}
		return nil, err
	}
	go p.publishLoop()
	return p, nil
}

// check refuses the values of cfg that no default stands for, with
// chunker.ErrInvalidConfig (the chunker and the publisher check their
// parts too).
func (cfg Config) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", chunker.ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{{"SegmentDuration", cfg.SegmentDuration}, {"JumpThreshold", cfg.JumpThreshold}, {"Window", cfg.Window},
		{"StartDuration", cfg.StartDuration}, {"ProgressInterval", cfg.ProgressInterval}} {
		if d.d < 0 {
			return bad("negative %s %v", d.name, d.d)
		}
	}
	names := map[string]string{"PlaylistName": cfg.PlaylistName, "MultivariantName": cfg.MultivariantName}
	for field, name := range names {
		if name == "" || field == "MultivariantName" && name == "-" {
			continue
		}
		if !playlistNameRE.MatchString(name) {
			return bad("%s %q: a playlist is named NAME.m3u8 (up to 255 of A-Z a-z 0-9 - _ . ~), next to its segments", field, name)
		}
	}
	if pl, mv := cfg.withDefaults().PlaylistName, cfg.withDefaults().MultivariantName; pl == mv {
		return bad("PlaylistName and MultivariantName are both %q", pl)
	}
	d := cfg.withDefaults()
	for _, name := range []string{d.PlaylistName, d.MultivariantName} {
		if name == "-" {
			continue
		}
		if err := hls.CheckKey(d.Prefix + name); err != nil {
			return bad("Prefix %q: %v", cfg.Prefix, err)
		}
	}
	return nil
}

// OutputLister is an optional interface of a Config.Output that can list
// what it holds. A recording that resumes numbers its new objects after
// every one found: the bucket's objects when segments upload to it, and
// with an OutputLister, every object Output stored, also those that no
// playlist lists yet (a VOD playlist is written by Close; a crash can come
// between a segment and the playlist write that lists it). Without it, a
// recording resumes after the objects its playlist names, and Output must
// accept an object under a name it holds already, and replace it.
type OutputLister interface {
	// StoredNames returns the names of the objects stored for the
	// recording, as sink.InitKey and sink.SegmentKey give them without
	// Prefix; other names are ignored. NewPipeline calls it once, with its
	// ctx, unless Config.NoResume or Config.Continue is set.
	StoredNames(ctx context.Context) ([]string, error)
}

// playlistNameRE is the spelling of a playlist's name: a URI relative to
// its segments that needs no escaping.
var playlistNameRE = regexp.MustCompile(`^[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,249}\.m3u8$`)

// chunkerConfig is the chunker's part of cfg.
func (cfg Config) chunkerConfig() chunker.Config {
	return chunker.Config{
		Format:         cfg.Format,
		Timescale:      cfg.Timescale,
		TargetDuration: cfg.SegmentDuration,
		WrapBits:       cfg.WrapBits,
		JumpThreshold:  cfg.JumpThreshold,
		SPS:            cfg.SPS,
		PPS:            cfg.PPS,
		Audio:          cfg.Audio,
		NoVideo:        cfg.NoVideo,
		OpenGOP:        cfg.OpenGOP,
		Matrix:         cfg.Matrix,
		Bitrate:        cfg.Bitrate,
		Pool:           cfg.Pool,
	}
}

// publisherConfig is the playlist publisher's part of cfg.
func (cfg Config) publisherConfig() hls.PublisherConfig {
	return hls.PublisherConfig{
		OpenGOP:        cfg.OpenGOP,
		StartDuration:  cfg.StartDuration,
		Type:           cfg.Playlist,
		Prefix:         cfg.Prefix,
		Name:           cfg.PlaylistName,
		TargetDuration: cfg.SegmentDuration,
		WindowDuration: cfg.Window,
		KeepSegments:   cfg.KeepSegments,
		Logger:         cfg.Logger,
		// Playlist writes ride out the same transient faults as uploads.
		Retry: cfg.Sink.Retry,
	}
}

// resume finds an unfinished recording under cfg's prefix (unless
// cfg.NoResume): it returns its playlist (nil when there is none) and sets
// ccfg to continue its sequence numbers after every object found, with a
// discontinuity. A finished recording is ErrFinished.
func resume(ctx context.Context, b *blob.Bucket, cfg Config, ccfg *chunker.Config) (*hls.MediaPlaylist, error) {
	if cfg.Continue != nil {
		return continueRecording(ctx, b, cfg, ccfg)
	}
	if cfg.NoResume {
		return nil, nil
	}
	key := cfg.Prefix + cfg.PlaylistName
	old, err := hls.LoadMedia(ctx, b, key)
	switch {
	case err == nil && old.Ended:
		return nil, fmt.Errorf("%w: %s", ErrFinished, key)
	case gcerrors.Code(err) == gcerrors.NotFound:
		old = nil
	case err != nil:
		return nil, fmt.Errorf("livechunk: reading existing playlist: %w", err)
	}
	nextSeg, nextInit, found, err := scanExisting(ctx, b, cfg.Prefix)
	if err != nil {
		return nil, err
	}
	if l, ok := cfg.Output.(OutputLister); ok {
		names, err := l.StoredNames(ctx)
		if err != nil {
			return nil, fmt.Errorf("livechunk: listing what Config.Output holds: %w", err)
		}
		for _, name := range names {
			seq, init, ok := sink.KeySeq(name)
			switch {
			case ok && !init:
				nextSeg, found = max(nextSeg, seq+1), true
			case ok && init:
				nextInit, found = max(nextInit, seq+1), true
			}
		}
	}
	if old != nil {
		// Segments stored elsewhere (Config.Output) are known by the
		// playlist that lists them.
		for _, sg := range old.Segments {
			if seq, _, ok := sink.KeySeq(sg.URI); ok {
				nextSeg, found = max(nextSeg, seq+1), true
			}
			if seq, _, ok := sink.KeySeq(sg.Map); ok {
				nextInit, found = max(nextInit, seq+1), true
			}
		}
	}
	if found || old != nil {
		ccfg.FirstSequence, ccfg.FirstInitSequence, ccfg.StartWithDiscontinuity = nextSeg, nextInit, true
		cfg.Logger.Info("resuming recording", "prefix", cfg.Prefix, "next_segment", nextSeg, "next_init", nextInit)
	}
	return old, nil
}

// continueRecording takes over the playlist of a recording that
// cfg.Continue continues, without the segments from its next sequence
// number on (made again, under the same names); the chunker goes on from
// cfg.Continue.
func continueRecording(ctx context.Context, b *blob.Bucket, cfg Config, ccfg *chunker.Config) (*hls.MediaPlaylist, error) {
	key := cfg.Prefix + cfg.PlaylistName
	old, err := hls.LoadMedia(ctx, b, key)
	switch {
	case gcerrors.Code(err) == gcerrors.NotFound:
		old = nil
	case err != nil:
		return nil, fmt.Errorf("livechunk: reading the playlist to continue: %w", err)
	case old.Ended:
		return nil, fmt.Errorf("%w: %s", ErrFinished, key)
	}
	ccfg.Continue = cfg.Continue
	if old == nil {
		return nil, nil
	}
	next := cfg.Continue.NextSequence()
	keep := old.Segments[:0]
	for _, sg := range old.Segments {
		if seq, init, ok := sink.KeySeq(sg.URI); ok && !init && seq >= next {
			break
		}
		keep = append(keep, sg)
	}
	old.Segments = keep
	return old, nil
}

// startSink starts the pipeline's uploads. Objects a crashed run left in
// the sink's spool upload first; new ones continue after them (ccfg).
func (p *Pipeline) startSink(ccfg *chunker.Config) {
	scfg := p.cfg.Sink
	scfg.Prefix = p.cfg.Prefix
	if scfg.Logger == nil {
		scfg.Logger = p.cfg.Logger
	}
	scfg.OnDurable = p.onDurable
	if user := p.cfg.Sink.OnDurable; user != nil {
		scfg.OnDurable = func(ev sink.Event) {
			p.onDurable(ev)
			user(ev)
		}
	}
	p.sink = sink.New(p.bucket, scfg)
	for _, ev := range p.sink.Recovered() {
		if ev.Kind == sink.KindSegment {
			ccfg.FirstSequence = max(ccfg.FirstSequence, ev.Seq+1)
		} else {
			ccfg.FirstInitSequence = max(ccfg.FirstInitSequence, ev.Seq+1)
		}
		ccfg.StartWithDiscontinuity = true
	}
}

// scanExisting lists the objects under prefix and returns the sequence
// numbers that follow the highest existing segment and init section.
func scanExisting(ctx context.Context, b *blob.Bucket, prefix string) (nextSeg, nextInit uint64, found bool, err error) {
	it := b.List(&blob.ListOptions{Prefix: prefix, Delimiter: "/"})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, 0, false, fmt.Errorf("livechunk: listing %q: %w", prefix, err)
		}
		seq, init, ok := sink.KeySeq(obj.Key)
		switch {
		case ok && !init:
			nextSeg, found = max(nextSeg, seq+1), true
		case ok && init:
			nextInit, found = max(nextInit, seq+1), true
		}
	}
	return nextSeg, nextInit, found, nil
}

// pipelineOutput stamps each segment with its wall-clock time before handing
// it to the sink or to Config.Output.
type pipelineOutput Pipeline

func (o *pipelineOutput) WriteInit(ctx context.Context, in *chunker.Init) error {
	p := (*Pipeline)(o)
	if p.cfg.Output == nil {
		return p.hand(ctx, heldObject{init: in})
	}
	accepted := time.Now()
	if err := p.cfg.Output.WriteInit(ctx, in); err != nil {
		p.failed = err
		return err
	}
	ev := sink.InitEvent(p.cfg.Prefix, in)
	ev.Accepted = accepted
	p.onDurable(ev)
	return nil
}

func (o *pipelineOutput) WriteSegment(ctx context.Context, s *chunker.Segment) error {
	p := (*Pipeline)(o)
	p.mu.Lock()
	now := time.Now()
	dur := timeline.Duration(s.Duration, s.Timescale)
	if !p.haveBase || s.Discontinuity {
		// The segment's first sample was captured about its duration ago,
		// and never before the previous segment ended.
		start := now.Add(-dur)
		if !p.haveBase && !p.cfg.StartTime.IsZero() {
			start = p.cfg.StartTime
		} else if !p.haveBase && !p.resumed.IsZero() && !s.Discontinuity {
			start = p.resumed // the recording goes on: so do its dates
		} else if !p.haveBase && !p.started.IsZero() {
			start = p.started
		}
		if start.Before(p.lastEnd) {
			start = p.lastEnd
		}
		p.base, p.baseDTS, p.haveBase = start, s.FirstDTS, true
	}
	at := p.base.Add(timeline.Duration(s.FirstDTS-p.baseDTS, s.Timescale))
	p.wall[s.Seq] = at
	p.lastEnd = at.Add(dur)
	p.mu.Unlock()
	if p.cfg.OnSegment != nil {
		p.cfg.OnSegment(s)
	}
	if p.cfg.Output == nil {
		return p.hand(ctx, heldObject{seg: s})
	}
	ev := sink.SegmentEvent(p.cfg.Prefix, s)
	ev.Accepted = now
	if err := p.cfg.Output.WriteSegment(ctx, s); err != nil {
		p.failed = err
		return err
	}
	p.onDurable(ev)
	return nil
}

// heldObject is an init section or a segment that the sink has not taken.
type heldObject struct {
	init *chunker.Init
	seg  *chunker.Segment
}

// hand gives o to the sink, after any objects held before it.
func (p *Pipeline) hand(ctx context.Context, o heldObject) error {
	p.held = append(p.held, o)
	return p.handHeld(ctx, false)
}

// handHeld gives the held objects to the sink, in order. A refusal that is
// not for good (ctx ended while the sink had no room, or sink.ErrOverflow)
// keeps them held, sets heldErr for the writing call to return, and is
// not returned: the chunker, which calls it through pipelineOutput, goes
// on. Any other error is the sink's failure, for good. patient (Wait,
// Close) waits for room under the Fail policy too.
func (p *Pipeline) handHeld(ctx context.Context, patient bool) error {
	for len(p.held) > 0 {
		o := p.held[0]
		var err error
		if o.init != nil {
			err = p.sink.WriteInit(ctx, o.init)
		} else {
			err = p.sink.WriteSegment(ctx, o.seg)
		}
		if patient && errors.Is(err, sink.ErrOverflow) {
			// Room comes when what is in flight has landed.
			if err = p.sink.Wait(ctx); err == nil {
				continue
			}
		}
		if err != nil {
			if errors.Is(err, sink.ErrOverflow) || ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				p.heldErr = err
				return nil
			}
			p.failed = err
			return err
		}
		p.held[0] = heldObject{}
		p.held = p.held[1:]
	}
	p.heldErr = nil // nothing is held: no refusal stands
	return nil
}

// dropHeld releases the held objects: the recording goes on without them.
func (p *Pipeline) dropHeld() int {
	n := len(p.held)
	for _, o := range p.held {
		if o.seg != nil {
			o.seg.Release()
		}
	}
	p.held, p.heldErr = nil, nil
	return n
}

// begin starts a writing call: chunker.ErrClosed after Close or Abort, the
// error that stopped the pipeline for good, or nil once the objects held
// by an earlier call went to the sink (or could not yet: they stay held,
// and the call goes on).
func (p *Pipeline) begin(ctx context.Context) error {
	if p.closed {
		return chunker.ErrClosed
	}
	if p.failed != nil {
		return p.failed
	}
	return p.handHeld(ctx, false)
}

// end finishes a writing call whose own result is err: a refusal that
// held objects is reported once, with it.
func (p *Pipeline) end(err error) error {
	held := p.heldErr
	p.heldErr = nil
	var se *chunker.SampleError
	switch {
	case held == nil:
		return err
	case err == nil:
		return held
	case errors.As(err, &se) && !errors.Is(err, chunker.ErrTimescale):
		return errors.Join(err, held) // a refused sample, and a refusal of room
	}
	return err // permanent: it says all
}

// onDurable runs on a sink goroutine (or the writer, with Config.Output);
// it only queues the event.
func (p *Pipeline) onDurable(ev sink.Event) {
	p.mu.Lock()
	p.queue = append(p.queue, ev)
	p.queued++
	p.mu.Unlock()
	p.qcond.Broadcast()
}

// publishLoop adds durable segments to the playlist, in order, off the
// upload goroutines.
func (p *Pipeline) publishLoop() {
	defer close(p.pubDone)
	ctx := context.Background()
	for {
		p.mu.Lock()
		for len(p.queue) == 0 && !p.qclosed {
			p.qcond.Wait()
		}
		if len(p.queue) == 0 && p.qclosed {
			p.mu.Unlock()
			return
		}
		ev := p.queue[0]
		p.queue = p.queue[1:]
		var at time.Time
		if ev.Kind == sink.KindSegment {
			at = p.wall[ev.Seq]
			delete(p.wall, ev.Seq)
			if at.IsZero() {
				// Recovered from the spool of an earlier run, which
				// accepted it when it closed.
				at = ev.Accepted.Add(-ev.Segment.DurationTime())
			}
		}
		p.mu.Unlock()

		switch ev.Kind {
		case sink.KindInit:
			// The multivariant playlist describes the largest picture of
			// the stream (a resolution change keeps one variant).
			p.mu.Lock()
			if p.init == nil || ev.Init.Width*ev.Init.Height > p.init.Width*p.init.Height {
				p.init = ev.Init
			}
			p.mu.Unlock()
		case sink.KindSegment:
			si := ev.Segment
			seg := hls.SegmentOf(ev, at)
			err := p.pub.Add(ctx, seg)
			p.mu.Lock()
			p.bw.Add(seg)
			p.nsegs++
			p.frames += int64(si.Frames)
			p.secs += seg.Seconds()
			if err != nil && p.pubErr == nil {
				p.pubErr = err
			}
			p.lastErr = err
			first := p.nsegs == 1
			p.mu.Unlock()
			if err != nil {
				p.cfg.Logger.Warn("playlist update failed; the next one retries", "err", err)
			}
			if first && p.cfg.Playlist != hls.VOD {
				if err := p.writeMultivariant(ctx); err != nil {
					p.cfg.Logger.Warn("writing the multivariant playlist failed", "err", err)
				}
			}
		}
		if p.cfg.OnDurable != nil {
			p.cfg.OnDurable(ev)
		}
		p.mu.Lock()
		p.published++
		p.mu.Unlock()
		p.qcond.Broadcast()
	}
}

// Flush closes the open segment, so that every sample written so far goes
// out (see chunker.Chunker.Flush): the next segment starts at the next
// keyframe written. Like Write, it is called from the writing goroutine;
// blocking and errors are Write's.
func (p *Pipeline) Flush(ctx context.Context) error {
	if err := p.begin(ctx); err != nil {
		return err
	}
	return p.end(p.chunk.Flush(ctx))
}

// Wait blocks until every segment closed so far is durable in the bucket
// and listed in the playlist (for a live or event playlist: the playlist
// that lists it is written), or until ctx ends. It returns the upload
// error that makes a segment fail, or the error of the last playlist write
// when that failed (the next write retries it). With Flush before it, a
// caller knows that what it wrote is stored: a server acknowledges an
// upload this way. With Config.Output, what Write handed to it is stored
// when Write returns, and Wait waits for the playlist only. Like Write, it
// is called from the writing goroutine.
func (p *Pipeline) Wait(ctx context.Context) error {
	if !p.closed {
		if err := p.begin(ctx); err != nil {
			return err
		}
		if err := p.handHeld(ctx, true); err != nil {
			return err
		}
		if len(p.held) > 0 {
			return p.end(nil)
		}
	}
	if p.sink != nil {
		if err := p.sink.Wait(ctx); err != nil {
			return err
		}
	}
	p.mu.Lock()
	target := p.queued
	p.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.qcond.Broadcast()
	})
	defer stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.published < target && !p.qclosed && ctx.Err() == nil {
		p.qcond.Wait()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return p.lastErr
}

// Continuation returns where the recording stands between segments, after
// Flush: a pipeline made with it (Config.Continue), in another process
// say, goes on with the recording exactly where this one is. The error is
// chunker.ErrNotBetweenSegments while a segment is open.
func (p *Pipeline) Continuation() (chunker.Continuation, error) {
	if p.closed {
		return chunker.Continuation{}, chunker.ErrClosed
	}
	if n := len(p.held); n > 0 {
		return chunker.Continuation{}, fmt.Errorf("%w: %d objects wait for room in the sink (Wait first)", chunker.ErrNotBetweenSegments, n)
	}
	return p.chunk.Continuation()
}

// writeMultivariant writes the multivariant playlist from the segments seen
// so far.
func (p *Pipeline) writeMultivariant(ctx context.Context) error {
	if p.cfg.MultivariantName == "-" {
		return nil
	}
	p.mu.Lock()
	n := p.nsegs
	peak, avg := p.bw.Bandwidth()
	in := p.init
	p.mu.Unlock()
	if n == 0 || in == nil {
		return nil
	}
	v := hls.Variant{
		URI:              p.cfg.PlaylistName,
		Bandwidth:        peak,
		AverageBandwidth: avg,
		Codecs:           in.Codecs(),
		Width:            in.Width,
		Height:           in.Height,
		FrameRate:        p.frameRate(),
	}
	if mx := p.cfg.Matrix; mx[0] == 0 && mx[4] == 0 && mx[1] != 0 && mx[3] != 0 {
		// Turned by 90 or 270 degrees: RESOLUTION is the displayed size.
		v.Width, v.Height = v.Height, v.Width
	}
	m := hls.MultivariantPlaylist{IndependentSegments: !p.cfg.OpenGOP, Variants: []hls.Variant{v}}
	key := p.cfg.Prefix + p.cfg.MultivariantName
	return hls.WritePlaylist(ctx, p.bucket, key, m.Render(), "", p.pubRetry)
}

func (p *Pipeline) frameRate() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.secs <= 0 {
		return 0
	}
	return float64(p.frames) / p.secs
}

// Write adds the next access unit (decode order) to the recording. It
// blocks while a segment that closes waits for room among the uploads in
// flight (sink.Config.MaxInFlightBytes under the Block policy) or for
// Config.Output; ctx bounds that wait, and no other work.
//
// Errors:
//   - ctx's error, or sink.ErrOverflow under the Fail policy: the sink
//     had no room for a segment that closed. Not permanent: the sample
//     was taken, and what closed is held in memory (beyond
//     MaxInFlightBytes) and goes to the sink first at the next call
//     (Write, WriteAudio, WritePacket, Flush, Break, Wait, Close or
//     Abort). A caller that keeps writing with an ended ctx holds ever
//     more. With a sample error of the same call it comes joined; a
//     permanent error comes alone.
//   - A *chunker.SampleError: that sample is refused (test its cause
//     with errors.Is: chunker.ErrInvalidSample, chunker.ErrNonMonotonicDTS,
//     ...); the recording goes on with the next one, except after
//     chunker.ErrTimescale.
//   - Any other error is permanent: an upload that failed for good (a
//     *sink.UploadError), an error of Config.Output, chunker.ErrTimescale,
//     chunker.ErrSegmentTooLarge; every later call returns it, and Close
//     reports what did not land. chunker.ErrClosed after Close or Abort.
func (p *Pipeline) Write(ctx context.Context, s chunker.Sample) error {
	if err := p.begin(ctx); err != nil {
		return err
	}
	if p.started.IsZero() {
		p.started = time.Now()
	}
	err := p.end(p.chunk.Write(ctx, s))
	p.writes++
	if !p.cfg.OpenGOP && !p.warnedOpenGOP && p.writes%openGOPCheckEvery == 0 {
		// A stream of open GOPs without IDR pictures makes no segment
		// until its next IDR picture, perhaps never: say why, once.
		if n := p.chunk.Stats().RecoveryPoints; n >= openGOPWarnAfter {
			p.warnedOpenGOP = true
			p.cfg.Logger.Warn("livechunk: the stream has open-GOP keyframes (recovery points), where segments do not start by default; "+
				"a segment runs until the next IDR picture (Config.OpenGOP, record/serve -open-gop, cuts at them)",
				"recovery_points", n)
		}
	}
	return err
}

// openGOPCheckEvery is how often (in samples) Write looks at the chunker's
// count of unused open-GOP keyframes: a copy of its Stats per sample would
// cost the hot path for a warning that can wait a few seconds.
const openGOPCheckEvery = 64

// openGOPWarnAfter is how many open-GOP keyframes pass unused before the
// pipeline warns that the stream has open GOPs.
const openGOPWarnAfter = 3

// WriteAudio adds the next AAC frame of the audio track (Config.Audio),
// interleaved with Write calls in time order. Blocking and errors are
// Write's; without Config.Audio it returns chunker.ErrNoTrack.
func (p *Pipeline) WriteAudio(ctx context.Context, a chunker.AudioSample) error {
	if err := p.begin(ctx); err != nil {
		return err
	}
	if p.started.IsZero() {
		p.started = time.Now()
	}
	return p.end(p.chunk.WriteAudio(ctx, a))
}

// Stats reports the counters of the stages (the chunker's as of its last
// call that returned). It may be called from any goroutine, also while
// another one writes.
func (p *Pipeline) Stats() Stats {
	ts := p.cfg.Timescale
	if p.cfg.NoVideo && p.cfg.Audio != nil {
		// Audio-only segments are timed in the sample rate.
		if ai, err := chunker.ParseAudioSpecificConfig(p.cfg.Audio.ASC); err == nil {
			ts = uint32(ai.SampleRate)
		}
	}
	st := Stats{Timescale: ts, Chunker: p.chunk.Stats(), Playlist: p.pub.Stats()}
	if p.sink != nil {
		st.Sink = p.sink.Stats()
	}
	return st
}

// Stats are the counters of a Pipeline's stages.
type Stats struct {
	// Timescale of the media ticks in Chunker.MediaTicks.
	Timescale uint32
	// Chunker counts samples and segments (as of the chunker's last call
	// that returned).
	Chunker chunker.Stats
	// Sink counts uploads; it is zero with Config.Output.
	Sink sink.Stats
	// Playlist counts the segments listed and the playlist writes.
	Playlist hls.PublisherStats
}

// PlaylistKey returns the media playlist's object key (Prefix and
// PlaylistName). It may be called from any goroutine.
func (p *Pipeline) PlaylistKey() string { return p.pub.Key() }

// Close ends the recording: the open segment closes, every upload finishes,
// and the playlist gets EXT-X-ENDLIST (VOD playlists are written now). When
// the recording stopped on a permanent error (see Write), or something
// closed did not land (an upload, or a segment held when ctx ended: see
// Write), the playlist is left unfinished instead, as Abort leaves it (a
// VOD recording's as an EVENT playlist), so that a later NewPipeline
// resumes the recording. It blocks until then, or until ctx ends (uploads
// still running are then abandoned, see sink.Sink.Close, and segments
// still held are dropped). It returns the errors of every stage
// joined (test with errors.Is and errors.As); segments that did land stay
// listed. The publishing and upload goroutines have ended when it returns.
// Close after Close or Abort returns nil.
func (p *Pipeline) Close(ctx context.Context) error {
	if p.closed {
		return nil
	}
	p.closed = true
	errHeld := p.handHeld(ctx, true)
	errChunk := p.chunk.Close(ctx)
	if errHeld == nil {
		errHeld = p.handHeld(ctx, true)
	}
	if len(p.held) > 0 {
		cause := p.heldErr
		if cause == nil {
			cause = errHeld
		}
		errHeld = errors.Join(errHeld, fmt.Errorf("livechunk: %d objects never went to the sink: %w", p.dropHeld(), cause))
	}
	errSink := p.closeSink(ctx)
	var ue *sink.UploadError
	if errSink != nil && (errors.As(errChunk, &ue) || errors.Is(errChunk, p.failed)) {
		errChunk = nil // the sink's failure, which errSink reports
	}
	if errSink != nil && errors.As(errHeld, &ue) {
		errHeld = nil
	}
	p.mu.Lock()
	p.qclosed = true
	p.mu.Unlock()
	p.qcond.Broadcast()
	<-p.pubDone
	var errFinish error
	intact := errChunk == nil && errSink == nil && errHeld == nil && p.failed == nil
	p.mu.Lock()
	listed := p.nsegs
	p.mu.Unlock()
	if intact {
		errFinish = p.pub.Finish(ctx)
	} else {
		// Something is missing: the playlist stays unfinished, so that
		// the recording can be resumed.
		errFinish = p.keepListing(ctx, listed)
		p.cfg.Logger.Warn("livechunk: the recording stopped on an error; its playlist is left unfinished (no EXT-X-ENDLIST) for a later pipeline to resume")
	}
	errMulti := p.writeMultivariant(ctx)
	return errors.Join(errChunk, errHeld, errSink, errFinish, errMulti)
}

// WithSource returns cfg with what a source knows about its stream filled
// in: Timescale, WrapBits and NoVideo always; the parameter sets when cfg
// has none and info has both an SPS and a PPS (otherwise the chunker takes
// them from the stream); the audio track, the bit rate and the display
// matrix when cfg leaves them unset; and, for an input of one timeline
// (info.OneTimeline), a JumpThreshold that no step reaches, when cfg sets
// none. Record uses it; so does a server that starts a Pipeline for each
// incoming stream.
func (cfg Config) WithSource(info source.Info) Config {
	cfg.Timescale = info.Timescale
	cfg.WrapBits = info.WrapBits
	cfg.NoVideo = info.NoVideo
	if len(cfg.SPS) == 0 && len(cfg.PPS) == 0 && len(info.SPS) > 0 && len(info.PPS) > 0 {
		cfg.SPS, cfg.PPS = info.SPS, info.PPS
	}
	if cfg.Audio == nil && info.Audio != nil {
		cfg.Audio = info.Audio.Config()
	}
	if cfg.Bitrate == 0 {
		cfg.Bitrate = info.Bitrate
	}
	if cfg.Matrix == [9]int32{} {
		cfg.Matrix = info.Matrix
	}
	if info.OneTimeline && cfg.JumpThreshold == 0 {
		cfg.JumpThreshold = noJumps
	}
	return cfg
}

// noJumps is the chunker's JumpThreshold for an input whose decode times
// cannot jump (source.Info.OneTimeline): a step forward of up to this
// long is a pause of the video, which the picture before it lasts.
const noJumps = 1000 * time.Hour

// Record reads every sample of src (video and audio, in the source's
// order) into a new Pipeline on b and closes it. What the source knows of
// its stream (timescale, parameter sets, audio track, display matrix, bit
// rate) is taken into cfg with Config.WithSource.
//
// Record blocks until the source ends and the recording is closed, or
// until the first error: NewPipeline's, the source's (wrapped), or the
// first one Write returns (see Pipeline.Write; a sample error ends Record
// too), joined with Close's. What landed before an error stays listed. It
// does not close src. The Stats are those at the end, also on error (zero
// when NewPipeline failed).
func Record(ctx context.Context, b *blob.Bucket, src source.Source, cfg Config) (Stats, error) {
	if src == nil {
		return Stats{}, fmt.Errorf("%w: nil source", chunker.ErrInvalidConfig)
	}
	cfg = cfg.WithSource(src.Info())
	if cfg.Matrix != [9]int32{} && cfg.Format == chunker.TS && cfg.Logger != nil {
		cfg.Logger.Warn("livechunk: the input is rotated for display; MPEG-TS segments cannot carry the rotation (fMP4 ones do)")
	}
	p, err := NewPipeline(ctx, b, cfg)
	if err != nil {
		return Stats{}, err
	}
	every := cfg.ProgressInterval
	if every <= 0 {
		every = 250 * time.Millisecond
	}
	last := time.Now()
	for {
		if cfg.Progress != nil && time.Since(last) >= every {
			last = time.Now()
			cfg.Progress(p.Stats())
		}
		pk, err := src.NextPacket()
		if err == io.EOF {
			break
		}
		if err != nil {
			cerr := p.Close(ctx)
			return p.Stats(), errors.Join(fmt.Errorf("livechunk: reading input: %w", err), cerr)
		}
		if err := p.WritePacket(ctx, pk); err != nil {
			cerr := p.Close(ctx)
			return p.Stats(), errors.Join(err, cerr)
		}
	}
	err = p.Close(ctx)
	st := p.Stats()
	if cfg.Progress != nil {
		cfg.Progress(st)
	}
	return st, err
}

// WritePacket writes one packet of a source: a video sample with Write, an
// audio frame with WriteAudio, or, when the pipeline has no audio track
// (Config.Audio nil), nothing. It is the one step from a source to the
// pipeline, for Record and for a server's ingest alike; it returns what
// Write or WriteAudio returns.
func (p *Pipeline) WritePacket(ctx context.Context, pk source.Packet) error {
	if pk.Kind == source.KindAudio {
		if p.cfg.Audio == nil {
			return nil
		}
		return p.WriteAudio(ctx, pk.Audio)
	}
	return p.Write(ctx, pk.Video)
}

// Abort stops the recording the way a crash after the last upload would:
// the open segment is dropped, uploads already accepted finish and are
// listed, and the playlist is left unfinished (no EXT-X-ENDLIST), so a later
// NewPipeline on the same destination resumes it. Use it when the
// broadcaster is expected to reconnect. A VOD recording, whose playlist is
// written once by Close, gets an unfinished EVENT playlist of what landed,
// which the resuming pipeline takes over; a process that dies without
// Abort or Close leaves a VOD recording unlisted (an event playlist is
// written as segments land). Blocking, ctx and the goroutines
// are as for Close; it returns, joined, what did not reach the sink, the
// uploads' error, the first failed playlist write and the error of the
// unfinished playlist's write. Abort after Close or Abort returns nil.
func (p *Pipeline) Abort(ctx context.Context) error {
	if p.closed {
		return nil
	}
	p.closed = true
	if p.failed == nil {
		_ = p.handHeld(ctx, true) // what closed before Abort goes
	}
	var errHeld error
	if len(p.held) > 0 {
		cause := p.heldErr
		if cause == nil {
			cause = p.failed
		}
		errHeld = fmt.Errorf("livechunk: %d objects never went to the sink: %w", p.dropHeld(), cause)
	}
	errSink := p.closeSink(ctx)
	p.mu.Lock()
	p.qclosed = true
	p.mu.Unlock()
	p.qcond.Broadcast()
	<-p.pubDone
	p.mu.Lock()
	errPub := p.pubErr
	listed := p.nsegs
	p.mu.Unlock()
	return errors.Join(errHeld, errSink, errPub, p.keepListing(ctx, listed))
}

// Break closes the open segment and marks the next one as a discontinuity,
// for input known to be missing (a lost chunk) or a restarted source.
// Like Write, it is called from the writing goroutine; blocking and errors
// are Write's.
func (p *Pipeline) Break(ctx context.Context) error {
	if err := p.begin(ctx); err != nil {
		return err
	}
	return p.end(p.chunk.Break(ctx))
}

// keepListing writes what a recording that stops unfinished (Abort, a
// Close after an error) lists so far, without EXT-X-ENDLIST, where no
// playlist write has listed it: a VOD recording's, as an EVENT playlist
// (a VOD playlist is written once, complete: the pipeline that resumes
// the recording restores these segments from it and lists them in the
// VOD playlist its Close writes); a live or event playlist held back by
// StartDuration, or whose last write failed, as it stands.
func (p *Pipeline) keepListing(ctx context.Context, listed int) error {
	if listed == 0 {
		return nil
	}
	st := p.pub.Stats()
	pl := p.pub.Playlist()
	switch {
	case p.cfg.Playlist == hls.VOD:
		pl.Type = hls.Event
		pl.TargetDuration = hls.ComputeTargetDuration(pl.Segments)
	case st.Writes > 0 && p.lastPubErr() == nil:
		return nil // the last write lists every segment
	}
	// A live or event playlist held back (StartDuration), or whose last
	// write failed, is written as it stands.
	pl.Ended = false
	return hls.WritePlaylist(ctx, p.bucket, p.pub.Key(), pl.Render(), "no-cache", p.pubRetry)
}

// lastPubErr is the error of the last playlist write (nil once one
// succeeds).
func (p *Pipeline) lastPubErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastErr
}

// closeSink closes the sink, if the pipeline uploads (no Config.Output).
func (p *Pipeline) closeSink(ctx context.Context) error {
	if p.sink == nil {
		return nil
	}
	return p.sink.Close(ctx)
}

// AsChunker returns p as a chunker.Chunker, for code written against that
// interface: its methods are p's, and its Stats reports the chunker's
// counters (Stats().Chunker). Pipeline itself does not implement
// chunker.Chunker because its own Stats reports every stage.
func (p *Pipeline) AsChunker() chunker.Chunker { return pipelineChunker{p} }

// pipelineChunker is a Pipeline as a chunker.Chunker.
type pipelineChunker struct{ *Pipeline }

func (c pipelineChunker) Stats() chunker.Stats { return c.chunk.Stats() }
