package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/livechunk/livechunk"
	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/source"
)

// isTerminal reports whether w is a character device (a terminal), where
// progress is shown; a pipe or a file stays quiet.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progressLine is one line of progress: segments closed and uploaded,
// bytes uploaded, media time read and the speed as a multiple of real time.
func progressLine(st livechunk.Stats, elapsed time.Duration) string {
	media := time.Duration(0)
	if st.Timescale > 0 {
		media = time.Duration(float64(st.Chunker.MediaTicks) / float64(st.Timescale) * float64(time.Second))
	}
	speed := "-"
	if elapsed > 0 && media > 0 {
		speed = fmt.Sprintf("%.1fx", media.Seconds()/elapsed.Seconds())
	}
	return fmt.Sprintf("%d segments, %d uploaded (%s), %s of media in %s, %s real time",
		st.Chunker.Segments, st.Sink.Uploaded, humanBytes(st.Sink.UploadedBytes),
		media.Round(100*time.Millisecond), elapsed.Round(100*time.Millisecond), speed)
}

// progress returns a livechunk.Config.Progress that rewrites one status
// line on w, and a function that clears that line. Without tty (w is not a
// terminal) update is nil and done does nothing.
func progress(w io.Writer, tty bool, start time.Time) (update func(livechunk.Stats), done func()) {
	if !tty {
		return nil, func() {}
	}
	shown := false
	update = func(st livechunk.Stats) {
		shown = true
		fmt.Fprintf(w, "\r\033[K%s", progressLine(st, time.Since(start)))
	}
	done = func() {
		if shown {
			fmt.Fprint(w, "\r\033[K")
		}
	}
	return update, done
}

// untilDone ends src (io.EOF) at the first packet read after ctx is done,
// so that an interrupted record closes its open segment, finishes its
// uploads and its playlist instead of failing half way.
type untilDone struct {
	source.Source
	ctx context.Context
}

func (u untilDone) NextPacket() (source.Packet, error) {
	if u.ctx.Err() != nil {
		return source.Packet{}, io.EOF
	}
	return u.Source.NextPacket()
}

func (u untilDone) Next() (chunker.Sample, error) {
	if u.ctx.Err() != nil {
		return chunker.Sample{}, io.EOF
	}
	return u.Source.Next()
}
