package mpegts_test

import (
	"bytes"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/livechunk/livechunk/internal/mpegts"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
)

// TestSkipVideo: through SkipVideo, a real stream loses exactly the
// packets of the pid that ffprobe calls its video stream and null packets,
// whatever the sizes of the reads on either side; a cut last packet is
// passed on.
func TestSkipVideo(t *testing.T) {
	mediatest.RequireTool(t, "ffprobe")
	for _, name := range []string{"av.ts", "wrap.ts", "reschange.ts"} {
		p := mediatest.Testdata(name)
		in, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		video := -1
		for _, l := range strings.Split(string(mediatest.Run(t, "ffprobe", "-v", "error",
			"-show_entries", "stream=id,codec_type", "-of", "csv=p=0", p)), "\n") {
			if kind, id, ok := strings.Cut(strings.TrimSpace(l), ","); ok && kind == "video" {
				v, err := strconv.ParseInt(id, 0, 32)
				if err != nil {
					t.Fatal(err)
				}
				video = int(v)
			}
		}
		if video < 0 {
			t.Fatalf("%s: ffprobe finds no video stream", name)
		}
		// A null packet (stuffing) after the first one.
		null := make([]byte, mpegts.PacketSize)
		null[0], null[1], null[2], null[3] = 0x47, 0x1f, 0xff, 0x10
		in = slices.Concat(in[:mpegts.PacketSize], null, in[mpegts.PacketSize:])
		var want []byte
		skipped := 0
		for i := 0; i+mpegts.PacketSize <= len(in); i += mpegts.PacketSize {
			pkt := in[i : i+mpegts.PacketSize]
			if pid := int(pkt[1]&0x1f)<<8 | int(pkt[2]); pid == video || pid == 0x1fff {
				skipped++
				continue
			}
			want = append(want, pkt...)
		}
		cut := in[len(in)-mpegts.PacketSize : len(in)-100] // a cut packet at the end
		in = append(in[:len(in):len(in)], cut...)
		want = append(want, cut...)
		if skipped == 0 || len(want) == len(in) {
			t.Fatalf("%s: no video packets to skip", name)
		}
		for _, c := range []struct {
			name string
			r    func(io.Reader) io.Reader
			w    func(io.Reader) io.Reader
		}{
			{"whole", func(r io.Reader) io.Reader { return r }, func(r io.Reader) io.Reader { return r }},
			{"half reads in", iotest.HalfReader, func(r io.Reader) io.Reader { return r }},
			{"byte reads out", func(r io.Reader) io.Reader { return r }, iotest.OneByteReader},
			{"both", iotest.OneByteReader, iotest.HalfReader},
		} {
			got, err := io.ReadAll(c.w(mpegts.SkipVideo(c.r(bytes.NewReader(in)))))
			if err != nil {
				t.Fatalf("%s, %s: %v", name, c.name, err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s, %s: %d bytes out, want %d (the input's %d without %d video packets)", name, c.name, len(got), len(want), len(in), skipped)
			}
		}
	}
}

// TestSkipVideoLive: a packet is passed on as soon as it has arrived, even
// when the reader asks for more (a live push sends its program tables
// and then, for a while, only video).
func TestSkipVideoLive(t *testing.T) {
	in, err := os.ReadFile(mediatest.Testdata("av.ts"))
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write(in[:mpegts.PacketSize]) // a program table, then nothing
	got := make(chan int, 1)
	go func() {
		n, _ := mpegts.SkipVideo(pr).Read(make([]byte, 7*mpegts.PacketSize))
		got <- n
	}()
	select {
	case n := <-got:
		if n != mpegts.PacketSize {
			t.Errorf("read %d bytes, want the one packet", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Read waits for more packets than have arrived")
	}
}
