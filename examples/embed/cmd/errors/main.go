// Command errors goes through the errors of a pipeline and how each is
// handled (see embed.Errors): a bad configuration, a refused sample, a
// finished recording, a store that fails for good, and one that fails for a
// while, after which the recording resumes. It exits with status 1 when a
// step does not go as described.
//
// From examples/embed:
//
//	go run ./cmd/errors
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
	input := flag.String("input", "../../testdata/bframes.mp4", "H.264 file of at least four keyframes")
	flag.Parse()
	if err := run(*input); err != nil {
		fmt.Fprintln(os.Stderr, "errors:", err)
		os.Exit(1)
	}
}

func run(input string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	dir, err := os.MkdirTemp("", "livechunk-errors-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	return embed.Errors(ctx, embed.ErrorsConfig{Input: input, Dir: dir, Log: os.Stdout})
}
