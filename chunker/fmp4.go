package chunker

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"
)

// Sample flags of ISO/IEC 14496-12 8.8.3.1.
const (
	flagsSync    = 0x02000000 // sample_depends_on=2 (I picture)
	flagsNonSync = 0x01010000 // sample_depends_on=1, sample_is_non_sync_sample
)

// fmp4Writer builds CMAF-style media segments: styp + moof + mdat. Payloads
// are appended to the segment buffer after a reserved headroom as samples
// arrive; at the end the box headers are written into the headroom, so a
// segment is built in one buffer with each payload byte copied once.
type fmp4Writer struct {
	timescale uint32
	seq       uint64
	dts       int64
	buf       []byte
	headroom  int
	samples   []mp4.Sample // trun entries, reused
	maxFrames int
}

func newFMP4(timescale uint32) *fmp4Writer {
	return &fmp4Writer{timescale: timescale, maxFrames: 300}
}

func (w *fmp4Writer) makeInit(ps *paramSets) (data []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			data, err = nil, fmt.Errorf("%w: building avcC: %v", ErrBadParameterSets, r)
		}
	}()
	init := mp4.NewMP4Init()
	init.AddChild(mp4.NewFtyp("iso6", 0, []string{"iso6", "cmfc", "mp41"}))
	moov := mp4.NewMoovBox()
	init.AddChild(moov)
	moov.AddChild(mp4.CreateMvhd())
	moov.AddChild(mp4.NewMvexBox())
	trak := init.AddEmptyTrack(w.timescale, "video", "und")
	if err := trak.SetAVCDescriptor("avc1", ps.sps, ps.pps, true); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadParameterSets, err)
	}
	var b bytes.Buffer
	if err := init.Encode(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// headerSize is the size of styp+moof+mdat header for n samples.
func fmp4HeaderSize(n int) int {
	const styp = 8 + 8 + 8     // major, minor, 2 brands
	const mfhd = 16            // header+version/flags+seq
	const tfhd = 16            // header+version/flags+trackID
	const tfdt = 20            // version 1
	const trun = 8 + 4 + 4 + 4 // header, v/f, count, data offset
	return styp + 8 + mfhd + 8 + tfhd + tfdt + trun + 16*n + 8
}

func (w *fmp4Writer) begin(seq uint64, buf []byte, dts int64) {
	w.seq = seq
	w.dts = dts
	w.samples = w.samples[:0]
	w.headroom = fmp4HeaderSize(w.maxFrames + w.maxFrames/4 + 16)
	if cap(buf) < w.headroom+64<<10 {
		buf = make([]byte, 0, w.headroom+1<<20)
	}
	w.buf = buf[:w.headroom]
}

func (w *fmp4Writer) add(au [][]byte, dts, pts int64, idr bool, ps *paramSets) error {
	start := len(w.buf)
	if idr {
		// Parameter sets live in the avcC of the init segment, and also
		// in-band before every IDR picture (as ffmpeg's MP4 muxer leaves
		// them), so a decoder that keeps the first init across a resolution
		// change (ffmpeg's HLS demuxer does) still decodes every segment.
		for _, n := range ps.sps {
			w.appendNALU(n)
		}
		for _, n := range ps.pps {
			w.appendNALU(n)
		}
	}
	vcl := false
	for _, n := range au {
		switch naluType(n) {
		case naluAUD, naluSPS, naluPPS:
			// Access unit delimiters are not needed in MP4; parameter sets
			// were written above for IDR pictures (in-band copies on other
			// pictures are identical and dropped).
			continue
		case naluNonIDR, naluIDR, 2, 3, 4:
			vcl = true
		}
		w.appendNALU(n)
	}
	if !vcl {
		w.buf = w.buf[:start]
		return fmt.Errorf("%w: access unit without a coded slice", ErrInvalidSample)
	}
	size := len(w.buf) - start
	cto := pts - dts
	if cto > 1<<31-1 || cto < -1<<31 {
		return fmt.Errorf("%w: composition offset %d out of range", ErrInvalidSample, cto)
	}
	flags := uint32(flagsNonSync)
	if idr {
		flags = flagsSync
	}
	w.samples = append(w.samples, mp4.Sample{Flags: flags, Size: uint32(size), CompositionTimeOffset: int32(cto)})
	return nil
}

func (w *fmp4Writer) appendNALU(n []byte) {
	w.buf = binary.BigEndian.AppendUint32(w.buf, uint32(len(n)))
	w.buf = append(w.buf, n...)
}

func (w *fmp4Writer) setDuration(d int64) {
	if n := len(w.samples); n > 0 {
		if d < 0 {
			d = 0
		}
		if d > 1<<32-1 {
			d = 1<<32 - 1
		}
		w.samples[n-1].Dur = uint32(d)
	}
}

func (w *fmp4Writer) finish() (data, full []byte, err error) {
	n := len(w.samples)
	if n > w.maxFrames {
		w.maxFrames = n
	}
	moof := &mp4.MoofBox{}
	_ = moof.AddChild(mp4.CreateMfhd(uint32(w.seq + 1)))
	traf := &mp4.TrafBox{}
	_ = moof.AddChild(traf)
	_ = traf.AddChild(mp4.CreateTfhd(1))
	tfdt := mp4.CreateTfdt(uint64(w.dts))
	tfdt.Version = 1
	_ = traf.AddChild(tfdt)
	trun := &mp4.TrunBox{
		Version: 1,
		Flags: mp4.TrunDataOffsetPresentFlag | mp4.TrunSampleDurationPresentFlag |
			mp4.TrunSampleSizePresentFlag | mp4.TrunSampleFlagsPresentFlag |
			mp4.TrunSampleCompositionTimeOffsetPresentFlag,
		Samples: w.samples,
	}
	_ = traf.AddChild(trun)
	styp := mp4.NewStyp("msdh", 0, []string{"msdh", "iso6"})
	payload := len(w.buf) - w.headroom
	mdatHdr := 8
	if uint64(payload)+8 > 1<<32-1 {
		mdatHdr = 16
	}
	trun.DataOffset = int32(moof.Size()) + int32(mdatHdr)
	hdrSize := int(styp.Size()+moof.Size()) + mdatHdr

	var hdr []byte
	if hdrSize <= w.headroom {
		hdr = w.buf[w.headroom-hdrSize : w.headroom]
		data = w.buf[w.headroom-hdrSize:]
		full = w.buf
	} else {
		// More samples than the headroom was sized for: one extra copy.
		full = make([]byte, hdrSize+payload)
		copy(full[hdrSize:], w.buf[w.headroom:])
		hdr = full[:hdrSize]
		data = full
	}
	sw := bits.NewFixedSliceWriterFromSlice(hdr)
	if err := styp.EncodeSW(sw); err != nil {
		return nil, full, err
	}
	if err := moof.EncodeSW(sw); err != nil {
		return nil, full, err
	}
	if mdatHdr == 8 {
		sw.WriteUint32(uint32(payload + 8))
		sw.WriteString("mdat", false)
	} else {
		sw.WriteUint32(1)
		sw.WriteString("mdat", false)
		sw.WriteUint64(uint64(payload + 16))
	}
	if err := sw.AccError(); err != nil {
		return nil, full, err
	}
	if sw.Offset() != hdrSize {
		return nil, full, fmt.Errorf("chunker: internal error: header %d bytes, expected %d", sw.Offset(), hdrSize)
	}
	w.buf = nil
	return data, full, nil
}
