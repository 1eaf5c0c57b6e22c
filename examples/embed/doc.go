// Package embed embeds livechunk in a program as its users do: through the
// exported API only, in a module of its own that requires
// github.com/livechunk/livechunk (here replaced by the checkout two
// directories up). Each flow is a function that checks what it did and
// returns an error when something is wrong; the programs under cmd/ run
// them, and the tests run them under the race detector:
//
//   - Many records one input as many concurrent streams into one bucket
//     while a goroutine watches every stream's Stats;
//   - Encoder feeds an app's encoder callbacks (H.264 access units and AAC
//     frames, from two threads, timestamps in microseconds) into a pipeline;
//   - Errors shows which errors a pipeline returns, which of them a retry
//     cures, and how a recording goes on after its store failed.
//
// From this directory:
//
//	go test -race ./...
//	go run ./cmd/many -streams 20
//	go run ./cmd/encoder
//	go run ./cmd/errors
package embed
