// Command livechunk cuts live H.264 into HLS segments without re-encoding,
// uploads them to a blob store, and writes the playlists.
//
// Usage:
//
//	livechunk                      the demo: the embedded clip live in the player page
//	livechunk demo [flags]
//	livechunk serve [flags]
//	livechunk key -stream NAME [-ttl 24h] [-key-secret-file FILE]
//	livechunk record [flags] INPUT... DEST
//	livechunk stitch [-from D] [-to D] -o OUT SOURCE...
//	livechunk version
//
// Each command's -h (for example "livechunk record -h") explains its flags
// and shows examples. The exit status is 0 on success, 1 on failure and 2
// on a usage error.
package main

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/livechunk/livechunk"
	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/sink"
	"github.com/livechunk/livechunk/source"
	"gocloud.dev/blob"
)

//go:embed sample.mp4
var sampleClip []byte

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	adjustStartingHeap(startHeap)
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

var errUsage = errors.New("usage")

// run runs the command line args until it is done or SIGINT or SIGTERM
// arrives (then serve and demo shut down gracefully, record finishes what it
// has read), and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first signal, a second one ends the process at once.
		<-ctx.Done()
		stop()
	}()
	return runContext(ctx, args, stdout, stderr)
}

// runContext is run with ctx in place of the signals.
func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		args = []string{"demo"}
		fmt.Fprintln(stderr, "livechunk: no command given; running the demo (\"livechunk -h\" lists the commands)")
	}
	var err error
	switch args[0] {
	case "record":
		err = cmdRecord(ctx, args[1:], stdout, stderr)
	case "serve":
		err = cmdServe(ctx, args[1:], stdout, stderr)
	case "key":
		err = cmdKey(ctx, args[1:], stdout, stderr)
	case "stitch":
		err = cmdStitch(ctx, args[1:], stdout, stderr)
	case "demo":
		err = cmdDemo(ctx, args[1:], stdout, stderr)
	case "version", "-version", "--version":
		err = cmdVersion(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		usage(stdout)
	default:
		fmt.Fprintf(stderr, "livechunk: unknown command %q\n", args[0])
		usage(stderr)
		return exitUsage
	}
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	default:
		fmt.Fprintln(stderr, "livechunk:", explainDriver(err))
		return exitFailure
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `livechunk turns live H.264 into HLS segments and playlists in any blob store,
without re-encoding.

Commands:
  demo                           play the embedded clip live through the whole system (the default)
  serve [flags]                  run the ingest server with the player page
  key -stream NAME [-ttl 24h]    print a key that opens one stream of serve until it expires
  record [flags] INPUT... DEST   chunk inputs into DEST (a directory or a bucket URL)
  stitch -o OUT SOURCE...        join a recording (playlist or MP4 chunks) into one MP4 or TS
  version                        print the version

With no command, livechunk runs the demo. Each command's -h ("livechunk
record -h") explains its flags with examples. Exit status: 0 success,
1 failure, 2 usage error.

Examples:
  livechunk                                   the demo; open the printed /watch URL
  livechunk serve -addr 127.0.0.1:8080 -store ./streams
  livechunk record camera.mp4 out/
  ffmpeg -i input.mkv -c copy -f mpegts - | livechunk record - out/live
  livechunk stitch -o talk.mp4 out/talk/index.m3u8
`)
}

// parseFlags parses args into fs, flags before, between and after the
// operands ("record in.mp4 out -segment 2s" as "record -segment 2s in.mp4
// out"); after "--" everything is an operand, and "-" alone is one (standard
// input). fs.Args() are then the operands, in order. -h gives flag.ErrHelp
// (exit 0), any other error errUsage (exit 2); the flag package has printed
// the message and the usage.
func parseFlags(fs *flag.FlagSet, args []string) error {
	var operands []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return errUsage
		}
		consumed := len(args) - fs.NArg()
		ended := consumed > 0 && args[consumed-1] == "--" // the flag package stopped at it
		args = fs.Args()
		if ended {
			operands = append(operands, args...)
			break
		}
		i := 0
		for i < len(args) && (len(args[i]) < 2 || args[i][0] != '-') {
			i++
		}
		operands = append(operands, args[:i]...)
		if i == len(args) {
			break
		}
		if args[i] == "--" {
			operands = append(operands, args[i+1:]...)
			break
		}
		args = args[i:]
	}
	return fs.Parse(append([]string{"--"}, operands...))
}

func cmdVersion(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: livechunk version

Prints the module version of this binary (or the VCS revision of a
development build).

Example:
  livechunk version
`)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return errUsage
	}
	fmt.Fprintln(stdout, "livechunk", version())
	return nil
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "devel-" + s.Value[:12]
			}
		}
	}
	return "devel"
}

func cmdRecord(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("record", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("format", "fmp4", "segment format: fmp4 or ts")
	segment := new(time.Duration)
	durationFlag(fs, segment, "segment", 5*time.Second, true, "target segment `duration` (cut at the first keyframe after it; 2s, 2 or 00:00:02)")
	vod := fs.Bool("vod", false, "write a complete VOD playlist at the end instead of a live window")
	event := fs.Bool("event", false, "write an EVENT playlist (append only) instead of a live window")
	window := new(time.Duration)
	durationFlag(fs, window, "window", 0, false, "least `duration` a live playlist lists (default 6 segments)")
	keep := fs.Bool("keep", false, "keep segments that slide out of the live window")
	prefix := fs.String("prefix", "", "key prefix of every object in DEST, e.g. streams/cam1/")
	fps := fs.Float64("fps", 0, "frame rate of raw H.264 input without timing information")
	useSample := fs.Bool("sample", false, "record the embedded sample clip (no INPUT needed)")
	verbose := fs.Bool("v", false, "log each segment and upload (structured logs on stderr; without -v only warnings and errors)")
	fresh := fs.Bool("fresh", false, "start at sequence 0 even if DEST holds an unfinished recording")
	openGOP := fs.Bool("open-gop", false, openGOPHelp)
	startDur := new(time.Duration)
	durationFlag(fs, startDur, "start-duration", 0, false, startDurationHelp)
	spool := fs.String("spool", "", "local `DIR` that keeps closed segments while DEST is unreachable: past the in-memory bound they\n"+
		"are written there and uploaded in order when DEST returns (retried until then); a later run with the\n"+
		"same -spool uploads what an interrupted one left")
	spoolMax := fs.Int64("spool-max", 0, "most `BYTES` the -spool directory holds (default 1 GiB); when it is full, recording waits")
	inFlight := fs.Int64("max-in-flight", 0, "most `BYTES` of closed segments held in memory while they upload (default 64 MiB, 4 MiB\n"+
		"for a local directory, whose writes take milliseconds);\n"+
		"past it recording waits, or with -spool writes them to DIR")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: livechunk record [flags] INPUT... DEST

Cuts INPUT into keyframe-aligned segments without re-encoding, uploads them to
DEST while the next segment fills, and writes index.m3u8 (and master.m3u8).

INPUT is an MP4/MOV, fragmented MP4, MPEG-TS or raw H.264 file, or "-" for
standard input (MPEG-TS or raw H.264). AAC audio is recorded with the video
(or alone, for an input without video). Several MP4 inputs are read as one
continuous stream of chunks, each starting at time 0, as phones upload them.
DEST is a directory or a bucket URL: file:///path, mem://, s3://bucket?region=..,
gs://bucket, azblob://container. A ?prefix= parameter or -prefix puts the
recording under a key prefix.

While it runs, a status line on a terminal shows the segments, the bytes
uploaded and the speed as a multiple of real time (nothing when standard
error is a pipe or a file); a summary goes to standard output at the end.
SIGINT or SIGTERM stops reading: the open segment closes, uploads finish
and the playlist is finished.

Examples:
  livechunk record camera.mp4 out/
  livechunk record -format ts -segment 6s -vod talk.mov s3://my-bucket?region=eu-west-1
  ffmpeg -i rtsp://cam -c copy -f mpegts - | livechunk record - out/live

Flags:
`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	rest := fs.Args()
	if (*useSample && len(rest) != 1) || (!*useSample && len(rest) < 2) {
		switch {
		case *useSample:
			fmt.Fprintf(stderr, "livechunk record: -sample takes one operand, DEST; got %d\n\n", len(rest))
		case len(rest) == 0:
			fmt.Fprint(stderr, "livechunk record: INPUT and DEST are missing\n\n")
		default:
			fmt.Fprintf(stderr, "livechunk record: DEST is missing (the last operand is where the recording goes; %q is the only one)\n\n", rest[0])
		}
		fs.Usage()
		return errUsage
	}
	f, err := chunker.ParseFormat(*format)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return errUsage
	}
	if *vod && *event {
		fmt.Fprintln(stderr, "livechunk: -vod and -event exclude each other")
		return errUsage
	}
	if *spoolMax < 0 || (*spoolMax > 0 && *spool == "") {
		fmt.Fprintln(stderr, "livechunk: -spool-max needs -spool and a positive size")
		return errUsage
	}
	if *inFlight < 0 {
		fmt.Fprintln(stderr, "livechunk: -max-in-flight must be positive")
		return errUsage
	}
	logger := newLogger(stderr, *verbose)
	dest := rest[len(rest)-1]
	inputs := rest[:len(rest)-1]

	opt := source.Options{FrameRate: *fps, Logger: logger}
	var src source.Source
	var closeSrc func() error = func() error { return nil }
	switch {
	case *useSample:
		m, err := source.NewMP4(bytes.NewReader(sampleClip), opt)
		if err != nil {
			return err
		}
		src = m
	case len(inputs) == 1:
		file, err := source.Open(inputs[0], opt)
		if err != nil {
			return err
		}
		src, closeSrc = file, file.Close
	default:
		ch, err := source.OpenChunks(inputs, opt)
		if err != nil {
			return err
		}
		src = ch
	}
	defer closeSrc()

	b, err := sink.Open(ctx, dest)
	if err != nil {
		return err
	}
	defer b.Close()

	cfg := livechunk.Config{
		Format:          f,
		SegmentDuration: *segment,
		Prefix:          *prefix,
		Window:          *window,
		KeepSegments:    *keep,
		NoResume:        *fresh,
		OpenGOP:         *openGOP,
		StartDuration:   *startDur,
		Logger:          logger,
	}
	cfg.Sink.MaxInFlightBytes = *inFlight
	if *spool != "" {
		cfg.Sink.Overflow = sink.Spool
		cfg.Sink.SpoolDir = *spool
		cfg.Sink.SpoolMaxBytes = *spoolMax
	}
	switch {
	case *vod:
		cfg.Playlist = hls.VOD
	case *event:
		cfg.Playlist = hls.Event
	case !*useSample && !slices.Contains(inputs, "-"):
		// Files are read at full speed: a live window would list only
		// their last segments when the recording ends.
		fmt.Fprintln(stderr, "livechunk: note: the playlist is a live window (its last segments only, as a live stream's); -vod or -event keep the whole file listed")
	}
	start := time.Now()
	var done func()
	cfg.Progress, done = progress(stderr, isTerminal(stderr), start)
	// A signal ends the input; the recording is then finished normally.
	if note := source.AudioNote(src.Info().Audio != nil, src.Info().IgnoredAudio); note != "" {
		fmt.Fprintln(stderr, "livechunk: note:", note)
	}
	st, err := livechunk.Record(context.WithoutCancel(ctx), b, untilDone{src, ctx}, cfg)
	done()
	elapsed := time.Since(start)
	printSummary(context.WithoutCancel(ctx), stdout, b, cfg, st, elapsed, dest)
	return err
}

// openGOPHelp is the usage of the -open-gop flag.
const openGOPHelp = "also cut at open-GOP keyframes (I pictures with a recovery point SEI), for encoders\n" +
	"that make no IDR picture after the first (x264 --open-gop, broadcast); segments then decode\n" +
	"in sequence but not alone, and the playlist leaves out EXT-X-INDEPENDENT-SEGMENTS"

// startDurationHelp is the usage of the -start-duration flag.
const startDurationHelp = "write a new live playlist only once its segments last `duration` together; three segment\n" +
	"durations (e.g. 15s) make it playable in Chromium's own HLS player from the first\n" +
	"playlist on (hls.js needs nothing)"

func printSummary(ctx context.Context, w io.Writer, b *blob.Bucket, cfg livechunk.Config, st livechunk.Stats, elapsed time.Duration, dest string) {
	speed := ""
	if elapsed > 0 && st.Chunker.MediaTicks > 0 {
		secs := float64(st.Chunker.MediaTicks) / float64(st.Timescale)
		speed = fmt.Sprintf(", %.0fx real time", secs/elapsed.Seconds())
	}
	audio := ""
	if st.Chunker.AudioSamples > 0 {
		audio = fmt.Sprintf(", %d audio frames", st.Chunker.AudioSamples)
	}
	fmt.Fprintf(w, "%d segments, %d frames%s, %s in %v%s\n", st.Chunker.Segments, st.Chunker.Samples, audio,
		humanBytes(st.Sink.UploadedBytes), elapsed.Round(time.Millisecond), speed)
	if st.Chunker.DroppedNoKey > 0 {
		fmt.Fprintf(w, "dropped %d frames before the first keyframe\n", st.Chunker.DroppedNoKey)
	}
	if st.Chunker.DroppedLeading > 0 {
		fmt.Fprintf(w, "dropped %d leading frames of the open-GOP picture the recording starts at\n", st.Chunker.DroppedLeading)
	}
	if !cfg.OpenGOP && st.Chunker.RecoveryPoints > 0 && st.Chunker.LongSegments > 0 {
		fmt.Fprintf(w, "note: segments ran long: the input has open GOPs (%d recovery points, few IDR pictures); -open-gop cuts there too\n",
			st.Chunker.RecoveryPoints)
	}
	if st.Sink.Spooled > 0 || st.Sink.Recovered > 0 {
		fmt.Fprintf(w, "spool: %d objects went through the disk spool, %d recovered from an earlier run\n", st.Sink.Spooled, st.Sink.Recovered)
	}
	prefix := sink.CleanPrefix(cfg.Prefix)
	listRecording(ctx, w, b, prefix)
	fmt.Fprintf(w, "playlist: %s/%sindex.m3u8\n", strings.TrimSuffix(dest, "/"), prefix)
}

// summaryObjects is how many of a recording's objects the summary lists.
const summaryObjects = 12

// listRecording prints the first objects directly under prefix (the init
// sections and first segments) and the playlists, with their sizes. It
// reads a page or a few of the listing, not the whole: DEST may hold a
// recording of hours or, in a shared bucket, anything else.
func listRecording(ctx context.Context, w io.Writer, b *blob.Bucket, prefix string) {
	n := 0
	token := blob.FirstPageToken
	for pages := 0; pages < 4 && n <= summaryObjects && len(token) > 0; pages++ {
		var page []*blob.ListObject
		var err error
		page, token, err = b.ListPage(ctx, token, 64, &blob.ListOptions{Prefix: prefix, Delimiter: "/"})
		if err != nil {
			break
		}
		for _, obj := range page {
			if obj.IsDir || strings.HasSuffix(obj.Key, ".m3u8") {
				continue
			}
			if n == summaryObjects {
				fmt.Fprintln(w, "  ...")
				n++
				break
			}
			fmt.Fprintf(w, "  %-28s %9d bytes\n", obj.Key, obj.Size)
			n++
		}
	}
	for _, name := range []string{"index.m3u8", "master.m3u8"} {
		if a, err := b.Attributes(ctx, prefix+name); err == nil {
			fmt.Fprintf(w, "  %-28s %9d bytes\n", prefix+name, a.Size)
		}
	}
}

// newLogger logs to w: warnings and errors, or with verbose everything
// down to debug level.
func newLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
