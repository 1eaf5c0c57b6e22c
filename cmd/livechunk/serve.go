package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/server"
	"github.com/livechunk/livechunk/sink"
	"github.com/livechunk/livechunk/source"
)

// defaultStore is the store of `serve` without -store: a directory under the
// user's cache directory (or the temp directory).
func defaultStore() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "livechunk", "store")
}

type serveFlags struct {
	addr, store, token, format string
	tokenFile, keySecretFile   string
	allowOrigins               originList
	playbackOrigins            originList
	node, advertise, basePath  string
	segment, startDuration     time.Duration
	idle, lease                time.Duration
	maxStreams                 int
	spoolDir                   string
	verbose, openGOP           bool
}

func (f *serveFlags) register(fs *flag.FlagSet, store string) {
	fs.StringVar(&f.addr, "addr", "127.0.0.1:8080", "listen address")
	fs.StringVar(&f.store, "store", store, "where streams are stored: a directory or a bucket URL")
	fs.StringVar(&f.token, "ingest-token", "", "require `TOKEN` on ingest (Authorization: Bearer TOKEN); playback stays open.\n"+
		"Better kept out of the command line (ps shows it): $LIVECHUNK_INGEST_TOKEN, or -ingest-token-file")
	fs.StringVar(&f.tokenFile, "ingest-token-file", "", "read the ingest token from `FILE` (its first line)")
	fs.StringVar(&f.keySecretFile, "key-secret-file", "", "read the secret that signs stream keys from `FILE` (its first line, at least 16 bytes; default $"+keySecretEnv+").\n"+
		"A key (livechunk key -stream NAME) opens one stream until it expires; with a secret and no token, ingest needs a key")
	fs.Var(&f.allowOrigins, "allow-origin", "let web pages of `ORIGIN` (https://studio.example.com; * for any) write to ingest from a browser;\n"+
		"repeat it or separate origins with commas. Browsers' writes from other origins are refused")
	fs.Var(&f.playbackOrigins, "playback-origin", "let only web pages of `ORIGIN` read playback (playlists, segments, VOD, stream info) across origins;\n"+
		"repeat it or separate origins with commas. Default: pages of any origin (public HLS)")
	fs.StringVar(&f.format, "format", "fmp4", "segment format: fmp4 or ts")
	durationFlag(fs, &f.segment, "segment", 5*time.Second, true, "target segment `duration` (2s, 2 or 00:00:02)")
	fs.IntVar(&f.maxStreams, "max-streams", 64, "most streams ingesting at once")
	fs.StringVar(&f.spoolDir, "spool-dir", "", "where chunk uploads wait on disk once 128 MiB of them are in memory (default $TMPDIR or /tmp;\n"+
		"on a tmpfs that is memory too)")
	fs.BoolVar(&f.verbose, "v", false, "log every chunk, segment and upload (structured logs on stderr; without -v only warnings and errors)")
	fs.BoolVar(&f.openGOP, "open-gop", false, openGOPHelp)
	durationFlag(fs, &f.startDuration, "start-duration", 0, false, startDurationHelp+"\n(pushes only: a chunk is acknowledged once a playlist lists it)")
	durationFlag(fs, &f.idle, "idle-timeout", 3*time.Minute, true, "end a live stream that gets no chunk or pushed data for `duration` (until then a broken push, or a restart, continues it)")
	fs.StringVar(&f.node, "node", "", "this node's `ID` among the nodes that share the store (default: host name and listen address); a node restarted under its ID takes its streams back at once")
	fs.StringVar(&f.advertise, "advertise", "", "the `URL` where other nodes on the same store reach this one (http://10.0.0.5:8080; -base-path is added): they forward the chunks of its streams here")
	fs.StringVar(&f.basePath, "base-path", "", "serve everything under the URL `PATH` (/studio), for a proxy that forwards PATH/ here (with PATH or without it);\n"+
		"every URL the pages, the JSON and the redirects name starts with it, as do the URLs printed here")
	durationFlag(fs, &f.lease, "lease", 20*time.Second, true, "how long (`duration`) a node holds a stream between chunks; a node that dies is replaced after this long (at once when its -advertise URL refuses connections)")
}

// startServer opens the store, listens and serves until ctx is done, then
// shuts down gracefully: ingest ends, open segments close, uploads finish,
// playlists are finished. ready is called with the base URL once listening:
// the server's root, with -base-path.
func startServer(ctx context.Context, f serveFlags, stderr io.Writer, ready func(base string, srv *server.Server)) error {
	format, err := chunker.ParseFormat(f.format)
	if err != nil {
		fmt.Fprintln(stderr, "livechunk:", err)
		return errUsage
	}
	logger := newLogger(stderr, f.verbose)
	token, err := f.ingestToken()
	if err != nil {
		return err
	}
	secret, err := keySecret(f.keySecretFile)
	if err != nil {
		return err
	}
	b, err := sink.Open(ctx, f.store)
	if err != nil {
		return err
	}
	defer b.Close()
	ln, err := net.Listen("tcp", f.addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%s is in use (another livechunk?): stop it, or listen elsewhere with -addr HOST:PORT", f.addr)
	}
	if err != nil {
		return fmt.Errorf("listening on %s (-addr): %w", f.addr, err)
	}
	defer ln.Close()
	if w := openIngestWarning(ln.Addr(), token != "" || secret != nil); w != "" {
		fmt.Fprintln(stderr, "livechunk: warning:", w)
	}
	if f.node == "" {
		host, _ := os.Hostname()
		f.node = host + "@" + ln.Addr().String()
	}
	srv, err := server.New(server.Config{
		NodeID:          f.node,
		AdvertiseURL:    strings.TrimSuffix(f.advertise, "/"),
		IdleTimeout:     f.idle,
		LeaseDuration:   f.lease,
		Bucket:          b,
		Format:          format,
		SegmentDuration: f.segment,
		IngestToken:     token,
		KeySecret:       secret,
		AllowOrigins:    f.allowOrigins,
		PlaybackOrigins: f.playbackOrigins,
		BasePath:        f.basePath,
		MaxStreams:      f.maxStreams,
		SpoolDir:        f.spoolDir,
		OpenGOP:         f.openGOP,
		StartDuration:   f.startDuration,
		Stitch:          server.StitchMP4,
		Logger:          logger,
	})
	if err != nil {
		return err
	}
	hs := srv.HTTPServer(f.addr)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	// The server's own spelling of -base-path (it is valid): no trailing "/".
	base := "http://" + ln.Addr().String() + strings.TrimSuffix(f.basePath, "/")
	ready(base, srv)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	fmt.Fprintln(stderr, "livechunk: shutting down...")
	sctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Chunk uploads in progress finish (and are acknowledged) first.
	httpDone := make(chan error, 1)
	go func() { httpDone <- hs.Shutdown(sctx) }()
	errShut := srv.Shutdown(sctx)
	errHTTP := <-httpDone
	if errors.Is(errHTTP, http.ErrServerClosed) {
		errHTTP = nil
	}
	return errors.Join(errShut, errHTTP)
}

// parseNoArgs parses the flags of a command that takes no arguments.
func parseNoArgs(fs *flag.FlagSet, args []string) error {
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return errUsage
	}
	return nil
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f serveFlags
	f.register(fs, defaultStore())
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: livechunk serve [flags]

Runs the live ingest server: devices upload MP4 chunks or push MPEG-TS,
viewers watch in a browser, and an ended stream becomes one MP4.

  PUT  /ingest/{stream}/{n}     a self-contained MP4 chunk, numbered from 0
  POST /ingest/{stream}         a streamed MPEG-TS (or raw H.264) body
  POST /ingest/{stream}/end     end the stream: ENDLIST, then /vod/{stream}.mp4
  OPTIONS /ingest/...           CORS preflight, for the origins of -allow-origin
  GET  /live/{stream}/index.m3u8, /watch/{stream}, /vod/{stream}.mp4, /, /api/streams[/{stream}]
  GET  /healthz                 200 while serving (for load balancers)

It prints its URL once it listens (-addr 127.0.0.1:0 picks a free port).
With -base-path /studio every route above is under /studio (/studio/live/...),
for a proxy that forwards /studio/ to it.
Every chunk answered 2xx is stored in the store, with the stream's state:
a device may delete it; a 5xx answer means nothing was: send it again.
SIGINT or SIGTERM shuts the server down gracefully: it stops listening,
chunk uploads in progress are answered as usual, pushed bodies stop, and
every live stream is suspended, not ended: the next chunk or push, to this
server restarted or to another one on the same store, continues it. A stream that gets nothing
for -idle-timeout ends by itself (EXT-X-ENDLIST, then /vod/{stream}.mp4).
A second signal exits at once.

Several nodes on one store (S3, GCS, Azure) act as one service behind any
load balancer: give each a -node ID and an -advertise URL (where the other
nodes reach it), and let the balancer check /healthz.

Ingest is open to anyone who reaches the server unless -ingest-token (one
token for every stream) or -key-secret-file (keys that "livechunk key"
makes, each for one stream until it expires) is given, or both. A browser's
write from a page of another origin is refused unless -allow-origin lists
that origin. Playback stays open.

Example:
  livechunk serve -addr 127.0.0.1:8080 -store ./streams
  ffmpeg -re -i talk.mp4 -c copy -f mpegts http://127.0.0.1:8080/ingest/talk
  curl -T chunk0.mp4 http://127.0.0.1:8080/ingest/phone/0

Flags:
`)
		fs.PrintDefaults()
	}
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	return startServer(ctx, f, stderr, func(base string, _ *server.Server) {
		fmt.Fprintf(stdout, "livechunk serving %s on %s\n", f.store, base)
		fmt.Fprintf(stdout, "  streams: %s/\n", base)
	})
}

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f serveFlags
	f.register(fs, "")
	loops := fs.Int("loops", 0, "how many times to play the clip (0: until interrupted)")
	speed := fs.Float64("speed", 1, "pace as a multiple of real time")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: livechunk demo [flags]

Loops the embedded sample clip in real time through the whole pipeline
(chunker, sink, playlists) into a temporary store, serves the player page,
and prints its URL. Ctrl-C ends the stream and stitches it into one MP4.

Example:
  livechunk demo
  livechunk demo -addr 127.0.0.1:9000 -format ts -segment 2s

Flags:
`)
		fs.PrintDefaults()
	}
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if *speed <= 0 || *loops < 0 {
		fmt.Fprintln(stderr, "livechunk demo: -speed must be positive and -loops at least 0")
		return errUsage
	}
	if f.store == "" {
		dir, err := os.MkdirTemp("", "livechunk-demo-")
		if err != nil {
			return err
		}
		f.store = dir
	}
	src, err := source.Loop(func() (source.Source, error) {
		return source.NewMP4(bytes.NewReader(sampleClip), source.Options{})
	}, *loops)
	if err != nil {
		return err
	}
	paced := source.NewPaced(src)
	paced.Speed = *speed
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err = startServer(ctx, f, stderr, func(base string, srv *server.Server) {
		fmt.Fprintf(stdout, "livechunk demo: the sample clip plays live, in real time, into %s\n", f.store)
		fmt.Fprintf(stdout, "  watch:    %s/watch/demo\n", base)
		fmt.Fprintf(stdout, "  playlist: %s/live/demo/index.m3u8\n", base)
		fmt.Fprintln(stdout, "  Ctrl-C ends the stream; it is then stitched to", base+"/vod/demo.mp4")
		go func() {
			if err := srv.Ingest(context.Background(), "demo", paced, paced.Stop); err != nil {
				fmt.Fprintln(stderr, "livechunk demo:", err)
			}
			if *loops > 0 {
				cancel() // a finite demo ends by itself
			}
		}()
	})
	paced.Stop()
	return err
}

// ingestToken is the token ingest requires: -ingest-token, else the first
// line of -ingest-token-file, else $LIVECHUNK_INGEST_TOKEN ("" for none).
func (f *serveFlags) ingestToken() (string, error) {
	switch {
	case f.token != "" && f.tokenFile != "":
		return "", fmt.Errorf("-ingest-token and -ingest-token-file: give one")
	case f.token != "":
		return f.token, nil
	case f.tokenFile != "":
		line, err := firstLine(f.tokenFile)
		if err != nil {
			return "", fmt.Errorf("-ingest-token-file: %w", err)
		}
		return line, nil
	}
	return os.Getenv("LIVECHUNK_INGEST_TOKEN"), nil
}

// openIngestWarning says why serving on addr with unprotected ingest is
// risky, or "" when addr is a loopback address or protected is true (an
// ingest token or a key secret is set).
func openIngestWarning(addr net.Addr, protected bool) string {
	ta, ok := addr.(*net.TCPAddr)
	if protected || ok && ta.IP.IsLoopback() {
		return ""
	}
	return fmt.Sprintf("listening on %s with no ingest token or key secret: anyone who reaches it can write and end streams (-ingest-token-file, -key-secret-file)", addr)
}
