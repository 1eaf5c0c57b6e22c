package demux

import (
	"errors"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"
)

// TestEditList: the one rule (leading empty edits delay the track, the
// first non-empty edit's media_time is where presentation starts), its
// rounding to the nearest tick of the track, and its bounds.
func TestEditList(t *testing.T) {
	type edit = mp4.ElstEntry
	for _, c := range []struct {
		name      string
		movie     uint32 // mvhd timescale
		track     uint32
		entries   []edit // nil: no edts box
		want      Edit
		wantError bool
	}{
		{"none", 1000, 90000, nil, Edit{}, false},
		{"no movie timescale", 0, 90000, []edit{{MediaTime: 3000}}, Edit{}, false},
		{"priming", 1000, 48000, []edit{{SegmentDuration: 1000, MediaTime: 1024}}, Edit{Shift: -1024, Present: true}, false},
		{"delay", 1000, 48000, []edit{{SegmentDuration: 500, MediaTime: -1}, {SegmentDuration: 1000, MediaTime: 0}}, Edit{Shift: 24000, Present: true}, false},
		{"delays add", 600, 90000, []edit{{SegmentDuration: 60, MediaTime: -1}, {SegmentDuration: 6, MediaTime: -1}, {MediaTime: 1500}}, Edit{Shift: 9900 - 1500, Present: true}, false},
		{"rounded", 1000, 44100, []edit{{SegmentDuration: 67, MediaTime: -1}, {MediaTime: 0}}, Edit{Shift: 2955, Present: true}, false}, // 2954.7
		{"later edits ignored", 1000, 90000, []edit{{MediaTime: 3000}, {SegmentDuration: 100, MediaTime: -1}}, Edit{Shift: -3000, Present: true}, false},
		{"only empty", 1000, 1000, []edit{{SegmentDuration: 40, MediaTime: -1}}, Edit{Shift: 40, Present: true}, false},
		{"negative media time", 1000, 90000, []edit{{MediaTime: -2}}, Edit{Shift: 2, Present: true}, false},
		{"media time bound", 1000, 90000, []edit{{MediaTime: 1 << 50}}, Edit{Shift: -1 << 50, Present: true}, false},
		{"media time too large", 1000, 90000, []edit{{MediaTime: 1<<50 + 1}}, Edit{}, true},
		{"media time too small", 1000, 90000, []edit{{MediaTime: -1<<50 - 1}}, Edit{}, true},
		{"delay too long", 1, 1, []edit{{SegmentDuration: 1<<40 + 1, MediaTime: -1}}, Edit{}, true},
		{"delays wrap", 1, 1, []edit{{SegmentDuration: 1<<64 - 1, MediaTime: -1}, {SegmentDuration: 2, MediaTime: -1}}, Edit{}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			trak := &mp4.TrakBox{Tkhd: &mp4.TkhdBox{TrackID: 1}}
			if c.entries != nil {
				trak.Edts = &mp4.EdtsBox{Elst: []*mp4.ElstBox{{Entries: c.entries}}}
			}
			moov := &mp4.MoovBox{Mvhd: &mp4.MvhdBox{Timescale: c.movie}}
			got, err := editOf(trak, moov, c.track)
			if c.wantError {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("%+v, %v; want ErrInvalid", got, err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("%+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}
