package hls

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"strings"
	"sync"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/livechunk/livechunk/internal/retry"
	"github.com/livechunk/livechunk/sink"
)

// PublisherConfig configures a Publisher. The zero value publishes a live
// sliding-window playlist named index.m3u8 at the bucket root.
type PublisherConfig struct {
	// Type of playlist. Live (default) keeps a sliding window; Event only
	// appends; VOD writes the playlist once, complete, on Finish.
	Type Type
	// Prefix is the key prefix of the playlist and of the segments (the
	// segment URIs are relative to it). For example "streams/cam1/".
	Prefix string
	// Name of the playlist object under Prefix. Default "index.m3u8".
	Name string
	// TargetDuration is the chunker's nominal segment length; it seeds
	// EXT-X-TARGETDURATION of live and event playlists. Default 5 s.
	TargetDuration time.Duration
	// WindowDuration is the least total duration a live window keeps
	// (RFC 8216 section 6.2.2 asks for at least three target durations).
	// Default: six target durations.
	WindowDuration time.Duration
	// MinSegments is the least number of segments a live window keeps.
	// Default 6 (Apple HLS authoring spec 8.11).
	MinSegments int
	// KeepSegments disables deleting segments that slid out of a live
	// window. By default they are deleted once the grace period of RFC 8216
	// section 6.2.2 has passed (their duration plus the longest playlist
	// duration that contained them).
	KeepSegments bool
	// FirstMediaSequence is the media sequence number of the first segment
	// added (unless Restore lists earlier ones).
	FirstMediaSequence uint64
	// Now returns the current time (for deletion timing). Default time.Now.
	Now func() time.Time
	// Retry configures retries of playlist writes that fail with a
	// transient error (see [sink.Retry]). Zero fields take the upload
	// defaults, except AttemptTimeout: 30 s. A write that keeps failing,
	// or fails with a permanent error, is returned to the caller of Add or
	// Finish; the next write (which carries everything the failed one did)
	// repairs the playlist.
	Retry sink.Retry
	// StartDuration, when positive, holds back the first write of a live
	// or event playlist until its segments last this long together. RFC
	// 8216 section 6.3.3 has players start no less than three target
	// durations from the end of a live playlist, and Chromium's own HLS
	// player (what a plain <video src> uses) stops with a demuxer error on
	// a live playlist shorter than that, while hls.js starts on one
	// segment. Once written, the playlist is rewritten on every segment;
	// Finish always writes it. The default (zero) writes it from the first
	// segment, because until the first write a durable segment is not
	// referenced by any playlist: a process that dies before it leaves
	// segments that a resumed recording does not list (it does not
	// overwrite them).
	StartDuration time.Duration
	// OpenGOP declares that segments may start at open-GOP pictures
	// (chunker.Config.OpenGOP), so they are not independent: the playlist
	// leaves out EXT-X-INDEPENDENT-SEGMENTS.
	OpenGOP bool
	// Logger receives warnings (nil: discard).
	Logger *slog.Logger
}

// playlistRetry holds the defaults of a playlist write's [sink.Retry]:
// those of an upload, except that an attempt is abandoned after 30 s (a
// playlist is small) and that MaxAttempts is 8 under any sink policy (a
// playlist is never spooled, and the next write repairs a failed one).
var playlistRetry = retry.Policy{
	MaxAttempts:    sink.DefaultMaxAttempts,
	InitialBackoff: sink.DefaultInitialBackoff,
	MaxBackoff:     sink.DefaultMaxBackoff,
	AttemptTimeout: 30 * time.Second,
}

// Publisher turns the stream of durable segments into playlist objects in a
// bucket. Add must be called only for segments (and their init sections)
// that are already durable, in sequence order: the playlist then never
// references a missing object. Each playlist write replaces the object
// atomically.
//
// A Publisher is safe for concurrent use; its methods run one at a time,
// Add and Finish holding the others back during their playlist write
// (retries included, see PublisherConfig.Retry). It starts no goroutines.
// A failed write is not permanent: the Publisher keeps the segment, and
// the next Add or Finish writes a playlist that lists it.
type Publisher struct {
	b   *blob.Bucket
	cfg PublisherConfig

	mu       sync.Mutex
	pl       MediaPlaylist
	tdFixed  bool
	longest  int64 // longest playlist duration so far, microseconds
	pending  []pendingDelete
	finished bool // Finish was called: no more Add
	ended    bool // the final playlist is stored
	stats    PublisherStats
	buf      []byte // the rendered playlist, reused by every write
}

// PublisherStats are counters of a Publisher.
type PublisherStats struct {
	Writes                int   // playlist writes
	WriteRetries          int   // playlist write attempts repeated after a transient error
	WriteFailures         int   // playlist writes given up (the error was returned)
	Segments              int   // segments added
	Deleted               int   // objects deleted after sliding out
	TargetDurationRaised  int   // times a segment forced a larger target duration
	LongestPlaylistMicros int64 // longest live playlist duration
}

type pendingDelete struct {
	key string
	at  time.Time
}

// NewPublisher returns a Publisher writing to b, which stays the caller's
// (open while the Publisher is used). It writes nothing. The error wraps
// ErrInvalidConfig, or ErrBadKey for a Prefix and Name that do not make a
// safe key.
func NewPublisher(b *blob.Bucket, cfg PublisherConfig) (*Publisher, error) {
	if b == nil {
		return nil, fmt.Errorf("%w: nil bucket", ErrInvalidConfig)
	}
	if cfg.Name == "" {
		cfg.Name = "index.m3u8"
	}
	if err := CheckKey(cfg.Prefix + cfg.Name); err != nil {
		return nil, err
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.TargetDuration <= 0 {
		cfg.TargetDuration = 5 * time.Second
	}
	if cfg.WindowDuration <= 0 {
		cfg.WindowDuration = 6 * cfg.TargetDuration
	}
	if min := 3 * cfg.TargetDuration; cfg.WindowDuration < min {
		cfg.WindowDuration = min
	}
	if cfg.MinSegments <= 0 {
		cfg.MinSegments = 6
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Retry = sink.Retry(retry.Policy(cfg.Retry).WithDefaults(playlistRetry))
	p := &Publisher{b: b, cfg: cfg}
	p.pl.Type = cfg.Type
	p.pl.MediaSequence = cfg.FirstMediaSequence
	p.pl.IndependentSegments = !cfg.OpenGOP
	return p, nil
}

// Key returns the bucket key of the playlist.
func (p *Publisher) Key() string { return p.cfg.Prefix + p.cfg.Name }

// Stats returns the counters.
func (p *Publisher) Stats() PublisherStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Playlist returns a copy of the current playlist model (its Segments are
// the caller's).
func (p *Publisher) Playlist() MediaPlaylist {
	p.mu.Lock()
	defer p.mu.Unlock()
	cp := p.pl
	cp.Segments = append([]Segment(nil), p.pl.Segments...)
	return cp
}

// Restore loads segments already listed (for example parsed from an earlier
// playlist when resuming a recording) before new ones are added: call it
// before the first Add. It copies old's segments, media and discontinuity
// sequence numbers and (except for VOD) target duration, replacing what the
// Publisher lists. It writes nothing; a nil old restores nothing.
func (p *Publisher) Restore(old *MediaPlaylist) {
	if old == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pl.MediaSequence = old.MediaSequence
	p.pl.DiscontinuitySequence = old.DiscontinuitySequence
	p.pl.Segments = append(p.pl.Segments[:0], old.Segments...)
	if old.TargetDuration > 0 && p.cfg.Type != VOD {
		p.pl.TargetDuration = old.TargetDuration
		p.tdFixed = true
	}
}

// check refuses values no default stands for: a Type that is not Live,
// Event or VOD, negative durations.
func (cfg PublisherConfig) check() error {
	if !cfg.Type.valid() {
		return fmt.Errorf("%w: playlist type %d", ErrInvalidConfig, cfg.Type)
	}
	for name, d := range map[string]time.Duration{"TargetDuration": cfg.TargetDuration,
		"WindowDuration": cfg.WindowDuration, "StartDuration": cfg.StartDuration} {
		if d < 0 {
			return fmt.Errorf("%w: negative %s %v", ErrInvalidConfig, name, d)
		}
	}
	return nil
}

// Add appends a durable segment and, for live and event playlists, writes
// the updated playlist (unless StartDuration holds it back), then deletes
// the objects that left a live window and whose grace period has passed.
// Segments get consecutive media sequence numbers, starting from
// FirstMediaSequence (or after the restored ones).
//
// A segment without a timescale or a positive duration (the zero Segment
// among them) is ErrInvalidSegment, a URI that makes an unsafe key
// ErrBadKey, and Add after Finish ErrPublisherFinished; such a segment is
// not added. An error of the playlist write (with its gcerrors code, or the
// cause of ctx) leaves the segment added: the next write lists it.
func (p *Publisher) Add(ctx context.Context, s Segment) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return ErrPublisherFinished
	}
	if s.Timescale == 0 || s.Duration <= 0 {
		return fmt.Errorf("%w: segment %q lasts %d ticks of a timescale of %d", ErrInvalidSegment, s.URI, s.Duration, s.Timescale)
	}
	if err := CheckKey(p.cfg.Prefix + s.URI); err != nil {
		return err
	}
	p.pl.Segments = append(p.pl.Segments, s)
	p.stats.Segments++
	if p.cfg.Type == VOD {
		return nil
	}
	p.fixTargetDuration(s)
	if p.cfg.Type == Live {
		p.slide()
	}
	if p.stats.Writes == 0 && p.cfg.StartDuration > 0 && totalMicros(p.pl.Segments) < p.cfg.StartDuration.Microseconds() {
		return nil // never written and too short to start playing: written later
	}
	if err := p.write(ctx); err != nil {
		return err
	}
	p.deleteDue(ctx, false)
	return nil
}

// fixTargetDuration sets EXT-X-TARGETDURATION when the first segment arrives
// and raises it (with a warning) if a later segment would exceed it; RFC 8216
// forbids both a longer EXTINF and a changing target, and the longer EXTINF
// breaks players first.
func (p *Publisher) fixTargetDuration(s Segment) {
	r := ExtinfRound(s.Seconds())
	if !p.tdFixed {
		td := ExtinfRound(p.cfg.TargetDuration.Seconds())
		if td < 1 {
			td = 1
		}
		if r > td {
			td = r
		}
		p.pl.TargetDuration = td
		p.tdFixed = true
		return
	}
	if r > p.pl.TargetDuration {
		p.cfg.Logger.Warn("hls: segment longer than the target duration; raising EXT-X-TARGETDURATION",
			"segment", s.URI, "seconds", s.Seconds(), "old", p.pl.TargetDuration, "new", r)
		p.pl.TargetDuration = r
		p.stats.TargetDurationRaised++
	}
}

func totalMicros(segs []Segment) int64 {
	var t int64
	for _, s := range segs {
		t += int64(s.Seconds() * 1e6)
	}
	return t
}

// slide removes segments from the head while the rest still covers the
// window, and schedules their deletion.
func (p *Publisher) slide() {
	window := p.cfg.WindowDuration.Microseconds()
	if tot := totalMicros(p.pl.Segments); tot > p.longest {
		p.longest = tot
		p.stats.LongestPlaylistMicros = tot
	}
	for len(p.pl.Segments) > p.cfg.MinSegments {
		head := p.pl.Segments[0]
		rest := p.pl.Segments[1:]
		if totalMicros(rest) < window {
			break
		}
		p.pl.Segments = rest
		p.pl.MediaSequence++
		if head.Discontinuity {
			p.pl.DiscontinuitySequence++
		}
		if p.cfg.KeepSegments {
			continue
		}
		// RFC 8216 6.2.2: available for its duration plus the longest
		// playlist duration that contained it.
		grace := time.Duration(int64(head.Seconds()*1e6)+p.longest) * time.Microsecond
		at := p.cfg.Now().Add(grace)
		p.pending = append(p.pending, pendingDelete{key: p.cfg.Prefix + head.URI, at: at})
		if head.Map != "" && !p.mapInUse(head.Map) {
			p.pending = append(p.pending, pendingDelete{key: p.cfg.Prefix + head.Map, at: at})
		}
	}
}

func (p *Publisher) mapInUse(m string) bool {
	for _, s := range p.pl.Segments {
		if s.Map == m {
			return true
		}
	}
	return false
}

// deleteDue deletes scheduled objects whose grace period has passed (all of
// them when force is set). Failures are logged, not fatal: a leftover object
// costs storage, not playback.
func (p *Publisher) deleteDue(ctx context.Context, force bool) {
	now := p.cfg.Now()
	i := 0
	for ; i < len(p.pending); i++ {
		d := p.pending[i]
		if !force && now.Before(d.at) {
			break
		}
		if err := p.b.Delete(ctx, d.key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			p.cfg.Logger.Warn("hls: deleting a segment that left the window failed", "key", d.key, "err", err)
			continue
		}
		p.stats.Deleted++
	}
	p.pending = p.pending[i:]
}

// DeleteDue deletes objects whose grace period has passed. Add calls it; a
// long-running server may also call it periodically. Failed deletions are
// logged, not returned; the objects stay in the bucket.
func (p *Publisher) DeleteDue(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.deleteDue(ctx, false)
}

// write stores the current playlist, retrying transient errors with
// back-off. Writes are serialized by p.mu, so a retry never replaces a newer
// playlist; repeating a write whose acknowledgement was lost stores the
// same bytes again.
func (p *Publisher) write(ctx context.Context) error {
	// The buffer is reused: WriteAll is done with it when it returns.
	p.buf = p.pl.AppendRender(p.buf[:0])
	retries, err := writeRetry(ctx, p.b, p.Key(), p.buf, p.cacheControl(), retry.Policy(p.cfg.Retry), p.cfg.Logger)
	p.stats.WriteRetries += retries
	if err != nil {
		p.stats.WriteFailures++
		return err
	}
	p.stats.Writes++
	return nil
}

// WritePlaylist stores a rendered playlist (media or multivariant) at key,
// retrying transient errors as r says (zero fields take the defaults of
// PublisherConfig.Retry). It returns the last error once a write fails
// permanently or runs out of attempts, or the context's cause when ctx
// ends first.
func WritePlaylist(ctx context.Context, b *blob.Bucket, key string, body []byte, cacheControl string, r sink.Retry) error {
	_, err := writeRetry(ctx, b, key, body, cacheControl, retry.Policy(r).WithDefaults(playlistRetry), nil)
	return err
}

// writeRetry writes body at key, retrying as r says (its defaults
// applied), and returns the number of retries made.
func writeRetry(ctx context.Context, b *blob.Bucket, key string, body []byte, cacheControl string, r retry.Policy, log *slog.Logger) (retries int, err error) {
	opts := &blob.WriterOptions{
		ContentType:                 "application/vnd.apple.mpegurl",
		CacheControl:                cacheControl,
		DisableContentTypeDetection: true,
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	attempts, err := retry.Do(ctx, r, func(ctx context.Context) error {
		return b.WriteAll(ctx, key, body, opts)
	}, func(attempt int, pause time.Duration, err error) {
		log.Warn("hls: playlist write failed, retrying", "key", key, "attempt", attempt, "pause", pause, "err", err)
		retries++
	})
	if err != nil {
		return retries, fmt.Errorf("hls: writing playlist %s (attempt %d): %w", key, attempts, err)
	}
	return retries, nil
}

func (p *Publisher) cacheControl() string {
	if p.pl.Ended || p.cfg.Type == VOD {
		return "public, max-age=31536000, immutable"
	}
	// About half a target duration for live playlists.
	half := p.pl.TargetDuration / 2
	if half < 1 {
		half = 1
	}
	return fmt.Sprintf("public, max-age=%d", half)
}

// Finish ends the playlist: EXT-X-ENDLIST is added and the final playlist is
// written (for VOD, the only write). After Finish, Add returns
// ErrPublisherFinished. When the write fails, Finish returns its error and
// may be called again to retry it; once it has succeeded, Finish does
// nothing and returns nil.
// Segments still waiting for deletion stay in the bucket.
func (p *Publisher) Finish(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		return nil
	}
	p.finished = true
	p.pl.Ended = true
	if p.cfg.Type == VOD {
		p.pl.TargetDuration = ComputeTargetDuration(p.pl.Segments)
	}
	if err := p.write(ctx); err != nil {
		return err
	}
	p.ended = true
	return nil
}

// LoadMedia reads and parses a media playlist from a bucket (at most its
// first 16 MiB). It returns an error satisfying gcerrors.Code(err) ==
// gcerrors.NotFound when there is none, and one wrapping ErrParse when it
// does not parse.
func LoadMedia(ctx context.Context, b *blob.Bucket, key string) (*MediaPlaylist, error) {
	r, err := b.NewReader(ctx, key, nil)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, 16<<20))
	if err != nil {
		return nil, err
	}
	return ParseMedia(data)
}

// ErrBadKey is returned for object keys or stream names that could escape
// their prefix or are otherwise unsafe.
var ErrBadKey = errors.New("hls: unsafe object key")

// CheckKey rejects keys that are empty, absolute, contain "..", "." or empty
// path elements, backslashes, quotes, '#', '?' or control characters (which
// would break a playlist line or a URL), or are longer than 1024 bytes.
func CheckKey(key string) error {
	if key == "" || len(key) > 1024 || strings.HasPrefix(key, "/") || strings.ContainsAny(key, "\\\x00\"#?") {
		return fmt.Errorf("%w: %q", ErrBadKey, key)
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %q", ErrBadKey, key)
		}
	}
	for _, el := range strings.Split(strings.TrimSuffix(key, "/"), "/") {
		if el == "" || el == "." || el == ".." {
			return fmt.Errorf("%w: %q", ErrBadKey, key)
		}
	}
	if path.Clean(key) != strings.TrimSuffix(key, "/") {
		return fmt.Errorf("%w: %q", ErrBadKey, key)
	}
	return nil
}
