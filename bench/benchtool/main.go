// Command benchtool holds the in-process measurements of bench/run.sh:
//
//	benchtool record [-format fmp4|ts] [-loop N] [-warm N] [-cpuprofile F] [-memprofile F] [-trace F] IN DIR
//	benchtool latency [-upload 3s] [-for 60s] IN
//	benchtool streams [-n 50] [-for 30s] IN DIR
//	benchtool push [-n 50] [-for 30s] IN.ts DIR
//	benchtool chunks -serve BIN [-store dir|versitygw] [-devices N] [-chunks K] [-pace D] [-raw F] [-log F] CHUNKDIR
//	benchtool chunkpool RAW.tsv
//	benchtool chunklog SERVE.log
//	benchtool chart RESULTS.tsv OUT.svg
//
// record is "livechunk record -vod" (the same calls) with profiling and
// looping of the input; latency and streams run live pipelines paced to
// real time; chunks runs devices uploading MP4 chunks to a `livechunk
// serve` process and reports the uploads' latency (bench/ack.sh), chunkpool
// pools its runs and chunklog splits a chunk upload's time in the server
// from serve's -v log; chart draws the throughput table of bench/run.sh.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"syscall"
	"time"

	"github.com/livechunk/livechunk"
	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/sink"
	"github.com/livechunk/livechunk/source"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchtool record|latency|streams|push|chunks|chunkpool|chunklog|chart ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "record":
		err = record(os.Args[2:])
	case "latency":
		err = latency(os.Args[2:])
	case "streams":
		err = streams(os.Args[2:])
	case "push":
		err = push(os.Args[2:])
	case "chunks":
		err = chunks(os.Args[2:])
	case "chunkpool":
		err = chunkpool(os.Args[2:])
	case "chunklog":
		err = chunklog(os.Args[2:])
	case "chart":
		err = chart(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtool:", err)
		os.Exit(1)
	}
}

// record is "livechunk record -vod" with profiling and looping.
func record(args []string) error {
	fs := flag.NewFlagSet("record", flag.ExitOnError)
	format := fs.String("format", "fmp4", "fmp4 or ts")
	loop := fs.Int("loop", 1, "passes over the input (source.Loop)")
	cpuprof := fs.String("cpuprofile", "", "write a CPU profile")
	memprof := fs.String("memprofile", "", "write an allocation profile")
	traceOut := fs.String("trace", "", "write an execution trace (go tool trace)")
	warm := fs.Int("warm", 0, "record `N` times first (into DIR, removed after each), then measure one more\n"+
		"and print its wall time in seconds on standard output: the library's cost in a process that\n"+
		"has run before, without the process's start")
	_ = fs.Parse(args)
	if fs.NArg() != 2 {
		return fmt.Errorf("record: need IN and DIR")
	}
	f, err := chunker.ParseFormat(*format)
	if err != nil {
		return err
	}
	in, dir := fs.Arg(0), fs.Arg(1)
	if *memprof != "" {
		runtime.MemProfileRate = 4096
	}
	if *cpuprof != "" {
		pf, err := os.Create(*cpuprof)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *traceOut != "" {
		tf, err := os.Create(*traceOut)
		if err != nil {
			return err
		}
		if err := trace.Start(tf); err != nil {
			return err
		}
		defer trace.Stop()
	}
	ctx := context.Background()
	once := func() (livechunk.Stats, error) {
		src, err := source.Loop(func() (source.Source, error) {
			return source.Open(in, source.Options{})
		}, *loop)
		if err != nil {
			return livechunk.Stats{}, err
		}
		b, err := sink.Open(ctx, dir)
		if err != nil {
			return livechunk.Stats{}, err
		}
		defer b.Close()
		return livechunk.Record(ctx, b, src, livechunk.Config{Format: f, Playlist: hls.VOD})
	}
	for range *warm {
		if _, err := once(); err != nil {
			return err
		}
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	if *warm > 0 {
		syscall.Sync() // as bench/run.sh does before each measured command
	}
	start := time.Now()
	st, err := once()
	wall := time.Since(start)
	if err != nil {
		return err
	}
	if *warm > 0 {
		fmt.Printf("%.6f\n", wall.Seconds())
	}
	fmt.Fprintf(os.Stderr, "%d segments, %d samples, %d bytes in %v\n", st.Chunker.Segments, st.Chunker.Samples, st.Sink.UploadedBytes, wall)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Fprintf(os.Stderr, "heap: %.1f MB allocated in all, %.1f MB in use, %.1f MB obtained from the OS, %d collections\n",
		float64(ms.TotalAlloc)/1e6, float64(ms.HeapInuse)/1e6, float64(ms.HeapSys-ms.HeapReleased)/1e6, ms.NumGC)
	if *memprof != "" {
		mf, err := os.Create(*memprof)
		if err != nil {
			return err
		}
		defer mf.Close()
		runtime.GC() // the profile shows allocations up to the last completed collection
		return pprof.Lookup("allocs").WriteTo(mf, 0)
	}
	return nil
}
