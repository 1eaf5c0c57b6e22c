package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/livechunk/livechunk/internal/stitchrun"
	"github.com/livechunk/livechunk/stitch"
)

func cmdStitch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("stitch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := new(time.Duration)
	durationFlag(fs, from, "from", 0, false, "start `time` of the clip, from the first displayed picture (1m30s, 90 or 00:01:30)")
	to := new(time.Duration)
	durationFlag(fs, to, "to", 0, false, "end `time` of the clip, exclusive (default: the end)")
	out := fs.String("o", "", "write to `OUT`, a path or bucket URL: .mp4 gives a faststart MP4, .ts MPEG-TS (required)")
	verbose := fs.Bool("v", false, "log progress (structured logs on stderr; without -v only warnings and errors)")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: livechunk stitch [-from D] [-to D] -o OUT SOURCE...

Joins a recording into one ordinary file without re-encoding: a progressive,
faststart MP4 (moov before mdat) that plays and seeks anywhere, or MPEG-TS.
Memory stays bounded by the sample tables, whatever the length.

SOURCE is one media playlist (index.m3u8), as a path or a bucket URL
(file:///path/index.m3u8, s3://bucket/prefix/index.m3u8?region=.., gs://..,
azblob://..), with fMP4 or MPEG-TS segments; or, in order, MP4 chunks as a
phone uploads them (each with its own moov, each starting at 0), or segment
files (an init section then its segments). OUT is a path or a bucket URL: a
name ending in .ts gives MPEG-TS, anything else (.mp4) MP4. OUT is written
atomically. -from/-to clip losslessly: MP4 output starts exactly at -from
with an edit list; MPEG-TS output starts at the keyframe at or before it.

Examples:
  livechunk stitch -o talk.mp4 out/talk/index.m3u8
  livechunk stitch -from 1m -to 2m30s -o clip.mp4 "s3://my-bucket/live/index.m3u8?region=eu-west-1"
  livechunk stitch -o phone.mp4 chunk0.mp4 chunk1.mp4 chunk2.mp4

Flags:
`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	sources := fs.Args()
	switch {
	case *out == "" || len(sources) == 0:
		if *out == "" {
			fmt.Fprintln(stderr, "livechunk stitch: -o OUT is missing (the file to write)")
		}
		if len(sources) == 0 {
			fmt.Fprintln(stderr, "livechunk stitch: SOURCE is missing (a playlist, or MP4 chunks)")
		}
		fmt.Fprintln(stderr)
		fs.Usage()
		return errUsage
	case *from < 0 || *to < 0 || (*to != 0 && *to <= *from):
		fmt.Fprintln(stderr, "livechunk stitch: need 0 <= -from < -to")
		return errUsage
	}
	logger := newLogger(stderr, *verbose)
	start := time.Now()
	res, err := stitchrun.Run(ctx, sources, *out, stitch.Options{From: *from, To: *to, Logger: logger})
	if errors.Is(err, stitchrun.ErrUsage) {
		fmt.Fprintln(stderr, "livechunk stitch:", err)
		return errUsage
	}
	if err != nil {
		return err
	}
	printStitch(stdout, res, *out, time.Since(start))
	return nil
}

func printStitch(w io.Writer, res stitch.Result, out string, elapsed time.Duration) {
	format := "MP4"
	if stitchrun.IsTS(out) {
		format = "MPEG-TS"
	}
	fmt.Fprintf(w, "%s: %s, %s, %d frames (%d keyframes)", out, format, res.Duration.Round(time.Millisecond), res.Samples, res.Keyframes)
	fmt.Fprintf(w, ", %s from %d parts in %v\n", humanBytes(res.Bytes), res.Parts, elapsed.Round(time.Millisecond))
	if res.Discontinuities > 0 {
		fmt.Fprintf(w, "joined %d discontinuities\n", res.Discontinuities)
	}
	if res.SampleDescriptions > 1 {
		fmt.Fprintf(w, "%d sample descriptions (the SPS/PPS change)\n", res.SampleDescriptions)
	}
	if res.Dropped > 0 {
		fmt.Fprintf(w, "dropped %d frames before the first keyframe\n", res.Dropped)
	}
}
