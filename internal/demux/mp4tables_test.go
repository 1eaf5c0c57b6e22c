package demux

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"
)

// TestSampleTables walks the sample tables of every track of the
// progressive fixtures, and of variants that use the parts of the format
// the fixtures do not (co64, a uniform stsz, several stsc entries with
// different sample descriptions, stts and ctts entries with a count of 0,
// a ctts shorter than the track), through windows of a few entries to 4 KB,
// and compares each sample's decode time, duration, composition offset,
// sample description, offset and size with what mp4ff computes from the
// whole decoded tables.
func TestSampleTables(t *testing.T) {
	files := map[string][]byte{}
	for _, name := range []string{"av.mp4", "baseline.mp4", "bframes.mp4", "chunk0.mp4", "vfr.mov"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	for name, edit := range map[string]func(*mp4.StblBox){
		"co64":    toCo64,
		"uniform": func(s *mp4.StblBox) { s.Stsz.SampleUniformSize, s.Stsz.SampleSize = 1234, nil },
		"chunks":  rechunk,
		"zeros":   zeroCounts,
	} {
		files[name] = editTables(t, files["bframes.mp4"], edit)
	}
	defer func(w int) { tableWindow = w }(tableWindow)
	for name, file := range files {
		want := mp4ffSamples(t, file)
		for _, window := range []int{8, 12, 24, 100, 4 << 10} {
			t.Run(fmt.Sprintf("%s/%d", name, window), func(t *testing.T) {
				tableWindow = window
				mv := readMovie(t, file)
				if len(mv.tabs) != len(want) {
					t.Fatalf("%d tracks, mp4ff has %d", len(mv.tabs), len(want))
				}
				for ti, tab := range mv.tabs {
					p, err := newSamples(mv.r, tab)
					if err != nil {
						t.Fatal(err)
					}
					if p.Len() != uint32(len(want[ti])) {
						t.Errorf("track %d: %d samples, mp4ff has %d", ti, p.Len(), len(want[ti]))
					}
					for k, w := range want[ti] {
						var s Sample
						if err := p.Next(&s); err != nil {
							t.Fatalf("track %d sample %d: %v", ti, k+1, err)
						}
						if s != w {
							t.Fatalf("track %d sample %d: %+v, mp4ff %+v", ti, k+1, s, w)
						}
					}
					var s Sample
					if err := p.Next(&s); err != io.EOF {
						t.Fatalf("track %d: %v after %d samples, want io.EOF", ti, err, len(want[ti]))
					}
				}
			})
		}
	}
}

// readMovie reads the moov box of file.
func readMovie(t *testing.T, file []byte) *Movie {
	t.Helper()
	r := bytes.NewReader(file)
	for off := int64(0); off < int64(len(file)); {
		b, err := ReadBox(r, off, int64(len(file)), true)
		if err != nil {
			t.Fatal(err)
		}
		if b.Type == "moov" {
			mv, err := ReadMovie(r, b)
			if err != nil {
				t.Fatal(err)
			}
			return mv
		}
		off = b.End()
	}
	t.Fatal("no moov box")
	return nil
}

// mp4ffSamples lists the samples of each track as mp4ff computes them.
func mp4ffSamples(t *testing.T, file []byte) [][]Sample {
	t.Helper()
	f, err := mp4.DecodeFile(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]Sample
	for _, trak := range f.Moov.Traks {
		s := trak.Mdia.Minf.Stbl
		var list []Sample
		var off uint64
		lastChunk := 0
		for nr := uint32(1); nr <= s.Stsz.GetNrSamples(); nr++ {
			dts, dur := s.Stts.GetDecodeTime(nr)
			var cto int32
			if s.Ctts != nil && nr <= s.Ctts.EndSampleNr[len(s.Ctts.EndSampleNr)-1] {
				cto = s.Ctts.GetCompositionTimeOffset(nr)
			}
			chunk, _, err := s.Stsc.ChunkNrFromSampleNr(int(nr))
			if err != nil {
				t.Fatal(err)
			}
			if chunk != lastChunk {
				if s.Stco != nil {
					off, err = s.Stco.GetOffset(chunk)
				} else {
					off, err = s.Co64.GetOffset(chunk)
				}
				if err != nil {
					t.Fatal(err)
				}
				lastChunk = chunk
			}
			entry := s.Stsc.FindEntryNrForSampleNr(nr, 0)
			sdi := s.Stsc.GetSampleDescriptionID(1)
			if int(entry) < len(s.Stsc.SampleDescriptionID) {
				sdi = s.Stsc.SampleDescriptionID[entry]
			}
			size := s.Stsz.GetSampleSize(int(nr))
			sync := s.Stss == nil || s.Stss.IsSyncSample(nr)
			list = append(list, Sample{DTS: int64(dts), CTO: cto, Dur: dur, Desc: int(sdi) - 1, Off: off, Size: size, Sync: sync})
			off += uint64(size)
		}
		out = append(out, list)
	}
	return out
}

// editTables returns file with the sample tables of its first track
// changed by edit. The moov box must follow the media data, so that its
// new size moves no sample.
func editTables(t *testing.T, file []byte, edit func(*mp4.StblBox)) []byte {
	t.Helper()
	f, err := mp4.DecodeFile(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if f.Moov.StartPos < f.Mdat.StartPos {
		t.Fatal("the fixture's moov comes before its mdat")
	}
	edit(f.Moov.Traks[0].Mdia.Minf.Stbl)
	var buf bytes.Buffer
	if err := f.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// toCo64 replaces stco by co64 with offsets above 4 GiB (the tables are
// only walked, not read through).
func toCo64(s *mp4.StblBox) {
	co := &mp4.Co64Box{}
	for _, o := range s.Stco.ChunkOffset {
		co.ChunkOffset = append(co.ChunkOffset, uint64(o)+5<<30)
	}
	s.Co64, s.Stco = co, nil
	replaceChild(s, "stco", co)
}

// rechunk regroups the samples into chunks of 1, 3, 2, 3, 2, ... samples
// with alternating sample description indexes.
func rechunk(s *mp4.StblBox) {
	n := s.Stsz.GetNrSamples()
	stsc := &mp4.StscBox{}
	stco := &mp4.StcoBox{}
	chunk, left := uint32(1), n
	for i := 0; left > 0; i++ {
		spc := []uint32{1, 3, 2}[min(i, 1)+i%2]
		if i > 4 && i%3 == 0 {
			spc = 5
		}
		spc = min(spc, left)
		if err := stsc.AddEntry(chunk, spc, uint32(1+i%2)); err != nil {
			panic(err)
		}
		for range 1 + i%3 {
			if left == 0 {
				break
			}
			stco.ChunkOffset = append(stco.ChunkOffset, 1000*chunk)
			chunk++
			left -= min(spc, left)
		}
	}
	s.Stsc, s.Stco = stsc, stco
	replaceChild(s, "stsc", stsc)
	replaceChild(s, "stco", stco)
}

// zeroCounts puts entries with a count of 0 into stts and ctts, and drops
// the last ctts entries.
func zeroCounts(s *mp4.StblBox) {
	st := s.Stts
	st.SampleCount = append([]uint32{1, 0}, append([]uint32{st.SampleCount[0] - 1}, st.SampleCount[1:]...)...)
	st.SampleTimeDelta = append([]uint32{st.SampleTimeDelta[0], 99}, st.SampleTimeDelta...)
	c := s.Ctts
	counts, offs := []uint32{0}, []int32{77}
	for i := range c.SampleOffset[:len(c.SampleOffset)/2] {
		counts = append(counts, c.EndSampleNr[i+1]-c.EndSampleNr[i], 0)
		offs = append(offs, c.SampleOffset[i], 55)
	}
	nc := &mp4.CttsBox{}
	if err := nc.AddSampleCountsAndOffset(counts, offs); err != nil {
		panic(err)
	}
	s.Ctts = nc
	replaceChild(s, "ctts", nc)
}

func replaceChild(s *mp4.StblBox, name string, b mp4.Box) {
	for i, c := range s.Children {
		if c.Type() == name {
			s.Children[i] = b
		}
	}
}
