// Command many records one input as many concurrent live streams into one
// bucket while it watches every stream's Stats, then checks each stream's
// playlist and counters (see embed.Many). It exits with status 1 when a
// check fails.
//
// From examples/embed:
//
//	go run ./cmd/many                          # 20 streams into a temporary directory
//	go run ./cmd/many -streams 50 -speed 0 -store mem://
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"example.com/embed"
)

func main() {
	input := flag.String("input", "../../testdata/av.mp4", "the file every stream reads")
	streams := flag.Int("streams", 20, "concurrent streams")
	repeat := flag.Int("repeat", 4, "times each stream plays the input")
	speed := flag.Float64("speed", 4, "pace as a multiple of real time (0: as fast as possible)")
	segment := flag.Duration("segment", time.Second, "segment duration")
	store := flag.String("store", "", "bucket: a directory or a URL such as mem:// (default: a temporary directory, removed at the end)")
	flag.Parse()
	if err := run(*store, embed.ManyConfig{Input: *input, Streams: *streams, Repeat: *repeat, Speed: *speed,
		SegmentDuration: *segment, Log: os.Stdout}); err != nil {
		fmt.Fprintln(os.Stderr, "many:", err)
		os.Exit(1)
	}
}

func run(store string, cfg embed.ManyConfig) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	bucket, done, err := embed.OpenStore(ctx, store, "many")
	if err != nil {
		return err
	}
	defer done()
	return embed.Many(ctx, bucket, cfg)
}
