package mpegts_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	mcmpegts "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"

	"github.com/livechunk/livechunk/internal/mpegts"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
)

// pes is one PES packet of an elementary stream: an access unit, or the
// AAC frames of one audio PES.
type pes struct {
	audio    bool
	pts, dts int64
	units    [][]byte // NAL units without delimiters, or raw AAC frames
}

// readStreams demuxes an MPEG-TS file into its video and audio PES packets,
// in stream order, and returns the audio configuration.
func readStreams(t testing.TB, name string) ([]pes, mpeg4audio.AudioSpecificConfig) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	r := &mcmpegts.Reader{R: bytes.NewReader(b)}
	if err := r.Initialize(); err != nil {
		t.Fatal(err)
	}
	var conf mpeg4audio.AudioSpecificConfig
	var video, audio uint16 = mpegts.NoPID, mpegts.NoPID
	for _, tr := range r.Tracks() {
		switch c := tr.Codec.(type) {
		case *codecs.H264:
			video = tr.PID
		case *codecs.MPEG4Audio:
			audio, conf = tr.PID, c.Config
		}
	}
	var out []pes
	keep := func(units [][]byte) [][]byte {
		var k [][]byte
		for _, u := range units {
			k = append(k, bytes.Clone(u))
		}
		return k
	}
	fail := func(err error) { t.Fatal(err) }
	dv := mpegts.Depacketizer{PID: video, OnErr: fail, DropAUD: true, Video: func(pts, dts int64, au [][]byte) error {
		out = append(out, pes{pts: pts, dts: dts, units: keep(au)})
		return nil
	}}
	da := mpegts.Depacketizer{PID: audio, OnErr: fail, Audio: func(pts int64, frames [][]byte) error {
		out = append(out, pes{audio: true, pts: pts, dts: pts, units: keep(frames)})
		return nil
	}}
	rd := mpegts.NewReader(bufio.NewReader(bytes.NewReader(b)), fail, nil)
	for {
		if err := rd.Step(&dv, &da); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	return out, conf
}

// muxAll writes the PES packets with a Muxer, as the chunker and stitch
// do: access units in MPEG-TS framing, an ADTS header before each AAC
// frame.
func muxAll(t testing.TB, in []pes, conf mpeg4audio.AudioSpecificConfig, w io.Writer, buf []byte) []byte {
	video := &mpegts.Stream{Type: mpegts.StreamH264, StreamID: mpegts.StreamIDVideo}
	audio := &mpegts.Stream{Type: mpegts.StreamADTS, StreamID: mpegts.StreamIDAudio}
	var m *mpegts.Muxer
	var adts mpegts.ADTS
	if hasAudio(in) {
		m = mpegts.NewMuxer(video, audio)
		var err error
		if adts, err = mpegts.NewADTS(conf); err != nil {
			t.Fatal(err)
		}
	} else {
		m = mpegts.NewMuxer(video)
	}
	var hdrs [][7]byte
	for _, p := range in {
		if p.audio {
			hdrs = hdrs[:0]
			for _, f := range p.units {
				hdrs = append(hdrs, adts.Header(len(f)))
			}
			for i, f := range p.units {
				m.Payload.Add(hdrs[i][:])
				m.Payload.Add(f)
			}
			buf = m.WritePES(buf[:0], audio, p.pts, 0, false, true)
		} else {
			m.Payload.AddAccessUnit(p.units)
			buf = m.WritePES(buf[:0], video, p.pts, p.dts, true, h264.IsRandomAccess(p.units))
		}
		if _, err := w.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	return buf
}

// muxMediacommon writes the PES packets with mediacommon's Writer.
func muxMediacommon(t testing.TB, in []pes, conf mpeg4audio.AudioSpecificConfig, w io.Writer) {
	//lint:ignore SA1019 mediacommon v2.9.5's ADTS writer still reads ChannelCount
	conf.ChannelCount = int(conf.ChannelConfig)
	video := &mcmpegts.Track{Codec: &codecs.H264{}}
	audio := &mcmpegts.Track{Codec: &codecs.MPEG4Audio{Config: conf}}
	mw := &mcmpegts.Writer{W: w, Tracks: []*mcmpegts.Track{video, audio}}
	if err := mw.Initialize(); err != nil {
		t.Fatal(err)
	}
	for _, p := range in {
		var err error
		if p.audio {
			err = mw.WriteMPEG4Audio(audio, p.pts, p.units)
		} else {
			err = mw.WriteH264(video, p.pts, p.dts, p.units)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestMuxRoundTrip muxes the access units and AAC frames of real MPEG-TS
// and reads them back, with this package's demultiplexer and with
// mediacommon's Reader: the same units with the same times. ffmpeg decodes
// the output without an error and counts the same packets as in the input.
func TestMuxRoundTrip(t *testing.T) {
	for _, name := range []string{"av.ts", "wrap.ts", "reschange.ts"} {
		t.Run(name, func(t *testing.T) {
			in, conf := readStreams(t, mediatest.Testdata(name))
			var out bytes.Buffer
			muxAll(t, in, conf, &out, nil)
			p := filepath.Join(t.TempDir(), "out.ts")
			if err := os.WriteFile(p, out.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			got, gotConf := readStreams(t, p)
			if fmt.Sprint(summary(got)) != fmt.Sprint(summary(in)) {
				t.Fatalf("read back %v\nwant %v", summary(got), summary(in))
			}
			if hasAudio(in) && gotConf != conf {
				t.Errorf("audio configuration %+v, want %+v", gotConf, conf)
			}
			if _, err := exec.LookPath("ffmpeg"); err == nil {
				if msg := mediatest.Run(t, "ffmpeg", "-v", "error", "-i", p, "-f", "null", "-"); len(msg) > 0 {
					t.Errorf("ffmpeg: %s", msg)
				}
				vin, vout := mediatest.PacketCount(t, mediatest.Testdata(name), "video"), mediatest.PacketCount(t, p, "video")
				if vin != vout {
					t.Errorf("ffprobe counts %d pictures, the input %d", vout, vin)
				}
			}
		})
	}
}

func sortedByStream(in []pes) []pes {
	var v, a []pes
	for _, p := range in {
		if p.audio {
			a = append(a, p)
		} else {
			v = append(v, p)
		}
	}
	return append(v, a...)
}

func hasAudio(in []pes) bool {
	for _, p := range in {
		if p.audio {
			return true
		}
	}
	return false
}

// summary describes PES packets by kind, times and a checksum of units:
// the video's, then the audio's (the order of the two streams in the output
// is the muxing order; a demultiplexer delivers an audio PES, whose length
// is known, before the open-ended video PES that precedes it).
func summary(in []pes) []string {
	var out []string
	for _, p := range sortedByStream(in) {
		var sum uint32
		for _, u := range p.units {
			sum = sum*31 + mpegts.CRC32(u)
		}
		out = append(out, fmt.Sprintf("%v %d %d %d %08x", p.audio, p.pts, p.dts, len(p.units), sum))
	}
	return out
}

// TestMuxTables: the program tables the muxer writes are read back by the
// PSI parser (right CRC, the PMT PID, the streams and their types).
func TestMuxTables(t *testing.T) {
	video := &mpegts.Stream{Type: mpegts.StreamH264, StreamID: mpegts.StreamIDVideo}
	audio := &mpegts.Stream{Type: mpegts.StreamADTS, StreamID: mpegts.StreamIDAudio}
	m := mpegts.NewMuxer(video, audio)
	m.Payload.AddAccessUnit([][]byte{{byte(h264.NALUTypeIDR), 0x88}})
	b := m.WritePES(nil, video, 0, 0, true, true)
	pat := mpegts.Section{PID: 0}
	sec := pat.Packet(b[:mpegts.PacketSize])
	pmtPID, ok := mpegts.PATProgram(sec)
	if !ok || pmtPID != 0x1000 {
		t.Fatalf("PAT %x: PMT PID %#x, %v", sec, pmtPID, ok)
	}
	pmt := mpegts.Section{PID: pmtPID}
	streams, err := mpegts.PMTStreams(nil, pmt.Packet(b[mpegts.PacketSize:2*mpegts.PacketSize]))
	want := []mpegts.ES{{Type: mpegts.StreamH264, PID: video.PID()}, {Type: mpegts.StreamADTS, PID: audio.PID()}}
	if err != nil || fmt.Sprint(streams) != fmt.Sprint(want) {
		t.Fatalf("PMT streams %v, %v; want %v", streams, err, want)
	}
}

// BenchmarkMux muxes the access units and AAC frames of av.ts with this
// package's Muxer and with mediacommon's Writer, into io.Discard.
// b.SetBytes is the size of the input file.
func BenchmarkMux(b *testing.B) {
	name := mediatest.Testdata("av.ts")
	in, conf := readStreams(b, name)
	st, err := os.Stat(name)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("livechunk", func(b *testing.B) {
		b.SetBytes(st.Size())
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf = muxAll(b, in, conf, io.Discard, buf)
		}
	})
	b.Run("mediacommon", func(b *testing.B) {
		b.SetBytes(st.Size())
		b.ReportAllocs()
		for b.Loop() {
			muxMediacommon(b, in, conf, io.Discard)
		}
	})
}
