// Package server is livechunk's HTTP front end: devices upload closed MP4
// chunks or push a live body, viewers watch the growing HLS playlist, and
// a stream that ends is stitched into one MP4.
//
// # Routes
//
// Paths are under Config.BasePath; {stream} is a name that ValidStreamName
// accepts.
//
//	PUT  /ingest/{stream}/{n}       chunk n (0 to 1000000), an MP4 file: a ChunkResult
//	POST /ingest/{stream}           a live body (MPEG-TS, raw H.264 or fragmented MP4),
//	                                recorded as it arrives: a PushResult when it ends
//	POST /ingest/{stream}/end       end the stream: its StreamInfo (also if it had ended;
//	                                404 if there is no such stream)
//	OPTIONS /ingest/{stream}[/{n}]  CORS preflight of ingest (see Config.AllowOrigins)
//	GET  /live/{stream}/{file}      index.m3u8, segments and init sections (hls.Handler)
//	GET  /vod/{stream}.mp4          the stitched file of an ended stream
//	                                (503 with Retry-After while it is being made)
//	GET  /watch/{stream}            a player page (HTML)
//	GET  /                          a page of the streams (HTML; ?after=NAME for the next)
//	GET  /api/streams               a page of streams: a JSON array of StreamInfo
//	                                (?limit=N&after=NAME; a Link header names the next page)
//	GET  /api/streams/{stream}      the StreamInfo of one stream; 404 if there is none
//	GET  /assets/hls.min.js         the hls.js player the pages load
//	GET  /healthz                   "ok" (200) for load balancers; 503 once Shutdown has begun
//
// The GET routes also answer HEAD; /live/ and /vod/ answer OPTIONS too (a
// CORS preflight, see Config.PlaybackOrigins). The answers of the ingest
// routes and of the two /api/streams routes are JSON, errors included: an
// error is {"error": "..."} with a 4xx or 5xx status (see the errors
// below). Any other request under /ingest/ is answered in JSON too: 405
// with Allow when the path is an ingest route's, 404 otherwise.
//
// Everything a stream produces lives in one bucket under
// Config.Prefix + stream + "/": segments, init sections, index.m3u8 and,
// after the end, vod.mp4; its ingest state (the chunks received, where the
// recording stands, the chunks that wait for an earlier one, who records
// it) lives under Config.Prefix + ".ingest/" + stream + "/". A chunk is
// answered 2xx only once all of that is stored: a device may delete it. A
// Server holds no other state that matters: a restarted server, or another
// one on the same bucket, goes on with every live stream exactly where it
// stood.
//
// Several Servers (nodes) on one bucket act as one service: one node
// records a live stream at a time, under a lease in the bucket that the
// store's conditional create fences (see Config.NodeID). A chunk that
// reaches another node is forwarded to the owner (Config.AdvertiseURL), or
// the stream is taken over when the owner is gone.
//
// Playback is open; who may write is set by Config.IngestToken (every
// stream), Config.KeySecret (stream keys, see MintKey) and
// Config.AllowOrigins (which web pages may write from a browser).
//
// A Server is an http.Handler, safe for concurrent use; it can be mounted
// under a path of an application's own mux (Config.BasePath), behind its
// middleware. New starts one goroutine (it ends idle streams), and each
// live stream records on goroutines of its own; Shutdown stops them all.
// The errors of the Go API (New, Ingest, MintKey, CheckKey) match the
// sentinels below with errors.Is (ErrInvalid for a configuration or
// argument refused).
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livechunk/livechunk"
	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/internal/httpx"
	"github.com/livechunk/livechunk/internal/player"
	"github.com/livechunk/livechunk/source"
	"github.com/livechunk/livechunk/stitch"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// StitchFunc joins the recording whose media playlist is at playlistKey in b
// into one MP4 written to outKey.
type StitchFunc func(ctx context.Context, b *blob.Bucket, playlistKey, outKey string) error

// StitchMP4 is the usual StitchFunc: it joins the recording with package
// stitch into one faststart MP4 at outKey (video and audio, no re-encoding),
// reading only the segments' indexes first and streaming their payloads.
func StitchMP4(ctx context.Context, b *blob.Bucket, playlistKey, outKey string) error {
	in, err := stitch.FromPlaylist(ctx, b, playlistKey)
	if err != nil {
		return fmt.Errorf("stitch %s: %w", playlistKey, err)
	}
	if _, err := stitch.WriteBlob(ctx, b, outKey, in, stitch.Options{}); err != nil {
		return fmt.Errorf("stitch %s: %w", playlistKey, err)
	}
	return nil
}

// Config configures a Server. Only Bucket is required.
type Config struct {
	// Bucket stores every stream.
	Bucket *blob.Bucket
	// Prefix is the key prefix under which each stream gets a "directory".
	// Default "" (the bucket root).
	Prefix string
	// BasePath is the URL path the Server is mounted under ("/studio"),
	// when it is one handler among others (an http.ServeMux, behind
	// middleware or a proxy); default "", the root. Every URL the Server
	// makes starts with it: in its pages (which link relatively where
	// they can), in StreamInfo, in the Link header of /api/streams, in
	// redirects (Location), and in the chunks it forwards to other nodes
	// (see AdvertiseURL). Mount it with mux.Handle(BasePath+"/", srv): the
	// Server takes BasePath off the request's path itself. A request whose
	// path does not start with BasePath is served as it is, so that
	// http.StripPrefix(BasePath, srv), or a proxy that takes BasePath
	// off, works too; one that spells BasePath escaped otherwise
	// ("/%73tudio/...") is answered 404, as http.StripPrefix does.
	// BasePath starts with "/", holds only letters, digits, '/', '-',
	// '.', '_' and '~', is clean (path.Clean keeps it once one trailing
	// "/" is taken off; so no "//"), and its first segment is none of the
	// Server's own (api, assets, healthz, ingest, live, vod, watch): New
	// fails otherwise.
	BasePath string
	// Format of the segments. Default fMP4.
	Format chunker.Format
	// SegmentDuration is the target segment length. Default 5 s. With
	// chunk ingest a segment also ends where the chunks an upload lets in
	// end (nothing is acknowledged before it is stored), so the devices'
	// chunk length is a natural choice.
	SegmentDuration time.Duration
	// IngestToken, when set, opens every stream to ingest requests that
	// present it as "Authorization: Bearer <token>"; others are refused
	// (401) unless they present a stream key (see KeySecret). Playback
	// stays open.
	IngestToken string
	// KeySecret, when set, signs stream keys (see MintKey): a key opens
	// one stream until it expires, presented as "Authorization: Bearer
	// <key>" or as "?key=<key>". Ingest then needs the IngestToken (if
	// set) or a key for the request's stream: a key that is invalid or
	// expired is refused with 401, a key for another stream with 403. At
	// least MinKeySecret bytes; New fails otherwise. Nodes sharing a
	// bucket need the same secret.
	KeySecret []byte
	// AllowOrigins lists the web origins ("https://studio.example.com":
	// scheme, host and port) whose pages may write to ingest; "*" allows
	// every origin. An entry is taken as browsers spell it in Origin
	// (lower case, no default port, no trailing "/"); New fails for one
	// that is no origin (a path, a query, no scheme). A
	// browser's write request from any other origin is refused (403):
	// its Sec-Fetch-Site is neither "same-origin" nor "none" ("same-site"
	// is refused too), or, without Sec-Fetch-Site, its Origin's host is
	// not the request's Host. Requests without either header (curl,
	// ffmpeg, apps) are not browsers' and pass. CORS preflights
	// (OPTIONS) from the listed origins are answered; others get 403.
	// This is on top of IngestToken and KeySecret, not instead.
	AllowOrigins []string
	// PlaybackOrigins lists the web origins (as AllowOrigins spells them)
	// whose pages may read the playlists, segments, VOD files and stream
	// information from another origin. Empty (the default), every origin
	// may: players embedded in other sites fetch public HLS. See
	// hls.Handler.AllowOrigins. It is not access control: anything else
	// than a browser reads without asking.
	PlaybackOrigins []string
	// MaxChunkBytes bounds one uploaded chunk. Default 256 MiB.
	MaxChunkBytes int64
	// MinUploadRate is the slowest a chunk's body may arrive, in bytes a
	// second on average (after a few seconds of grace): slower uploads are
	// cut off with 408, so that a client that trickles bytes does not hold
	// a connection and its room for ever. Default 16 KiB/s.
	MinUploadRate int64
	// MaxUploadBytes bounds the bytes of chunk bodies held on disk (see
	// MaxUploadMemory), over all uploads being read and the chunks that
	// wait for an earlier one. It is taken as the bytes arrive, so that a
	// client holds only what it has sent: an upload that finds it full
	// is refused at once with 503 and Retry-After (ErrOverloaded).
	// Default 1 GiB; never below MaxChunkBytes.
	MaxUploadBytes int64
	// MaxUploadMemory bounds the bytes of chunk bodies held in memory, over
	// all requests and the chunks that wait for an earlier one: a body of
	// declared length that it can take at once is read into memory (and
	// holds its room until it is fed); any other goes to a temporary file
	// in SpoolDir, under MaxUploadBytes. (Checking a fragmented MP4
	// chunk reads each of its mdat boxes into memory, outside this room,
	// up to MaxChunkBytes.) Default 128 MiB.
	MaxUploadMemory int64
	// SpoolDir holds the temporary files of chunk bodies (unlinked as they
	// are made; see MaxUploadMemory). New makes it unless it exists, and
	// fails when no file can be made in it. Default os.TempDir() (on a
	// tmpfs, that is memory too).
	SpoolDir string
	// MaxChunkSamples bounds the video samples plus audio frames of one
	// chunk, and of a push between two keyframes (parsing and segmenting
	// cost memory per sample): 413 for a chunk, 422 (ErrRareKeyframes)
	// for a push. Default 200000 (over 30 minutes of 60 fps video with
	// 48 kHz AAC).
	MaxChunkSamples int
	// MaxKeyframeInterval bounds how long a chunk or a push may go from a
	// picture where a segment may start (an IDR picture; with OpenGOP also
	// a recovery point) to the next, or to a chunk's end: no segment can
	// be shorter, it is held in memory whole, and every viewer's playlist
	// takes the longest segment as its target duration. A chunk over it is
	// refused (422, ErrRareKeyframes); a push stops there. Default 4 ×
	// SegmentDuration, at least 20 s.
	MaxKeyframeInterval time.Duration
	// MaxSegmentBytes bounds the bytes a chunk or a push may send between
	// two pictures a segment may start at: the segment is built in
	// memory whole. Over it, a chunk is refused (422, ErrRareKeyframes);
	// a push stops there. Default 64 MiB (20 s at 25 Mbit/s).
	MaxSegmentBytes int64
	// MaxStreams bounds the streams ingesting at the same time. Default 64.
	MaxStreams int
	// OpenGOP also cuts segments at open-GOP random access points (see
	// livechunk.Config.OpenGOP), for encoders that make no IDR picture
	// after the first.
	OpenGOP bool
	// StartDuration holds back a new pushed stream's first playlist until
	// its segments last this long (see livechunk.Config.StartDuration).
	// Streams of chunks do not hold it back: a chunk is acknowledged once
	// a playlist lists it.
	StartDuration time.Duration
	// ReorderWindow is how many chunks may arrive ahead of a missing one
	// before it is given up (the gap becomes a discontinuity). Default 4.
	ReorderWindow int
	// PushIdleTimeout ends a pushed MPEG-TS body that sends nothing for
	// this long. Default 30 s.
	PushIdleTimeout time.Duration
	// Stitch makes the VOD file of an ended stream (StitchMP4 is the usual
	// one); nil disables VOD.
	Stitch StitchFunc
	// Pool supplies the segment buffers of every stream (see
	// chunker.Pool): streams share the spare ones. Default: a Pool of the
	// Server's own.
	Pool *chunker.Pool
	// Logger receives request and stream logs. Default: discard.
	Logger *slog.Logger

	// IdleTimeout ends a live stream that receives nothing (no chunk, no
	// pushed data) for this long: EXT-X-ENDLIST, VOD stitched, place
	// freed. Until then a stream whose push broke, or whose node shut
	// down, waits for its input to come back. Default 3 minutes.
	IdleTimeout time.Duration
	// NodeID names this Server among the Servers that share the bucket;
	// no two running ones may have the same. A Server restarted under its
	// old ID takes its streams back at once; another waits for their
	// leases to end. Default: the host name and the process ID.
	NodeID string
	// AdvertiseURL is where the other nodes reach this one
	// ("http://10.0.0.5:8080"), an absolute http or https URL without
	// query or fragment (New fails otherwise): they forward the chunks of
	// the streams it records to AdvertiseURL + BasePath + "/ingest/...".
	// (BasePath is not added to a URL whose path is BasePath or ends
	// with its segments already.) Empty:
	// chunks of its streams that reach another node are answered 503
	// (Retry-After) until the lease ends.
	AdvertiseURL string
	// LeaseDuration is how long a node holds a stream without renewing
	// it (every chunk renews it). A node that dies is replaced after this
	// long (at once when it does not answer at AdvertiseURL). Default 20 s.
	LeaseDuration time.Duration
	// Client forwards chunks to other nodes. Default: a client with a
	// one-minute timeout.
	Client *http.Client
}

// Server serves ingest, playback and the player pages.
type Server struct {
	cfg    Config
	guard  *guard // who may write (auth.go)
	store  stateStore
	mux    *http.ServeMux
	hls    *hls.Handler
	mu     sync.Mutex
	live   map[string]*stream
	closed bool
	wg     sync.WaitGroup // stitches, pushes and background deletes in progress
	// draining: Shutdown has begun; chunk uploads and ends in progress
	// (requests) finish, new ones are refused
	draining bool
	requests sync.WaitGroup
	inflight atomic.Int64 // the requests counted in requests
	spool    spooler
	// finishing is the context of the recordings being finished (VOD
	// files stitched) after their end; Shutdown cancels it when its own
	// context is done
	finishing    context.Context
	cancelFinish context.CancelFunc
	stop         context.CancelFunc
	swept        chan struct{} // closed when the sweep goroutine returns

	// ownerURL is where the other nodes send the chunks of this node's
	// streams: Config.AdvertiseURL + Config.BasePath ("" for none)
	ownerURL string
}

// ValidStreamName reports whether name is acceptable as a stream name:
// 1 to 64 characters of letters, digits, '_', '-' and '.', starting with a
// letter or digit, not ending with '.' and without "..". It is the one
// rule for every route: a name that ingest takes is one that playback,
// the VOD and the pages serve (the playlist handler refuses paths with
// "..", and some stores, Azure's among them, names ending with '.').
func ValidStreamName(name string) bool {
	if len(name) == 0 || len(name) > 64 || name[len(name)-1] == '.' || strings.Contains(name, "..") {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case i > 0 && (c == '_' || c == '.' || c == '-'):
		default:
			return false
		}
	}
	return hls.CheckKey(name+"/index.m3u8") == nil
}

// New returns a Server for cfg. It starts a goroutine that ends idle
// streams (see Config.IdleTimeout), of this node or of nodes that are
// gone; Shutdown stops it.
func New(cfg Config) (*Server, error) {
	if cfg.Bucket == nil {
		return nil, fmt.Errorf("server: %w: nil bucket", ErrInvalid)
	}
	if cfg.Prefix != "" {
		if err := hls.CheckKey(cfg.Prefix); err != nil {
			return nil, fmt.Errorf("server: %w: Prefix: %w", ErrInvalid, err)
		}
		if !strings.HasSuffix(cfg.Prefix, "/") {
			cfg.Prefix += "/"
		}
	}
	base, err := checkBasePath(cfg.BasePath)
	if err != nil {
		return nil, err
	}
	cfg.BasePath = base
	if cfg.SegmentDuration <= 0 {
		cfg.SegmentDuration = 5 * time.Second
	}
	if cfg.MaxChunkBytes <= 0 {
		cfg.MaxChunkBytes = 256 << 20
	}
	if cfg.MinUploadRate <= 0 {
		cfg.MinUploadRate = 16 << 10
	}
	if cfg.MaxUploadBytes <= 0 {
		cfg.MaxUploadBytes = 1 << 30
	}
	cfg.MaxUploadBytes = max(cfg.MaxUploadBytes, cfg.MaxChunkBytes)
	if cfg.MaxUploadMemory <= 0 {
		cfg.MaxUploadMemory = 128 << 20
	}
	if cfg.SpoolDir == "" {
		cfg.SpoolDir = os.TempDir()
	}
	if err := checkSpoolDir(cfg.SpoolDir); err != nil {
		return nil, err
	}
	if cfg.MaxChunkSamples <= 0 {
		cfg.MaxChunkSamples = 200000
	}
	if cfg.MaxSegmentBytes <= 0 {
		cfg.MaxSegmentBytes = 64 << 20
	}
	if cfg.MaxKeyframeInterval <= 0 {
		cfg.MaxKeyframeInterval = max(4*cfg.SegmentDuration, 20*time.Second)
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = 64
	}
	if cfg.ReorderWindow <= 0 {
		cfg.ReorderWindow = 4
	}
	if cfg.PushIdleTimeout <= 0 {
		cfg.PushIdleTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Pool == nil {
		cfg.Pool = chunker.NewPool()
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 3 * time.Minute
	}
	if cfg.LeaseDuration <= 0 {
		cfg.LeaseDuration = 20 * time.Second
	}
	if cfg.NodeID == "" {
		host, _ := os.Hostname()
		cfg.NodeID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: time.Minute}
	}
	if cfg.AllowOrigins, err = checkOrigins("AllowOrigins", cfg.AllowOrigins); err != nil {
		return nil, err
	}
	if cfg.PlaybackOrigins, err = checkOrigins("PlaybackOrigins", cfg.PlaybackOrigins); err != nil {
		return nil, err
	}
	g, err := newGuard(cfg)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, guard: g, live: map[string]*stream{}, store: stateStore{b: cfg.Bucket, prefix: cfg.Prefix},
		spool: spooler{dir: cfg.SpoolDir, mem: newRoom(cfg.MaxUploadMemory), disk: newRoom(cfg.MaxUploadBytes)}}
	if s.ownerURL, err = ownerURL(cfg.AdvertiseURL, cfg.BasePath); err != nil {
		return nil, err
	}
	s.hls = hls.NewHandler(cfg.Bucket, cfg.Prefix)
	s.hls.AllowOrigins = cfg.PlaybackOrigins
	s.mux = s.newMux()
	ctx, stop := context.WithCancel(context.Background())
	s.stop, s.swept = stop, make(chan struct{})
	s.finishing, s.cancelFinish = context.WithCancel(context.Background())
	go s.sweepLoop(ctx)
	return s, nil
}

// ServeHTTP implements http.Handler: it answers the Server's routes, under
// Config.BasePath when there is one (see there). With a Logger enabled at
// debug level, every request is logged with its status, size and duration.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.cfg.Logger.Enabled(r.Context(), slog.LevelDebug) {
		s.serve(w, r)
		return
	}
	start := time.Now()
	lw := &loggingWriter{ResponseWriter: w, status: http.StatusOK}
	s.serve(lw, r)
	s.cfg.Logger.LogAttrs(r.Context(), slog.LevelDebug, "http request",
		slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", lw.status),
		slog.Int64("bytes", lw.n), slog.Duration("elapsed", time.Since(start)), slog.String("remote", r.RemoteAddr))
}

// serve answers r, under Config.BasePath when there is one.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if s.cfg.BasePath == "" {
		s.mux.ServeHTTP(w, r)
		return
	}
	if r = s.under(w, r); r != nil {
		s.mux.ServeHTTP(&baseWriter{ResponseWriter: w, base: s.cfg.BasePath}, r)
	}
}

// loggingWriter records the status and size of a response. Unwrap keeps
// http.ResponseController (deadlines, flushing) working through it.
type loggingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (lw *loggingWriter) WriteHeader(code int) {
	lw.status = code
	lw.ResponseWriter.WriteHeader(code)
}

func (lw *loggingWriter) Write(p []byte) (int, error) {
	n, err := lw.ResponseWriter.Write(p)
	lw.n += int64(n)
	return n, err
}

func (lw *loggingWriter) Unwrap() http.ResponseWriter { return lw.ResponseWriter }

// HTTPServer returns an http.Server for addr with the timeouts ingest needs:
// bounded header reads and idle connections; request bodies are bounded by
// size (chunks) or by idleness (pushed streams) instead of a total time.
func (s *Server) HTTPServer(addr string) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

// apiError is the JSON body of every error response.
type apiError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	writeJSONFor(w, nil, status, v)
}

// writeJSONFor writes v as the answer to r, gzipped when r accepts it (see
// gzipped; r nil: never). For answers that can be large.
func writeJSONFor(w http.ResponseWriter, r *http.Request, status int, v any) {
	body, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error": "encoding the answer"}`)
	}
	body = append(body, '\n')
	if r != nil {
		body = gzipped(w.Header(), r, status, body)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	// With its length, an answer is whole once flushed: a client reads a
	// refusal while its body is still being drained (see lingering).
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// failStatus writes an error answer of a fixed status: for refusals made
// in the HTTP layer itself (a bad URL, a missing token).
func failStatus(w http.ResponseWriter, status int, format string, a ...any) {
	writeJSON(w, status, apiError{Error: fmt.Sprintf(format, a...)})
}

// ingestStream checks that an ingest request may write (authorized) and
// returns the stream name from its path; ok is false when the request is
// refused (the answer is written).
func (s *Server) ingestStream(w http.ResponseWriter, r *http.Request) (name string, ok bool) {
	name = r.PathValue("stream")
	if !s.authorized(w, r, name) {
		return "", false
	}
	if !ValidStreamName(name) {
		failStatus(w, http.StatusBadRequest, "invalid stream name %q (1-64 of A-Z a-z 0-9 _ - ., starting with a letter or digit, not ending with '.', no '..')", name)
		return "", false
	}
	return name, true
}

// getStream returns the live stream called name, creating it (up to
// MaxStreams) when create is set.
func (s *Server) getStream(name string, create bool) (*stream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrShuttingDown
	}
	if st, ok := s.live[name]; ok {
		return st, nil
	}
	if !create {
		return nil, fmt.Errorf("%w %q", ErrNoStream, name)
	}
	active := 0
	for _, st := range s.live {
		if st.isLive() {
			active++
		}
	}
	if active >= s.cfg.MaxStreams {
		return nil, fmt.Errorf("%w (limit %d)", ErrTooManyStreams, s.cfg.MaxStreams)
	}
	st := newStream(s, name)
	s.live[name] = st
	return st, nil
}

// forget drops an ended stream from memory; the bucket keeps its record.
func (s *Server) forget(st *stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live[st.name] == st {
		delete(s.live, st.name)
	}
}

func (s *Server) streamPrefix(name string) string { return s.cfg.Prefix + name + "/" }

// ended reports whether the bucket holds a finished recording of name.
func (s *Server) ended(ctx context.Context, name string) bool {
	pl, err := hls.LoadMedia(ctx, s.cfg.Bucket, s.streamPrefix(name)+"index.m3u8")
	return err == nil && pl.Ended
}

func (s *Server) handleChunk(w http.ResponseWriter, r *http.Request) {
	name, ok := s.ingestStream(w, r)
	if !ok || !s.enter(w) {
		return
	}
	defer s.leave()
	if ingestMethod(r.PathValue("n")) != r.Method {
		s.handleIngestOther(w, r) // PUT .../end: 405
		return
	}
	// One spelling per number ("01" is not chunk 1): a chunk's number is
	// its identity for retries.
	n, err := strconv.ParseUint(r.PathValue("n"), 10, 32)
	if err != nil || n > 1_000_000 || strconv.FormatUint(n, 10) != r.PathValue("n") {
		failStatus(w, http.StatusBadRequest, "invalid chunk number %q (0 to 1000000, without leading zeros)", r.PathValue("n"))
		return
	}
	body, err := s.readChunk(w, r)
	if err != nil {
		fail(w, err, "chunk %d of %q", n, name)
		return
	}
	// Check the whole chunk before touching the stream: a bad upload
	// changes nothing.
	c, err := checkChunk(body, s.limits())
	if err != nil {
		body.close()
		fail(w, err, "chunk %d of %q", n, name)
		return
	}
	// The stream keeps the chunk's bytes while it waits or is fed (and
	// closes them); otherwise they go now.
	var res ChunkResult
	defer func() {
		if err != nil || (res.Status != "recorded" && res.Status != "buffered") {
			body.close()
		} else {
			c.kept.Store(true)
		}
	}()
	if r.Header.Get(forwardedHeader) != "" {
		res, err = s.addChunk(r.Context(), name, n, c, false)
		answer(w, res, err, "chunk %d of %q", n, name)
		return
	}
	takeover := false
	for {
		res, err = s.addChunk(r.Context(), name, n, c, takeover)
		var o *ownedError
		if !errors.As(err, &o) || o.url == "" || takeover {
			answer(w, res, err, "chunk %d of %q", n, name)
			return
		}
		if s.forward(w, r, o.url, body.reader()) {
			return
		}
		takeover = true // the owner does not answer: it is gone
	}
}

// enter counts a chunk upload or an end in, for Shutdown to wait for; once
// Shutdown has begun it answers 503 and reports false.
func (s *Server) enter(w http.ResponseWriter) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		fail(w, ErrShuttingDown, "")
		return false
	}
	s.requests.Add(1)
	s.inflight.Add(1)
	return true
}

// leave counts a request that enter counted out.
func (s *Server) leave() {
	s.inflight.Add(-1)
	s.requests.Done()
}

// answer writes a chunk's answer: res, or the error.
func answer(w http.ResponseWriter, res ChunkResult, err error, format string, a ...any) {
	if err != nil {
		fail(w, err, format, a...)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// readChunk reads an uploaded chunk, up to Config.MaxChunkBytes, into
// memory or a temporary file (see spooler). Its first box header is
// checked before the rest is read: an upload that is not an MP4 file is
// refused at once (and drained, see lingering), not read whole.
func (s *Server) readChunk(w http.ResponseWriter, r *http.Request) (*upload, error) {
	if r.ContentLength > s.cfg.MaxChunkBytes {
		return nil, fmt.Errorf("%w: %d bytes, over the limit of %d", ErrTooLarge, r.ContentLength, s.cfg.MaxChunkBytes)
	}
	body := &rateReader{r: r.Body, rc: http.NewResponseController(w), rate: s.cfg.MinUploadRate, start: time.Now()}
	var head [8]byte
	if n, err := io.ReadFull(body, head[:]); n == 0 && err == io.EOF {
		return nil, fmt.Errorf("%w: an empty body", ErrInvalidChunk)
	} else if errors.Is(err, ErrSlowUpload) {
		return nil, err
	} else if err != nil {
		return nil, fmt.Errorf("%w: %d bytes, too short for an MP4 file", ErrInvalidChunk, n)
	}
	if !mp4Start(head[:]) {
		return nil, fmt.Errorf("%w: not an MP4 file (it starts with % x)", ErrInvalidChunk, head)
	}
	u, err := s.spool.spool(head[:], body, r.ContentLength, s.cfg.MaxChunkBytes)
	switch {
	case errors.Is(err, ErrTooLarge):
		return nil, fmt.Errorf("%w: over the limit of %d bytes", ErrTooLarge, s.cfg.MaxChunkBytes)
	case errors.Is(err, ErrSlowUpload), errors.Is(err, ErrOverloaded):
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("%w: reading it: %w", ErrInvalidChunk, err)
	}
	return u, nil
}

// mp4Start reports whether head, a file's first 8 bytes, is the header of
// a box that an MP4 or QuickTime file starts with.
func mp4Start(head []byte) bool {
	switch string(head[4:8]) {
	case "ftyp", "styp", "moov", "moof", "mdat", "free", "skip", "wide", "pnot", "uuid":
		size := uint32(head[0])<<24 | uint32(head[1])<<16 | uint32(head[2])<<8 | uint32(head[3])
		return size == 0 || size == 1 || size >= 8
	}
	return false
}

// addChunk adds a checked chunk to the stream called name, starting the
// stream unless it has ended. A stream object dropped while the request
// waited for it is made again from the bucket.
func (s *Server) addChunk(ctx context.Context, name string, n uint64, c *chunk, takeover bool) (ChunkResult, error) {
	for {
		st, err := s.getStream(name, true)
		if err != nil {
			return ChunkResult{}, err
		}
		res, err := st.addChunk(ctx, n, c, takeover)
		if ee := (*endedError)(nil); errors.As(err, &ee) && ee.sums[n] == c.sum {
			return ChunkResult{Stream: name, Chunk: n, Status: "duplicate",
				Note: "the stream has ended; this chunk is in its recording"}, nil
		}
		if !errors.Is(err, errGone) && !errors.Is(err, errStale) {
			return res, err
		}
		if ctx.Err() != nil {
			return res, err
		}
	}
}

func (s *Server) handlePush(w http.ResponseWriter, r *http.Request) {
	name, ok := s.ingestStream(w, r)
	if !ok {
		return
	}
	s.wg.Add(1)
	defer s.wg.Done()
	for {
		st, err := s.getStream(name, true)
		if err != nil {
			fail(w, err, "stream %q", name)
			return
		}
		res, err := st.push(r.Context(), w, r)
		if errors.Is(err, errGone) || errors.Is(err, errStale) {
			continue
		}
		if err != nil {
			fail(w, err, "stream %q", name)
			return
		}
		writeJSON(w, http.StatusOK, res)
		return
	}
}

func (s *Server) handleEnd(w http.ResponseWriter, r *http.Request) {
	name, ok := s.ingestStream(w, r)
	if !ok || !s.enter(w) {
		return
	}
	defer s.leave()
	forwarded := r.Header.Get(forwardedHeader) != ""
	takeover := false
	for {
		err := s.end(r.Context(), name, takeover)
		var o *ownedError
		switch {
		case errors.Is(err, ErrEnded) || err == nil:
			writeJSON(w, http.StatusOK, s.info(r.Context(), name))
		case errors.As(err, &o) && o.url != "" && !forwarded && !takeover:
			if s.forward(w, r, o.url, nil) {
				return
			}
			takeover = true
			continue
		default:
			fail(w, err, "ending %q", name)
		}
		return
	}
}

// end ends the stream called name, from the bucket when this node does
// not hold it: ErrEnded when it had ended, ErrNoStream when there is none.
func (s *Server) end(ctx context.Context, name string, takeover bool) error {
	for {
		st, err := s.getStream(name, true)
		if err != nil {
			return err
		}
		st.mu.Lock()
		if !st.loaded && !st.gone {
			if err := st.own(ctx, "", takeover); err != nil {
				st.drop()
				st.mu.Unlock()
				return err
			}
		}
		st.mu.Unlock()
		err = st.end(ctx)
		if !errors.Is(err, errGone) && !errors.Is(err, errStale) {
			return err
		}
	}
}

// handleVOD serves the VOD file of an ended stream, with a strong ETag
// (see vodETag) and Last-Modified, to Config.PlaybackOrigins (see httpx.SetMediaCORS):
// http.ServeContent answers Range, If-Range and If-None-Match (304).
func (s *Server) handleVOD(w http.ResponseWriter, r *http.Request) {
	httpx.SetMediaCORS(w.Header(), r, s.cfg.PlaybackOrigins)
	file := r.PathValue("file")
	name, ok := strings.CutSuffix(file, ".mp4")
	if !ok || !ValidStreamName(name) {
		http.NotFound(w, r)
		return
	}
	key := s.streamPrefix(name) + "vod.mp4"
	rd, err := s.cfg.Bucket.NewReader(r.Context(), key, nil)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			if st, _ := s.getStream(name, false); st != nil && st.stitching() {
				w.Header().Set("Retry-After", "2")
				failStatus(w, http.StatusServiceUnavailable, "stream %q is being stitched", name)
				return
			}
			http.NotFound(w, r)
			return
		}
		failStatus(w, http.StatusBadGateway, "storage unavailable")
		return
	}
	defer rd.Close()
	w.Header().Set("Content-Type", "video/mp4")
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`inline; filename="%s.mp4"`, name))
	w.Header().Set("ETag", vodETag(r.Context(), s.cfg.Bucket, key, rd))
	http.ServeContent(w, r, "", rd.ModTime(), rd)
}

func handleHLSJS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	http.ServeContent(w, r, "hls.min.js", time.Time{}, strings.NewReader(string(player.HLSJS)))
}

// StreamInfo describes a stream in /api/streams.
//
// Playlist, Watch and VOD are URL paths, starting with "/" and
// Config.BasePath ("/studio/live/cam/index.m3u8"): a client resolves them
// against the server's address. VOD is set once the stitched file exists.
//
// The chunks given up (a discontinuity in the recording) are listed as
// inclusive ranges, [[from, to], ...], in order: the first 100 ranges in
// Missing, the number of ranges in MissingRanges (more than len(Missing)
// when the list is cut) and the number of chunks in them all in
// MissingCount.
type StreamInfo struct {
	// Name is the stream's name.
	Name string `json:"name"`
	// State is "live" (not ended: recording, or waiting for its input),
	// "stitching" (ended; its playlist is being finished and, with
	// Config.Stitch, its VOD file made, or will be again after a
	// failure), "ended" (ended and finished, without a VOD file: no
	// Config.Stitch, or nothing recorded) or "vod" (the VOD file exists).
	State string `json:"state"`
	// Segments is the number of segments the playlist lists.
	Segments int `json:"segments"`
	// Seconds is their total duration, in seconds.
	Seconds float64 `json:"seconds"`
	// Started is the wall-clock time of the first listed segment's first
	// sample; omitted when unknown.
	Started time.Time `json:"started,omitzero"`
	// Playlist is the URL path of the media playlist.
	Playlist string `json:"playlist"`
	// Watch is the URL path of the player page.
	Watch string `json:"watch"`
	// VOD is the URL path of the stitched MP4 file; omitted until it
	// exists.
	VOD string `json:"vod,omitempty"`
	// Chunks is the number of chunks received (0, omitted, for a pushed
	// stream).
	Chunks uint64 `json:"chunks_received,omitempty"`
	// Missing lists the first 100 ranges of chunks given up.
	Missing [][2]uint64 `json:"chunks_missing_spans,omitempty"`
	// MissingRanges is the number of ranges of chunks given up.
	MissingRanges int `json:"chunks_missing_spans_total,omitempty"`
	// MissingCount is the number of chunks given up, in all ranges.
	MissingCount uint64 `json:"chunks_missing_count,omitempty"`
}

func (s *Server) info(ctx context.Context, name string) StreamInfo {
	in := StreamInfo{
		Name:     name,
		State:    "live",
		Playlist: s.url("/live/" + name + "/index.m3u8"),
		Watch:    s.url("/watch/" + name),
	}
	if pl, err := hls.LoadMedia(ctx, s.cfg.Bucket, s.streamPrefix(name)+"index.m3u8"); err == nil {
		in.Segments = len(pl.Segments)
		for _, sg := range pl.Segments {
			in.Seconds += sg.Seconds()
		}
		if len(pl.Segments) > 0 {
			in.Started = pl.Segments[0].ProgramDateTime
		}
		if pl.Ended {
			in.State = "ended"
		}
	}
	if ok, _ := s.cfg.Bucket.Exists(ctx, s.streamPrefix(name)+"vod.mp4"); ok {
		in.State = "vod"
		in.VOD = s.url("/vod/" + name + ".mp4")
	}
	if st, _ := s.getStream(name, false); st != nil {
		st.describe(&in)
	} else if saved, v, err := s.store.latest(ctx, name); err == nil && v > 0 {
		in.Chunks = saved.Received
		in.setMissing(saved.Missing)
		switch {
		case saved.Ended && !saved.Done && in.State != "vod":
			in.State = "stitching"
		case saved.Ended && in.State == "live":
			in.State = "ended" // ended with nothing recorded: no playlist
		}
	}
	return in
}

// Streams lists one page of the streams (those with objects in the
// bucket and the live ones) in the byte order of their names, with each
// one's StreamInfo; next is the After of the following page, "" when this
// one is the last. Each stream in the page costs reads of its playlist and
// ingest state; the bucket's listing of names is read whole, but only the
// page is kept (see StreamsPage).
func (s *Server) Streams(ctx context.Context, page StreamsPage) (list []StreamInfo, next string, err error) {
	names, more, err := s.streamNames(ctx, page.After, page.limit())
	if err != nil {
		return nil, "", err
	}
	list = make([]StreamInfo, 0, len(names))
	for _, n := range names {
		list = append(list, s.info(ctx, n))
	}
	if more {
		next = names[len(names)-1]
	}
	return list, next, nil
}

// handleAPIStreams answers GET /api/streams: a JSON array of StreamInfo,
// one page of Server.Streams (?limit=N, default 100, at most 1000, and
// ?after=NAME), gzipped for clients that accept it. When there are more,
// a Link header names the next page: </api/streams?after=NAME&limit=N>;
// rel="next" (under Config.BasePath).
func (s *Server) handleAPIStreams(w http.ResponseWriter, r *http.Request) {
	httpx.SetMediaCORS(w.Header(), r, s.cfg.PlaybackOrigins) // Link exposed for scripts that page
	page, err := streamsPageOf(r)
	if err != nil {
		failStatus(w, http.StatusBadRequest, "%v", err)
		return
	}
	list, next, err := s.Streams(r.Context(), page)
	if err != nil {
		failStatus(w, http.StatusBadGateway, "listing streams: %v", err)
		return
	}
	if next != "" {
		w.Header().Set("Link", s.nextLink(next, page.limit()))
	}
	writeJSONFor(w, r, http.StatusOK, list)
}

// Shutdown refuses new ingest requests (503), lets chunk uploads and ends
// in progress finish, then suspends every live stream and waits for that
// (and for the VOD files of streams that ended to be stitched; those not
// done when ctx is are stopped and handed over to another node or a
// restart, which is not an error). A suspended stream stays live in
// the bucket: its state is stored already, and its lease is given up, so
// that another node, or this one restarted, goes on with it at the next
// chunk or push. A pushed body is stopped (its device may push again); a
// source recorded with Ingest ends its stream instead. Streams that get no
// input within Config.IdleTimeout end by themselves.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	// Chunk uploads and ends in progress are answered as usual.
	done := make(chan struct{})
	go func() { s.requests.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	s.mu.Lock()
	s.closed = true
	streams := make([]*stream, 0, len(s.live))
	for _, st := range s.live {
		streams = append(streams, st)
	}
	s.mu.Unlock()
	s.stop()
	<-s.swept
	var errs []error
	for _, st := range streams {
		if st.stopPush() {
			continue // the push suspends (or ends) the stream when its body stops
		}
		if err := st.pauseChunks(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stream %s: %w", st.name, err))
		}
	}
	done = make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		// Recordings still being finished (VOD files stitched) are
		// handed over: stopped, their lease given up, so that another
		// node, or this one restarted, finishes them.
		s.cancelFinish()
		select {
		case <-done:
		case <-time.After(handOver):
			errs = append(errs, ctx.Err())
		}
	}
	return errors.Join(errs...)
}

// handOver is how long Shutdown waits, once its context is done, for the
// recordings being finished to stop and give their lease up.
const handOver = 5 * time.Second

// Ingest records src as the stream called name until src ends (or ctx is
// done, or the server shuts down: stop must then make src end soon; nil if
// ctx suffices), then ends the stream like POST /ingest/{name}/end.
func (s *Server) Ingest(ctx context.Context, name string, src source.Source, stop func()) error {
	if !ValidStreamName(name) {
		return fmt.Errorf("server: %w: stream name %q", ErrInvalid, name)
	}
	if src == nil {
		return fmt.Errorf("server: %w: Ingest of a nil source", ErrInvalid)
	}
	if stop == nil {
		stop = func() {}
	}
	s.wg.Add(1)
	defer s.wg.Done()
	for {
		st, err := s.getStream(name, true)
		if err != nil {
			return err
		}
		_, err = st.record(ctx, true, stop, func() (source.Source, error) { return src, nil })
		if !errors.Is(err, errGone) && !errors.Is(err, errStale) {
			return err
		}
	}
}

// newPipeline starts the recording of a stream, or goes on with it where
// cont says. Without cont, a recording found under the stream's prefix is
// resumed after a discontinuity, unless fresh: then it is overwritten. A
// stream of chunks (not a push) writes its playlist from the first
// segment on, whatever Config.StartDuration says: a chunk is acknowledged
// only once a playlist lists it.
func (s *Server) newPipeline(ctx context.Context, name string, info source.Info, cont *chunker.Continuation, fresh, chunks bool) (*livechunk.Pipeline, error) {
	start := s.cfg.StartDuration
	if chunks {
		start = 0
		// A chunk's bit rate is its file size over its duration: a client
		// that pads its chunks would size every segment buffer of the
		// stream by it. The buffers grow with the real segments instead.
		info.Bitrate = 0
	}
	return livechunk.NewPipeline(ctx, s.cfg.Bucket, livechunk.Config{
		Continue:        cont,
		NoResume:        fresh,
		Format:          s.cfg.Format,
		SegmentDuration: s.cfg.SegmentDuration,
		OpenGOP:         s.cfg.OpenGOP,
		StartDuration:   start,
		Prefix:          s.streamPrefix(name),
		Playlist:        hls.Event,
		Pool:            s.cfg.Pool,
		Logger:          s.cfg.Logger.With("stream", name),
	}.WithSource(info))
}
