package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"gocloud.dev/blob"

	"github.com/livechunk/livechunk/server"
	"github.com/livechunk/livechunk/sink"
	"github.com/livechunk/livechunk/source"
)

// push runs a server (package server, as `livechunk serve` does) in this
// process and pushes -n MPEG-TS streams into it over HTTP on 127.0.0.1
// (POST /ingest/{stream}), each the bytes of IN (looped) sent at the
// input's own byte rate, so in real time, for -for; starts are spread over
// 5 s. The server records each into its own prefix of DIR (fMP4, event
// playlist). -speed sends faster than real time (for a long run in a short
// time). It reports the process's CPU time per second of wall time
// (server and senders), its peak RSS and the segments recorded.
func push(args []string) error {
	fs := flag.NewFlagSet("push", flag.ExitOnError)
	n := fs.Int("n", 50, "concurrent streams")
	dur := fs.Duration("for", 30*time.Second, "how long each stream is pushed")
	speed := fs.Float64("speed", 1, "multiple of real time the streams are sent at")
	heapProf := fs.String("heapprofile", "", "write an in-use heap profile halfway through")
	_ = fs.Parse(args)
	if fs.NArg() != 2 {
		return fmt.Errorf("push: need IN (MPEG-TS) and DIR")
	}
	in, dir := fs.Arg(0), fs.Arg(1)
	file, err := os.Open(in)
	if err != nil {
		return err
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return err
	}
	size := fi.Size() / 188 * 188
	length, err := mediaDuration(in)
	if err != nil {
		return err
	}
	rate := *speed * float64(size) / length.Seconds() // bytes per second
	ctx := context.Background()
	b, err := sink.Open(ctx, dir)
	if err != nil {
		return err
	}
	defer b.Close()
	srv, err := server.New(server.Config{Bucket: b, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv}
	go hs.Serve(ln)
	defer hs.Close()
	url := "http://" + ln.Addr().String() + "/ingest/"

	if *heapProf != "" {
		t := time.AfterFunc(5*time.Second+*dur/2, func() {
			if err := writeHeapProfile(*heapProf); err != nil {
				fmt.Fprintln(os.Stderr, "push:", err)
			}
		})
		defer t.Stop()
	}
	wall, cpu, rss, err := staggered(*n, func(i int) error {
		body := &pacedBytes{r: file, size: size, rate: rate, until: time.Now().Add(*dur)}
		resp, err := http.Post(url+fmt.Sprintf("s%03d", i), "video/mp2t", body)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("stream %d: %s", i, resp.Status)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := srv.Shutdown(ctx); err != nil {
		return err
	}
	segs, err := countSegments(ctx, b)
	if err != nil {
		return err
	}
	fmt.Printf("| %d | %v | %.1f | %.2f | %.0f%% | %.0f | %d |\n",
		*n, *dur, wall.Seconds(), cpu.Seconds(), 100*cpu.Seconds()/wall.Seconds()/float64(runtime.NumCPU()),
		rss, segs)
	return nil
}

// writeHeapProfile writes the in-use heap as of a collection run now.
func writeHeapProfile(name string) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	defer f.Close()
	runtime.GC()
	return pprof.Lookup("heap").WriteTo(f, 0)
}

// pacedBytes reads the first size bytes of r over and over (a shorter
// input is looped), no faster than rate bytes a second since its first
// Read, in whole 188-byte packets, until the time until.
type pacedBytes struct {
	r     io.ReaderAt
	size  int64
	rate  float64
	until time.Time
	t0    time.Time
	sent  int64
}

func (p *pacedBytes) Read(b []byte) (int, error) {
	now := time.Now()
	if p.t0.IsZero() {
		p.t0 = now
	}
	if now.After(p.until) {
		return 0, io.EOF
	}
	due := int64(p.rate*now.Sub(p.t0).Seconds()) + 188*7 // a little ahead, as a sender's buffer
	for due <= p.sent {
		// Pacing a real-time sender: wait for the next packets' time.
		time.Sleep(10 * time.Millisecond)
		now = time.Now()
		due = int64(p.rate*now.Sub(p.t0).Seconds()) + 188*7
	}
	n := int(min(int64(len(b)), due-p.sent))
	n -= n % 188
	if n == 0 {
		n = min(len(b), 188)
	}
	off := p.sent % p.size
	n = int(min(int64(n), p.size-off))
	n, err := p.r.ReadAt(b[:n], off)
	p.sent += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// mediaDuration is the time from the first to the last video sample of
// the input.
func mediaDuration(in string) (time.Duration, error) {
	src, err := source.Open(in, source.Options{})
	if err != nil {
		return 0, err
	}
	defer src.Close()
	first, last := int64(-1), int64(0)
	for {
		s, err := src.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
		if first < 0 {
			first = s.DTS
		}
		last = s.DTS + s.Duration
	}
	ts := int64(src.Info().Timescale)
	if first < 0 || ts == 0 || last <= first {
		return 0, fmt.Errorf("%s: no video duration", in)
	}
	return time.Duration(last-first) * time.Second / time.Duration(ts), nil
}

// countSegments counts the media segments stored in b.
func countSegments(ctx context.Context, b *blob.Bucket) (int, error) {
	n := 0
	it := b.List(nil)
	for {
		o, err := it.Next(ctx)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if strings.Contains(o.Key, "/seg-") {
			n++
		}
	}
}
