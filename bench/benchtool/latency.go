package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"gocloud.dev/blob/memblob"

	"github.com/livechunk/livechunk"
	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/internal/testkit/faultblob"
	"github.com/livechunk/livechunk/source"
)

// latency records IN live, paced to real time, into a bucket whose every
// write takes -upload (faultblob's Delay on the write), and reports the
// distribution of the time each Pipeline.Write (and WriteAudio) call takes.
// The sink keeps its default in-flight bound (64 MiB for a remote store):
// a 5 s segment uploads in -upload, so as long as -upload is shorter than
// the segment duration the bound is never reached.
func latency(args []string) error {
	fs := flag.NewFlagSet("latency", flag.ExitOnError)
	upload := fs.Duration("upload", 3*time.Second, "time each upload takes")
	dur := fs.Duration("for", 60*time.Second, "how long to stream (the input loops)")
	format := fs.String("format", "fmp4", "fmp4 or ts")
	speed := fs.Float64("speed", 1, "pace as a multiple of real time")
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		return fmt.Errorf("latency: need IN")
	}
	f, err := chunker.ParseFormat(*format)
	if err != nil {
		return err
	}
	ctx := context.Background()
	inner := memblob.OpenBucket(&memblob.Options{NoMD5: true})
	defer inner.Close()
	inj := faultblob.New(inner, faultblob.Config{Rules: []faultblob.Rule{
		{Name: "slow", Ops: faultblob.OpCommit, Prob: 1, Action: faultblob.Delay, Delay: *upload},
	}})
	b := inj.Bucket()
	in := fs.Arg(0)
	looped, err := source.Loop(func() (source.Source, error) { return source.Open(in, source.Options{}) }, 0)
	if err != nil {
		return err
	}
	src := source.NewPaced(looped)
	src.Speed = *speed
	info := src.Info()
	cfg := livechunk.Config{Format: f, Playlist: hls.Live, Timescale: info.Timescale, WrapBits: info.WrapBits, SPS: info.SPS, PPS: info.PPS}
	if info.Audio != nil {
		cfg.Audio = info.Audio.Config()
	}
	p, err := livechunk.NewPipeline(ctx, b, cfg)
	if err != nil {
		return err
	}
	stop := time.AfterFunc(*dur, src.Stop)
	defer stop.Stop()
	var video, audio []time.Duration
	var bytes int64
	for {
		pk, err := src.NextPacket()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		t0 := time.Now()
		if pk.Kind == source.KindAudio {
			err = p.WriteAudio(ctx, pk.Audio)
			audio = append(audio, time.Since(t0))
		} else {
			err = p.Write(ctx, pk.Video)
			video = append(video, time.Since(t0))
			for _, n := range pk.Video.NALUs {
				bytes += int64(len(n))
			}
		}
		if err != nil {
			return err
		}
	}
	st := p.Stats()
	if err := p.Close(ctx); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%d video samples (%.1f Mbit/s), %d segments, %d uploads of %v each, peak in flight %d bytes, %d blocked writes\n",
		len(video), float64(bytes)*8/dur.Seconds()/1e6, st.Chunker.Segments, st.Sink.Uploaded, *upload, st.Sink.PeakInFlightBytes, st.Sink.BlockedWrites)
	fmt.Printf("| Write (video, %d calls) | %s |\n", len(video), quantiles(video))
	fmt.Printf("| WriteAudio (%d calls) | %s |\n", len(audio), quantiles(audio))
	return nil
}

// quantiles formats p50, p99, p99.9 and max as table cells, in ms.
func quantiles(d []time.Duration) string {
	if len(d) == 0 {
		return "— | — | — | —"
	}
	slices.Sort(d)
	q := func(p float64) string {
		i := min(int(p*float64(len(d))), len(d)-1)
		return fmt.Sprintf("%.3f", float64(d[i])/1e6)
	}
	return fmt.Sprintf("%s | %s | %s | %s", q(0.5), q(0.99), q(0.999), q(1))
}
