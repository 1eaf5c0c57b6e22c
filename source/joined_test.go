package source

import (
	"io"
	"testing"

	"github.com/livechunk/livechunk/chunker"
)

// fakePart is a Source of lead audio frames (1024 samples at 48 kHz, each
// declaring dur) followed by pictures at 30 fps in a 90 kHz clock.
type fakePart struct {
	audio, video int
	lastDur      int64 // declared duration of the last audio frame (0: none)
	a, v         int
}

func (f *fakePart) Info() Info {
	return Info{Timescale: 90000, Audio: &AudioInfo{Timescale: 48000, ASC: []byte{0x11, 0x90},
		AACInfo: chunker.AACInfo{SampleRate: 48000, FrameSamples: 1024}}}
}

func (f *fakePart) Next() (chunker.Sample, error) { return nextVideo(f.NextPacket) }

func (f *fakePart) NextPacket() (Packet, error) {
	switch {
	case f.a < f.audio:
		f.a++
		a := chunker.AudioSample{PTS: int64(f.a-1) * 1024, Data: []byte{byte(f.a)}}
		if f.a == f.audio {
			a.Duration = f.lastDur
		}
		return Packet{Kind: KindAudio, Audio: a}, nil
	case f.v < f.video:
		f.v++
		t := 21*90000 + int64(f.v-1)*3000 // after the lead audio
		return Packet{Kind: KindVideo, Video: chunker.Sample{DTS: t, PTS: t, Duration: 3000, NALUs: [][]byte{{0x65, 1}}}}, nil
	}
	return Packet{}, io.EOF
}

// TestJoinedLeadAudio: parts whose audio runs ahead of their first picture
// by more frames than are held keep their audio in order, and a frame
// that declares a huge duration (a broken file) does not push the next
// part's audio off as overlapping: the same frames come out as when it
// declares none.
func TestJoinedLeadAudio(t *testing.T) {
	read := func(audio int, lastDur int64) int {
		src, err := Loop(func() (Source, error) { return &fakePart{audio: audio, video: 30, lastDur: lastDur}, nil }, 2)
		if err != nil {
			t.Fatal(err)
		}
		n, last := 0, int64(-1)
		for {
			p, err := src.NextPacket()
			if err == io.EOF {
				return n
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Kind != KindAudio {
				continue
			}
			if p.Audio.PTS <= last {
				t.Fatalf("%d lead frames: audio frame %d at %d, after %d", audio, n, p.Audio.PTS, last)
			}
			last = p.Audio.PTS
			n++
		}
	}
	if n := read(maxLeadAudio+76, 0); n < 2*(maxLeadAudio+76)-2 {
		t.Errorf("more lead frames than are held: %d audio frames of %d", n, 2*(maxLeadAudio+76))
	}
	if n, want := read(50, 1<<31), read(50, 0); n != want {
		t.Errorf("a frame declared to last hours: %d audio frames, %d without that declaration", n, want)
	}
}
