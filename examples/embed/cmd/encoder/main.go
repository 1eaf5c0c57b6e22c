// Command encoder feeds simulated encoder callbacks (H.264 access units and
// AAC frames from two threads, timestamps in microseconds) into a live
// pipeline, then checks the recording (see embed.Encoder). It exits with
// status 1 when a check fails.
//
// From examples/embed:
//
//	go run ./cmd/encoder                      # into a temporary directory
//	go run ./cmd/encoder -store /tmp/rec -repeat 10
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"example.com/embed"
)

func main() {
	input := flag.String("input", "../../testdata/av.mp4", "MP4 file (H.264 and AAC) that the simulated encoders replay")
	repeat := flag.Int("repeat", 4, "times the encoders play the input")
	speed := flag.Float64("speed", 1, "the encoders' pace as a multiple of real time")
	store := flag.String("store", "", "bucket: a directory or a URL such as mem:// (default: a temporary directory, removed at the end)")
	flag.Parse()
	if err := run(*store, embed.EncoderConfig{Input: *input, Repeat: *repeat, Speed: *speed, Log: os.Stdout}); err != nil {
		fmt.Fprintln(os.Stderr, "encoder:", err)
		os.Exit(1)
	}
}

func run(store string, cfg embed.EncoderConfig) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	bucket, done, err := embed.OpenStore(ctx, store, "encoder")
	if err != nil {
		return err
	}
	defer done()
	_, err = embed.Encoder(ctx, bucket, cfg)
	return err
}
