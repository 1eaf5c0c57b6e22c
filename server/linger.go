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

// uploadGrace is the time an upload has, on top of its bytes at
// Config.MinUploadRate, before it is cut off as too slow.
const uploadGrace = 5 * time.Second

// uploadIdle is the longest an upload may send nothing, whatever it sent
// before (a client that sent fast must not earn minutes of silence).
const uploadIdle = 30 * time.Second

// rateReader cuts off a body that arrives slower than rate bytes a second
// on average (after uploadGrace), or that sends nothing for uploadIdle:
// before each read it sets the connection's read deadline to when the
// bytes read so far, and the next ones, are due (uploadIdle from now at
// the latest). A read past it fails with ErrSlowUpload.
type rateReader struct {
	r     io.ReadCloser
	rc    *http.ResponseController
	rate  int64
	start time.Time
	n     int64
}

func (rr *rateReader) Read(p []byte) (int, error) {
	p = p[:min(len(p), 64<<10)] // the deadline allows for what is asked
	due := rr.start.Add(uploadGrace + time.Duration(float64(rr.n+int64(len(p)))/float64(rr.rate)*float64(time.Second)))
	idle := time.Now().Add(uploadIdle)
	deadline := due
	if idle.Before(due) {
		deadline = idle
	}
	_ = rr.rc.SetReadDeadline(deadline)
	n, err := rr.r.Read(p)
	rr.n += int64(n)
	switch {
	case err == nil || errors.Is(err, io.EOF):
	case time.Now().After(due):
		err = fmt.Errorf("%w: %d bytes in %v (the minimum is %d bytes a second)", ErrSlowUpload, rr.n,
			time.Since(rr.start).Round(time.Millisecond), rr.rate)
	case time.Now().After(idle):
		err = fmt.Errorf("%w: nothing for %v after %d bytes", ErrSlowUpload, uploadIdle, rr.n)
	}
	return n, err
}

func (rr *rateReader) Close() error { return rr.r.Close() }
