package chunker

import (
	"slices"
	"sync"
)

// Pool recycles the buffers that segments are built in. A Chunker has its
// own unless Config.Pool is set; chunkers that share one (many streams in
// one process) keep fewer buffers idle, since the buffer that one stream's
// upload frees opens another stream's next segment. Each chunker still
// sizes its buffers for its own stream, and takes a spare buffer only when
// it fits (from three quarters to one and a half times the size it wants),
// so streams of very different bit rates can share a Pool; the oldest spare
// makes room for a new one. A Pool is safe for concurrent use; its zero
// value is an empty Pool, as NewPool's is.
type Pool struct{ p bufPool }

// NewPool returns an empty Pool.
func NewPool() *Pool { return &Pool{} }

// firstBufferSize is the capacity of a chunker's first segment buffer when
// it knows nothing of its stream's bit rate.
const firstBufferSize = 1 << 20

// minBufferSize is the least capacity that Config.Bitrate makes the
// segment buffers.
const minBufferSize = 64 << 10

// spareBuffers bounds the idle buffers that a bufPool keeps.
const spareBuffers = 4

// bufPool recycles segment buffers between segments.
type bufPool struct {
	mu   sync.Mutex
	free [][]byte
}

// fitSize is the buffer capacity for segments of up to n bytes (plus an
// eighth for variation), so that they do not grow by copying.
func fitSize(n int) int { return n + n/8 }

// maxSizeHint bounds the segment sizes that expectedSize extrapolates
// (from Config.Bitrate or from a filling buffer).
const maxSizeHint = 64 << 20

// grow makes room for n more bytes in a segment buffer. A full buffer
// grows to want, the size the segment is expected to reach (see
// expectedSize; 0 when unknown), and at least doubles: one that grows (in
// the first segment, before the chunker knows its stream's segment size)
// copies once instead of at every doubling, and leaves less garbage than
// append's 1.25x steps, which copy a 6 MB segment nine times.
func grow(b []byte, n, want int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), max(2*cap(b), len(b)+n, want))
	copy(nb, b)
	return nb
}

// expectedSize extrapolates a segment that holds cur bytes after elapsed
// ticks to 1.5 target durations (a segment runs past the target to the
// next keyframe). 0 when elapsed or target is not known; at most
// maxSizeHint.
func expectedSize(cur int, elapsed, target int64) int {
	if elapsed <= 0 || target <= 0 {
		return 0
	}
	return int(min(float64(cur)*float64(target)*1.5/float64(elapsed), maxSizeHint))
}

// fits reports whether a spare buffer of capacity c serves a chunker whose
// buffers are size bytes: from three quarters of size (size has an eighth
// of headroom over the largest segment so far, so such a buffer seldom
// needs to grow) to one and a half times size (larger is wasted on it, and
// put drops such a buffer).
func fits(c, size int) bool { return c >= size-size/4 && c <= size+size/2 }

// get returns an empty buffer for a segment of a chunker whose buffers are
// size bytes: the smallest spare that fits and holds size, else the
// largest that fits, else a new one.
func (p *bufPool) get(size int) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	// better reports whether a spare of capacity c serves better than one
	// of capacity d: one that holds size beats one that does not; of two
	// that hold it the smaller, of two that do not the larger.
	better := func(c, d int) bool {
		if (c >= size) != (d >= size) {
			return c >= size
		}
		if c >= size {
			return c < d
		}
		return c > d
	}
	best := -1
	for i, b := range p.free {
		if fits(cap(b), size) && (best < 0 || better(cap(b), cap(p.free[best]))) {
			best = i
		}
	}
	if best < 0 {
		return make([]byte, 0, size)
	}
	b := p.free[best]
	p.free = slices.Delete(p.free, best, best+1) // the spares stay oldest first
	return b[:0]
}

// put takes back a buffer of a chunker whose buffers are now size bytes.
// One that grew past what fits (doubled in the first segment) is dropped,
// so that a buffer of the right size replaces it, which matters when many
// streams each hold theirs. When the spares are full the oldest goes: in a
// shared Pool, spares that no stream takes (those of streams that ended)
// must not stay for good.
func (p *bufPool) put(b []byte, size int) {
	if b == nil || !fits(cap(b), size) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) == spareBuffers {
		p.free = slices.Delete(p.free, 0, 1)
	}
	p.free = append(p.free, b[:0])
}
