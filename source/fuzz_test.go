package source

import (
	"bytes"
	"io"
	"testing"

	"github.com/livechunk/livechunk/internal/testkit/mediatest"
)

// drain reads src to the end and checks the invariants every Source
// keeps: typed errors, no empty NAL units, no empty audio frames. It reads
// with NextPacket (both tracks), or with Next (video only) when videoOnly
// is set.
func drain(t *testing.T, src Source, err error, videoOnly ...bool) {
	if err != nil {
		if !isTypedErr(err) {
			t.Fatalf("untyped error: %v", err)
		}
		return
	}
	next := src.NextPacket
	if len(videoOnly) > 0 && videoOnly[0] {
		next = func() (Packet, error) {
			s, err := src.Next()
			return Packet{Kind: KindVideo, Video: s}, err
		}
	}
	for range 20000 {
		p, err := next()
		if err == io.EOF {
			return
		}
		if err != nil {
			if !isTypedErr(err) {
				t.Fatalf("untyped error: %v", err)
			}
			if _, err2 := src.NextPacket(); err2 == nil {
				t.Fatal("NextPacket succeeds after an error")
			}
			return
		}
		if p.Kind == KindAudio {
			if len(p.Audio.Data) == 0 {
				t.Fatal("empty audio frame")
			}
			continue
		}
		s := p.Video
		if len(s.NALUs) == 0 {
			t.Fatal("sample without NAL units")
		}
		for _, n := range s.NALUs {
			if len(n) == 0 {
				t.Fatal("empty NAL unit")
			}
		}
	}
}

// onlyReader hides Seek and ReadAt, for the sequential code paths.
type onlyReader struct{ io.Reader }

func FuzzMP4(f *testing.F) {
	mediatest.AddFuzzSeeds(f, "baseline.mp4", "bframes.mp4", "vfr.mov", "fragmented.mp4", "chunk2.mp4", "av.mp4")
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := NewMP4(bytes.NewReader(data), Options{})
		drain(t, m, err)
		m, err = NewMP4(bytes.NewReader(data), Options{})
		drain(t, m, err, true)
		m, err = NewMP4(onlyReader{bytes.NewReader(data)}, Options{})
		drain(t, m, err)
	})
}

func FuzzTS(f *testing.F) {
	mediatest.AddFuzzSeeds(f, "reschange.ts", "wrap.ts", "av.ts")
	f.Fuzz(func(t *testing.T, data []byte) {
		ts, err := NewTS(bytes.NewReader(data), Options{})
		drain(t, ts, err)
	})
}

func FuzzAnnexB(f *testing.F) {
	mediatest.AddFuzzSeeds(f, "raw.h264")
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, opt := range []Options{{}, {FrameRate: 30, ignoreVUI: true}} {
			a, err := NewAnnexB(bytes.NewReader(data), opt)
			if err != nil {
				drain(t, a, err)
				continue
			}
			prev := int64(-1 << 62)
			for range 20000 {
				s, err := a.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					if !isTypedErr(err) {
						t.Fatalf("untyped error: %v", err)
					}
					break
				}
				if s.DTS <= prev || s.PTS < s.DTS || s.Duration <= 0 {
					t.Fatalf("dts %d after %d, pts %d, duration %d", s.DTS, prev, s.PTS, s.Duration)
				}
				prev = s.DTS
			}
		}
	})
}
