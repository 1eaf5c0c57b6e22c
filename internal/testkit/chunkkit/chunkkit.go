// Package chunkkit makes sequences of independently timed parts (phone
// chunks cut from one continuous capture, with the edit lists, timescales,
// audio leads and tails, and encoder priming that real devices write) and
// judges what livechunk makes of them with ffmpeg: the continuous capture
// is the truth that every joined output is compared with.
package chunkkit

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"github.com/livechunk/livechunk/internal/timeline"
	"github.com/livechunk/livechunk/source"
)

// Picture is one coded picture of a capture, times in ticks of the
// capture's video timescale.
type Picture struct {
	DTS, PTS, Dur int64
	Key           bool
	AVCC          []byte // 4-byte length prefixes, no parameter sets
}

// Frame is one AAC frame of a capture, times in samples.
type Frame struct {
	PTS, Dur int64
	Data     []byte
}

// Capture is a continuous recording, as a device's encoders make it, read
// into samples.
type Capture struct {
	VideoTimescale uint32
	SPS, PPS       [][]byte
	Pictures       []Picture // decode order
	ASC            []byte
	SampleRate     int
	Channels       int
	Frames         []Frame // presentation order; the first is the encoder's priming, before time 0
}

// NewCapture encodes seconds of 30 fps video (B-frames as given, a
// keyframe every second) and AAC audio at rate (a chirp, so that no two
// frames are alike) with ffmpeg, and reads it.
func NewCapture(t testing.TB, seconds, rate, bframes int) *Capture {
	t.Helper()
	p := filepath.Join(t.TempDir(), "capture.mp4")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=320x240:rate=30:duration=%d", seconds),
		"-f", "lavfi", "-i", fmt.Sprintf("aevalsrc=sin(2*PI*(300+80*t)*t)|sin(2*PI*(500+40*t)*t):s=%d:d=%d", rate, seconds),
		"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
		"-x264-params", fmt.Sprintf("keyint=30:min-keyint=30:scenecut=0:bframes=%d", bframes),
		"-c:a", "aac", "-b:a", "96k", p)
	return ReadCapture(t, p)
}

// ReadCapture reads an MP4 with an H.264 and an AAC track into a Capture.
func ReadCapture(t testing.TB, path string) *Capture {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	src, err := source.NewMP4(f, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	info := src.Info()
	if info.Audio == nil {
		t.Fatalf("%s: no AAC track", path)
	}
	c := &Capture{VideoTimescale: info.Timescale, SPS: info.SPS, PPS: info.PPS, ASC: info.Audio.ASC,
		SampleRate: info.Audio.SampleRate, Channels: info.Audio.Channels}
	for {
		p, err := src.NextPacket()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if p.Kind == source.KindAudio {
			a := p.Audio
			dur := a.Duration
			if dur == 0 {
				dur = int64(info.Audio.FrameSamples)
			}
			c.Frames = append(c.Frames, Frame{
				PTS:  timeline.Rescale(a.PTS, info.Audio.Timescale, uint32(c.SampleRate)),
				Dur:  timeline.Rescale(dur, info.Audio.Timescale, uint32(c.SampleRate)),
				Data: bytes.Clone(a.Data)})
			continue
		}
		s := p.Video
		var nalus [][]byte
		for _, n := range s.NALUs {
			if typ := n[0] & 0x1f; typ != 7 && typ != 8 { // the avcC carries them
				nalus = append(nalus, n)
			}
		}
		c.Pictures = append(c.Pictures, Picture{DTS: s.DTS, PTS: s.PTS, Dur: s.Duration, Key: chunker.IsIDR(s.NALUs),
			AVCC: chunker.AppendAVCC(nil, nalus)})
	}
	return c
}

// FrameStep returns the duration of a picture in seconds.
func (c *Capture) FrameStep() float64 {
	return float64(c.Pictures[1].DTS-c.Pictures[0].DTS) / float64(c.VideoTimescale)
}

// Chunk is a part cut from a capture: pictures [P0, P1) in decode order and
// audio frames [F0, F1), written with the timescales given (0: the
// capture's). Priming frames at its start are hidden by the audio edit
// list (an encoder's priming, as in the capture's first frame).
type Chunk struct {
	P0, P1, F0, F1 int
	Priming        int
	VideoTimescale uint32
	AudioTimescale uint32
	// Audio, when set, replaces the capture's audio of the chunk (another
	// encoder's: an AAC configuration change).
	Audio *Capture
}

// Cut cuts the capture into chunks of gops keyframe intervals each; the
// audio of chunk k starts lead[k] seconds before its first picture is
// presented (negative: after), so that the chunks tile the capture's audio
// without gaps or overlaps. The first chunk takes the capture's priming.
func (c *Capture) Cut(gops int, lead []float64) []Chunk {
	var keys []int
	for i, p := range c.Pictures {
		if p.Key {
			keys = append(keys, i)
		}
	}
	var out []Chunk
	for k := 0; k*gops < len(keys); k++ {
		ch := Chunk{P0: keys[k*gops], P1: len(c.Pictures)}
		if (k+1)*gops < len(keys) {
			ch.P1 = keys[(k+1)*gops]
		}
		out = append(out, ch)
	}
	// Audio boundaries: where each chunk's pictures start, less its lead,
	// at the frame that starts nearest.
	bound := make([]int, len(out)+1)
	bound[len(out)] = len(c.Frames)
	for k := 1; k < len(out); k++ {
		at := float64(c.Pictures[out[k].P0].PTS)/float64(c.VideoTimescale) - lead[k%len(lead)]
		best := 0
		for i, f := range c.Frames {
			if math.Abs(float64(f.PTS)/float64(c.SampleRate)-at) < math.Abs(float64(c.Frames[best].PTS)/float64(c.SampleRate)-at) {
				best = i
			}
		}
		bound[k] = best
	}
	for k := range out {
		out[k].F0, out[k].F1 = bound[k], bound[k+1]
	}
	if len(out) > 0 && len(c.Frames) > 0 && c.Frames[0].PTS < 0 {
		out[0].Priming = 1
	}
	return out
}

// WriteChunk writes chunk ch of c as a self-contained progressive MP4, as a
// phone writes one: time 0 is where its earliest track is presented; the
// video's edit list starts at its first picture's composition time (the
// B-frame reorder delay) after an empty edit when its audio starts first;
// the audio's edit list hides its priming frames, after an empty edit when
// its pictures start first.
func WriteChunk(t testing.TB, path string, c *Capture, ch Chunk) {
	t.Helper()
	vts := cmp(ch.VideoTimescale, c.VideoTimescale)
	acap := c
	if ch.Audio != nil {
		acap = ch.Audio
	}
	ats := cmp(ch.AudioTimescale, uint32(acap.SampleRate))
	pics := c.Pictures[ch.P0:ch.P1]
	frames := acap.Frames[ch.F0:ch.F1]
	movieTS := uint32(acap.SampleRate) // exact for the video's edits at 30 fps and for the audio's
	seconds := func(t int64, ts uint32) float64 { return float64(t) / float64(ts) }
	firstPic := pics[0].PTS
	for _, p := range pics {
		firstPic = min(firstPic, p.PTS)
	}
	vStart := seconds(firstPic, c.VideoTimescale)
	aStart := math.Inf(1)
	if len(frames) > ch.Priming {
		aStart = seconds(frames[ch.Priming].PTS, uint32(acap.SampleRate))
	}
	movieStart := min(vStart, aStart)
	toMovie := func(s float64) int64 { return int64(math.Round(s * float64(movieTS))) }

	init := mp4.CreateEmptyInit()
	init.Children[0] = mp4.NewFtyp("isom", 512, []string{"isom", "iso2", "avc1", "mp41"})
	init.Ftyp = init.Children[0].(*mp4.FtypBox)
	moov := init.Moov
	moov.Mvhd.Timescale = movieTS
	vt := init.AddEmptyTrack(vts, "video", "und")
	if err := vt.SetAVCDescriptor("avc1", c.SPS, c.PPS, true); err != nil {
		t.Fatal(err)
	}
	var at *mp4.TrakBox
	if len(frames) > 0 {
		at = init.AddEmptyTrack(ats, "audio", "und")
		at.Mdia.Minf.Stbl.Stsd.AddChild(mp4.CreateAudioSampleEntryBox("mp4a", uint16(acap.Channels), 16, uint16(acap.SampleRate), mp4.CreateEsdsBox(acap.ASC)))
	}
	// A progressive file: no mvex.
	var kids []mp4.Box
	for _, b := range moov.Children {
		if b.Type() != "mvex" {
			kids = append(kids, b)
		}
	}
	moov.Children, moov.Mvex = kids, nil

	// Video samples: decode times from 0.
	var vdata []byte
	vst := vt.Mdia.Minf.Stbl
	ctts := &mp4.CttsBox{}
	stss := &mp4.StssBox{}
	var vdur int64
	d0 := timeline.Rescale(pics[0].DTS, c.VideoTimescale, vts)
	for i, p := range pics {
		d := timeline.Rescale(p.DTS, c.VideoTimescale, vts) - d0
		next := timeline.Rescale(p.DTS+p.Dur, c.VideoTimescale, vts) - d0
		cto := timeline.Rescale(p.PTS, c.VideoTimescale, vts) - d0 - d
		addStts(vst.Stts, uint32(next-d))
		if err := ctts.AddSampleCountsAndOffset([]uint32{1}, []int32{int32(cto)}); err != nil {
			t.Fatal(err)
		}
		if p.Key {
			stss.SampleNumber = append(stss.SampleNumber, uint32(i+1))
		}
		vst.Stsz.SampleSize = append(vst.Stsz.SampleSize, uint32(len(p.AVCC)))
		vdata = append(vdata, p.AVCC...)
		vdur = next
	}
	vst.Stsz.SampleNumber = uint32(len(pics))
	vst.AddChild(ctts)
	vst.AddChild(stss)
	if err := vst.Stsc.AddEntry(1, uint32(len(pics)), 1); err != nil {
		t.Fatal(err)
	}
	firstCT := timeline.Rescale(firstPic, c.VideoTimescale, vts) - d0
	vEdit := timeline.Rescale(vdur-firstCT, vts, movieTS)
	addEdit(vt, toMovie(vStart-movieStart), firstCT, vEdit)
	vt.Mdia.Mdhd.Duration = uint64(vdur)
	vt.Tkhd.Duration = uint64(toMovie(vStart-movieStart) + vEdit)
	movieDur := int64(vt.Tkhd.Duration)

	var adata []byte
	if at != nil {
		ast := at.Mdia.Minf.Stbl
		a0 := timeline.Rescale(frames[0].PTS, uint32(acap.SampleRate), ats)
		var adur int64
		for _, f := range frames {
			s := timeline.Rescale(f.PTS, uint32(acap.SampleRate), ats) - a0
			e := timeline.Rescale(f.PTS+f.Dur, uint32(acap.SampleRate), ats) - a0
			addStts(ast.Stts, uint32(e-s))
			ast.Stsz.SampleSize = append(ast.Stsz.SampleSize, uint32(len(f.Data)))
			adata = append(adata, f.Data...)
			adur = e
		}
		ast.Stsz.SampleNumber = uint32(len(frames))
		if err := ast.Stsc.AddEntry(1, uint32(len(frames)), 1); err != nil {
			t.Fatal(err)
		}
		skip := int64(0)
		if ch.Priming > 0 {
			skip = timeline.Rescale(frames[ch.Priming].PTS, uint32(acap.SampleRate), ats) - a0
		}
		aEdit := timeline.Rescale(adur-skip, ats, movieTS)
		addEdit(at, toMovie(aStart-movieStart), skip, aEdit)
		at.Mdia.Mdhd.Duration = uint64(adur)
		at.Tkhd.Duration = uint64(toMovie(aStart-movieStart) + aEdit)
		movieDur = max(movieDur, int64(at.Tkhd.Duration))
	}
	moov.Mvhd.Duration = uint64(movieDur)

	// Chunk offsets: the moov's size does not depend on their values.
	vst.Stco.ChunkOffset = []uint32{0}
	if at != nil {
		at.Mdia.Minf.Stbl.Stco.ChunkOffset = []uint32{0}
	}
	head := init.Ftyp.Size() + moov.Size() + 8
	vst.Stco.ChunkOffset[0] = uint32(head)
	if at != nil {
		at.Mdia.Minf.Stbl.Stco.ChunkOffset[0] = uint32(head) + uint32(len(vdata))
	}
	var b bytes.Buffer
	if err := init.Encode(&b); err != nil {
		t.Fatal(err)
	}
	mdat := &mp4.MdatBox{Data: append(vdata, adata...)}
	if err := mdat.Encode(&b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func cmp(v, def uint32) uint32 {
	if v == 0 {
		return def
	}
	return v
}

// addStts appends one sample of duration d to an stts box.
func addStts(b *mp4.SttsBox, d uint32) {
	if n := len(b.SampleCount); n > 0 && b.SampleTimeDelta[n-1] == d {
		b.SampleCount[n-1]++
		return
	}
	b.SampleCount = append(b.SampleCount, 1)
	b.SampleTimeDelta = append(b.SampleTimeDelta, d)
}

// addEdit gives a track an edit list: an empty edit of empty movie ticks
// (when positive), then mediaTime (track ticks) presented for dur movie
// ticks.
func addEdit(trak *mp4.TrakBox, empty, mediaTime, dur int64) {
	elst := &mp4.ElstBox{}
	if empty > 0 {
		elst.Entries = append(elst.Entries, mp4.ElstEntry{SegmentDuration: uint64(empty), MediaTime: -1, MediaRateInteger: 1})
	}
	elst.Entries = append(elst.Entries, mp4.ElstEntry{SegmentDuration: uint64(dur), MediaTime: mediaTime, MediaRateInteger: 1})
	edts := &mp4.EdtsBox{}
	edts.AddChild(elst)
	// The edit list goes between tkhd and mdia.
	trak.Children = append(trak.Children[:1], append([]mp4.Box{edts}, trak.Children[1:]...)...)
	trak.Edts = edts
}

// Packet is a packet of an output as ffmpeg reads it: its stream, times in
// seconds, and for audio the MD5 of its bytes.
type Packet struct {
	Audio    bool
	PTS, DTS float64
	Dur      float64
	Hash     string
}

// Read returns the packets of the first video and audio streams of input
// (a file or a playlist), as ffmpeg demuxes them (edit lists applied),
// each stream in the order it carries them (video in decode order); the
// audio bytes
// without ADTS headers, so that MP4 and MPEG-TS outputs compare.
//
// A playlist of fMP4 segments is read with mp4ff instead, by ISO/IEC
// 14496-12 (presentation time = tfdt + the durations of the samples
// before + the composition offset): ffmpeg reads fragments with negative
// composition offsets (trun version 1, as CMAF and livechunk write video
// with B-frames so that a segment's first picture is presented at its
// tfdt) with the video shifted by the largest of them, which players
// (Chromium's MSE, Safari) do not do; its own +negative_cts_offsets
// output reads shifted the same way.
func Read(t testing.TB, input string) (video, audio []Packet) {
	t.Helper()
	if segs, ok := fmp4Playlist(t, input); ok {
		return readFMP4(t, segs)
	}
	out := mediatest.FFmpeg(t, "-i", input, "-map", "0:v:0", "-map", "0:a:0?", "-c", "copy", "-bsf:a", "aac_adtstoasc", "-f", "framemd5", "-")
	tb := map[string]float64{}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "#tb ") {
			// "#tb 0: 1/90000"
			f := strings.Fields(strings.TrimPrefix(line, "#tb "))
			num, den, _ := strings.Cut(f[1], "/")
			n, _ := strconv.ParseFloat(num, 64)
			d, _ := strconv.ParseFloat(den, 64)
			tb[strings.TrimSuffix(f[0], ":")] = n / d
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ",")
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		if len(f) < 6 {
			continue
		}
		u := tb[f[0]]
		dts, _ := strconv.ParseFloat(f[1], 64)
		pts, _ := strconv.ParseFloat(f[2], 64)
		dur, _ := strconv.ParseFloat(f[3], 64)
		p := Packet{Audio: f[0] == "1", DTS: dts * u, PTS: pts * u, Dur: dur * u, Hash: f[5]}
		if p.Audio {
			audio = append(audio, p)
		} else {
			video = append(video, p)
		}
	}
	return video, audio
}

// FrameHash returns the MD5 that Read reports for an audio frame's bytes.
func FrameHash(data []byte) string { return fmt.Sprintf("%x", md5.Sum(data)) }

// ExpectChunks is what joining chunks of c gives (see Joined): every
// picture and audio frame of each chunk, but the audio of a chunk whose
// Audio is another encoder's (an AAC configuration that differs from the
// stream's), which is left out.
func ExpectChunks(c *Capture, chunks []Chunk) Expect {
	ex := Expect{FrameStep: c.FrameStep()}
	sec := func(t int64, ts int) float64 { return float64(t) / float64(ts) }
	for _, ch := range chunks {
		var p ExpectPart
		for _, pic := range c.Pictures[ch.P0:ch.P1] {
			p.Pictures = append(p.Pictures, sec(pic.PTS, int(c.VideoTimescale)))
		}
		if ch.Audio == nil {
			for _, f := range c.Frames[ch.F0:ch.F1] {
				p.Frames = append(p.Frames, ExpectFrame{At: sec(f.PTS, c.SampleRate), Dur: sec(f.Dur, c.SampleRate), Hash: FrameHash(f.Data)})
			}
		}
		ex.Parts = append(ex.Parts, p)
	}
	return ex.Joined()
}

// Joined is what joining the parts gives, by the joining rule stated on
// its own: each part's pictures are presented right where the previous
// part's end, at their frame step (where a part is missing, the next one
// closes the gap); its audio moves with its pictures; an audio frame that
// would start more than half its duration before the end of the audio
// kept before it, or not after the frame before it, overlaps and is
// dropped.
func (ex Expect) Joined() Expect {
	out := Expect{FrameStep: ex.FrameStep, Pauses: ex.Pauses}
	var off, end, aLast, aEnd float64 // off: the part's joined time minus its own
	haveA := false
	for k, p := range ex.Parts {
		first, last := math.Inf(1), math.Inf(-1)
		for _, pts := range p.Pictures {
			first, last = min(first, pts), max(last, pts+ex.FrameStep)
		}
		if k > 0 && len(p.Pictures) > 0 {
			off = end - first
		}
		if len(p.Pictures) > 0 {
			end = last + off
		}
		q := ExpectPart{Pictures: p.Pictures}
		for _, f := range p.Frames {
			// (eps: times in seconds carry rounding; ticks do not.)
			const eps = 1e-5
			if haveA && (f.At+off < aEnd-f.Dur/2-eps || f.At+off <= aLast+eps) {
				continue
			}
			haveA, aLast, aEnd = true, f.At+off, f.At+off+f.Dur
			q.Frames = append(q.Frames, f)
		}
		out.Parts = append(out.Parts, q)
	}
	return out
}

// Expect is what an output of a sequence of parts must hold: for each
// part, the capture's pictures and audio frames it contributes (those of a
// part left out, and those a join drops, are not listed), in order.
type Expect struct {
	Parts []ExpectPart
	// FrameStep is the duration of a picture, seconds.
	FrameStep float64
	// Pauses are the capture times (seconds) of pictures that follow a
	// pause of the video: the step before them is the capture's.
	Pauses []float64
}

// ExpectPart is one part's contribution: picture presentation times and
// audio frames (time in seconds, bytes' MD5) on the capture's timeline.
type ExpectPart struct {
	Pictures []float64 // decode order
	Frames   []ExpectFrame
}

// ExpectFrame is an audio frame of the capture: its time and duration
// (seconds) and the MD5 of its bytes.
type ExpectFrame struct {
	At, Dur float64
	Hash    string
}

// Tolerance is how far apart two times may be and still count as equal:
// the rounding of the timescales that the parts and outputs use.
const Tolerance = 0.0011

// Check compares an output's packets with what a sequence of parts must
// give: the pictures of every part, in order, each part's pictures at a
// constant offset from the capture (no hole, no stretched frame: across a
// join the pictures step by one frame, unless the capture pauses there);
// every audio frame listed, in order, byte for byte (no frame lost, none
// added); and each part's audio at its pictures' offset within
// Tolerance (sync). It returns what is wrong, or nil.
func Check(ex Expect, video, audio []Packet) error {
	var errs []error
	var want []float64
	var parts []int // the part of each picture
	for k, p := range ex.Parts {
		want = append(want, p.Pictures...)
		for range p.Pictures {
			parts = append(parts, k)
		}
	}
	if len(video) != len(want) {
		return fmt.Errorf("%d pictures, want %d", len(video), len(want))
	}
	// Each part's offset from the capture, from its first picture.
	off := make([]float64, len(ex.Parts))
	i := 0
	for k, p := range ex.Parts {
		if len(p.Pictures) > 0 {
			off[k] = video[i].PTS - p.Pictures[0]
		}
		i += len(p.Pictures)
	}
	for i, v := range video {
		if d := v.PTS - want[i] - off[parts[i]]; math.Abs(d) > Tolerance {
			errs = append(errs, fmt.Errorf("picture %d (part %d) presented %.4f s from its place", i, parts[i], d))
			if len(errs) > 5 {
				break
			}
		}
	}
	// Presentation steps: one frame everywhere but at the capture's pauses.
	pts := make([]float64, len(video))
	cap := append([]float64(nil), want...)
	for i, v := range video {
		pts[i] = v.PTS
	}
	sort.Float64s(pts)
	sort.Float64s(cap)
	for i := 1; i < len(pts); i++ {
		step := pts[i] - pts[i-1]
		paused := false
		for _, p := range ex.Pauses {
			if math.Abs(cap[i]-p) < ex.FrameStep/2 {
				paused = true
				if math.Abs(step-(cap[i]-cap[i-1])) > Tolerance {
					errs = append(errs, fmt.Errorf("the pause before picture %d lasts %.4f s, the capture's %.4f s", i, step, cap[i]-cap[i-1]))
				}
			}
		}
		if !paused && math.Abs(step-ex.FrameStep) > Tolerance {
			errs = append(errs, fmt.Errorf("presentation step %.4f s before picture %d (at %.3f s), the frame step is %.4f s", step, i, pts[i], ex.FrameStep))
			if len(errs) > 10 {
				break
			}
		}
	}
	// Audio: every frame, in order, byte for byte, each part's at its
	// pictures' offset.
	var wantA []ExpectFrame
	var aparts []int
	for k, p := range ex.Parts {
		wantA = append(wantA, p.Frames...)
		for range p.Frames {
			aparts = append(aparts, k)
		}
	}
	if len(audio) != len(wantA) {
		errs = append(errs, fmt.Errorf("%d audio frames, want %d", len(audio), len(wantA)))
	} else {
		worst, at := 0.0, -1
		for i, a := range audio {
			if a.Hash != wantA[i].Hash {
				errs = append(errs, fmt.Errorf("audio frame %d (part %d) is not the capture's", i, aparts[i]))
				break
			}
			if d := a.PTS - wantA[i].At - off[aparts[i]]; math.Abs(d) > math.Abs(worst) {
				worst, at = d, i
			}
		}
		if math.Abs(worst) > Tolerance {
			errs = append(errs, fmt.Errorf("audio frame %d (part %d) is %.4f s off its pictures (sync)", at, aparts[at], worst))
		}
	}
	return errors.Join(errs...)
}

// fmp4Playlist returns the init section and segment files of a media
// playlist of fMP4 segments; ok is false for any other input.
func fmp4Playlist(t testing.TB, input string) ([]string, bool) {
	if !strings.HasSuffix(input, ".m3u8") {
		return nil, false
	}
	b, err := os.ReadFile(input)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(input)
	var files []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "#EXT-X-MAP:"):
			_, uri, _ := strings.Cut(line, `URI="`)
			uri, _, _ = strings.Cut(uri, `"`)
			files = append(files, filepath.Join(dir, uri))
		case line != "" && !strings.HasPrefix(line, "#"):
			if !strings.HasSuffix(line, ".m4s") {
				return nil, false
			}
			files = append(files, filepath.Join(dir, line))
		}
	}
	return files, true
}

// readFMP4 reads the samples of an init section and its media segments
// (files in order; a later init section, after a discontinuity, replaces
// the one before) with mp4ff.
func readFMP4(t testing.TB, files []string) (video, audio []Packet) {
	t.Helper()
	var init *mp4.InitSegment
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := mp4.DecodeFile(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if f.Init != nil {
			init = f.Init
		}
		for _, seg := range f.Segments {
			for _, frag := range seg.Fragments {
				for _, traf := range frag.Moof.Trafs {
					trak := trackOf(init, traf.Tfhd.TrackID)
					trex, _ := init.Moov.Mvex.GetTrex(traf.Tfhd.TrackID)
					samples, err := frag.GetFullSamples(trex)
					if err != nil {
						t.Fatal(err)
					}
					ts := float64(trak.Mdia.Mdhd.Timescale)
					isAudio := trak.Mdia.Hdlr.HandlerType == "soun"
					for _, s := range samples {
						if s.Size == 0 {
							continue
						}
						p := Packet{Audio: isAudio, DTS: float64(s.DecodeTime) / ts,
							PTS: float64(s.PresentationTime()) / ts, Dur: float64(s.Dur) / ts}
						if isAudio {
							p.Hash = FrameHash(s.Data)
							audio = append(audio, p)
						} else {
							video = append(video, p)
						}
					}
				}
			}
		}
	}
	return video, audio
}

// trackOf returns the trak of an init section with the track ID id.
func trackOf(init *mp4.InitSegment, id uint32) *mp4.TrakBox {
	for _, tr := range init.Moov.Traks {
		if tr.Tkhd.TrackID == id {
			return tr
		}
	}
	return nil
}
