package mediatest

import (
	"bytes"
	"os"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"
)

// Rotated returns the tkhd matrix that displays a picture turned by
// degrees (90, 180 or 270) clockwise, as a phone held upright records it
// (ffprobe reports it as a rotation of -degrees).
func Rotated(degrees int) [9]int32 {
	const one, w = 0x10000, 0x40000000
	switch degrees {
	case 90:
		return [9]int32{0, one, 0, -one, 0, 0, 0, 0, w}
	case 180:
		return [9]int32{-one, 0, 0, 0, -one, 0, 0, 0, w}
	case 270:
		return [9]int32{0, -one, 0, one, 0, 0, 0, 0, w}
	}
	return mp4.UnityMatrix()
}

// SetRotation rewrites the MP4 file at path so that its H.264 track's tkhd
// matrix turns the picture by degrees clockwise for display. (ffmpeg 5.1
// has no option that writes one.)
func SetRotation(t testing.TB, path string, degrees int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := mp4.DecodeFile(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, trak := range f.Moov.Traks {
		if len(trak.Mdia.Minf.Stbl.Stsd.Children) > 0 && trak.Mdia.Minf.Stbl.Stsd.Children[0].Type() == "avc1" {
			trak.Tkhd.Matrix = Rotated(degrees)
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%s: %d avc1 tracks", path, n)
	}
	var out bytes.Buffer
	if err := f.Encode(&out); err != nil {
		t.Fatal(err)
	}
	if out.Len() != len(data) {
		t.Fatalf("%s: rewritten as %d bytes, was %d", path, out.Len(), len(data))
	}
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
