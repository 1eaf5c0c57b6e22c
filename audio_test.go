package livechunk_test

// End-to-end audio tests with ffmpeg as the judge: inputs with AAC audio
// are recorded in both formats, and the HLS output must have the input's
// audio packets, decode to the input's audio and video frames, and keep the
// input's audio/video offset.

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/livechunk/livechunk"
	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"github.com/livechunk/livechunk/sink"
	"github.com/livechunk/livechunk/source"
)

// fmp4FirstTimes reads the first times of an fMP4 recording with mp4ff, by
// ISO/IEC 14496-12 (PTS = tfdt + sum of earlier durations + composition
// offset). ffmpeg reads fragments with negative composition offsets (trun
// version 1) shifted by the largest of them, so it cannot judge the video
// start of such a recording; ffmpeg's own +negative_cts_offsets output
// reads shifted the same way.
func fmp4FirstTimes(t *testing.T, dir string) (audio, video float64) {
	t.Helper()
	var all []byte
	add := func(name string) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	add("init-0.mp4")
	segs, _ := filepath.Glob(filepath.Join(dir, "seg-*.m4s"))
	sort.Strings(segs)
	for _, s := range segs {
		add(filepath.Base(s))
	}
	f, err := mp4.DecodeFile(bytes.NewReader(all))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[uint32]string{}
	scales := map[uint32]float64{}
	for _, tr := range f.Init.Moov.Traks {
		kinds[tr.Tkhd.TrackID] = tr.Mdia.Hdlr.HandlerType
		scales[tr.Tkhd.TrackID] = float64(tr.Mdia.Mdhd.Timescale)
	}
	audio, video = math.Inf(1), math.Inf(1)
	for _, seg := range f.Segments {
		for _, frag := range seg.Fragments {
			for _, traf := range frag.Moof.Trafs {
				id := traf.Tfhd.TrackID
				dts := int64(traf.Tfdt.BaseMediaDecodeTime())
				for _, trun := range traf.Truns {
					for _, s := range trun.Samples {
						pts := float64(dts+int64(s.CompositionTimeOffset)) / scales[id]
						if kinds[id] == "soun" {
							audio = min(audio, pts)
						} else {
							video = min(video, pts)
						}
						dts += int64(s.Dur)
					}
				}
			}
		}
	}
	return audio, video
}

// TestRecordAudio records every audio input as a VOD in both formats and
// has ffmpeg read the playlist: the audio packet count, the decoded audio
// frames and the decoded video frames equal the input's; the first audio
// frame keeps the input's offset to the first picture within one audio
// frame; the multivariant playlist lists AAC-LC; every TS segment starts
// with PAT and PMT.
func TestRecordAudio(t *testing.T) {
	for _, in := range mediatest.AudioInputs(t) {
		t.Run(in.Name, func(t *testing.T) {
			t.Parallel()
			wantPackets := mediatest.PacketCount(t, in.File, "audio")
			wantAudio := mediatest.AudioHashes(t, in.File, in.EditList)
			var wantVideo []string
			var inOffset float64
			if !in.NoVideo {
				wantVideo = mediatest.FrameHashes(t, in.File)
				a, v := mediatest.FirstTimes(t, in.File)
				inOffset = a - v
			}
			frame := 1024 / float64(in.Rate)
			for _, format := range []chunker.Format{chunker.FMP4, chunker.TS} {
				t.Run(format.String(), func(t *testing.T) {
					dir := filepath.Join(t.TempDir(), "out")
					b, err := sink.Open(context.Background(), dir)
					if err != nil {
						t.Fatal(err)
					}
					defer b.Close()
					src, err := source.Open(in.File, source.Options{})
					if err != nil {
						t.Fatal(err)
					}
					defer src.Close()
					st, err := livechunk.Record(context.Background(), b, src, livechunk.Config{
						Format: format, SegmentDuration: 2 * time.Second, Playlist: hls.VOD,
					})
					if err != nil {
						t.Fatal(err)
					}
					if st.Chunker.AudioSamples != int64(wantPackets) || st.Chunker.AudioDropped != 0 {
						t.Errorf("chunker wrote %d audio frames (dropped %d), input has %d", st.Chunker.AudioSamples, st.Chunker.AudioDropped, wantPackets)
					}
					m := checkPlaylist(t, b, "index.m3u8")
					if len(m.Entries) < 3 {
						t.Errorf("%d segments", len(m.Entries))
					}
					master, err := os.ReadFile(filepath.Join(dir, "master.m3u8"))
					if err != nil {
						t.Fatal(err)
					}
					wantCodecs := `CODECS="avc1.64000d,mp4a.40.2"` // High, level 1.3 (320x240)
					if in.NoVideo {
						wantCodecs = `CODECS="mp4a.40.2"`
					}
					if !bytes.Contains(master, []byte(wantCodecs)) {
						t.Errorf("multivariant playlist lacks %s:\n%s", wantCodecs, master)
					}
					playlist := filepath.Join(dir, "index.m3u8")
					if got := mediatest.PacketCount(t, playlist, "audio"); got != wantPackets {
						t.Errorf("ffprobe reads %d audio packets, the input has %d", got, wantPackets)
					}
					if d := mediatest.EqualHashes(wantAudio, mediatest.AudioHashes(t, playlist, false)); d != "" {
						t.Errorf("decoded audio differs from the input's: %s", d)
					}
					if format == chunker.TS {
						segs, _ := filepath.Glob(filepath.Join(dir, "seg-*.ts"))
						for _, s := range segs {
							data, err := os.ReadFile(s)
							if err != nil {
								t.Fatal(err)
							}
							if len(data) < 376 || data[1]&0x1f != 0 || data[2] != 0 || data[189]&0x40 == 0 {
								t.Errorf("%s does not start with PAT and PMT", filepath.Base(s))
							}
						}
					}
					if in.NoVideo {
						return
					}
					if d := mediatest.EqualHashes(wantVideo, mediatest.FrameHashes(t, playlist)); d != "" {
						t.Errorf("decoded video differs from the input's: %s", d)
					}
					var a, v float64
					if format == chunker.TS {
						a, v = mediatest.FirstTimes(t, playlist)
					} else {
						a, v = fmp4FirstTimes(t, dir)
					}
					t.Logf("first audio − first video: %.5f s (input %.5f s)", a-v, inOffset)
					if d := (a - v) - inOffset; math.Abs(d) >= frame {
						t.Errorf("first audio %.5f s − first video %.5f s = %.5f s, input %.5f s (one frame is %.5f s)", a, v, a-v, inOffset, frame)
					}
				})
			}
		})
	}
}

// TestRecordAudioChunks records a sequence of phone-style MP4 chunks with
// audio: every chunk's audio follows its video, and only a frame that
// would overlap the previous chunk's audio (its encoder priming) is left
// out.
func TestRecordAudioChunks(t *testing.T) {
	paths, total := mediatest.AVChunks(t, 3, 48000)
	for _, format := range []chunker.Format{chunker.FMP4, chunker.TS} {
		out := filepath.Join(t.TempDir(), "out")
		b, err := sink.Open(context.Background(), out)
		if err != nil {
			t.Fatal(err)
		}
		src, err := source.OpenChunks(paths, source.Options{})
		if err != nil {
			t.Fatal(err)
		}
		st, err := livechunk.Record(context.Background(), b, src, livechunk.Config{Format: format, SegmentDuration: 2 * time.Second, Playlist: hls.VOD})
		b.Close()
		if err != nil {
			t.Fatal(err)
		}
		got := mediatest.PacketCount(t, filepath.Join(out, "index.m3u8"), "audio")
		if got != int(st.Chunker.AudioSamples) || got+int(src.AudioDropped()) != total || src.AudioDropped() > 2 {
			t.Errorf("%v: %d audio packets in the recording, %d dropped, the chunks have %d", format, got, src.AudioDropped(), total)
		}
		if n := len(mediatest.AudioHashes(t, filepath.Join(out, "index.m3u8"), false)); n != got {
			t.Errorf("%v: %d audio frames decode, %d packets", format, n, got)
		}
	}
}
