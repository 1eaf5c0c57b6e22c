package source

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/livechunk/livechunk/internal/accessunit"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
)

// TestChunksResume: a sequence of chunks read up to the end of one file,
// its state carried through JSON into a new Chunks (as a restarted server
// does), reads the following files exactly as one Chunks over them all:
// the same packets, at the same times, with the same bytes.
func TestChunksResume(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	paths, _ := mediatest.AVChunks(t, 4, 48000)
	open := func(limit int) func(i int) (io.Reader, error) {
		return func(i int) (io.Reader, error) {
			switch {
			case i >= len(paths):
				return nil, io.EOF
			case i >= limit:
				return nil, ErrPending
			}
			return os.Open(paths[i])
		}
	}
	whole, err := NewChunks(open(len(paths)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want, wantA := readPackets(t, whole)

	first, err := NewChunks(open(2), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []Packet
	for {
		p, err := first.NextPacket()
		if errors.Is(err, ErrPending) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p.Video.NALUs = accessunit.Clone(p.Video.NALUs)
		p.Audio.Data = bytes.Clone(p.Audio.Data)
		got = append(got, p)
	}
	st, err := first.State()
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var back ChunksState
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if back.Next() != 2 {
		t.Fatalf("state reads file %d next, want 2", back.Next())
	}
	rest := ResumeChunks(open(len(paths)), back, Options{})
	if rest.Info().Timescale != whole.Info().Timescale || rest.Info().Audio == nil {
		t.Fatalf("resumed info %+v", rest.Info())
	}
	v, a := readPackets(t, rest)
	var gotV, gotA int
	for _, p := range got {
		if p.Kind == KindVideo {
			gotV++
		} else {
			gotA++
		}
	}
	if gotV+len(v) != len(want) || gotA+len(a) != len(wantA) {
		t.Fatalf("%d+%d pictures and %d+%d audio frames, want %d and %d", gotV, len(v), gotA, len(a), len(want), len(wantA))
	}
	for i, s := range v {
		w := want[gotV+i]
		if s.DTS != w.DTS || s.PTS != w.PTS || s.Duration != w.Duration || !accessunit.Equal(s.NALUs, w.NALUs) {
			t.Fatalf("resumed picture %d: dts %d pts %d dur %d, want %d %d %d (same bytes %v)", i, s.DTS, s.PTS, s.Duration, w.DTS, w.PTS, w.Duration, accessunit.Equal(s.NALUs, w.NALUs))
		}
	}
	for i, f := range a {
		w := wantA[gotA+i]
		if f.PTS != w.PTS || f.Duration != w.Duration || !bytes.Equal(f.Data, w.Data) {
			t.Fatalf("resumed audio frame %d: pts %d dur %d, want %d %d", i, f.PTS, f.Duration, w.PTS, w.Duration)
		}
	}
}

// TestChunksStateBeforeRead: the State of a resumed Chunks that has read
// no file yet (the next one is still pending) is the state it resumed
// from, parameter sets put in band included.
func TestChunksStateBeforeRead(t *testing.T) {
	paths := []string{"../testdata/chunk0.mp4", "../testdata/chunk1.mp4"}
	open := func(i int) (io.Reader, error) {
		if i >= 1 {
			return nil, ErrPending
		}
		return os.Open(paths[i])
	}
	first, err := NewChunks(open, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for {
		_, err := first.NextPacket()
		if errors.Is(err, ErrPending) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	st, err := first.State()
	if err != nil {
		t.Fatal(err)
	}
	rest := ResumeChunks(open, st, Options{})
	if _, err := rest.NextPacket(); !errors.Is(err, ErrPending) {
		t.Fatalf("resumed NextPacket: %v, want ErrPending", err)
	}
	again, err := rest.State()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(st)
	got, _ := json.Marshal(again)
	if !bytes.Equal(got, want) {
		t.Errorf("state of a resumed Chunks before reading:\n%s\nwant\n%s", got, want)
	}
}
