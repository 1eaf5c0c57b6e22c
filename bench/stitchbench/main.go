// Command stitchbench runs the stitch package the way the command line's
// "livechunk stitch" does (both call internal/stitchrun), for bench/stitch.sh:
//
//	stitchbench [-from D] [-to D] -o OUT SOURCE...
//	stitchbench -record [-format fmp4|ts] [-segment D] INPUT DIR
//
// SOURCE is one media playlist (a local path or a bucket URL ending in
// .m3u8, for example "s3://bucket/live/index.m3u8?region=eu-west-1"), or
// local MP4/TS files (chunks or segments). OUT is a local path or a bucket
// URL; ".ts" writes MPEG-TS, anything else MP4. The result is printed as
// JSON on stderr.
//
// With -record it records INPUT into DIR as a VOD playlist (index.m3u8) of
// segments, with livechunk.Record, to make the benchmark's input.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/livechunk/livechunk"
	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/internal/stitchrun"
	"github.com/livechunk/livechunk/sink"
	"github.com/livechunk/livechunk/source"
	"github.com/livechunk/livechunk/stitch"
)

func main() {
	from := flag.Duration("from", 0, "start of the clip")
	to := flag.Duration("to", 0, "end of the clip (0: the end)")
	out := flag.String("o", "", "output path or bucket URL (.mp4 or .ts)")
	rec := flag.Bool("record", false, "record INPUT into DIR instead")
	format := flag.String("format", "fmp4", "segment format for -record: fmp4 or ts")
	segment := flag.Duration("segment", 2*time.Second, "segment duration for -record")
	flag.Parse()
	if *rec {
		if flag.NArg() != 2 {
			fmt.Fprintln(os.Stderr, "usage: stitchbench -record [-format fmp4|ts] [-segment D] INPUT DIR")
			os.Exit(2)
		}
		if err := record(context.Background(), flag.Arg(0), flag.Arg(1), *format, *segment); err != nil {
			fmt.Fprintln(os.Stderr, "stitchbench:", err)
			os.Exit(1)
		}
		return
	}
	if *out == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: stitchbench [-from D] [-to D] -o OUT SOURCE...")
		os.Exit(2)
	}
	res, err := stitchrun.Run(context.Background(), flag.Args(), *out, stitch.Options{From: *from, To: *to})
	if err != nil {
		fmt.Fprintln(os.Stderr, "stitchbench:", err)
		os.Exit(1)
	}
	enc := json.NewEncoder(os.Stderr)
	_ = enc.Encode(res)
}

func record(ctx context.Context, input, dir, format string, segment time.Duration) error {
	f, err := chunker.ParseFormat(format)
	if err != nil {
		return err
	}
	src, err := source.Open(input, source.Options{})
	if err != nil {
		return err
	}
	defer src.Close()
	b, err := sink.Open(ctx, dir)
	if err != nil {
		return err
	}
	defer b.Close()
	st, err := livechunk.Record(ctx, b, src, livechunk.Config{Format: f, SegmentDuration: segment, Playlist: hls.VOD})
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stderr).Encode(st)
}
