package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"sync"
	"syscall"
	"time"

	"gocloud.dev/blob"

	"github.com/livechunk/livechunk"
	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/sink"
	"github.com/livechunk/livechunk/source"
)

// streams runs -n live recordings of IN in one process, each paced to real
// time (source.Paced, speed 1, the input looping), each into its own prefix
// of the directory DIR with a live playlist (segments that slide out of the
// window are deleted), for -for. Stream starts are spread over one segment
// duration, as independent broadcasts would be; with -shared-pool (the
// default) they share one chunker.Pool. It reports the process's
// CPU time (user+sys) per second of wall time and its peak RSS.
func streams(args []string) error {
	fs := flag.NewFlagSet("streams", flag.ExitOnError)
	n := fs.Int("n", 50, "concurrent streams")
	shared := fs.Bool("shared-pool", true, "one chunker.Pool for all streams")
	dur := fs.Duration("for", 30*time.Second, "how long each stream runs")
	format := fs.String("format", "fmp4", "fmp4 or ts")
	_ = fs.Parse(args)
	if fs.NArg() != 2 {
		return fmt.Errorf("streams: need IN and DIR")
	}
	f, err := chunker.ParseFormat(*format)
	if err != nil {
		return err
	}
	in, dir := fs.Arg(0), fs.Arg(1)
	ctx := context.Background()
	b, err := sink.Open(ctx, dir)
	if err != nil {
		return err
	}
	defer b.Close()

	var pool *chunker.Pool
	if *shared {
		pool = chunker.NewPool()
	}
	samples := make([]int64, *n)
	late := make([]time.Duration, *n)
	wall, cpu, rss, err := staggered(*n, func(i int) (err error) {
		samples[i], late[i], err = stream(ctx, b, pool, in, fmt.Sprintf("s%03d/", i), f, *dur)
		return err
	})
	if err != nil {
		return err
	}
	var total int64
	var worst time.Duration
	for i := range *n {
		total += samples[i]
		worst = max(worst, late[i])
	}
	fmt.Printf("| %d | %v | %v | %.1f | %.2f | %.0f%% | %.0f | %d | %.0f |\n",
		*n, *dur, *shared, wall.Seconds(), cpu.Seconds(), 100*cpu.Seconds()/wall.Seconds()/float64(runtime.NumCPU()),
		rss, total, float64(worst)/1e6)
	return nil
}

// staggered runs fn(0) … fn(n-1) on n goroutines, the i-th started i/n of
// 5 s after the first, as independent broadcasts would start, and returns
// the wall time, the process's CPU time (user+sys) over it, the process's
// peak RSS in MB and fn's errors joined.
func staggered(n int, fn func(i int) error) (wall, cpu time.Duration, rssMB float64, err error) {
	var before, after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 5 * time.Second / time.Duration(n))
			errs[i] = fn(i)
		}()
	}
	wg.Wait()
	wall = time.Since(start)
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu = tv(after.Utime) - tv(before.Utime) + tv(after.Stime) - tv(before.Stime)
	return wall, cpu, float64(after.Maxrss) / 1024, errors.Join(errs...)
}

// stream records one paced stream for d and returns the number of video
// samples written and the largest delay of a Write call behind its due time.
func stream(ctx context.Context, bucket *blob.Bucket, pool *chunker.Pool, in, prefix string, f chunker.Format, d time.Duration) (int64, time.Duration, error) {
	looped, err := source.Loop(func() (source.Source, error) { return source.Open(in, source.Options{}) }, 0)
	if err != nil {
		return 0, 0, err
	}
	src := source.NewPaced(looped)
	info := src.Info()
	cfg := livechunk.Config{Format: f, Playlist: hls.Live, Prefix: prefix, NoResume: true, Pool: pool}.WithSource(info)
	p, err := livechunk.NewPipeline(ctx, bucket, cfg)
	if err != nil {
		return 0, 0, err
	}
	stop := time.AfterFunc(d, src.Stop)
	defer stop.Stop()
	var count int64
	var worst time.Duration
	t0 := time.Now()
	var first int64 = -1
	for {
		pk, err := src.NextPacket()
		if err == io.EOF {
			break
		}
		if err != nil {
			return count, worst, err
		}
		if pk.Kind == source.KindAudio {
			err = p.WriteAudio(ctx, pk.Audio)
		} else {
			if first < 0 {
				first = pk.Video.DTS
			}
			// How far behind real time this sample is written.
			due := t0.Add(time.Duration(pk.Video.DTS-first) * time.Second / time.Duration(info.Timescale))
			err = p.Write(ctx, pk.Video)
			worst = max(worst, time.Since(due))
			count++
		}
		if err != nil {
			return count, worst, err
		}
	}
	return count, worst, p.Close(ctx)
}

func tv(t syscall.Timeval) time.Duration {
	return time.Duration(t.Sec)*time.Second + time.Duration(t.Usec)*time.Microsecond
}
