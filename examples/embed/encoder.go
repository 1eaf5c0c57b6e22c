package embed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"time"

	"github.com/livechunk/livechunk"
	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/source"
	"gocloud.dev/blob"
)

// An app's encoders, as the pipeline sees them: a callback per encoded
// H.264 access unit (Annex-B, with its presentation and decode times, as
// VideoToolbox and x264 give them; without B-frames both are the same) and
// per raw AAC frame, each from its encoder's own thread, with timestamps
// in microseconds on the capture clock (which starts wherever the device's
// clock stands, not at 0).
type (
	VideoCallback func(au []byte, pts, dts time.Duration)
	AudioCallback func(frame []byte, pts time.Duration)
)

// Encoders stands for an app's video and AAC encoders; it replays a file.
type Encoders struct {
	path   string
	repeat int
	speed  float64
	asc    []byte
}

// clockStart is where the simulated capture clock stands at the first
// frame: a device up for five hours.
const clockStart = 5 * time.Hour

// NewEncoders returns encoders that replay path (repeat times, as one
// stream) at speed times real time, as encoders deliver their output.
func NewEncoders(path string, repeat int, speed float64) (*Encoders, error) {
	src, closeSrc, err := open(path, repeat)
	if err != nil {
		return nil, err
	}
	defer closeSrc()
	if src.Info().Audio == nil {
		return nil, fmt.Errorf("embed: %s has no AAC track", path)
	}
	return &Encoders{path: path, repeat: repeat, speed: speed, asc: src.Info().Audio.ASC}, nil
}

// AudioSpecificConfig is the AAC encoder's configuration (MediaCodec's
// csd-0, the magic cookie of an AudioConverter), known before the first
// frame.
func (e *Encoders) AudioSpecificConfig() []byte { return e.asc }

// Run calls onVideo and onAudio from two goroutines, one per encoder, until
// both have delivered everything (or ctx ends).
func (e *Encoders) Run(ctx context.Context, onVideo VideoCallback, onAudio AudioCallback) error {
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, audio := range []bool{false, true} {
		wg.Go(func() { errs[i] = e.run(ctx, audio, onVideo, onAudio) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// run is one encoder's thread.
func (e *Encoders) run(ctx context.Context, audio bool, onVideo VideoCallback, onAudio AudioCallback) error {
	src, closeSrc, err := open(e.path, e.repeat)
	if err != nil {
		return err
	}
	defer closeSrc()
	info := src.Info()
	if e.speed > 0 {
		paced := source.NewPaced(src)
		paced.Speed = e.speed
		defer context.AfterFunc(ctx, paced.Stop)()
		src = paced
	}
	at := func(ticks int64, timescale uint32) time.Duration {
		return clockStart + time.Duration(ticks)*time.Second/time.Duration(timescale)
	}
	var au []byte
	for {
		pk, err := src.NextPacket()
		if err == io.EOF {
			return ctx.Err()
		}
		if err != nil {
			return err
		}
		switch {
		case pk.Kind == source.KindVideo && !audio:
			au = chunker.AppendAnnexB(au[:0], pk.Video.NALUs)
			onVideo(au, at(pk.Video.PTS, info.Timescale), at(pk.Video.DTS, info.Timescale))
		case pk.Kind == source.KindAudio && audio:
			onAudio(pk.Audio.Data, at(pk.Audio.PTS, info.Audio.Timescale))
		}
	}
}

// EncoderConfig configures Encoder.
type EncoderConfig struct {
	// Input is the MP4 file (H.264 and AAC) that the encoders replay.
	Input string
	// Repeat is how many times the encoders play Input. Default 1.
	Repeat int
	// Speed is the encoders' pace as a multiple of real time. Default 1.
	Speed float64
	// Prefix of the recording in the bucket. Default "live/cam1/".
	Prefix string
	// Log receives the segments recorded; nil: none.
	Log io.Writer
}

// Encoder feeds an app's encoder callbacks into a pipeline: the AAC track is
// declared from the encoder's AudioSpecificConfig, both tracks are written
// with a timescale of 1,000,000 (microseconds), and the two callback
// threads share a mutex, since a pipeline is written by one goroutine at a
// time. When the encoders are done, it closes the pipeline and checks that
// every picture and AAC frame is recorded, the playlist is ended and lists
// the whole duration, and every segment is durable.
func Encoder(ctx context.Context, bucket *blob.Bucket, cfg EncoderConfig) (livechunk.Stats, error) {
	if cfg.Repeat <= 0 {
		cfg.Repeat = 1
	}
	if cfg.Speed <= 0 {
		cfg.Speed = 1
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "live/cam1/"
	}
	want, err := measure(cfg.Input, cfg.Repeat)
	if err != nil {
		return livechunk.Stats{}, err
	}
	enc, err := NewEncoders(cfg.Input, cfg.Repeat, cfg.Speed)
	if err != nil {
		return livechunk.Stats{}, err
	}

	const us = 1_000_000 // ticks per second
	p, err := livechunk.NewPipeline(ctx, bucket, livechunk.Config{
		Format:          chunker.FMP4,
		SegmentDuration: time.Second,
		Timescale:       us,
		Audio:           &chunker.AudioConfig{ASC: enc.AudioSpecificConfig(), Timescale: us},
		Prefix:          cfg.Prefix,
		Playlist:        hls.Event,
	})
	if err != nil {
		return livechunk.Stats{}, err
	}

	var (
		mu       sync.Mutex
		writeErr error // the first error: the recording stops there
		nalus    [][]byte
		skipped  int // samples refused (*chunker.SampleError): lost, the stream goes on (except after chunker.ErrTimescale)
	)
	write := func(err error) {
		var se *chunker.SampleError
		if errors.As(err, &se) && !errors.Is(err, chunker.ErrTimescale) {
			skipped++
			err = nil
		}
		writeErr = err
	}
	onVideo := func(au []byte, pts, dts time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		if writeErr != nil {
			return
		}
		var err error
		if nalus, err = chunker.SplitAnnexB(nalus[:0], au); err != nil {
			skipped++ // not Annex-B: this access unit is lost
			return
		}
		write(p.Write(ctx, chunker.Sample{PTS: pts.Microseconds(), DTS: dts.Microseconds(), NALUs: nalus}))
	}
	onAudio := func(frame []byte, pts time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		if writeErr == nil {
			write(p.WriteAudio(ctx, chunker.AudioSample{PTS: pts.Microseconds(), Data: frame}))
		}
	}
	runErr := enc.Run(ctx, onVideo, onAudio)
	if runErr != nil || writeErr != nil {
		// Keep the recording resumable: no ENDLIST.
		return p.Stats(), errors.Join(runErr, writeErr, p.Abort(ctx))
	}
	// The broadcast ends: the last segment closes, the uploads finish and
	// the playlist ends.
	if err := p.Close(ctx); err != nil {
		return p.Stats(), err
	}
	st := p.Stats()

	pl, err := hls.LoadMedia(ctx, bucket, p.PlaylistKey())
	if err != nil {
		return st, err
	}
	var seconds float64
	for _, sg := range pl.Segments {
		seconds += sg.Seconds()
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, "%s%s  %.6f s\n", cfg.Prefix, sg.URI, sg.Seconds())
		}
	}
	c, k := st.Chunker, st.Sink
	if cfg.Log != nil {
		fmt.Fprintf(cfg.Log, "%d pictures, %d AAC frames, %d segments (%.3f s), %d objects uploaded\n",
			c.Samples, c.AudioSamples, len(pl.Segments), seconds, k.Durable)
	}
	var problems []error
	bad := func(format string, a ...any) { problems = append(problems, fmt.Errorf(format, a...)) }
	if skipped > 0 {
		bad("%d samples refused", skipped)
	}
	if c.Samples != want.pictures || c.DroppedNoKey != 0 {
		bad("%d pictures recorded (%d dropped), the encoder made %d", c.Samples, c.DroppedNoKey, want.pictures)
	}
	if c.AudioSamples != want.audio || c.AudioDropped != 0 {
		bad("%d AAC frames recorded (%d dropped), the encoder made %d", c.AudioSamples, c.AudioDropped, want.audio)
	}
	if !pl.Ended || int64(len(pl.Segments)) != c.Segments || c.Segments == 0 {
		bad("the playlist lists %d segments (ended: %v), %d were made", len(pl.Segments), pl.Ended, c.Segments)
	}
	// Microsecond timestamps: the duration may be a microsecond short.
	if math.Abs(seconds-want.seconds()) > 2e-6*float64(len(pl.Segments)) {
		bad("the playlist lists %.6f s, the encoder made %.6f s", seconds, want.seconds())
	}
	if k.Durable != c.Segments+c.Inits || k.Failed != 0 {
		bad("%d objects durable, %d failed, of %d made", k.Durable, k.Failed, c.Segments+c.Inits)
	}
	return st, errors.Join(problems...)
}
