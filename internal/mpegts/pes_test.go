package mpegts_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	mcmpegts "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"

	"github.com/livechunk/livechunk/internal/mpegts"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
)

// unit is one access unit or one AAC frame, as a comparable string.
type unit struct {
	audio    bool
	pts, dts int64
	data     string
}

func (u unit) String() string {
	return fmt.Sprintf("audio=%v pts=%d dts=%d %d bytes", u.audio, u.pts, u.dts, len(u.data))
}

func join(nalus [][]byte) string { return string(bytes.Join(nalus, []byte{0, 0, 0, 1})) }

// withMediacommon demuxes b with mediacommon's Reader, the reference.
func withMediacommon(t *testing.T, b []byte) (units []unit, video, audio uint16) {
	r := &mcmpegts.Reader{R: bytes.NewReader(b)}
	if err := r.Initialize(); err != nil {
		t.Fatal(err)
	}
	video, audio = mpegts.NoPID, mpegts.NoPID
	for _, tr := range r.Tracks() {
		switch tr.Codec.(type) {
		case *codecs.H264:
			if video == mpegts.NoPID {
				video = tr.PID
				r.OnDataH264(tr, func(pts, dts int64, au [][]byte) error {
					units = append(units, unit{pts: pts, dts: dts, data: join(au)})
					return nil
				})
			}
		case *codecs.MPEG4Audio:
			if audio == mpegts.NoPID {
				audio = tr.PID
				r.OnDataMPEG4Audio(tr, func(pts int64, aus [][]byte) error {
					for _, a := range aus {
						units = append(units, unit{audio: true, pts: pts, data: string(a)})
					}
					return nil
				})
			}
		}
	}
	for {
		err := r.Read()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return units, video, audio
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// withTSDemux demuxes b with this package; errs collects OnErr's reports.
func withTSDemux(t *testing.T, b []byte, video, audio uint16) (units []unit, errs []error) {
	onErr := func(err error) { errs = append(errs, err) }
	dv := mpegts.Depacketizer{PID: video, OnErr: onErr, DropAUD: true, Video: func(pts, dts int64, au [][]byte) error {
		units = append(units, unit{pts: pts, dts: dts, data: join(au)})
		return nil
	}}
	da := mpegts.Depacketizer{PID: audio, OnErr: onErr, Audio: func(pts int64, frames [][]byte) error {
		for _, f := range frames {
			units = append(units, unit{audio: true, pts: pts, data: string(f)})
		}
		return nil
	}}
	r := mpegts.NewReader(bufio.NewReader(bytes.NewReader(b)), onErr, nil)
	for {
		if err := r.Step(&dv, &da); err == io.EOF {
			return units, errs
		} else if err != nil {
			t.Fatal(err)
		}
	}
}

func inputs(t *testing.T) []string {
	paths := []string{mediatest.Testdata("av.ts"), mediatest.Testdata("reschange.ts"), mediatest.Testdata("wrap.ts")}
	for _, in := range mediatest.AudioInputs(t) {
		if filepath.Ext(in.File) == ".ts" {
			paths = append(paths, in.File)
		}
	}
	return paths
}

// TestMatchesMediacommon: every access unit and AAC frame of real streams,
// with its timestamps and bytes, as mediacommon's Reader delivers them
// (which stitch and the source used before), in the same order per track.
func TestMatchesMediacommon(t *testing.T) {
	for _, p := range inputs(t) {
		t.Run(filepath.Base(p), func(t *testing.T) {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			want, video, audio := withMediacommon(t, b)
			got, errs := withTSDemux(t, b, video, audio)
			if len(errs) > 0 {
				t.Errorf("errors: %v", errs)
			}
			for _, isAudio := range []bool{false, true} {
				pick := func(us []unit) []unit {
					return slices.DeleteFunc(slices.Clone(us), func(u unit) bool { return u.audio != isAudio })
				}
				g, w := pick(got), pick(want)
				if len(g) != len(w) {
					t.Fatalf("audio=%v: %d units, mediacommon %d", isAudio, len(g), len(w))
				}
				for i := range g {
					if g[i] != w[i] {
						t.Fatalf("audio=%v unit %d: %v, mediacommon %v", isAudio, i, g[i], w[i])
					}
				}
			}
			if len(got) == 0 {
				t.Fatal("nothing demuxed")
			}
		})
	}
}

// TestDamage: a lost packet costs the PES packet it was in and is
// reported; a repeated packet is dropped; garbage between packets is
// skipped (lost sync) and costs nothing else.
func TestDamage(t *testing.T) {
	b, err := os.ReadFile(mediatest.Testdata("av.ts"))
	if err != nil {
		t.Fatal(err)
	}
	clean, video, audio := withMediacommon(t, b)
	packets := func(b []byte) [][]byte {
		var ps [][]byte
		for i := 0; i+mpegts.PacketSize <= len(b); i += mpegts.PacketSize {
			ps = append(ps, b[i:i+mpegts.PacketSize])
		}
		return ps
	}
	ps := packets(b)
	// A video packet in the middle of a PES packet (neither its first nor
	// its last).
	mid := -1
	for i := len(ps) / 2; i < len(ps)-1; i++ {
		pid := func(p []byte) uint16 { return uint16(p[1]&0x1f)<<8 | uint16(p[2]) }
		if pid(ps[i]) == video && ps[i][1]&0x40 == 0 && ps[i+1][1]&0x40 == 0 && pid(ps[i+1]) == video {
			mid = i
			break
		}
	}
	if mid < 0 {
		t.Fatal("no packet in the middle of a video PES packet")
	}
	build := func(f func(i int, p []byte) [][]byte) []byte {
		var out []byte
		for i, p := range ps {
			for _, q := range f(i, p) {
				out = append(out, q...)
			}
		}
		return out
	}
	t.Run("lost", func(t *testing.T) {
		got, errs := withTSDemux(t, build(func(i int, p []byte) [][]byte {
			if i == mid {
				return nil
			}
			return [][]byte{p}
		}), video, audio)
		if len(errs) != 1 {
			t.Fatalf("errors %v, want one", errs)
		}
		if len(got) != len(clean)-1 {
			t.Fatalf("%d units, want %d (all but the damaged one)", len(got), len(clean)-1)
		}
	})
	// The last packet of a video PES packet lost: the gap shows at the
	// next one's start, and the damaged access unit is delivered cut short
	// (its length is not declared, so it may as well be complete).
	t.Run("lost-tail", func(t *testing.T) {
		pid := func(p []byte) uint16 { return uint16(p[1]&0x1f)<<8 | uint16(p[2]) }
		last := -1
		for i := len(ps) / 2; i < len(ps) && last < 0; i++ {
			if pid(ps[i]) != video || ps[i][1]&0x40 != 0 {
				continue
			}
			for j := i + 1; j < len(ps); j++ {
				if pid(ps[j]) == video {
					if ps[j][1]&0x40 != 0 {
						last = i
					}
					break
				}
			}
		}
		if last < 0 {
			t.Fatal("no last packet of a video PES packet")
		}
		got, errs := withTSDemux(t, build(func(i int, p []byte) [][]byte {
			if i == last {
				return nil
			}
			return [][]byte{p}
		}), video, audio)
		if len(errs) != 1 {
			t.Fatalf("errors %v, want one", errs)
		}
		g, c := sorted(got), sorted(clean)
		if len(g) != len(c) {
			t.Fatalf("%d units, want %d", len(g), len(c))
		}
		cut := 0
		for i := range g {
			if g[i] != c[i] {
				cut++
				if g[i].pts != c[i].pts || len(g[i].data) >= len(c[i].data) || c[i].data[:len(g[i].data)] != g[i].data {
					t.Errorf("unit %d: %v, want a prefix of %v", i, g[i], c[i])
				}
			}
		}
		if cut != 1 {
			t.Errorf("%d units differ, want the one cut short", cut)
		}
	})
	// Two streams joined end to end (cat a.ts b.ts): every PID's counter
	// jumps at the join (the second copy's counters are shifted to make
	// sure), and nothing is lost.
	t.Run("joined", func(t *testing.T) {
		last := map[uint16]byte{}
		for _, p := range ps {
			last[uint16(p[1]&0x1f)<<8|uint16(p[2])] = p[3] & 0x0f
		}
		first := map[uint16]bool{}
		shift := map[uint16]byte{}
		second := bytes.Clone(b[:len(ps)*mpegts.PacketSize])
		for i := 0; i < len(second); i += mpegts.PacketSize {
			p := second[i : i+mpegts.PacketSize]
			pid := uint16(p[1]&0x1f)<<8 | uint16(p[2])
			if !first[pid] {
				first[pid] = true
				shift[pid] = (last[pid] + 3 - p[3]&0x0f) & 0x0f // a gap of two
			}
			p[3] = p[3]&0xf0 | (p[3]+shift[pid])&0x0f
		}
		got, errs := withTSDemux(t, append(bytes.Clone(b[:len(second)]), second...), video, audio)
		if len(errs) == 0 {
			t.Error("no counter gap reported at the join")
		}
		want := append(slices.Clone(clean), clean...)
		if !slices.Equal(sorted(got), sorted(want)) {
			t.Fatalf("%d units, want %d (the stream twice)", len(got), len(want))
		}
	})
	t.Run("repeated", func(t *testing.T) {
		got, errs := withTSDemux(t, build(func(i int, p []byte) [][]byte {
			if i == mid {
				return [][]byte{p, p}
			}
			return [][]byte{p}
		}), video, audio)
		if len(errs) != 0 || !slices.Equal(sorted(got), sorted(clean)) {
			t.Fatalf("%d units (%d clean), errors %v", len(got), len(clean), errs)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		got, errs := withTSDemux(t, build(func(i int, p []byte) [][]byte {
			if i == mid {
				return [][]byte{{1, 2, 3, 4, 5}, p}
			}
			return [][]byte{p}
		}), video, audio)
		if len(errs) != 1 || !slices.Equal(sorted(got), sorted(clean)) {
			t.Fatalf("%d units (%d clean), errors %v", len(got), len(clean), errs)
		}
	})
}

// sorted orders units by track, then by arrival (stable), so that streams
// demuxed by different readers compare by track.
func sorted(us []unit) []unit {
	us = slices.Clone(us)
	slices.SortStableFunc(us, func(a, b unit) int {
		switch {
		case a.audio == b.audio:
			return 0
		case a.audio:
			return 1
		}
		return -1
	})
	return us
}

// TestDetach: data handed out with Detach stays intact while later PES
// packets are reassembled, and Reuse recycles the buffers.
func TestDetach(t *testing.T) {
	b, err := os.ReadFile(mediatest.Testdata("av.ts"))
	if err != nil {
		t.Fatal(err)
	}
	want, video, _ := withMediacommon(t, b)
	var kept []unit
	var bufs [][]byte
	var lists [][][]byte
	var d mpegts.Depacketizer
	d = mpegts.Depacketizer{PID: video, DropAUD: true, OnErr: func(err error) { t.Error(err) },
		Video: func(pts, dts int64, au [][]byte) error {
			buf, nalus := d.Detach()
			bufs, lists = append(bufs, buf), append(lists, nalus)
			kept = append(kept, unit{pts: pts, dts: dts, data: join(au)})
			// Hold the last three; give older buffers back.
			if len(bufs) > 3 {
				d.Reuse(bufs[0], lists[0])
				bufs, lists = bufs[1:], lists[1:]
			}
			return nil
		}}
	for i := 0; i+mpegts.PacketSize <= len(b); i += mpegts.PacketSize {
		if err := d.Packet(b[i : i+mpegts.PacketSize]); err != nil {
			t.Fatal(err)
		}
		// The data of the units still held must not have changed.
		for k := range lists {
			u := kept[len(kept)-len(lists)+k]
			if join(lists[k]) != u.data && len(lists[k]) > 0 {
				t.Fatalf("held unit %v changed", u)
			}
		}
	}
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	var wantVideo []unit
	for _, u := range want {
		if !u.audio {
			wantVideo = append(wantVideo, u)
		}
	}
	if !slices.Equal(kept, wantVideo) {
		t.Fatalf("%d units, want %d", len(kept), len(wantVideo))
	}
}
