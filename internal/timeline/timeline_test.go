package timeline

import (
	"math"
	"testing"
	"time"
)

func TestRescale(t *testing.T) {
	for _, tc := range []struct {
		t        int64
		from, to uint32
		want     int64
	}{
		{0, 90000, 48000, 0},
		{90000, 90000, 48000, 48000},
		{1, 90000, 48000, 1},       // 0.533 rounds up
		{-1, 90000, 48000, -1},     // halves and above away from zero
		{3, 90000, 1000, 0},        // 0.033 ms
		{45, 90000, 1000, 1},       // exactly 0.5 rounds away from zero
		{-45, 90000, 1000, -1},     //
		{1001, 30000, 90000, 3003}, // exact
		{512, 15360, 90000, 3000},
		{-1024, 15360, 90000, -6000},
		{3003, 90000, 600, 20},
		{1, 3, 2, 1},
		{-1, 3, 2, -1},
		{1 << 40, 1000, 90000, (1 << 40) * 90},
		{7, 0, 90000, 7}, // unknown timescale: unchanged
		{math.MaxInt64 / 2, 90000, 90000, math.MaxInt64 / 2},
	} {
		got := Rescale(tc.t, tc.from, tc.to)
		if got != tc.want {
			t.Errorf("Rescale(%d, %d, %d) = %d, want %d", tc.t, tc.from, tc.to, got, tc.want)
		}
	}
	// t·to beyond 64 bits: computed in 128.
	if got, want := Rescale(1<<62, 1_000_000_000, 90000), int64(1<<62)/1_000_000_000*90000+(int64(1<<62)%1_000_000_000*90000+500_000_000)/1_000_000_000; got != want {
		t.Errorf("Rescale(2^62, 1e9, 90000) = %d, want %d", got, want)
	}
	// Durations convert as differences of converted times and add up.
	var sum int64
	prev := int64(0)
	for i := int64(1); i <= 1000; i++ {
		next := Rescale(i*1001, 30000, 44100)
		sum += next - prev
		prev = next
	}
	if want := Rescale(1000*1001, 30000, 44100); sum != want {
		t.Errorf("durations add up to %d, want %d", sum, want)
	}
	if got := Ticks(1500*time.Millisecond, 90000); got != 135000 {
		t.Errorf("Ticks(1.5s) = %d", got)
	}
	if got := Duration(135000, 90000); got != 1500*time.Millisecond {
		t.Errorf("Duration = %v", got)
	}
	if Duration(5, 0) != 0 {
		t.Error("Duration with timescale 0 is not 0")
	}
}

func TestUnwrap(t *testing.T) {
	const mod = int64(1) << WrapBitsTS
	u := Unwrapper{Bits: WrapBitsTS}
	in := []int64{mod - 6000, mod - 3000, 0, 3000, 6000, 3000 /* step back */, 9000}
	want := []int64{mod - 6000, mod - 3000, mod, mod + 3000, mod + 6000, mod + 3000, mod + 9000}
	for i, v := range in {
		if got := u.Unwrap(v); got != want[i] {
			t.Errorf("value %d: Unwrap(%d) = %d, want %d", i, v, got, want[i])
		}
	}
	// Peek places a value of another track near the last one.
	if got := u.Peek(mod - 1000); got != mod-1000 {
		t.Errorf("Peek(2^33-1000) = %d, want %d", got, mod-1000)
	}
	if u.Last() != mod+9000 {
		t.Errorf("Peek moved the unwrapper to %d", u.Last())
	}
	// A second track starts on the first one's side of the wrap.
	a := Unwrapper{Bits: WrapBitsTS}
	if got := a.Start(1000, mod-500); got != mod+1000 {
		t.Errorf("Start(1000, near 2^33-500) = %d, want %d", got, mod+1000)
	}
	if got := a.Unwrap(2000); got != mod+2000 {
		t.Errorf("after Start: %d", got)
	}
	var none Unwrapper
	if none.Unwrap(mod+5) != mod+5 || none.Peek(-3) != -3 {
		t.Error("Bits 0 must pass values through")
	}
	if WrapDiff(mod-1, WrapBitsTS) != -1 || WrapDiff(1, WrapBitsTS) != 1 || WrapDiff(mod/2, WrapBitsTS) != -mod/2 {
		t.Error("WrapDiff")
	}
}

func TestClassify(t *testing.T) {
	const th = 90000
	for _, tc := range []struct {
		name string
		e    Evidence
		want Step
	}{
		{"frame step", Evidence{Step: 3000, Threshold: th}, Continue},
		{"long step, nothing says pause", Evidence{Step: 2 * th, Threshold: th}, Jump},
		{"declared duration", Evidence{Step: 2 * th, Threshold: th, Declared: true}, Pause},
		{"audio ran on", Evidence{Step: 2 * th, Threshold: th, AudioRanOn: true}, Pause},
		{"large step back", Evidence{Step: -2 * th, Threshold: th, AudioRanOn: true}, Jump},
		{"splice", Evidence{Step: -3000, Threshold: th, Keyframe: true}, Jump},
		{"same DTS at a keyframe", Evidence{Step: 0, Threshold: th, Keyframe: true}, Jump},
		{"step back", Evidence{Step: -3000, Threshold: th}, Back},
		{"no step", Evidence{Step: 0, Threshold: th}, Back},
		{"at the threshold", Evidence{Step: th, Threshold: th}, Continue},
	} {
		if got := Classify(tc.e); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := Threshold(3000, 90000); got != 90000 {
		t.Errorf("Threshold(30 fps) = %d, want 1 s", got)
	}
	if got := Threshold(18000, 90000); got != 180000 {
		t.Errorf("Threshold(5 fps) = %d, want ten frames", got)
	}
}

func TestAudioRun(t *testing.T) {
	const frame, ts = 1920, 90000 // AAC at 48 kHz in 90 kHz ticks
	th := Threshold(frame, ts)
	feed := func(r *AudioRun, from, to int64) {
		for x := from; x < to; x += frame {
			r.Add(x, frame, th)
		}
	}
	// Video pauses from 0 to 3 s; the audio goes on to 2 s when the next
	// picture arrives (a muxer's lag).
	var r AudioRun
	feed(&r, -90000, 180000)
	if !r.RanOn(0, 270000, frame, ts) {
		t.Error("audio through the first two thirds of the step: not a pause")
	}
	// Both tracks jump: the audio's run starts at the new timeline.
	r = AudioRun{}
	feed(&r, -90000, 0)
	feed(&r, 900000, 990000)
	if r.RanOn(0, 900000, frame, ts) {
		t.Error("audio that jumped with the video: taken for a pause")
	}
	// Audio that stops with the video.
	r = AudioRun{}
	feed(&r, -90000, 20000)
	if r.RanOn(0, 270000, frame, ts) {
		t.Error("audio that stopped: taken for a pause")
	}
	var empty AudioRun
	if empty.RanOn(0, 270000, frame, ts) {
		t.Error("no audio: taken for a pause")
	}
}

func TestBefore(t *testing.T) {
	for _, tc := range []struct {
		a      int64
		ta     uint32
		b      int64
		tb     uint32
		before bool
	}{
		{1, 1000, 90, 90000, false}, // equal times
		{1, 1000, 91, 90000, true},
		{-1, 1000, -89, 90000, true},
		{-1, 1000, -91, 90000, false},
		{-5, 48000, 3, 90000, true},
		{1 << 62, 90000, 1 << 61, 44100, true}, // products beyond 64 bits: 2^61/45000 s before 2^61/44100 s
		{1 << 62, 90000, 1 << 61, 45000, false},
		{3, 600, 450, 90000, false},
		{3, 600, 451, 90000, true},
	} {
		if got := Before(tc.a, tc.ta, tc.b, tc.tb); got != tc.before {
			t.Errorf("Before(%d/%d, %d/%d) = %v", tc.a, tc.ta, tc.b, tc.tb, got)
		}
	}
	if Wrap(1<<33+5, WrapBitsTS) != 5 || Wrap(-1, WrapBitsTS) != 1<<33-1 || Wrap(7, 0) != 7 {
		t.Error("Wrap")
	}
}
