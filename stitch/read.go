package stitch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/livechunk/livechunk/chunker"
)

// The second pass reads the payloads again, part by part in order. Its
// reads are jobs: one request each, opened ahead of the job being copied so
// that a remote bucket's latency overlaps the copying.

// byteRange is a range of an object.
type byteRange struct{ off, n int64 }

// maxGap is the largest hole between two needed ranges of an object that
// is read through rather than requested separately.
const maxGap = 256 << 10

// job is one read request of the second pass.
type job struct {
	p        *partInfo
	off, n   int64       // the request (MPEG-TS: the whole object, n < 0)
	rs       []byteRange // MP4: the sample ranges inside the request, in order
	lo, hi   int         // the samples [lo, hi) the job delivers (audio frames for an audio job)
	audio    bool        // MP4: the job delivers audio frames
	alo, ahi int         // MPEG-TS: the audio frames [alo, ahi) the job delivers too
}

// payloadJobs lists the reads that deliver the selection in mdat order
// (see chunks): per part, its pictures, then its audio frames.
func (ix *index) payloadJobs(sel selection) []job {
	var out []job
	for pi := range ix.parts {
		p := &ix.parts[pi]
		lo, hi := max(sel.a, p.first), min(sel.b, p.first+p.n)
		alo, ahi := 0, 0
		if as := sel.audio; as != nil {
			alo, ahi = max(as.a, p.audio.first), min(as.b, p.audio.first+p.audio.n)
		}
		if p.ts {
			if lo < hi || alo < ahi {
				out = append(out, job{p: p, off: 0, n: -1, lo: lo, hi: max(lo, hi), alo: alo, ahi: max(alo, ahi)})
			}
			continue
		}
		if lo < hi {
			out = ix.rangeJobs(out, p, lo, hi, false)
		}
		if alo < ahi {
			out = ix.rangeJobs(out, p, alo, ahi, true)
		}
	}
	return out
}

// rangeJobs appends the reads of samples (audio: frames) [lo, hi) of an
// MP4 part.
func (ix *index) rangeJobs(out []job, p *partInfo, lo, hi int, audio bool) []job {
	rs, counts := ix.ranges(p, lo, hi, audio)
	first := lo
	for i := 0; i < len(rs); {
		// One request for ranges separated by small holes.
		j, n := i+1, counts[i]
		for j < len(rs) && rs[j].off-(rs[j-1].off+rs[j-1].n) <= maxGap {
			n += counts[j]
			j++
		}
		end := rs[j-1].off + rs[j-1].n
		out = append(out, job{p: p, off: rs[i].off, n: end - rs[i].off, rs: rs[i:j:j], lo: first, hi: first + n, audio: audio})
		first += n
		i = j
	}
	return out
}

// ranges returns the byte ranges of samples (audio: frames) [lo, hi) of an
// MP4 part in decode order, adjacent ones merged, and the number of
// samples in each.
func (ix *index) ranges(p *partInfo, lo, hi int, audio bool) ([]byteRange, []int) {
	var out []byteRange
	var counts []int
	i, runs := p.first, p.runs
	if audio {
		i, runs = p.audio.first, p.audio.runs
	}
	for _, r := range runs {
		end := i + int(r.n)
		off := r.off
		for j := i; j < end; j++ {
			sz := int64(ix.sampleSize(j, audio))
			if j >= lo && j < hi {
				if k := len(out); k > 0 && out[k-1].off+out[k-1].n == off {
					out[k-1].n += sz
					counts[k-1]++
				} else {
					out = append(out, byteRange{off: off, n: sz})
					counts = append(counts, 1)
				}
			}
			off += sz
		}
		i = end
		if i >= hi {
			break
		}
	}
	return out, counts
}

// opened is a job's reader, opened ahead. slot: it holds one of the
// fetcher's places (release gives it back); a job not opened because the
// context ended holds none.
type opened struct {
	r    io.ReadCloser
	size int64
	err  error
	slot bool
}

// fetcher opens the readers of jobs in order, up to depth ahead of the
// one in use.
type fetcher struct {
	cancel  context.CancelFunc
	results []chan opened
	sem     chan struct{}
	next    int
	done    chan struct{}
}

func newFetcher(ctx context.Context, jobs []job, depth int) *fetcher {
	ctx, cancel := context.WithCancel(ctx)
	f := &fetcher{
		cancel:  cancel,
		results: make([]chan opened, len(jobs)),
		sem:     make(chan struct{}, max(depth, 1)),
		done:    make(chan struct{}),
	}
	for i := range f.results {
		f.results[i] = make(chan opened, 1)
	}
	go func() {
		defer close(f.done)
		for i, j := range jobs {
			select {
			case f.sem <- struct{}{}:
			case <-ctx.Done():
				for _, ch := range f.results[i:] {
					ch <- opened{err: ctx.Err()}
				}
				return
			}
			r, size, err := j.p.part.Open(ctx, j.off, j.n)
			f.results[i] <- opened{r: r, size: size, err: err, slot: true}
		}
	}()
	return f
}

// take returns the reader of the next job; the caller closes it and calls
// release with it.
func (f *fetcher) take() opened {
	o := <-f.results[f.next]
	f.next++
	return o
}

// release gives back the place o holds, if any.
func (f *fetcher) release(o opened) {
	if o.slot {
		<-f.sem
	}
}

// close stops opening and closes the readers opened ahead.
func (f *fetcher) close() {
	f.cancel()
	for f.next < len(f.results) {
		o := f.take()
		if o.r != nil {
			o.r.Close()
		}
		f.release(o)
	}
	<-f.done
}

// eachJob runs fn for every job with its reader, in order.
func eachJob(ctx context.Context, jobs []job, depth int, fn func(j *job, r io.Reader) error) error {
	f := newFetcher(ctx, jobs, depth)
	defer f.close()
	for i := range jobs {
		j := &jobs[i]
		o := f.take()
		err := o.err
		if err == nil && o.size != j.p.size && j.p.size > 0 {
			err = fmt.Errorf("%w: object size %d, was %d", ErrChanged, o.size, j.p.size)
		}
		if err == nil {
			err = fn(j, o.r)
		}
		if o.r != nil {
			o.r.Close()
		}
		f.release(o)
		if err != nil {
			return partErr(j.p.part.Name, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// sampleSize returns the size of picture i, or of audio frame i.
func (ix *index) sampleSize(i int, audio bool) uint32 {
	if audio {
		return ix.audio.samples[i].size
	}
	return ix.samples[i].size
}

// copyPayload writes the payloads of the selection to w in mdat order (see
// chunks): MP4 sample ranges as they are, MPEG-TS access units converted
// to AVCC and ADTS frames stripped of their headers (a part's audio frames
// are held until its pictures are written: one part's worth).
func (ix *index) copyPayload(ctx context.Context, w io.Writer, sel selection, depth int) (int64, error) {
	var total int64
	var buf, cbuf, abuf []byte
	var bw *bufio.Writer
	err := eachJob(ctx, ix.payloadJobs(sel), depth, func(j *job, r io.Reader) error {
		if j.p.ts {
			if bw == nil {
				bw = bufio.NewWriterSize(w, 256<<10)
			}
			abuf = abuf[:0]
			var afn func(i int, frame []byte) error
			if j.ahi > j.alo {
				afn = func(i int, frame []byte) error {
					if len(frame) != int(ix.audio.samples[i].size) {
						return fmt.Errorf("%w: audio frame %d is %d bytes, was %d", ErrChanged, i, len(frame), ix.audio.samples[i].size)
					}
					abuf = append(abuf, frame...)
					return nil
				}
			}
			err := ix.demuxJob(ctx, j, r, func(i int, au [][]byte) error {
				buf = chunker.AppendAVCC(buf[:0], au)
				if len(buf) != int(ix.samples[i].size) {
					return fmt.Errorf("%w: sample %d is %d bytes, was %d", ErrChanged, i, len(buf), ix.samples[i].size)
				}
				n, err := bw.Write(buf)
				total += int64(n)
				return err
			}, afn)
			if err != nil {
				return err
			}
			n, err := bw.Write(abuf)
			total += int64(n)
			if err != nil {
				return err
			}
			return bw.Flush()
		}
		pos := j.off
		for _, rg := range j.rs {
			if gap := rg.off - pos; gap > 0 {
				if d, err := io.CopyN(io.Discard, r, gap); err != nil || d < gap {
					return fmt.Errorf("%w: object ends before offset %d", ErrChanged, rg.off)
				}
			}
			var n int64
			var err error
			if len(j.rs) == 1 {
				n, err = copyAll(w, r, &cbuf)
			} else {
				n, err = copyAll(w, io.LimitReader(r, rg.n), &cbuf)
			}
			total += n
			if err != nil {
				return err
			}
			if n != rg.n {
				return fmt.Errorf("%w: %d bytes at offset %d, read %d", ErrChanged, rg.n, rg.off, n)
			}
			pos = rg.off + rg.n
		}
		return nil
	})
	return total, err
}

// copyAll copies r to w. A writer that reads by itself (an *os.File) is
// handed r, so that a file-to-file copy can stay in the kernel
// (copy_file_range, sendfile); otherwise the copy goes through *buf, one
// buffer for the whole pass rather than one per read (a blob.Reader's
// WriteTo allocates a MiB each time).
func copyAll(w io.Writer, r io.Reader, buf *[]byte) (int64, error) {
	if fr, ok := r.(*fileRange); ok {
		r = &fr.lr // an *io.LimitedReader of an *os.File
	}
	if _, ok := w.(io.ReaderFrom); ok {
		return io.Copy(w, r)
	}
	if *buf == nil {
		*buf = make([]byte, 256<<10)
	}
	return io.CopyBuffer(w, struct{ io.Reader }{r}, *buf)
}

// errStop ends a demux loop early.
var errStop = errors.New("stop")

// demuxJob demuxes an MPEG-TS part and calls fn with the index and NAL
// units of every sample in [j.lo, j.hi) and, when afn is set, afn with the
// index and raw AAC frame of every audio frame in [j.alo, j.ahi).
func (ix *index) demuxJob(ctx context.Context, j *job, r io.Reader, fn func(i int, au [][]byte) error, afn func(i int, frame []byte) error) error {
	p := j.p
	k := 0 // access units demuxed
	next := j.lo
	ak, drops := 0, 0 // audio frames demuxed, and left out among them
	anext := j.alo
	audioDone := func() bool { return afn == nil || anext >= j.ahi }
	var onFrames func(pts int64, frames [][]byte) error
	if afn != nil {
		onFrames = func(_ int64, frames [][]byte) error {
			for _, f := range frames {
				local := ak
				ak++
				if drops < len(p.audio.drop) && int(p.audio.drop[drops]) == local {
					drops++
					continue
				}
				i := p.audio.first + local - drops
				if i < j.alo {
					continue
				}
				if i >= j.ahi {
					if next >= j.hi {
						return errStop
					}
					continue
				}
				anext = i + 1
				if err := afn(i, f); err != nil {
					return err
				}
			}
			return nil
		}
	}
	err := tsDemux(r, func(error) {}, func(_, _ int64, au [][]byte) error {
		i := p.first + k - p.skip
		k++
		if i < j.lo {
			return nil
		}
		if i >= j.hi {
			if audioDone() {
				return errStop
			}
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		next = i + 1
		return fn(i, au)
	}, nil, onFrames)
	if err != nil && !errors.Is(err, errStop) {
		return err
	}
	if next != j.hi {
		return fmt.Errorf("%w: %d pictures, expected %d", ErrChanged, next-p.first, j.hi-p.first)
	}
	if !audioDone() {
		return fmt.Errorf("%w: %d audio frames, expected %d", ErrChanged, anext-p.audio.first, j.ahi-p.audio.first)
	}
	return nil
}

// sampleReader holds the buffers readJob reuses from job to job.
type sampleReader struct {
	buf   []byte
	nalus [][]byte
	br    *bufio.Reader
}

// readJob reads what a job delivers: the NAL units of its pictures go to
// fn and, when afn is set, its raw AAC frames to afn (with their index),
// in stream order; both alias buffers valid until they return.
func (ix *index) readJob(ctx context.Context, j *job, r io.Reader, rd *sampleReader, fn func(i int, au [][]byte) error, afn func(i int, frame []byte) error) error {
	if j.p.ts {
		return ix.demuxJob(ctx, j, r, fn, afn)
	}
	if rd.br == nil {
		rd.br = bufio.NewReaderSize(r, 256<<10)
	} else {
		rd.br.Reset(r)
	}
	br := rd.br
	i, pos := j.lo, j.off
	for _, rg := range j.rs {
		if gap := rg.off - pos; gap > 0 {
			if d, err := br.Discard(int(gap)); err != nil || int64(d) < gap {
				return fmt.Errorf("%w: object ends before offset %d", ErrChanged, rg.off)
			}
		}
		for left := rg.n; left > 0; i++ {
			sz := int(ix.sampleSize(i, j.audio))
			if cap(rd.buf) < sz {
				rd.buf = make([]byte, sz)
			}
			buf := rd.buf[:sz]
			if _, err := io.ReadFull(br, buf); err != nil {
				return fmt.Errorf("%w: reading sample %d: %v", ErrChanged, i, err)
			}
			left -= int64(sz)
			if j.audio {
				if err := afn(i, buf); err != nil {
					return err
				}
				continue
			}
			var err error
			rd.nalus, err = chunker.SplitAVCC(rd.nalus[:0], buf, 4)
			if err != nil {
				return fmt.Errorf("%w: sample %d: %v", ErrInvalid, i, err)
			}
			if err := fn(i, rd.nalus); err != nil {
				return err
			}
		}
		pos = rg.off + rg.n
	}
	return nil
}
