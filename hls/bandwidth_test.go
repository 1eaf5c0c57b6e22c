package hls_test

import (
	"math/rand/v2"
	"testing"

	"github.com/livechunk/livechunk/hls"
)

// refPeak is the definition of the peak bit rate, by brute force over every
// run of consecutive segments: a run counts when it lasts at least half a
// target and at most 1.5 targets, or is a single segment of at least half a
// target.
func refPeak(segs []hls.Segment, target float64) int64 {
	var peak int64
	for i := range segs {
		var bytes int64
		var sec float64
		for j := i; j < len(segs); j++ {
			bytes += segs[j].Bytes
			sec += segs[j].Seconds()
			if j > i && sec > 1.5*target {
				break
			}
			if sec >= 0.5*target && sec > 0 {
				if r := int64(float64(bytes*8)/sec + 0.5); r > peak {
					peak = r
				}
			}
		}
	}
	return peak
}

// TestBandwidthMeterMatchesDefinition feeds random segment sequences (short,
// long and zero-length segments, bursts of bytes) to the streaming meter
// and compares its peak with the brute-force definition after every
// segment.
func TestBandwidthMeterMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 300 {
		target := []float64{2, 5, 6}[trial%3]
		n := 1 + rng.IntN(80)
		var all []hls.Segment
		m := hls.BandwidthMeter{TargetSeconds: target}
		for i := range n {
			d := int64(rng.IntN(int(target * 2.5 * 90000)))
			if rng.IntN(10) == 0 {
				d = 0
			}
			s := hls.Segment{Duration: d, Timescale: 90000, Bytes: int64(rng.IntN(5_000_000))}
			all = append(all, s)
			m.Add(s)
			peak, avg := m.Bandwidth()
			want := refPeak(all, target)
			_, wantAvg := hls.PeakBandwidth(all, target)
			if want == 0 {
				want = wantAvg
			}
			if peak != want || avg != wantAvg {
				t.Fatalf("trial %d, after segment %d: meter (%d, %d), definition (%d, %d)", trial, i, peak, avg, want, wantAvg)
			}
		}
	}
}
