package stitch

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path"
	"strings"
	"time"

	"github.com/livechunk/livechunk/internal/timeline"
	"gocloud.dev/blob"
)

// Options configures a Write call. The zero value joins everything.
type Options struct {
	// From and To select the presentation range [From, To) of the joined
	// stream, measured from its first displayed picture; To == 0 means to
	// the end. MP4 output starts decoding at the keyframe at or before From
	// and uses an edit list so that playback starts exactly at From and
	// ends at To; nothing is re-encoded. MPEG-TS output cannot express
	// that: it starts at that keyframe (see [WriteTS]).
	From, To time.Duration
	// Concurrency bounds the requests in flight: the parts whose indexes
	// the first pass reads at the same time, and the payload reads the
	// second pass opens ahead of the one being copied (which hides the
	// latency of a remote bucket). Default 16.
	Concurrency int
	// Logger receives progress and warnings. Default: discard.
	Logger *slog.Logger
}

func (o Options) concurrency() int {
	if o.Concurrency > 0 {
		return o.Concurrency
	}
	return 16
}

func (o Options) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Result describes what a Write call wrote.
type Result struct {
	// Samples is the number of pictures (access units) written, Keyframes
	// the number of IDR pictures among them.
	Samples, Keyframes int
	// AudioFrames is the number of AAC frames written: MP4 output, and
	// MPEG-TS output remuxed (a clip's, or from MP4 input); when MPEG-TS
	// parts are concatenated, those of the input's audio stream (see
	// [WriteTS]).
	AudioFrames int
	// AudioDropped is the number of AAC frames left out because they
	// overlapped the audio before them (the encoder priming of a chunk
	// that starts again at 0).
	AudioDropped int
	// AudioLeftOut is the number of AAC frames left out because their
	// part's AAC configuration differs from the first part's (the audio
	// track's): a microphone whose sample rate or channels changed.
	AudioLeftOut int
	// Duration is the presentation duration: the movie's for MP4 (the
	// longer of the tracks' edit lists).
	Duration time.Duration
	// Bytes is the number of bytes written.
	Bytes int64
	// Parts is the number of input parts whose payload was read.
	Parts int
	// SampleDescriptions is the number of sample descriptions (stsd
	// entries) of MP4 output: more than one when the SPS/PPS change.
	SampleDescriptions int
	// Discontinuities counts the places where the input's timestamps did
	// not continue (EXT-X-DISCONTINUITY, a jump, the start of a chunk) and
	// the timeline was joined up.
	Discontinuities int
	// Dropped is the number of pictures before the first keyframe of the
	// input, which cannot be decoded and are left out.
	Dropped int
	// Timescale is the track timescale of the output (MPEG-TS: 90000).
	Timescale uint32
	// Co64 reports 64-bit chunk offsets (the mdat extends beyond 4 GiB).
	Co64 bool
	// IndexReads is the number of range requests the first pass made to
	// read MP4 indexes (MPEG-TS parts are read whole instead).
	IndexReads int
}

// WriteMP4 joins the input into one progressive MP4 file written to w in
// one forward pass: ftyp, moov, then a single mdat, so the file plays
// while it downloads ("faststart").
//
// The first pass reads only indexes: the moov or moof boxes of MP4 parts
// (with range reads) and the packet headers and access-unit boundaries of
// MPEG-TS parts (demuxed, keeping 16 bytes of metadata per picture). The
// moov is built from those tables; then the payloads are copied in order,
// reading each MP4 part's sample ranges and converting MPEG-TS access
// units from Annex-B to length-prefixed NAL units. Memory is proportional
// to the number of pictures, not to the media bytes.
//
// Nothing is written to w before the first pass succeeded, so an error
// about the input leaves w untouched. An error from the second pass (the
// network, or input that changed meanwhile) leaves a truncated file.
func WriteMP4(ctx context.Context, w io.Writer, in *Input, opt Options) (Result, error) {
	ix, sel, err := firstPass(ctx, in, opt)
	if err != nil {
		return Result{}, err
	}
	h, err := ix.buildHeader(sel)
	if err != nil {
		return Result{}, err
	}
	res := ix.result(sel)
	res.SampleDescriptions = h.descs
	res.Co64 = h.co64
	n, err := w.Write(h.data)
	res.Bytes += int64(n)
	h.data = nil // the payload pass holds only the sample table
	if err != nil {
		return res, err
	}
	k, err := ix.copyPayload(ctx, w, sel, opt.concurrency())
	res.Bytes += k
	if err != nil {
		return res, err
	}
	if k != h.payload {
		return res, fmt.Errorf("%w: wrote %d payload bytes, expected %d", ErrChanged, k, h.payload)
	}
	return res, nil
}

// firstPass reads the indexes of the input and selects what is written.
func firstPass(ctx context.Context, in *Input, opt Options) (*index, selection, error) {
	ix, err := buildIndex(ctx, in, opt)
	if err != nil {
		return nil, selection{}, err
	}
	sel, err := ix.selectAll(opt.From, opt.To)
	return ix, sel, err
}

func (ix *index) result(sel selection) Result {
	r := Result{
		Samples:         sel.b - sel.a,
		Keyframes:       sel.keyframes,
		Duration:        timeline.Duration(sel.movieDur, sel.movieTS),
		Discontinuities: ix.discont,
		Dropped:         ix.dropped,
		Timescale:       ix.timescale,
		IndexReads:      ix.reads,
	}
	if ix.audio != nil {
		r.AudioDropped = ix.audio.dropped
	}
	r.AudioLeftOut = ix.audioLeftOut
	as := sel.audio
	if as != nil {
		r.AudioFrames = as.b - as.a
	}
	for i := range ix.parts {
		p := &ix.parts[i]
		if (p.first < sel.b && p.first+p.n > sel.a) || (as != nil && p.audio.first < as.b && p.audio.first+p.audio.n > as.a) {
			r.Parts++
		}
	}
	return r
}

// WriteBlob writes the joined input to the object key of b: MPEG-TS when
// key ends in ".ts", else MP4. The object is written atomically: on error
// no object is created (or an existing one is left as it was). A nil b is
// ErrInvalid.
func WriteBlob(ctx context.Context, b *blob.Bucket, key string, in *Input, opt Options) (Result, error) {
	if b == nil {
		return Result{}, errorf(ErrInvalid, "nil bucket")
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ts := strings.EqualFold(path.Ext(key), ".ts")
	ct := "video/mp4"
	if ts {
		ct = "video/mp2t"
	}
	bw, err := b.NewWriter(wctx, key, &blob.WriterOptions{ContentType: ct})
	if err != nil {
		return Result{}, err
	}
	var res Result
	if ts {
		res, err = WriteTS(ctx, bw, in, opt)
	} else {
		res, err = WriteMP4(ctx, bw, in, opt)
	}
	if err != nil {
		cancel() // abandons the upload
		bw.Close()
		return res, err
	}
	if err := bw.Close(); err != nil {
		return res, err
	}
	return res, nil
}
