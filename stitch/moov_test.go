package stitch

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"os"
	"sync/atomic"
	"testing"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/livechunk/livechunk/internal/mpegts"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
)

// fixtureParamSets returns the SPS and PPS of a fixture's avcC.
func fixtureParamSets(t testing.TB) (sps, pps [][]byte) {
	t.Helper()
	f, err := os.Open(mediatest.Testdata("bframes.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mf, err := mp4.DecodeFile(f, mp4.WithDecodeMode(mp4.DecModeLazyMdat))
	if err != nil {
		t.Fatal(err)
	}
	avcC := mf.Moov.Trak.Mdia.Minf.Stbl.Stsd.AvcX.AvcC
	return avcC.SPSnalus, avcC.PPSnalus
}

// fakeIndex returns an index of parts with n samples of size bytes each,
// 30 fps at 90 kHz, a keyframe every 30 samples.
func fakeIndex(t testing.TB, parts, n int, size uint32) *index {
	t.Helper()
	m := &merger{ix: &index{timescale: 90000}, tracks: map[*mp4.MoovBox]*trackInfo{}}
	sps, pps := fixtureParamSets(t)
	if _, err := m.descForPS(sps, pps); err != nil {
		t.Fatal(err)
	}
	ix := m.ix
	off := int64(1000)
	for p := range parts {
		pi := partInfo{part: &Part{Name: "fake"}, first: len(ix.samples), n: n, size: off + int64(n)*int64(size)}
		pi.runs = []run{{off: off, n: int32(n)}}
		for i := range n {
			ix.samples = append(ix.samples, sample{size: size, dur: 3000, sync: (p*n+i)%30 == 0})
		}
		ix.parts = append(ix.parts, pi)
	}
	return ix
}

// decodeHeader decodes ftyp+moov+mdat header bytes.
func decodeHeader(t testing.TB, data []byte) (*mp4.MoovBox, mp4.BoxHeader, int) {
	t.Helper()
	sr := bits.NewFixedSliceReader(data)
	var moov *mp4.MoovBox
	for pos := 0; ; {
		if string(data[pos+4:pos+8]) == "mdat" {
			r := bytes.NewReader(data[pos:])
			h, err := mp4.DecodeHeader(r)
			if err != nil {
				t.Fatal(err)
			}
			return moov, h, pos
		}
		box, err := mp4.DecodeBoxSR(uint64(pos), sr)
		if err != nil {
			t.Fatalf("box at %d: %v", pos, err)
		}
		if mv, ok := box.(*mp4.MoovBox); ok {
			moov = mv
		}
		pos += int(box.Size())
	}
}

// TestHeaderCo64 builds the moov of joined inputs whose payload passes
// 4 GiB, without writing the payload: chunk offsets switch to co64 exactly
// when a chunk starts beyond 4 GiB, and the mdat gets a 64-bit size as soon
// as it needs one.
func TestHeaderCo64(t *testing.T) {
	const MiB = 1 << 20
	tests := []struct {
		name        string
		parts, n    int
		size        uint32
		co64, large bool
	}{
		{"small", 3, 30, 50 << 10, false, false},
		{"mdat-over-4GiB-stco-still-fits", 2, 1200, 2 * MiB, false, true}, // chunks at ~0 and ~2.3 GiB, 4.7 GiB in all
		{"chunk-beyond-4GiB", 5, 600, 2 * MiB, true, true},                // the 4th chunk starts at ~3.5 GiB, the 5th at ~4.7
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ix := fakeIndex(t, tc.parts, tc.n, tc.size)
			sel, err := ix.selectRange(0, 0)
			if err != nil {
				t.Fatal(err)
			}
			h, err := ix.buildHeader(sel)
			if err != nil {
				t.Fatal(err)
			}
			if h.co64 != tc.co64 {
				t.Errorf("co64 = %v, want %v", h.co64, tc.co64)
			}
			payload := int64(tc.parts) * int64(tc.n) * int64(tc.size)
			if h.payload != payload {
				t.Errorf("payload %d, want %d", h.payload, payload)
			}
			moov, mdat, pos := decodeHeader(t, h.data)
			hdrLen := 8
			if tc.large {
				hdrLen = 16
			}
			if int(mdat.Hdrlen) != hdrLen || mdat.Size != uint64(payload)+uint64(hdrLen) || pos+hdrLen != len(h.data) {
				t.Errorf("mdat header %+v at %d (header %d bytes), want size %d with a %d-byte header", mdat, pos, len(h.data), payload+int64(hdrLen), hdrLen)
			}
			stbl := moov.Trak.Mdia.Minf.Stbl
			var offsets []uint64
			switch {
			case stbl.Co64 != nil && stbl.Stco == nil:
				offsets = stbl.Co64.ChunkOffset
			case stbl.Stco != nil && stbl.Co64 == nil:
				for _, o := range stbl.Stco.ChunkOffset {
					offsets = append(offsets, uint64(o))
				}
			default:
				t.Fatal("want exactly one of stco and co64")
			}
			if (stbl.Co64 != nil) != tc.co64 {
				t.Errorf("co64 box present = %v", stbl.Co64 != nil)
			}
			if len(offsets) != tc.parts {
				t.Fatalf("%d chunk offsets, want %d", len(offsets), tc.parts)
			}
			for i, o := range offsets {
				want := uint64(len(h.data)) + uint64(i)*uint64(tc.n)*uint64(tc.size)
				if o != want {
					t.Errorf("chunk %d at %d, want %d", i+1, o, want)
				}
			}
			if got := stbl.Stsz.SampleNumber; got != uint32(tc.parts*tc.n) {
				t.Errorf("stsz lists %d samples", got)
			}
			if got := stbl.Stss.EntryCount(); int(got) != (tc.parts*tc.n+29)/30 {
				t.Errorf("stss lists %d keyframes", got)
			}
			if d := moov.Mvhd.Duration; d != uint64(tc.parts*tc.n*3000) {
				t.Errorf("mvhd duration %d", d)
			}
		})
	}
}

// zeroes is an io.ReaderAt of n bytes: a header followed by zero bytes.
type zeroes struct {
	head []byte
	n    int64
}

func (z *zeroes) ReadAt(p []byte, off int64) (int, error) {
	if off >= z.n {
		return 0, io.EOF
	}
	k := int(min(int64(len(p)), z.n-off))
	clear(p[:k])
	if off < int64(len(z.head)) {
		copy(p[:k], z.head[off:])
	}
	if k < len(p) {
		return k, io.EOF
	}
	return k, nil
}

// headWriter keeps the first bytes written and counts the rest.
type headWriter struct {
	head []byte
	n    int64
}

func (w *headWriter) Write(p []byte) (int, error) {
	if room := cap(w.head) - len(w.head); room > 0 {
		w.head = append(w.head, p[:min(room, len(p))]...)
	}
	w.n += int64(len(p))
	return len(p), nil
}

// TestWriteCo64 stitches an fMP4 segment of 4.5 GiB (zero payload bytes,
// generated on the fly) end to end: co64 offsets and a 64-bit mdat size,
// and every byte accounted for.
func TestWriteCo64(t *testing.T) {
	if testing.Short() {
		t.Skip("copies 4.5 GiB through memory")
	}
	ib := fakeInit(t)
	const sz, n = 48 << 20, 96 // 4.5 GiB
	// The mdat behind the moof has a 64-bit (16-byte) header.
	moof := fakeMoof(0, n, sz, 16)
	var sb bytes.Buffer
	if err := moof.Encode(&sb); err != nil {
		t.Fatal(err)
	}
	if err := mp4.EncodeHeaderWithSize("mdat", n*sz+16, true, &sb); err != nil {
		t.Fatal(err)
	}
	segSize := int64(sb.Len()) + n*sz
	initPart := ReaderAtPart("init.mp4", bytes.NewReader(ib), int64(len(ib)))
	seg := ReaderAtPart("seg.m4s", &zeroes{head: sb.Bytes(), n: segSize}, segSize)
	seg.Init = &initPart

	// A second, small segment: its chunk starts beyond 4 GiB.
	seg2data := fakeSegment(t, 3000*n, 30, 1000)
	seg2 := ReaderAtPart("seg2.m4s", bytes.NewReader(seg2data), int64(len(seg2data)))
	seg2.Init = &initPart

	w := &headWriter{head: make([]byte, 0, 64<<10)}
	res, err := WriteMP4(context.Background(), w, New(seg, seg2), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Co64 || res.Samples != n+30 {
		t.Errorf("result %+v: want co64, %d samples", res, n+30)
	}
	moov, mdat, pos := decodeHeader(t, w.head[:bytes.Index(w.head, []byte("mdat"))+12])
	base := uint64(pos) + 16
	payload := uint64(n*sz + 30*1000)
	if mdat.Size != payload+16 || w.n != int64(base+payload) || res.Bytes != w.n {
		t.Errorf("mdat size %d, wrote %d bytes (result %d), want %d", mdat.Size, w.n, res.Bytes, base+payload)
	}
	co := moov.Trak.Mdia.Minf.Stbl.Co64
	if co == nil || len(co.ChunkOffset) != 2 || co.ChunkOffset[0] != base || co.ChunkOffset[1] != base+n*sz {
		t.Errorf("co64 %+v, want chunks at %d and %d", co, base, base+n*sz)
	}
}

// TestIndexReadsOnlyIndexes checks that the first pass reads the indexes
// of fMP4 segments, not their payload: a few KiB per object.
func TestIndexReadsOnlyIndexes(t *testing.T) {
	ib := fakeInit(t)
	var read atomic.Int64
	counting := func(p Part) Part {
		open := p.Open
		p.Open = func(ctx context.Context, off, n int64) (io.ReadCloser, int64, error) {
			r, size, err := open(ctx, off, n)
			if err != nil {
				return nil, 0, err
			}
			return &countingReader{r: r, n: &read}, size, nil
		}
		return p
	}
	ip := counting(ReaderAtPart("init.mp4", bytes.NewReader(ib), int64(len(ib))))
	var parts []Part
	var total int64
	for i := range 10 {
		seg := fakeSegment(t, uint64(i)*90000, 30, 20<<10)
		total += int64(len(seg))
		p := counting(ReaderAtPart("seg", bytes.NewReader(seg), int64(len(seg))))
		p.Init = &ip
		parts = append(parts, p)
	}
	ix, err := buildIndex(context.Background(), New(parts...), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ix.samples) != 300 || ix.reads != 11 {
		t.Errorf("%d samples, %d reads; want 300, 11", len(ix.samples), ix.reads)
	}
	if read.Load() > 11*firstWindow {
		t.Errorf("first pass read %d bytes of %d", read.Load(), total)
	}
	// The second pass reads the payloads once.
	read.Store(0)
	w := &headWriter{}
	if _, err := WriteMP4(context.Background(), w, New(parts...), Options{}); err != nil {
		t.Fatal(err)
	}
	if payload := int64(300 * 20 << 10); read.Load() < payload || read.Load() > payload+22*firstWindow {
		t.Errorf("both passes read %d bytes for %d bytes of payload", read.Load(), payload)
	}
}

type countingReader struct {
	r io.ReadCloser
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n.Add(int64(k))
	return k, err
}

func (c *countingReader) Close() error { return c.r.Close() }

// fakeInit builds the init segment of one H.264 track at 90 kHz, with the
// parameter sets of a fixture.
func fakeInit(t testing.TB) []byte {
	t.Helper()
	sps, pps := fixtureParamSets(t)
	init := mp4.CreateEmptyInit()
	trak := init.AddEmptyTrack(90000, "video", "und")
	if err := trak.SetAVCDescriptor("avc1", sps, pps, true); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := init.Encode(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// fakeMoof builds the moof of a fragment of n samples of size bytes, a
// keyframe first, 30 fps at 90 kHz, from decode time dts; its data starts
// after an mdat header of mdatHeader bytes right behind the moof.
func fakeMoof(dts uint64, n int, size uint32, mdatHeader int32) *mp4.MoofBox {
	moof := &mp4.MoofBox{}
	_ = moof.AddChild(mp4.CreateMfhd(1))
	traf := &mp4.TrafBox{}
	_ = moof.AddChild(traf)
	_ = traf.AddChild(mp4.CreateTfhd(1))
	tfdt := mp4.CreateTfdt(dts)
	tfdt.Version = 1
	_ = traf.AddChild(tfdt)
	trun := &mp4.TrunBox{Flags: mp4.TrunDataOffsetPresentFlag | mp4.TrunSampleDurationPresentFlag |
		mp4.TrunSampleSizePresentFlag | mp4.TrunSampleFlagsPresentFlag}
	for i := range n {
		flags := mp4.NonSyncSampleFlags
		if i == 0 {
			flags = mp4.SyncSampleFlags
		}
		trun.Samples = append(trun.Samples, mp4.Sample{Flags: flags, Dur: 3000, Size: size})
	}
	_ = traf.AddChild(trun)
	trun.DataOffset = int32(moof.Size()) + mdatHeader
	return moof
}

// fakeSegment builds an fMP4 media segment (styp+moof+mdat) of n samples
// of size bytes (zeros), a keyframe first, 30 fps at 90 kHz.
func fakeSegment(t testing.TB, dts uint64, n int, size uint32) []byte {
	t.Helper()
	moof := fakeMoof(dts, n, size, 8)
	styp := mp4.NewStyp("msdh", 0, []string{"msdh", "iso6"})
	var b bytes.Buffer
	if err := styp.Encode(&b); err != nil {
		t.Fatal(err)
	}
	if err := moof.Encode(&b); err != nil {
		t.Fatal(err)
	}
	b.Write(binary.BigEndian.AppendUint32(nil, uint32(8+n*int(size))))
	b.WriteString("mdat")
	b.Write(make([]byte, n*int(size)))
	return b.Bytes()
}

// TestCCFixer checks continuity counter rewriting.
func TestCCFixer(t *testing.T) {
	f := newCCFixer()
	pkt := func(pid uint16, payload bool, cc byte) []byte {
		p := make([]byte, mpegts.PacketSize)
		p[0], p[1], p[2] = 0x47, byte(pid>>8), byte(pid)
		p[3] = 0x20 | cc
		if payload {
			p[3] |= 0x10
		}
		return p
	}
	var got []byte
	for _, p := range [][]byte{pkt(256, true, 5), pkt(256, true, 6), pkt(256, false, 9), pkt(256, true, 0), pkt(0, true, 3), pkt(256, true, 15), pkt(0x1fff, true, 7)} {
		f.fix(p)
		got = append(got, p[3]&0x0f)
	}
	if want := []byte{5, 6, 6, 7, 3, 8, 7}; !bytes.Equal(got, want) {
		t.Errorf("counters %v, want %v", got, want)
	}
}
