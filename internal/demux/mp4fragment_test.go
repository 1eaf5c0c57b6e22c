package demux

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"
)

// TestFragments reads the movie fragments of fragmented.mp4, a real
// fragmented file, moof by moof, and compares every sample of every track
// with what mp4ff computes from the whole file: decode time, duration,
// composition offset, flags, size, and the bytes at its data offset.
func TestFragments(t *testing.T) {
	file, err := os.ReadFile(filepath.Join("..", "..", "testdata", "fragmented.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := mp4.DecodeFile(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	mv := readMovie(t, file)
	ts, err := mv.Tracks()
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range []*Track{ts.Video, ts.Audio} {
		if tr == nil {
			continue
		}
		fr := NewFragments(tr)
		var got []FragSample
		var want []mp4.FullSample
		for _, seg := range f.Segments {
			for _, frag := range seg.Fragments {
				if got, err = fr.Append(got, frag.Moof, int64(frag.Moof.StartPos)); err != nil {
					t.Fatal(err)
				}
				fs, err := frag.GetFullSamples(tr.Trex)
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, fs...)
			}
		}
		if len(got) != len(want) || len(got) == 0 {
			t.Fatalf("track %d: %d samples, mp4ff %d", tr.ID, len(got), len(want))
		}
		for i, g := range got {
			w := want[i]
			data := file[g.Off : g.Off+int64(g.Size)]
			if g.DTS != int64(w.DecodeTime) || g.Dur != w.Dur || g.CTO != w.CompositionTimeOffset || g.Flags != w.Flags ||
				g.Size != w.Size || !bytes.Equal(data, w.Data) {
				t.Fatalf("track %d sample %d: %+v; mp4ff %+v", tr.ID, i, g, w.Sample)
			}
		}
		if fr.NoTFDT {
			t.Errorf("track %d: NoTFDT, the file has tfdt boxes", tr.ID)
		}
	}
}
