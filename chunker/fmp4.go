package chunker

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"
)

// Sample flags of ISO/IEC 14496-12 8.8.3.1.
const (
	flagsSync    = 0x02000000 // sample_depends_on=2 (I picture; every AAC frame)
	flagsNonSync = 0x01010000 // sample_depends_on=1, sample_is_non_sync_sample
)

// fmp4Writer builds CMAF-style media segments: styp + moof + mdat, with one
// track fragment per track (video track 1, audio track 2; an audio-only
// stream has audio as track 1). Video payloads are appended to the segment
// buffer after a reserved headroom as samples arrive, audio payloads to a
// buffer of their own that follows the video run in the mdat; at the end
// the box headers are written into the headroom, so a segment is built in
// one buffer with each video byte copied once.
type fmp4Writer struct {
	timescale uint32
	target    int64    // target duration in timescale ticks
	elapsed   int64    // decode time of the last added sample since the segment's first
	matrix    [9]int32 // video tkhd matrix; zero: identity
	video     bool
	aud       *audioTrack // nil without audio
	audioID   uint32
	seq       uint64
	dts       int64
	buf       []byte
	headroom  int
	samples   []mp4.Sample // video trun entries, reused
	maxFrames int
	// audio of the open segment
	abuf     []byte
	asamples []mp4.Sample
	adts     int64
	maxAudio int
}

func newFMP4(timescale uint32, video bool, aud *audioTrack) *fmp4Writer {
	w := &fmp4Writer{timescale: timescale, video: video, aud: aud, maxFrames: 300, maxAudio: 300, audioID: 2}
	if !video {
		w.audioID = 1
		w.maxFrames = 0
	}
	return w
}

func (w *fmp4Writer) makeInit(ps *paramSets) (data []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			data, err = nil, fmt.Errorf("%w: building the init segment: %v", ErrBadParameterSets, r)
		}
	}()
	init := mp4.NewMP4Init()
	init.AddChild(mp4.NewFtyp("iso6", 0, []string{"iso6", "cmfc", "mp41"}))
	moov := mp4.NewMoovBox()
	init.AddChild(moov)
	moov.AddChild(mp4.CreateMvhd())
	moov.AddChild(mp4.NewMvexBox())
	if w.video {
		trak := init.AddEmptyTrack(w.timescale, "video", "und")
		if err := trak.SetAVCDescriptor("avc1", ps.sps, ps.pps, true); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadParameterSets, err)
		}
		if w.matrix != [9]int32{} {
			trak.Tkhd.Matrix = w.matrix
		}
	}
	if a := w.aud; a != nil {
		trak := init.AddEmptyTrack(uint32(a.outTS), "audio", "und")
		trak.Mdia.Minf.Stbl.Stsd.AddChild(mp4aEntry(a))
	}
	var b bytes.Buffer
	if err := init.Encode(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// mp4aEntry builds the mp4a sample entry with an esds that carries the
// stream's exact AudioSpecificConfig. (mp4ff's TrakBox.SetAACDescriptor
// builds an ASC of its own that always says two channels, and for HE-AAC
// a doubled rate; mono phones and 5.1 cameras need the real one.)
func mp4aEntry(a *audioTrack) *mp4.AudioSampleEntryBox {
	ch := a.info.Channels
	if ch <= 0 {
		ch = 2
	}
	rate := a.info.SampleRate
	if rate > 0xffff {
		// The 16.16 field cannot hold it; readers take the rate from the
		// ASC (and the timescale).
		rate = 0
	}
	return mp4.CreateAudioSampleEntryBox("mp4a", uint16(ch), 16, uint16(rate), mp4.CreateEsdsBox(a.asc))
}

// fmp4HeaderSize is the size of styp+moof+mdat header for nv video and na
// audio samples.
func fmp4HeaderSize(nv, na int, video, audio bool) int {
	const styp = 8 + 8 + 8     // major, minor, 2 brands
	const mfhd = 16            // header+version/flags+seq
	const tfhd = 16            // header+version/flags+trackID
	const tfdt = 20            // version 1
	const trun = 8 + 4 + 4 + 4 // header, v/f, count, data offset
	n := styp + 8 + mfhd + 8
	if video {
		n += 8 + tfhd + tfdt + trun + 16*nv
	}
	if audio {
		n += 8 + tfhd + 4 + tfdt + trun + 8*na
	}
	return n + 16
}

func (w *fmp4Writer) begin(seq uint64, buf []byte, dts int64) {
	w.seq = seq
	w.dts = dts
	w.samples = w.samples[:0]
	w.asamples = w.asamples[:0]
	w.abuf = w.abuf[:0]
	w.headroom = fmp4HeaderSize(w.maxFrames+w.maxFrames/4+16, w.maxAudio+w.maxAudio/4+16, w.video, w.aud != nil)
	if cap(buf) < w.headroom+64<<10 {
		buf = make([]byte, 0, w.headroom+1<<20)
	}
	w.buf = buf[:w.headroom]
}

func (w *fmp4Writer) add(au [][]byte, dts, pts int64, idr bool, ps *paramSets) error {
	start := len(w.buf)
	w.elapsed = dts - w.dts
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
		case h264.NALUTypeAccessUnitDelimiter, h264.NALUTypeSPS, h264.NALUTypePPS:
			// Access unit delimiters are not needed in MP4; parameter sets
			// were written above for IDR pictures (in-band copies on other
			// pictures are identical and dropped).
			continue
		case h264.NALUTypeNonIDR, h264.NALUTypeIDR, h264.NALUTypeDataPartitionA, h264.NALUTypeDataPartitionB, h264.NALUTypeDataPartitionC:
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
		w.buf = w.buf[:start]
		return fmt.Errorf("%w: composition offset %d out of range", ErrInvalidSample, cto)
	}
	flags := uint32(flagsNonSync)
	if idr {
		flags = flagsSync
	}
	w.samples = append(w.samples, mp4.Sample{Flags: flags, Size: uint32(size), CompositionTimeOffset: int32(cto)})
	return nil
}

func (w *fmp4Writer) addAudio(frame []byte, t int64) error {
	if len(w.asamples) == 0 {
		w.adts = t
	}
	w.abuf = append(w.abuf, frame...)
	w.asamples = append(w.asamples, mp4.Sample{Flags: flagsSync, Size: uint32(len(frame)), Dur: uint32(w.aud.frame)})
	return nil
}

func (w *fmp4Writer) setAudioDuration(d int64) {
	if n := len(w.asamples); n > 0 {
		w.asamples[n-1].Dur = uint32(min(max(d, 0), 1<<32-1))
	}
}

func (w *fmp4Writer) appendNALU(n []byte) {
	if cap(w.buf)-len(w.buf) < 4+len(n) {
		w.buf = grow(w.buf, 4+len(n), w.expected())
	}
	w.buf = binary.BigEndian.AppendUint32(w.buf, uint32(len(n)))
	w.buf = append(w.buf, n...)
}

// expected is the size the open segment's buffer is expected to reach,
// header room and audio included (see expectedSize); 0 when unknown.
func (w *fmp4Writer) expected() int {
	e := expectedSize(len(w.buf)-w.headroom+len(w.abuf), w.elapsed, w.target)
	if e == 0 {
		return 0
	}
	return w.headroom + e
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
	w.maxFrames = max(w.maxFrames, len(w.samples))
	w.maxAudio = max(w.maxAudio, len(w.asamples))
	moof, trun, atrun := w.moof()
	// The audio run follows the video run in the mdat.
	w.buf = append(grow(w.buf, len(w.abuf), 0), w.abuf...)
	styp := mp4.NewStyp("msdh", 0, []string{"msdh", "iso6"})
	payload := len(w.buf) - w.headroom
	mdatHdr := 8
	if uint64(payload)+8 > 1<<32-1 {
		mdatHdr = 16
	}
	if int64(moof.Size())+int64(mdatHdr)+int64(payload) > 1<<31-1 {
		return nil, w.buf, fmt.Errorf("%w: fMP4 segment of %d bytes", ErrSegmentTooLarge, payload)
	}
	base := int32(moof.Size()) + int32(mdatHdr)
	if trun != nil {
		trun.DataOffset = base
	}
	if atrun != nil {
		atrun.DataOffset = base + int32(payload-len(w.abuf))
	}
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
	if err := writeHeader(hdr, styp, moof, payload, mdatHdr); err != nil {
		return nil, full, err
	}
	w.buf = nil
	return data, full, nil
}

// moof builds the segment's moof box: a track fragment per track with
// samples, video (trun version 1: signed composition offsets) then audio
// (every frame a sync sample). The truns' data offsets are set by finish.
func (w *fmp4Writer) moof() (moof *mp4.MoofBox, trun, atrun *mp4.TrunBox) {
	moof = &mp4.MoofBox{}
	_ = moof.AddChild(mp4.CreateMfhd(uint32(w.seq + 1)))
	if w.video {
		traf := &mp4.TrafBox{}
		_ = moof.AddChild(traf)
		_ = traf.AddChild(mp4.CreateTfhd(1))
		tfdt := mp4.CreateTfdt(uint64(w.dts))
		tfdt.Version = 1
		_ = traf.AddChild(tfdt)
		trun = &mp4.TrunBox{
			Version: 1,
			Flags: mp4.TrunDataOffsetPresentFlag | mp4.TrunSampleDurationPresentFlag |
				mp4.TrunSampleSizePresentFlag | mp4.TrunSampleFlagsPresentFlag |
				mp4.TrunSampleCompositionTimeOffsetPresentFlag,
			Samples: w.samples,
		}
		_ = traf.AddChild(trun)
	}
	if len(w.asamples) > 0 {
		traf := &mp4.TrafBox{}
		_ = moof.AddChild(traf)
		tfhd := mp4.CreateTfhd(w.audioID)
		tfhd.Flags |= mp4.TfhdDefaultSampleFlagsPresentFlag
		tfhd.DefaultSampleFlags = flagsSync
		_ = traf.AddChild(tfhd)
		tfdt := mp4.CreateTfdt(uint64(w.adts))
		tfdt.Version = 1
		_ = traf.AddChild(tfdt)
		atrun = &mp4.TrunBox{
			Flags:   mp4.TrunDataOffsetPresentFlag | mp4.TrunSampleDurationPresentFlag | mp4.TrunSampleSizePresentFlag,
			Samples: w.asamples,
		}
		_ = traf.AddChild(atrun)
	}
	return moof, trun, atrun
}

// writeHeader writes styp, moof and the header of an mdat of payload
// bytes (mdatHdr: 8, or 16 for a large size) into hdr, which must be their
// exact size.
func writeHeader(hdr []byte, styp *mp4.StypBox, moof *mp4.MoofBox, payload, mdatHdr int) error {
	sw := bits.NewFixedSliceWriterFromSlice(hdr)
	if err := styp.EncodeSW(sw); err != nil {
		return err
	}
	if err := moof.EncodeSW(sw); err != nil {
		return err
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
		return err
	}
	if sw.Offset() != len(hdr) {
		return fmt.Errorf("chunker: internal error: header %d bytes, expected %d", sw.Offset(), len(hdr))
	}
	return nil
}
