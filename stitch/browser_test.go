package stitch_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/livechunk/livechunk/chunker"
	"github.com/livechunk/livechunk/internal/testkit/browsertest"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"github.com/livechunk/livechunk/stitch"
)

// TestChromium stitches recorded playlists and plays the MP4 in Chromium
// as a plain <video src>, served over 127.0.0.1 with range requests
// (http.ServeContent): it must play, seek to the middle and play on from
// there without a media error, with the input's picture size and, for the
// input with audio, decoded audio. The resolution change fixture switches
// from 320x240 to 480x270 at 2 s: the middle is after the change.
func TestChromium(t *testing.T) {
	mediatest.RequireTool(t, "chromium")
	inputs := mediatest.AudioInputs(t)
	for _, tc := range []struct {
		name          string
		input         string
		format        chunker.Format
		width, height int
		audio         bool
	}{
		{"audio-44k1-fmp4", inputs[0].File, chunker.FMP4, 320, 240, true},
		{"audio-48k-mono-ts", inputs[1].File, chunker.TS, 320, 240, true},
		{"reschange-fmp4", mediatest.Testdata("reschange.ts"), chunker.FMP4, 480, 270, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := recorded(t, tc.input, tc.format, "", time.Second)
			out, res := writeFile(t, src, ".mp4", stitch.Options{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				f, err := os.Open(out)
				if err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
				defer f.Close()
				http.ServeContent(w, r, "out.mp4", time.Time{}, f)
			}))
			defer srv.Close()
			pr := browsertest.PlayMP4(t, srv.URL+"/out.mp4", browsertest.MP4Options{Timeout: 30 * time.Second})
			t.Log(pr)
			if !pr.Reached || pr.MediaError != "" {
				t.Fatalf("Chromium did not play, seek to the middle and play on: %s", pr)
			}
			mid := res.Duration.Seconds() / 2
			if pr.SeekedAt < mid-0.5 || pr.SeekedAt > mid+0.5 {
				t.Errorf("seek landed at %.3f s, the middle is %.3f s", pr.SeekedAt, mid)
			}
			if pr.VideoWidth != tc.width || pr.VideoHeight != tc.height {
				t.Errorf("picture %dx%d after the seek, want %dx%d", pr.VideoWidth, pr.VideoHeight, tc.width, tc.height)
			}
			if tc.audio && pr.AudioDecodedBytes == 0 {
				t.Error("Chromium decoded no audio")
			}
			if len(pr.ForeignRequests) > 0 {
				t.Errorf("requests leaving 127.0.0.1: %v", pr.ForeignRequests)
			}
		})
	}
}
