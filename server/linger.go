package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Refusals that clients can read. A client that sends its whole body
// before it reads the answer (Python's urllib and requests, many mobile
// HTTP stacks) sees "connection reset" instead of the status when the
// server answers early and closes the connection with the body unread.
// As nginx's lingering close does, an ingest request refused before its
// body was read has the rest of its body read and discarded, up to
// maxDrain bytes and for drainTime, after the answer is sent.
const (
	maxDrain  = 64 << 20
	drainTime = 10 * time.Second
)

// lingering wraps an ingest handler: when it answers 4xx or 5xx without
// having read the request body to its end, the answer is flushed and the
// body drained (see maxDrain).
func lingering(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		// Reading the body after the answer is written needs it (HTTP/1).
		_ = rc.EnableFullDuplex()
		body := &eofReader{r: r.Body}
		r.Body = body
		lw := &loggingWriter{ResponseWriter: w, status: http.StatusOK}
		h(lw, r)
		if lw.status < 400 || body.eof || r.ContentLength == 0 {
			return
		}
		_ = rc.Flush()
		_ = rc.SetReadDeadline(time.Now().Add(drainTime))
		_, _ = io.CopyN(io.Discard, body, maxDrain)
	}
}

// eofReader records whether its reader reached the end.
type eofReader struct {
	r   io.ReadCloser
	eof bool
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		e.eof = true
	}
	return n, err
}

func (e *eofReader) Close() error { return e.r.Close() }

// uploadGrace is the time an upload has, on top of its first window (see
// rateReader), before it must have sent anything.
const uploadGrace = 5 * time.Second

// uploadWindow is the span over which rateReader measures a body's rate.
const uploadWindow = 10 * time.Second

// rateReader cuts off a body that arrives slower than rate bytes a second
// over any window of uploadWindow (the first one has uploadGrace more):
// a client that sent fast earns no time to trickle later, so that it
// cannot hold what it sent, and its connection, for hours. Before each
// read it sets the connection's read deadline to the end of the current
// window; once the window's bytes (rate × uploadWindow) have come, a new
// window starts. A read past the deadline fails with ErrSlowUpload.
type rateReader struct {
	r     io.ReadCloser
	rc    *http.ResponseController
	rate  int64
	start time.Time
	n     int64
	// mark, markN: where the current window started, and the bytes read
	// then (zero time: the first window, from start)
	mark  time.Time
	markN int64
}

func (rr *rateReader) Read(p []byte) (int, error) {
	if rr.mark.IsZero() {
		rr.mark = rr.start.Add(uploadGrace)
	}
	want := int64(float64(rr.rate) * uploadWindow.Seconds())
	if rr.n-rr.markN >= want {
		rr.mark, rr.markN = time.Now(), rr.n
	}
	due := rr.mark.Add(uploadWindow)
	_ = rr.rc.SetReadDeadline(due)
	// At most what the window still wants: the deadline holds for it.
	p = p[:min(int64(len(p)), max(want-(rr.n-rr.markN), 1))]
	n, err := rr.r.Read(p)
	rr.n += int64(n)
	if err != nil && !errors.Is(err, io.EOF) && time.Now().After(due) {
		err = fmt.Errorf("%w: %d bytes in %v, under %d bytes a second over the last %v", ErrSlowUpload, rr.n,
			time.Since(rr.start).Round(time.Millisecond), rr.rate, uploadWindow)
	}
	return n, err
}

func (rr *rateReader) Close() error { return rr.r.Close() }
