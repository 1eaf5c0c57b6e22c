package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/livechunk/livechunk"
	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/sink"
)

func TestProgressLine(t *testing.T) {
	st := livechunk.Stats{
		Timescale: 90000,
		Chunker:   chunker.Stats{Segments: 7, MediaTicks: 30 * 90000},
		Sink:      sink.Stats{Uploaded: 8, UploadedBytes: 3 << 20},
	}
	got := progressLine(st, 2*time.Second)
	want := "7 segments, 8 uploaded (3.00 MiB), 30s of media in 2s, 15.0x real time"
	if got != want {
		t.Errorf("progressLine:\n got %q\nwant %q", got, want)
	}
	if got := progressLine(livechunk.Stats{}, 0); !strings.HasSuffix(got, "- real time") {
		t.Errorf("progressLine at the start: %q", got)
	}
}

// TestProgressOnlyOnTerminal: on a terminal the status line is rewritten
// in place and cleared at the end; elsewhere nothing is written.
func TestProgressOnlyOnTerminal(t *testing.T) {
	var tty bytes.Buffer
	update, done := progress(&tty, true, time.Now())
	update(livechunk.Stats{Timescale: 90000, Chunker: chunker.Stats{Segments: 1}})
	update(livechunk.Stats{Timescale: 90000, Chunker: chunker.Stats{Segments: 2}})
	done()
	if got := tty.String(); strings.Count(got, "\r\033[K") != 3 || !strings.Contains(got, "2 segments") || strings.Contains(got, "\n") {
		t.Errorf("terminal output %q", got)
	}
	var pipe bytes.Buffer
	update, done = progress(&pipe, isTerminal(&pipe), time.Now())
	if update != nil {
		t.Error("progress on a buffer")
	}
	done()
	if pipe.Len() != 0 {
		t.Errorf("wrote %q to a buffer", pipe.String())
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if isTerminal(w) {
		t.Error("a pipe counts as a terminal")
	}
}
