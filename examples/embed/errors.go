package embed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/livechunk/livechunk"
	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/sink"
	"github.com/livechunk/livechunk/source"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"
)

// ErrorsConfig configures Errors.
type ErrorsConfig struct {
	// Input is an H.264 file of at least four keyframes (its audio is not
	// used).
	Input string
	// Dir is an empty directory for the recordings, a local store whose
	// failure Errors simulates.
	Dir string
	// Log receives what happens; nil: none.
	Log io.Writer
}

// Errors goes through the errors of a pipeline, tells them apart with
// errors.Is and errors.As, and handles each as its kind allows:
//
//   - chunker.ErrInvalidConfig (NewPipeline): a Config value that cannot
//     work. Permanent: fix the configuration.
//   - livechunk.ErrFinished (NewPipeline): the destination holds a
//     recording that ended, which is never appended to. Permanent for that
//     prefix: record under another one.
//   - *chunker.SampleError (Write, WriteAudio): one sample refused (it wraps
//     chunker.ErrInvalidSample, ErrNonMonotonicDTS or ErrBadParameterSets).
//     Only that sample is lost: skip it, the stream goes on. (One that
//     wraps chunker.ErrTimescale stops the pipeline: Config.Timescale is
//     wrong.)
//   - *sink.UploadError (Write, WriteAudio, Flush, Break, Wait, Close,
//     Abort): an object did not land. The store's transient errors
//     (gcerrors codes Unknown, Internal, ResourceExhausted,
//     DeadlineExceeded) were retried first, as Config.Sink.Retry says;
//     other codes (PermissionDenied, NotFound, FailedPrecondition, ...)
//     fail at once. The pipeline is done: Close it. After an upload error
//     Close leaves a live or event playlist open (no EXT-X-ENDLIST), as
//     Abort does, and once the store works a new pipeline on the same
//     destination resumes the recording after what landed, marked as a
//     discontinuity.
//
// It returns an error when a step does not go as described.
func Errors(ctx context.Context, cfg ErrorsConfig) error {
	logf := func(format string, a ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, format+"\n", a...)
		}
	}
	samples, info, keys, err := readVideo(cfg.Input)
	if err != nil {
		return err
	}
	if len(keys) < 4 {
		return fmt.Errorf("embed: %s has %d keyframes, Errors needs 4", cfg.Input, len(keys))
	}
	bucket, err := sink.Open(ctx, cfg.Dir)
	if err != nil {
		return err
	}
	defer bucket.Close()
	base := livechunk.Config{
		Format:          chunker.FMP4,
		SegmentDuration: time.Second,
		Timescale:       info.Timescale,
		SPS:             info.SPS,
		PPS:             info.PPS,
	}

	// 1. A configuration that cannot work.
	bad := base
	bad.SegmentDuration = -time.Second
	_, err = livechunk.NewPipeline(ctx, bucket, bad)
	logf("negative SegmentDuration: %v", err)
	if !errors.Is(err, chunker.ErrInvalidConfig) {
		return fmt.Errorf("NewPipeline with a negative SegmentDuration: %v, want chunker.ErrInvalidConfig", err)
	}

	// 2. A sample refused among good ones: the recording goes on without it.
	talk := base
	talk.Prefix = "talk/"
	p, err := livechunk.NewPipeline(ctx, bucket, talk)
	if err != nil {
		return err
	}
	refused := 0
	for i, s := range samples {
		if i == keys[1]+1 {
			s.PTS = s.DTS - 1 // an encoder bug: presented before it is decoded
		}
		err := p.Write(ctx, s)
		var se *chunker.SampleError
		if errors.As(err, &se) && errors.Is(err, chunker.ErrInvalidSample) {
			logf("sample %d refused: %v", se.Index, err)
			refused++
			continue
		}
		if err != nil {
			p.Abort(ctx)
			return err
		}
	}
	if err := p.Close(ctx); err != nil {
		return err
	}
	if st := p.Stats(); refused != 1 || st.Chunker.Samples != int64(len(samples)-1) {
		return fmt.Errorf("%d samples refused, %d of %d recorded; want 1 refused and the others recorded", refused, st.Chunker.Samples, len(samples))
	}

	// 3. The destination now holds a finished recording.
	_, err = livechunk.NewPipeline(ctx, bucket, talk)
	logf("recording again into talk/: %v", err)
	if !errors.Is(err, livechunk.ErrFinished) {
		return fmt.Errorf("NewPipeline on a finished recording: %v, want livechunk.ErrFinished", err)
	}

	// 4. A permanent store error: a bucket closed too early (a mistake)
	// fails every upload at once with FailedPrecondition.
	closed := memblob.OpenBucket(nil)
	if p, err = livechunk.NewPipeline(ctx, closed, base); err != nil {
		return err
	}
	closed.Close()
	err = writeAll(ctx, p, samples)
	err = errors.Join(err, p.Close(ctx))
	var ue *sink.UploadError
	if !errors.As(err, &ue) || gcerrors.Code(ue.Err) != gcerrors.FailedPrecondition || ue.Objects[0].Attempts != 1 {
		return fmt.Errorf("recording into a closed bucket: %v, want a *sink.UploadError of one attempt", err)
	}
	logf("closed bucket: %s not uploaded after %d attempt: %v", ue.Objects[0].Key, ue.Objects[0].Attempts, gcerrors.Code(ue.Err))

	// 5. A transient store error that lasts: the directory of the
	// recording is taken by a file for a while (the file driver's error
	// has code Unknown, which is retried, as a reset connection would be).
	// The first segment lands; the second one does not, after 3 attempts;
	// the pipeline is closed, which leaves the playlist open. Once the
	// store is back, a new pipeline goes on with the recording from the
	// next keyframe that comes.
	cam := base
	cam.Prefix = "cam1/"
	cam.Sink.Retry = sink.Retry{MaxAttempts: 3, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	if p, err = livechunk.NewPipeline(ctx, bucket, cam); err != nil {
		return err
	}
	// Flush and Wait: the first segment is in the store and listed, as a
	// server makes sure before it acknowledges an upload.
	if err := errors.Join(writeAll(ctx, p, samples[:keys[1]]), p.Flush(ctx), p.Wait(ctx)); err != nil {
		p.Abort(ctx)
		return err
	}
	dir, away := filepath.Join(cfg.Dir, "cam1"), filepath.Join(cfg.Dir, "cam1.away")
	if err := errors.Join(os.Rename(dir, away), os.WriteFile(dir, []byte("not a directory"), 0o644)); err != nil {
		return err
	}
	err = errors.Join(writeAll(ctx, p, samples[keys[1]:keys[2]]), p.Flush(ctx), p.Wait(ctx))
	st := p.Stats()
	err = errors.Join(err, p.Close(ctx))
	if !errors.As(err, &ue) || gcerrors.Code(ue.Err) != gcerrors.Unknown || ue.Objects[0].Attempts != 3 {
		return fmt.Errorf("recording into a broken store: %v, want a *sink.UploadError after 3 attempts", err)
	}
	logf("broken store: %s not uploaded after %d attempts (%d retries in all): %v",
		ue.Objects[0].Key, ue.Objects[0].Attempts, st.Sink.Retries, gcerrors.Code(ue.Err))
	if err := errors.Join(os.Remove(dir), os.Rename(away, dir)); err != nil {
		return err
	}
	pl, err := hls.LoadMedia(ctx, bucket, p.PlaylistKey())
	if err != nil {
		return err
	}
	logf("cam1/index.m3u8 after Close: %d segment(s), ended: %v", len(pl.Segments), pl.Ended)
	if pl.Ended || len(pl.Segments) != 1 {
		return fmt.Errorf("after Close the playlist lists %d segment(s) (ended: %v), want the one that landed and no end", len(pl.Segments), pl.Ended)
	}
	if p, err = livechunk.NewPipeline(ctx, bucket, cam); err != nil {
		return err
	}
	if err := errors.Join(writeAll(ctx, p, samples[keys[2]:]), p.Close(ctx)); err != nil {
		return err
	}
	if pl, err = hls.LoadMedia(ctx, bucket, p.PlaylistKey()); err != nil {
		return err
	}
	for _, sg := range pl.Segments {
		disc := ""
		if sg.Discontinuity {
			disc = " (discontinuity)"
		}
		logf("cam1/index.m3u8: %s %.3f s%s", sg.URI, sg.Seconds(), disc)
	}
	if !pl.Ended || len(pl.Segments) < 2 || pl.Segments[0].URI != "seg-000000.m4s" || pl.Segments[0].Discontinuity ||
		!pl.Segments[1].Discontinuity || pl.Segments[1].URI != "seg-000001.m4s" {
		return fmt.Errorf("the resumed recording lists %+v (ended: %v), want seg-000000.m4s, then a discontinuity and seg-000001.m4s", pl.Segments, pl.Ended)
	}
	return nil
}

// writeAll writes samples to p and stops at the first error.
func writeAll(ctx context.Context, p *livechunk.Pipeline, samples []chunker.Sample) error {
	for _, s := range samples {
		if err := p.Write(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// readVideo reads every picture of path (copied), and the indexes of its IDR
// pictures.
func readVideo(path string) (samples []chunker.Sample, info source.Info, keys []int, err error) {
	src, err := source.Open(path, source.Options{})
	if err != nil {
		return nil, info, nil, err
	}
	defer src.Close()
	for {
		s, err := src.Next()
		if err == io.EOF {
			return samples, src.Info(), keys, nil
		}
		if err != nil {
			return nil, info, nil, err
		}
		if chunker.IsIDR(s.NALUs) {
			keys = append(keys, len(samples))
		}
		// The sample's bytes are valid until the next call of Next.
		nalus := make([][]byte, len(s.NALUs))
		for i, n := range s.NALUs {
			nalus[i] = bytes.Clone(n)
		}
		s.NALUs = nalus
		samples = append(samples, s)
	}
}
