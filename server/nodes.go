package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/livechunk/livechunk/hls"
	"gocloud.dev/gcerrors"
)

// forwardedHeader marks a request one node forwards to the owner of its
// stream (its value is the forwarding node's ID); the owner never forwards
// it again.
const forwardedHeader = "Livechunk-Forwarded-By"

// forward sends an ingest request (its body already read) to the node at
// base that records its stream, and copies the answer back. It reports
// false, having written nothing, when that node refuses the connection:
// it is gone, and the caller takes the stream over. Any other failure is
// answered 503 with Retry-After.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, base string, body *io.SectionReader) bool {
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = body
	}
	// The query goes along: it may carry the stream key (?key=).
	req, err := http.NewRequestWithContext(r.Context(), r.Method, base+r.URL.RequestURI(), rd)
	if err != nil {
		failStatus(w, http.StatusBadGateway, "forwarding to the stream's node %s: %v", base, err)
		return true
	}
	if body != nil {
		// A body the transport can send again (on a kept-alive
		// connection the other node closed meanwhile).
		req.ContentLength = body.Size()
		req.GetBody = func() (io.ReadCloser, error) {
			return io.NopCloser(io.NewSectionReader(body, 0, body.Size())), nil
		}
	}
	for _, h := range []string{"Authorization", "Content-Type"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	req.Header.Set(forwardedHeader, s.cfg.NodeID)
	resp, err := s.cfg.Client.Do(req)
	if errors.Is(err, syscall.ECONNREFUSED) {
		s.cfg.Logger.Warn("the node that records a stream is gone; taking the stream over", "node", base, "path", r.URL.Path)
		return false
	}
	if err != nil {
		w.Header().Set("Retry-After", "1")
		failStatus(w, http.StatusServiceUnavailable, "forwarding to the stream's node %s: %v", base, err)
		return true
	}
	defer resp.Body.Close()
	for _, h := range []string{"Content-Type", "Retry-After", "WWW-Authenticate", "Cache-Control"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, io.LimitReader(resp.Body, 1<<20))
	return true
}

// retryAfter is the Retry-After of an answer that err makes a 503: the
// seconds until another node's lease ends (then this node may take the
// stream), or "1".
func retryAfter(err error) string {
	var o *ownedError
	if errors.As(err, &o) {
		return strconv.Itoa(max(1, int(time.Until(o.until.Add(leaseMargin)).Seconds()+1)))
	}
	return "1"
}

// background runs f in a goroutine that Shutdown waits for: deletes of
// objects nothing refers to any more.
func (s *Server) background(f func(ctx context.Context)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		f(ctx)
	}()
}

// sweepLoop sweeps every quarter of Config.IdleTimeout (at most every
// 30 s) until ctx ends.
func (s *Server) sweepLoop(ctx context.Context) {
	defer close(s.swept)
	every := min(s.cfg.IdleTimeout/4, 30*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.sweep(ctx)
		}
	}
}

// sweep ends the live streams that have had no input for
// Config.IdleTimeout, this node's and those whose node is gone (its lease
// ended), and completes the streams whose node died while ending them.
func (s *Server) sweep(ctx context.Context) {
	names, err := s.store.streams(ctx)
	if err != nil {
		s.cfg.Logger.Warn("sweep: listing the streams", "err", err)
		return
	}
	for _, name := range names {
		if ctx.Err() != nil {
			return
		}
		if st, _ := s.getStream(name, false); st != nil {
			if st.idle() {
				s.cfg.Logger.Info("stream idle; ending it", "stream", name)
				err := st.end(ctx)
				if errors.Is(err, errStale) || errors.Is(err, errGone) {
					// Its lease ran out while it was idle: ended from the
					// store, as any node would.
					err = s.end(ctx, name, false)
				}
				if err != nil && !errors.Is(err, ErrEnded) {
					s.cfg.Logger.Warn("ending an idle stream", "stream", name, "err", err)
				}
			}
			continue
		}
		saved, v, err := s.store.latest(ctx, name)
		now := time.Now()
		switch {
		case err != nil || v == 0 || saved.Done:
		case saved.Ended && (!saved.held(now) || saved.Owner == s.cfg.NodeID):
			// (A stream of this node that is not in memory was left by an
			// earlier process: nobody is finishing it.)
			s.complete(ctx, name, saved, v)
		case now.After(saved.Active.Add(s.cfg.IdleTimeout)):
			if saved.Owner == s.cfg.NodeID {
				s.cfg.Logger.Info("stream idle; ending it", "stream", name)
			} else {
				s.cfg.Logger.Info("stream idle and its node gone; ending it", "stream", name, "node", saved.Owner)
			}
			if err := s.end(ctx, name, false); err != nil && !errors.Is(err, ErrEnded) {
				s.cfg.Logger.Warn("ending an idle stream", "stream", name, "err", err)
			}
		}
	}
}

// idle reports whether the stream has had no input for Config.IdleTimeout.
func (st *stream) idle() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.loaded && !st.gone && st.state == "live" && st.pushing == nil &&
		time.Since(st.active) > st.srv.cfg.IdleTimeout
}

// complete finishes a stream whose node died (or failed) after its state
// said it ended: the playlist gets EXT-X-ENDLIST and the VOD file is
// stitched; when that fails, the next sweep tries again.
func (s *Server) complete(ctx context.Context, name string, saved ingestState, v uint64) {
	saved.Owner, saved.OwnerURL, saved.LeaseUntil = s.cfg.NodeID, s.ownerURL, time.Now().Add(stitchLease)
	if err := s.store.create(ctx, name, v+1, &saved); err != nil {
		return // another node does it
	}
	err := s.finishRecording(ctx, name, true)
	if err != nil {
		s.cfg.Logger.Warn("completing an ended stream; the next sweep tries again", "stream", name, "err", err)
	}
	saved.Done, saved.LeaseUntil = err == nil, time.Time{}
	_ = s.store.create(ctx, name, v+2, &saved)
}

// finishRecording finishes what an ended stream left in the bucket: with
// playlist, a playlist without EXT-X-ENDLIST gets it (the recording's
// pipeline is not there to close it: a suspended push, a node that died);
// then, with Config.Stitch, the VOD file is made unless it exists.
func (s *Server) finishRecording(ctx context.Context, name string, playlist bool) error {
	prefix := s.streamPrefix(name)
	pl, err := hls.LoadMedia(ctx, s.cfg.Bucket, prefix+"index.m3u8")
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil // nothing was recorded
	}
	if err != nil {
		return err
	}
	if playlist && !pl.Ended {
		pub, err := hls.NewPublisher(s.cfg.Bucket, hls.PublisherConfig{Type: hls.Event, Prefix: prefix, Name: "index.m3u8",
			TargetDuration: s.cfg.SegmentDuration})
		if err != nil {
			return err
		}
		pub.Restore(pl)
		if err := pub.Finish(ctx); err != nil {
			return err
		}
	}
	if s.cfg.Stitch == nil || len(pl.Segments) == 0 {
		return nil
	}
	if ok, err := s.cfg.Bucket.Exists(ctx, prefix+"vod.mp4"); ok || err != nil {
		return err
	}
	if err := s.cfg.Stitch(ctx, s.cfg.Bucket, prefix+"index.m3u8", prefix+"vod.mp4"); err != nil {
		return fmt.Errorf("stitching: %w", err)
	}
	return nil
}

// handleHealth answers GET /healthz for load balancers: 200 while the
// server takes streams, 503 once Shutdown has begun (its streams are being
// suspended: send their chunks to another node).
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	closed := s.draining
	s.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	if closed {
		failStatus(w, http.StatusServiceUnavailable, "shutting down")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok\n")
}
