package livechunk_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/livechunk/livechunk"
	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/sink"
	"github.com/livechunk/livechunk/source"
	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"
)

// Record a file into an in-memory bucket as 1-second fMP4 segments with a
// VOD playlist, and list what landed.
func ExampleRecord() {
	ctx := context.Background()
	bucket := memblob.OpenBucket(nil) // or sink.Open(ctx, "s3://bucket?region=...")
	defer bucket.Close()

	src, err := source.Open("testdata/bframes.mp4", source.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer src.Close()

	st, err := livechunk.Record(ctx, bucket, src, livechunk.Config{
		Format:          chunker.FMP4,
		SegmentDuration: time.Second,
		Playlist:        hls.VOD,
		Prefix:          "talk/",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(st.Chunker.Segments, "segments,", st.Chunker.Samples, "frames")
	it := bucket.List(&blob.ListOptions{Prefix: "talk/"})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		fmt.Println(obj.Key)
	}
	// Output:
	// 4 segments, 120 frames
	// talk/index.m3u8
	// talk/init-0.mp4
	// talk/master.m3u8
	// talk/seg-000000.m4s
	// talk/seg-000001.m4s
	// talk/seg-000002.m4s
	// talk/seg-000003.m4s
}

// Feed samples one by one (as they arrive from a camera or a decoder
// callback) into a live pipeline; each segment uploads while the next one
// fills, and the playlist lists it once it is durable.
func ExampleNewPipeline() {
	ctx := context.Background()
	bucket := memblob.OpenBucket(nil)
	defer bucket.Close()

	src, err := source.Open("testdata/baseline.mp4", source.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer src.Close()
	info := src.Info()

	p, err := livechunk.NewPipeline(ctx, bucket, livechunk.Config{
		Format:          chunker.TS,
		SegmentDuration: time.Second,
		Timescale:       info.Timescale,
		SPS:             info.SPS,
		PPS:             info.PPS,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for {
		s, err := src.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		if err := p.Write(ctx, s); err != nil {
			fmt.Println(err)
			return
		}
	}
	if err := p.Close(ctx); err != nil {
		fmt.Println(err)
		return
	}
	pl, err := hls.LoadMedia(ctx, bucket, p.PlaylistKey())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(pl.Segments), "segments, ended:", pl.Ended)
	// Output:
	// 2 segments, ended: true
}

// encoder stands for an app's video and AAC encoders: it reports the AAC
// AudioSpecificConfig up front (MediaCodec's csd-0, the magic cookie of an
// AudioConverter), then calls back with each encoded H.264 access unit
// (Annex-B, parameter sets in band before keyframes), with its
// presentation and decode times (as VideoToolbox and x264 give them;
// without B-frames both are the same), and with each raw AAC frame. Here
// it replays a file.
type encoder struct {
	src *source.File
}

func newEncoder(path string) (*encoder, error) {
	src, err := source.Open(path, source.Options{})
	if err != nil {
		return nil, err
	}
	if src.Info().Audio == nil {
		src.Close()
		return nil, fmt.Errorf("%s has no AAC track", path)
	}
	return &encoder{src: src}, nil
}

// AudioSpecificConfig is the AAC encoder's configuration.
func (e *encoder) AudioSpecificConfig() []byte { return e.src.Info().Audio.ASC }

// Run calls onVideo and onAudio, from one goroutine here (real encoders
// often call from two), until the input ends.
func (e *encoder) Run(onVideo func(au []byte, pts, dts time.Duration), onAudio func(frame []byte, pts time.Duration)) error {
	defer e.src.Close()
	info := e.src.Info()
	at := func(ticks int64, timescale uint32) time.Duration {
		return time.Duration(ticks) * time.Second / time.Duration(timescale)
	}
	for {
		pk, err := e.src.NextPacket()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		switch pk.Kind {
		case source.KindVideo:
			au := chunker.AppendAnnexB(nil, pk.Video.NALUs)
			onVideo(au, at(pk.Video.PTS, info.Timescale), at(pk.Video.DTS, info.Timescale))
		case source.KindAudio:
			onAudio(pk.Audio.Data, at(pk.Audio.PTS, info.Audio.Timescale))
		}
	}
}

// Feed an app's encoder callbacks, video and AAC audio, into a live
// pipeline. Timestamps are taken in microseconds, so both tracks use a
// timescale of 1,000,000; the callbacks share a mutex because the
// pipeline is written by one goroutine at a time (encoders often call
// back from two threads). examples/embed has this as a program.
func Example_encoderCallbacks() {
	ctx := context.Background()
	bucket := memblob.OpenBucket(nil)
	defer bucket.Close()

	enc, err := newEncoder("testdata/av.mp4") // 1 s, 30 fps, AAC 44.1 kHz stereo
	if err != nil {
		fmt.Println(err)
		return
	}
	const us = 1_000_000 // ticks per second
	p, err := livechunk.NewPipeline(ctx, bucket, livechunk.Config{
		Format:          chunker.FMP4,
		SegmentDuration: 500 * time.Millisecond,
		Timescale:       us,
		Audio:           &chunker.AudioConfig{ASC: enc.AudioSpecificConfig(), Timescale: us},
		Prefix:          "live/cam1/",
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	var (
		mu       sync.Mutex
		writeErr error // the first error ends the recording
		nalus    [][]byte
	)
	onVideo := func(au []byte, pts, dts time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		if writeErr != nil {
			return
		}
		nalus, writeErr = chunker.SplitAnnexB(nalus[:0], au)
		if writeErr == nil {
			writeErr = p.Write(ctx, chunker.Sample{PTS: pts.Microseconds(), DTS: dts.Microseconds(), NALUs: nalus})
		}
	}
	onAudio := func(frame []byte, pts time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		if writeErr == nil {
			writeErr = p.WriteAudio(ctx, chunker.AudioSample{PTS: pts.Microseconds(), Data: frame})
		}
	}
	if err := enc.Run(onVideo, onAudio); err != nil {
		fmt.Println(err)
	}

	// The broadcast ends: close the last segment, finish the uploads and
	// end the playlist.
	if err := errors.Join(writeErr, p.Close(ctx)); err != nil {
		fmt.Println(err)
		return
	}
	st := p.Stats()
	fmt.Println(st.Chunker.Samples, "pictures,", st.Chunker.AudioSamples, "AAC frames,", st.Sink.Durable, "objects uploaded")
	pl, err := hls.LoadMedia(ctx, bucket, p.PlaylistKey())
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, sg := range pl.Segments {
		fmt.Printf("%s %.3f s\n", sg.URI, sg.Seconds())
	}
	fmt.Println("ended:", pl.Ended)
	// Output:
	// 30 pictures, 45 AAC frames, 3 objects uploaded
	// seg-000000.m4s 0.500 s
	// seg-000001.m4s 0.500 s
	// ended: true
}

// Tell a pipeline's errors apart with errors.Is and errors.As, and know
// which ones a retry can cure:
//
//   - chunker.ErrInvalidConfig (NewPipeline): a Config value that cannot
//     work. Permanent: fix the configuration.
//   - livechunk.ErrFinished (NewPipeline): the destination holds a recording
//     that ended, which is never appended to. Permanent for that prefix:
//     record under another one.
//   - *chunker.SampleError (Write, WriteAudio): one sample refused; it wraps
//     chunker.ErrInvalidSample, ErrNonMonotonicDTS or ErrBadParameterSets.
//     Only that sample is lost: skip it and write the next one. (One that
//     wraps chunker.ErrTimescale stops the pipeline: Config.Timescale is
//     wrong.)
//   - *sink.UploadError (Write, WriteAudio, Flush, Break, Wait, Close,
//     Abort): an object did not land. The store's transient errors
//     (gcerrors codes Unknown, Internal, ResourceExhausted,
//     DeadlineExceeded) were already retried as Config.Sink.Retry says; any
//     other code fails at once. The pipeline is done: Close it. After an
//     upload error Close leaves a live or event playlist open (no
//     EXT-X-ENDLIST), as Abort does, and once the store works a new
//     pipeline on the same destination resumes the recording after what
//     landed.
func Example_errors() {
	ctx := context.Background()
	bucket := memblob.OpenBucket(nil)
	defer bucket.Close()

	// A configuration that cannot work.
	_, err := livechunk.NewPipeline(ctx, bucket, livechunk.Config{SegmentDuration: -time.Second})
	fmt.Println("invalid config:", errors.Is(err, chunker.ErrInvalidConfig))

	// A destination that holds a finished recording.
	src, err := source.Open("testdata/baseline.mp4", source.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer src.Close()
	if _, err := livechunk.Record(ctx, bucket, src, livechunk.Config{Prefix: "talk/"}); err != nil {
		fmt.Println(err)
		return
	}
	_, err = livechunk.NewPipeline(ctx, bucket, livechunk.Config{Prefix: "talk/"})
	fmt.Println("finished:", errors.Is(err, livechunk.ErrFinished))

	// A bad sample among good ones, into a bucket closed too early: a
	// mistake that fails every upload at once (FailedPrecondition).
	broken := memblob.OpenBucket(nil)
	info := src.Info()
	p, err := livechunk.NewPipeline(ctx, broken, livechunk.Config{
		SegmentDuration: time.Second,
		Timescale:       info.Timescale,
		SPS:             info.SPS,
		PPS:             info.PPS,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	broken.Close()
	var se *chunker.SampleError
	if err := p.Write(ctx, chunker.Sample{}); errors.As(err, &se) { // no NAL units
		fmt.Println("sample", se.Index, "refused:", errors.Is(err, chunker.ErrInvalidSample))
	}
	// That sample is lost; the stream goes on.
	again, err := source.Open("testdata/baseline.mp4", source.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer again.Close()
	var werr error
	for werr == nil {
		s, err := again.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		werr = p.Write(ctx, s)
	}
	// The uploads failed: Close leaves the playlist open, and the recording
	// resumable.
	err = errors.Join(werr, p.Close(ctx))
	var ue *sink.UploadError
	if errors.As(err, &ue) {
		o := ue.Objects[0]
		fmt.Println("not uploaded:", o.Key, "after", o.Attempts, "attempt(s):", gcerrors.Code(ue.Err))
	}
	// Output:
	// invalid config: true
	// finished: true
	// sample 0 refused: true
	// not uploaded: init-0.mp4 after 1 attempt(s): FailedPrecondition
}
