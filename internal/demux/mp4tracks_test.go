package demux

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"
)

// TestTracks selects the tracks of the fixtures, and of variants without
// their H.264 track or with another video codec in its place.
func TestTracks(t *testing.T) {
	for _, c := range []struct {
		file          string
		edit          func(*mp4.MoovBox) // nil: as it is
		video, audio  uint32             // track IDs, 0 none
		fragmented    bool
		err           error
		ignoredAudio  int
		videoEditList bool
	}{
		{file: "av.mp4", video: 1, audio: 2, videoEditList: true},
		{file: "baseline.mp4", video: 1, videoEditList: true},
		{file: "vfr.mov", video: 1, videoEditList: true},
		{file: "fragmented.mp4", video: 1, fragmented: true},
		{file: "av.mp4", edit: renameVideo("hvc1"), err: ErrUnsupported},
		{file: "av.mp4", edit: renameVideo("mp4v"), audio: 2},
		{file: "baseline.mp4", edit: renameVideo("mp4v"), err: ErrUnsupported},
	} {
		name := c.file
		if c.edit != nil {
			name += "/edited"
		}
		t.Run(name, func(t *testing.T) {
			file, err := os.ReadFile(filepath.Join("..", "..", "testdata", c.file))
			if err != nil {
				t.Fatal(err)
			}
			mv := readMovie(t, file)
			if c.edit != nil {
				c.edit(mv.Moov)
			}
			ts, err := mv.Tracks()
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("%v, want %v", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id(ts.Video) != c.video || id(ts.Audio) != c.audio || mv.Fragmented() != c.fragmented ||
				len(ts.IgnoredAudio) != c.ignoredAudio {
				t.Fatalf("video %d, audio %d, fragmented %v, ignored %q; want %d, %d, %v", id(ts.Video), id(ts.Audio),
					mv.Fragmented(), ts.IgnoredAudio, c.video, c.audio, c.fragmented)
			}
			if v := ts.Video; v != nil {
				if v.Edit.Present != c.videoEditList || !IsAVC(v.Entries[0]) || v.Timescale == 0 {
					t.Errorf("video track %+v", v)
				}
				if !c.fragmented {
					p, err := v.Samples()
					if err != nil || p.Len() == 0 {
						t.Errorf("video samples: %v", err)
					}
				}
			}
			if a := ts.Audio; a != nil && (len(a.ASC) == 0 || a.AAC.SampleRate == 0) {
				t.Errorf("audio track %+v", a)
			}
		})
	}
}

func id(t *Track) uint32 {
	if t == nil {
		return 0
	}
	return t.ID
}

// renameVideo gives the sample entry of the first video track another
// type: a codec that is not H.264.
func renameVideo(typ string) func(*mp4.MoovBox) {
	return func(m *mp4.MoovBox) {
		for _, t := range m.Traks {
			if e, ok := t.Mdia.Minf.Stbl.Stsd.Children[0].(*mp4.VisualSampleEntryBox); ok {
				e.SetType(typ)
				return
			}
		}
	}
}
