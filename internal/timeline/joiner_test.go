package timeline

import (
	"slices"
	"testing"
)

// part is a synthetic part: n pictures of frame ticks each (clock.Video),
// decoded reorder ticks before they are presented, presented from pts0;
// audio frames of aframe ticks (clock.Audio) from a0 to before a1.
type part struct {
	clock          Clock
	n              int
	frame, reorder int64
	pts0           int64
	aframe, a0, a1 int64
}

func (p part) pictures() (dts, pts []int64) {
	for i := range p.n {
		// I P B B ...: decode order with the presentation offset of a
		// two-B-frame GOP where reorder > 0.
		d := p.pts0 - p.reorder + int64(i)*p.frame
		pr := d + p.reorder
		if p.reorder > 0 && i > 0 {
			switch i % 3 {
			case 1:
				pr += 2 * p.frame
			case 2, 0:
				pr -= p.frame
			}
		}
		dts, pts = append(dts, d), append(pts, pr)
	}
	return dts, pts
}

func (p part) audio() []int64 {
	var out []int64
	for t := p.a0; t < p.a1; t += p.aframe {
		out = append(out, t)
	}
	return out
}

func TestJoiner(t *testing.T) {
	v30 := Clock{Video: 15360, Audio: 48000}
	// Parts of 112 pictures at 30 fps (3.73 s, 179200 samples at 48 kHz:
	// 175 AAC frames), cut from one continuous capture unless said.
	//
	// Phone chunks from ffmpeg's segment muxer with B-frames: pictures
	// presented from 0; the audio between the keyframe's decode and
	// presentation time went into the next chunk, so each chunk's audio
	// starts 53.3 ms (2560 samples) before its first picture and ends that
	// much before its last picture does.
	bframes := part{clock: v30, n: 112, frame: 512, reorder: 1024, aframe: 1024, a0: -2560, a1: 179200 - 2560}
	// The video delayed 0.5 s behind its audio (an edit list), the audio
	// running to the pictures' end: every join overlaps 0.5 s of audio
	// (24 frames).
	lead := part{clock: v30, n: 112, frame: 512, pts0: 7680, aframe: 1024, a0: 0, a1: 179200 + 24000}
	// Audio that runs 0.3 s past the last picture: 190 frames, the last
	// ending 15360 samples past the pictures (15 frames overlap).
	tail := part{clock: v30, n: 112, frame: 512, aframe: 1024, a0: 0, a1: 179200 + 14400}
	// Encoder priming: one frame before the first picture, the audio
	// ending with the pictures (the priming frame overlaps).
	priming := part{clock: v30, n: 112, frame: 512, aframe: 1024, a0: -1024, a1: 179200}
	// The same pictures at 90 kHz (another phone, or a restart).
	at90k := part{clock: Clock{Video: 90000, Audio: 48000}, n: 112, frame: 3000, reorder: 6000, aframe: 1024, a0: -2560, a1: 179200 - 2560}
	// A deeper reorder delay than the part before.
	deeper := bframes
	deeper.reorder = 2048
	for _, tc := range []struct {
		name    string
		parts   []part
		dropped int64 // audio frames that truly overlap
		shifted int
	}{
		{"B-frame phone chunks", []part{bframes, bframes, bframes}, 0, 0},
		{"audio lead overlapping", []part{lead, lead, lead}, 2 * 24, 0},
		{"audio tail overlapping", []part{tail, tail}, 15, 0},
		{"priming", []part{priming, priming, priming}, 2, 0},
		{"timescale change", []part{bframes, at90k, bframes}, 0, 0},
		{"deeper reorder delay", []part{bframes, deeper}, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := NewJoiner(90000, 48000)
			var odts, opts []int64
			var aout []int64
			kept, total := int64(0), int64(0)
			for k, p := range tc.parts {
				j.Begin(p.clock)
				dts, pts := p.pictures()
				var firstPTS int64
				for i := range dts {
					d, pr, _ := j.Video(dts[i], pts[i], p.frame)
					if i == 0 {
						firstPTS = pr
					}
					odts, opts = append(odts, d), append(opts, pr)
				}
				first := true
				for _, a := range p.audio() {
					total++
					out, _, ok := j.Audio(a, p.aframe)
					if !ok {
						continue
					}
					kept++
					aout = append(aout, out)
					if first {
						first = false
						// Sync: the part's first kept frame keeps its
						// distance from the part's first picture.
						want := Rescale(a, p.clock.Audio, 90000) - Rescale(dts[0]+p.reorder, p.clock.Video, 90000)
						got := Rescale(out, 48000, 90000) - firstPTS
						if diff := got - want; k > 0 && a == p.a0 && (diff < -90 || diff > 90) {
							t.Errorf("part %d: audio starts %d ticks from its first picture, input %d", k, got, want)
						}
					}
				}
			}
			// Pictures step by their frame duration, decode and
			// presentation order alike: no hole, no stretched frame.
			slices.Sort(opts)
			for i := 1; i < len(odts); i++ {
				if s := odts[i] - odts[i-1]; s < 2999 || s > 3001 {
					if tc.shifted == 0 {
						t.Errorf("decode step %d at picture %d", s, i)
					}
				}
			}
			holes := 0
			for i := 1; i < len(opts); i++ {
				if s := opts[i] - opts[i-1]; s < 2999 || s > 3001 {
					holes++
				}
			}
			if holes != tc.shifted {
				t.Errorf("%d presentation steps other than a frame, want %d", holes, tc.shifted)
			}
			if got := total - kept; got != tc.dropped || j.Stats().AudioDropped != tc.dropped {
				t.Errorf("%d audio frames dropped (stats %d), want %d", got, j.Stats().AudioDropped, tc.dropped)
			}
			if j.Stats().Shifted != tc.shifted {
				t.Errorf("%d parts shifted, want %d", j.Stats().Shifted, tc.shifted)
			}
			if tc.dropped == 0 && tc.shifted == 0 {
				// Audio continuous across joins: every frame follows the one
				// before it exactly.
				for i := 1; i < len(aout); i++ {
					if aout[i]-aout[i-1] != 1024 {
						t.Errorf("audio frame %d: step %d", i, aout[i]-aout[i-1])
						break
					}
				}
			}
		})
	}
}

// TestJoinerAudioPart: a part without pictures starts where the part
// before it ends (the later of its pictures and its audio), and the
// pictures of the next part start after that audio: they do not play over
// it.
func TestJoinerAudioPart(t *testing.T) {
	j := NewJoiner(90000, 48000)
	c := Clock{Video: 90000, Audio: 48000}
	j.Begin(c)
	for i := range int64(30) {
		j.Video(i*3000, i*3000, 3000)
	}
	for a := int64(0); a < 48000; a += 1024 {
		j.Audio(a, 1024)
	}
	// The pictures end at 1 s; the audio at 47 frames, 48128 samples.
	j.Begin(c)
	j.PlaceAudio(0)
	for k := range int64(10) {
		if got, _, ok := j.Audio(k*1024, 1024); !ok || got != (47+k)*1024 {
			t.Fatalf("audio-only part: frame %d at %d (ok %v), want %d", k, got, ok, (47+k)*1024)
		}
	}
	j.Begin(c)
	if d, _, _ := j.Video(0, 0, 3000); d != Rescale(57*1024, 48000, 90000) {
		t.Errorf("pictures after an audio-only part start at %d, want %d (its audio's end)", d, Rescale(57*1024, 48000, 90000))
	}
	// Audio that ends before the pictures: an audio-only part starts
	// after the pictures.
	j = NewJoiner(90000, 48000)
	j.Begin(c)
	for i := range int64(30) {
		j.Video(i*3000, i*3000, 3000)
	}
	j.Audio(0, 1024)
	j.Begin(c)
	j.PlaceAudio(0)
	if got, _, ok := j.Audio(0, 1024); !ok || got != 48000 {
		t.Errorf("audio-only part after pictures that run longer than their audio starts at %d, want 48000", got)
	}
}

// TestJoinerNoLastDuration: a part whose last picture has no duration
// (an stts delta of 0) is followed at the frame step of its pictures, not
// at the same decode time.
func TestJoinerNoLastDuration(t *testing.T) {
	j := NewJoiner(90000, 0)
	c := Clock{Video: 90000}
	for range 2 {
		j.Begin(c)
		for i := range int64(10) {
			dur := int64(3000)
			if i == 9 {
				dur = 0
			}
			j.Video(i*3000, i*3000, dur)
		}
	}
	j.Begin(c)
	if d, _, _ := j.Video(0, 0, 3000); d != 60000 {
		t.Errorf("third part starts at %d, want 60000", d)
	}
}
