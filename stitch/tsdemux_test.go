package stitch

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/livechunk/livechunk/internal/mpegts"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
)

// TestTSDemuxSearchesFar: an object whose first audio packet comes after
// 20 MiB (here of null packets, after the program tables) is searched in
// steps up to 32 MiB and demultiplexed whole, as the same object without
// the stuffing is.
func TestTSDemuxSearchesFar(t *testing.T) {
	in, err := os.ReadFile(mediatest.Testdata("av.ts"))
	if err != nil {
		t.Fatal(err)
	}
	first := -1 // the first packet that is not a program table
	for i := 0; i+mpegts.PacketSize <= len(in); i += mpegts.PacketSize {
		if pid := int(in[i+1]&0x1f)<<8 | int(in[i+2]); pid != 0 && pid != 0x11 && pid != 0x1000 {
			first = i
			break
		}
	}
	if first <= 0 {
		t.Fatal("no program tables at the start of av.ts")
	}
	null := make([]byte, mpegts.PacketSize)
	null[0], null[1], null[2], null[3] = 0x47, 0x1f, 0xff, 0x10
	stuffed := slices.Clone(in[:first])
	for len(stuffed) < first+20<<20 {
		stuffed = append(stuffed, null...)
	}
	stuffed = append(stuffed, in[first:]...)
	type counts struct {
		pictures, frames int
		asc              string
	}
	demux := func(b []byte) (counts, error) {
		var c counts
		err := tsDemux(bytes.NewReader(b), func(error) {},
			func(_, _ int64, _ [][]byte) error { c.pictures++; return nil },
			func(a *tsAudio) error {
				if a != nil {
					c.asc = fmt.Sprintf("%x", a.asc)
				}
				return nil
			},
			func(_ int64, frames [][]byte) error { c.frames += len(frames); return nil })
		return c, err
	}
	want, err := demux(in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := demux(stuffed)
	if err != nil {
		t.Fatalf("after 20 MiB of stuffing: %v", err)
	}
	if got != want || want.pictures == 0 || want.frames == 0 || want.asc == "" {
		t.Errorf("after 20 MiB of stuffing: %+v, without: %+v", got, want)
	}
}
