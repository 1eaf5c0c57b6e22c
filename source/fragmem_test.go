package source_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"runtime"
	"testing"

	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"github.com/livechunk/livechunk/source"
)

// TestFragmentedMdatReadInPlace: a fragmented MP4 read through an
// io.ReaderAt (a file, an upload held by a server) has its mdat boxes read
// a sample at a time, not whole: a last mdat padded by 64 MiB costs no
// memory of its own (it was read into a buffer grown to 1-4 times its
// size, outside any bound a server sets on bodies).
func TestFragmentedMdatReadInPlace(t *testing.T) {
	data, err := os.ReadFile(mediatest.Testdata("fragmented.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	// Pad the last mdat (the boxes after it, an mfra, move along).
	last := -1
	for off := 0; off+8 <= len(data); {
		size := int(binary.BigEndian.Uint32(data[off:]))
		if size < 8 {
			t.Fatalf("box at %d of size %d", off, size)
		}
		if string(data[off+4:off+8]) == "mdat" {
			last = off
		}
		off += size
	}
	if last < 0 {
		t.Fatal("no mdat in the fixture")
	}
	const pad = 64 << 20
	end := last + int(binary.BigEndian.Uint32(data[last:]))
	padded := append(append(append([]byte{}, data[:end]...), make([]byte, pad)...), data[end:]...)
	binary.BigEndian.PutUint32(padded[last:], binary.BigEndian.Uint32(data[last:])+pad)

	count := func(b []byte) (int, uint64) {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		src, err := source.NewMP4(bytes.NewReader(b), source.Options{})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			_, err := src.NextPacket()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		runtime.ReadMemStats(&after)
		return n, after.TotalAlloc - before.TotalAlloc
	}
	want, base := count(data)
	got, alloc := count(padded)
	if got != want {
		t.Fatalf("%d packets from the padded file, %d from the file", got, want)
	}
	if alloc > base+8<<20 {
		t.Errorf("reading the file with a 64 MiB mdat allocated %d MiB (%d KiB without)", alloc>>20, base>>10)
	}
}
