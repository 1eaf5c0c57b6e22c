package chunker_test

import (
	"bytes"
	"context"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/livechunk/livechunk/chunker"
)

// discard is an Output that releases segments at once.
type discard struct{}

func (discard) WriteInit(context.Context, *chunker.Init) error { return nil }
func (discard) WriteSegment(_ context.Context, s *chunker.Segment) error {
	s.Release()
	return nil
}

// BenchmarkWrite measures the cost of one Write (one access unit) in the
// steady state; allocs/op is per sample.
func BenchmarkWrite(b *testing.B) {
	samples := fixtureSamples(b, "bframes.mp4")
	span := samples[len(samples)-1].DTS - samples[0].DTS + 3000
	bytesPerLoop := 0
	for _, s := range samples {
		for _, n := range s.NALUs {
			bytesPerLoop += len(n)
		}
	}
	for _, f := range []chunker.Format{chunker.FMP4, chunker.TS} {
		b.Run(f.String(), func(b *testing.B) {
			c, err := chunker.New(chunker.Config{Format: f}, discard{})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			// Warm up: one pass fills the buffer pool.
			for _, s := range samples {
				if err := c.Write(ctx, s); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(bytesPerLoop / len(samples)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				loop := int64(i/len(samples) + 1)
				s := samples[i%len(samples)]
				s.DTS += loop * span
				s.PTS += loop * span
				if err := c.Write(ctx, s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestWriteAllocations: in steady state, writing a video sample allocates
// nothing in either format (payloads go straight into the segment buffer;
// the buffer itself comes from the pool, or grows rarely).
func TestWriteAllocations(t *testing.T) {
	samples := fixtureSamples(t, "bframes.mp4")
	span := samples[len(samples)-1].DTS - samples[0].DTS + 3000
	for _, f := range []chunker.Format{chunker.FMP4, chunker.TS} {
		c, err := chunker.New(chunker.Config{Format: f, TargetDuration: time.Hour}, discard{})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		i := 0
		write := func() {
			s := samples[i%len(samples)]
			loop := int64(i / len(samples))
			s.DTS += loop * span
			s.PTS += loop * span
			if err := c.Write(ctx, s); err != nil {
				t.Fatal(err)
			}
			i++
		}
		for range 2 * len(samples) {
			write()
		}
		if allocs := testing.AllocsPerRun(4*len(samples), write); allocs > 0.05 {
			t.Errorf("%v: %.3f allocations per sample", f, allocs)
		}
	}
}

// copyOut keeps a copy of every segment's bytes and releases the segment
// at once, so its buffer goes back to the pool.
type copyOut struct{ segs [][]byte }

func (*copyOut) WriteInit(context.Context, *chunker.Init) error { return nil }
func (o *copyOut) WriteSegment(_ context.Context, s *chunker.Segment) error {
	o.segs = append(o.segs, bytes.Clone(s.Data))
	s.Release()
	return nil
}

// TestSharedPool: chunkers that share a Pool, written interleaved, emit the
// same bytes as chunkers with pools of their own.
func TestSharedPool(t *testing.T) {
	samples := fixtureSamples(t, "bframes.mp4")
	for _, f := range []chunker.Format{chunker.FMP4, chunker.TS} {
		run := func(pool *chunker.Pool) [][][]byte {
			outs := []*copyOut{{}, {}, {}}
			var cs []chunker.Chunker
			for _, o := range outs {
				c, err := chunker.New(chunker.Config{Format: f, TargetDuration: time.Second, Pool: pool}, o)
				if err != nil {
					t.Fatal(err)
				}
				cs = append(cs, c)
			}
			ctx := context.Background()
			for _, s := range samples {
				for _, c := range cs {
					if err := c.Write(ctx, s); err != nil {
						t.Fatal(err)
					}
				}
			}
			var got [][][]byte
			for i, c := range cs {
				if err := c.Close(ctx); err != nil {
					t.Fatal(err)
				}
				got = append(got, outs[i].segs)
			}
			return got
		}
		own, shared := run(nil), run(chunker.NewPool())
		if len(own[0]) < 2 {
			t.Fatalf("%v: %d segments, want several", f, len(own[0]))
		}
		for i := range own {
			if !slices.EqualFunc(own[i], shared[i], bytes.Equal) {
				t.Errorf("%v: stream %d differs with a shared pool", f, i)
			}
		}
	}
}

// fixtureParamSets returns the SPS and PPS that the first IDR picture of
// the bframes fixture carries.
func fixtureParamSets(t *testing.T) [][]byte {
	var ps [][]byte
	for _, s := range fixtureSamples(t, "bframes.mp4") {
		if chunker.IsIDR(s.NALUs) {
			for _, n := range s.NALUs {
				if typ := n[0] & 0x1f; typ == 7 || typ == 8 {
					ps = append(ps, n)
				}
			}
			return ps
		}
	}
	t.Fatal("no IDR picture in bframes.mp4")
	return nil
}

// synthFPS is the frame rate of synthSample's streams.
const synthFPS = 30

// synthSample returns access unit i of a 30 fps stream whose pictures are
// pic (its first byte is overwritten with the NAL header; the chunker does
// not decode slice data), every 30th an IDR picture after the parameter
// sets ps.
func synthSample(ps [][]byte, pic []byte, i int) chunker.Sample {
	pic[0] = 0x41
	nalus := [][]byte{pic}
	if i%synthFPS == 0 {
		pic[0] = 0x65
		nalus = append(slices.Clip(ps), pic)
	}
	return chunker.Sample{DTS: int64(i) * 3000, PTS: int64(i) * 3000, NALUs: nalus}
}

// TestBitrateSizesFirstBuffer: with Config.Bitrate, the first segment is
// built in one buffer of the right size; without it the buffer starts at
// 1 MiB and, once full, grows once to the size extrapolated from the bytes
// and time so far (doubling from 1 MiB allocated 1+2+4 MiB and copied 3 MiB
// for this 2.4 MB segment).
func TestBitrateSizesFirstBuffer(t *testing.T) {
	// 30 fps, an IDR picture every 30, 40 KB per picture: 9.6 Mbit/s,
	// 2.4 MB in a 2 s segment.
	const size, fps = 40 << 10, synthFPS
	const rate = size * 8 * fps
	ps, pic := fixtureParamSets(t), make([]byte, size)
	sample := func(i int) chunker.Sample { return synthSample(ps, pic, i) }
	for _, f := range []chunker.Format{chunker.FMP4, chunker.TS} {
		alloc := func(bitrate int64) (segBytes int, allocated uint64) {
			out := &copyOut{}
			c, err := chunker.New(chunker.Config{Format: f, TargetDuration: 2 * time.Second, Bitrate: bitrate}, out)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for i := 0; i <= 2*fps; i++ { // the first segment, closed by the IDR at 2 s
				if err := c.Write(ctx, sample(i)); err != nil {
					t.Fatal(err)
				}
			}
			runtime.ReadMemStats(&after)
			if len(out.segs) != 1 {
				t.Fatalf("%v: %d segments, want 1", f, len(out.segs))
			}
			// copyOut's copy of the segment is not the chunker's.
			return len(out.segs[0]), after.TotalAlloc - before.TotalAlloc - uint64(len(out.segs[0]))
		}
		n, hinted := alloc(rate)
		_, unhinted := alloc(0)
		t.Logf("%v: segment of %d bytes; %d bytes allocated with the bit rate, %d without", f, n, hinted, unhinted)
		// The hint asks for 1.5 times the target duration's bytes.
		if limit := uint64(n) * 2; hinted > limit {
			t.Errorf("%v: %d bytes allocated for a %d-byte segment with the bit rate", f, hinted, n)
		}
		if limit := 1<<20 + uint64(n)*22/10; unhinted > limit {
			t.Errorf("%v: %d bytes allocated for a %d-byte segment without the bit rate (more than one growth)", f, unhinted, n)
		}
		if unhinted <= hinted {
			t.Errorf("%v: %d bytes allocated without the bit rate, %d with: the hint changed nothing", f, unhinted, hinted)
		}
	}
}

// capOut records the capacity of each segment's buffer (seen through
// Segment.Data, which ends where the buffer does: a few hundred bytes of
// fMP4 header room may lie before it). Like a sink, the outputs of a
// process share a bound of segments in flight: a segment is released when
// it is the oldest of more than inFlight held by all of them.
type capOut struct {
	caps []int
	bufs map[*byte]bool // the buffers, by the address of their last byte
	held *[]*chunker.Segment
}

const inFlight = 2

func (*capOut) WriteInit(context.Context, *chunker.Init) error { return nil }
func (o *capOut) WriteSegment(_ context.Context, s *chunker.Segment) error {
	o.caps = append(o.caps, cap(s.Data))
	if o.bufs == nil {
		o.bufs = map[*byte]bool{}
	}
	o.bufs[&s.Data[:cap(s.Data)][cap(s.Data)-1]] = true
	*o.held = append(*o.held, s)
	if len(*o.held) > inFlight {
		(*o.held)[0].Release()
		*o.held = (*o.held)[1:]
	}
	return nil
}

// TestSharedPoolFits: a stream of 6 MB segments and one of small segments
// share a Pool; the small stream's buffers stay its own size instead of
// taking (or being allocated at) the big stream's.
func TestSharedPoolFits(t *testing.T) {
	small := fixtureSamples(t, "bframes.mp4")
	const fps = synthFPS
	ps, pic := fixtureParamSets(t), make([]byte, 200<<10) // 48 Mbit/s, 6 MB per second
	for _, f := range []chunker.Format{chunker.FMP4, chunker.TS} {
		pool := chunker.NewPool()
		var held []*chunker.Segment
		bigOut, smallOut := &capOut{held: &held}, &capOut{held: &held}
		big, err := chunker.New(chunker.Config{Format: f, TargetDuration: time.Second, Pool: pool}, bigOut)
		if err != nil {
			t.Fatal(err)
		}
		little, err := chunker.New(chunker.Config{Format: f, TargetDuration: time.Second, Pool: pool}, smallOut)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		for i := 0; i < 4*fps; i++ {
			if err := big.Write(ctx, synthSample(ps, pic, i)); err != nil {
				t.Fatal(err)
			}
			for _, s := range small[i*len(small)/(4*fps) : (i+1)*len(small)/(4*fps)] {
				if err := little.Write(ctx, s); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := big.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if err := little.Close(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("%v: buffer capacities: big stream %v, small stream %v", f, bigOut.caps, smallOut.caps)
		if len(bigOut.caps) < 3 || len(smallOut.caps) < 2 {
			t.Fatalf("%v: %d and %d segments, want several", f, len(bigOut.caps), len(smallOut.caps))
		}
		for _, c := range smallOut.caps {
			if c > 2<<20+64<<10 {
				t.Errorf("%v: a small stream's segment was built in a %d-byte buffer", f, c)
			}
		}
	}
}

// TestPoolReusesBuffers: a stream whose segment sizes vary (no bit-rate
// hint, as from an MPEG-TS input) keeps reusing its spare buffers, also
// those allocated before a larger segment raised the size it asks for.
func TestPoolReusesBuffers(t *testing.T) {
	ps := fixtureParamSets(t)
	const fps = synthFPS
	// Picture sizes of the segments, in percent of 40 KB: a bit rate that
	// varies by up to 20%, as an encoder's does from scene to scene.
	vary := []int{100, 110, 90, 115, 95, 105, 90, 120, 100, 92, 110, 97, 104, 88, 112, 100,
		95, 108, 100, 93, 117, 102, 96, 90, 111, 99, 105, 91, 118, 100, 94, 107}
	for _, f := range []chunker.Format{chunker.FMP4, chunker.TS} {
		var held []*chunker.Segment
		out := &capOut{held: &held}
		c, err := chunker.New(chunker.Config{Format: f, TargetDuration: time.Second}, out)
		if err != nil {
			t.Fatal(err)
		}
		pictures := make([][]byte, len(vary))
		for i, v := range vary {
			pictures[i] = make([]byte, 40<<10*v/100)
		}
		ctx := context.Background()
		largest := 0
		for i := 0; i <= len(vary)*fps; i++ {
			pic := pictures[min(i/fps, len(vary)-1)]
			largest = max(largest, len(pic)*fps)
			if err := c.Write(ctx, synthSample(ps, pic, i)); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("%v: %d segments of up to %d bytes in %d buffers; capacities %v", f, len(out.caps), largest, len(out.bufs), out.caps)
		// Three buffers take turns (one filling, two held by the output);
		// a segment larger than all before may need a new one.
		if len(out.bufs) > 6 {
			t.Errorf("%v: %d segments built in %d buffers: spare buffers are not reused", f, len(out.caps), len(out.bufs))
		}
	}
}

// TestSharedPoolAfterBigStream: the spares that big streams leave in a
// shared Pool when they end fit no smaller stream; they must make room, so
// that a small stream that runs on still recycles its own buffers.
func TestSharedPoolAfterBigStream(t *testing.T) {
	ps := fixtureParamSets(t)
	const fps = synthFPS
	run := func(f chunker.Format, pool *chunker.Pool, picture, segments int) *capOut {
		var held []*chunker.Segment
		out := &capOut{held: &held}
		c, err := chunker.New(chunker.Config{Format: f, TargetDuration: time.Second, Pool: pool}, out)
		if err != nil {
			t.Fatal(err)
		}
		pic := make([]byte, picture)
		ctx := context.Background()
		for i := 0; i <= segments*fps; i++ {
			if err := c.Write(ctx, synthSample(ps, pic, i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Close(ctx); err != nil {
			t.Fatal(err)
		}
		for _, s := range held { // the uploads finish
			s.Release()
		}
		return out
	}
	for _, f := range []chunker.Format{chunker.FMP4, chunker.TS} {
		pool := chunker.NewPool()
		big := run(f, pool, 200<<10, 6)
		bigger := run(f, pool, 400<<10, 6) // too large for big's spares
		small := run(f, pool, 10<<10, 20)
		t.Logf("%v: big streams in %d and %d buffers, then a small one's %d segments in %d", f, len(big.bufs), len(bigger.bufs), len(small.caps), len(small.bufs))
		if len(small.bufs) > 4 {
			t.Errorf("%v: the small stream's %d segments took %d buffers: the big stream's spares block the pool", f, len(small.caps), len(small.bufs))
		}
	}
}
