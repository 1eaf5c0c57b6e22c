package hls_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/internal/testkit/hlscheck"
	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"
)

var update = flag.Bool("update", false, "rewrite golden files")

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// segs returns n segments of the given durations (ticks at 90 kHz) with
// fMP4 maps switching at the discontinuity indexes.
func segs(durs []int64, disc map[int]bool, ext string) []hls.Segment {
	var out []hls.Segment
	m := 0
	at := t0
	for i, d := range durs {
		if disc[i] {
			m++
			at = at.Add(10 * time.Second)
		}
		s := hls.Segment{
			URI:             fmt.Sprintf("seg-%06d%s", i, ext),
			Duration:        d,
			Timescale:       90000,
			Discontinuity:   disc[i],
			ProgramDateTime: at,
			Bytes:           int64(100000 + 1000*i),
		}
		if ext == ".m4s" {
			s.Map = fmt.Sprintf("init-%d.mp4", m)
		}
		at = at.Add(time.Duration(d) * time.Second / 90000)
		out = append(out, s)
	}
	return out
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test ./hls -update to create)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestRenderGoldenAndParseBack(t *testing.T) {
	durs := []int64{450000, 450000, 459000, 441000, 450000, 90000 * 5 / 3}
	cases := []struct {
		name string
		pl   hls.MediaPlaylist
	}{
		{"vod-fmp4.m3u8", hls.MediaPlaylist{Type: hls.VOD, Ended: true, IndependentSegments: true,
			Segments: segs(durs, map[int]bool{3: true}, ".m4s")}},
		{"event-ts.m3u8", hls.MediaPlaylist{Type: hls.Event, TargetDuration: 5, IndependentSegments: true,
			Segments: segs(durs[:3], nil, ".ts")}},
		{"live-fmp4.m3u8", hls.MediaPlaylist{Type: hls.Live, TargetDuration: 5, MediaSequence: 17, DiscontinuitySequence: 2,
			IndependentSegments: true, Segments: segs(durs, map[int]bool{2: true}, ".m4s")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := c.pl.Render()
			golden(t, c.name, out)
			_, errs := hlscheck.Check(string(out))
			for _, e := range errs {
				t.Error(e)
			}
			back, err := hls.ParseMedia(out)
			if err != nil {
				t.Fatal(err)
			}
			if again := back.Render(); !bytes.Equal(again, out) {
				t.Errorf("render(parse(x)) != x:\n%s\n---\n%s", again, out)
			}
			if len(back.Segments) != len(c.pl.Segments) || back.MediaSequence != c.pl.MediaSequence ||
				back.DiscontinuitySequence != c.pl.DiscontinuitySequence || back.Type != c.pl.Type {
				t.Errorf("parsed header differs: %+v", back)
			}
			for i, s := range back.Segments {
				w := c.pl.Segments[i]
				if s.URI != w.URI || s.Map != w.Map || s.Discontinuity != w.Discontinuity ||
					!s.ProgramDateTime.Equal(w.ProgramDateTime.Truncate(time.Millisecond)) {
					t.Errorf("segment %d: %+v, want %+v", i, s, w)
				}
				if d := s.Seconds() - w.Seconds(); d > 1e-6 || d < -1e-6 {
					t.Errorf("segment %d: %v s, want %v s", i, s.Seconds(), w.Seconds())
				}
			}
		})
	}
}

// TestAppendRenderReusesBuffer: AppendRender appends what Render returns,
// and into a buffer with room it allocates nothing (the Publisher renders a
// growing EVENT playlist into one buffer on every segment).
func TestAppendRenderReusesBuffer(t *testing.T) {
	pl := hls.MediaPlaylist{Type: hls.Event, TargetDuration: 5, IndependentSegments: true,
		Segments: segs([]int64{450000, 459000, 441000, 90000 * 5 / 3}, map[int]bool{2: true}, ".m4s")}
	want := pl.Render()
	buf := pl.AppendRender([]byte("x"))
	if !bytes.Equal(buf, append([]byte("x"), want...)) {
		t.Fatalf("AppendRender after a prefix:\n%s\nwant x and\n%s", buf, want)
	}
	if n := testing.AllocsPerRun(20, func() { buf = pl.AppendRender(buf[:0]) }); n != 0 {
		t.Errorf("AppendRender into a reused buffer: %v allocations, want 0", n)
	}
	if !bytes.Equal(buf, want) {
		t.Errorf("AppendRender:\n%s\nwant\n%s", buf, want)
	}
}

func TestVersionAndTargetDuration(t *testing.T) {
	ts := hls.MediaPlaylist{Type: hls.VOD, Segments: segs([]int64{90000 * 11 / 2, 90000 * 6}, nil, ".ts")}
	if v := ts.Version(); v != 3 {
		t.Errorf("TS playlist version %d, want 3", v)
	}
	if td := hls.ComputeTargetDuration(ts.Segments); td != 6 {
		t.Errorf("target %d, want 6 (5.5 rounds to 6)", td)
	}
	fm := hls.MediaPlaylist{Segments: segs([]int64{90000}, nil, ".m4s")}
	if v := fm.Version(); v != 6 {
		t.Errorf("fMP4 playlist version %d, want 6", v)
	}
}

func TestParseRejectsGarbage(t *testing.T) {
	for _, in := range []string{"", "hello", "#EXTM3U\n#EXTINF:abc,\nx.ts\n", "#EXTM3U\nx.ts\n",
		"#EXTM3U\n#EXT-X-TARGETDURATION:-3\n", "#EXTM3U\n#EXT-X-MAP:URI=\"unterminated\n"} {
		if _, err := hls.ParseMedia([]byte(in)); err == nil {
			t.Errorf("ParseMedia(%q) succeeded", in)
		}
	}
}

func FuzzParseMedia(f *testing.F) {
	for _, name := range []string{"vod-fmp4.m3u8", "event-ts.m3u8", "live-fmp4.m3u8"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := hls.ParseMedia(b)
		if err != nil {
			return
		}
		// What parses renders and parses again to the same segments.
		q, err := hls.ParseMedia(p.Render())
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if len(q.Segments) != len(p.Segments) {
			t.Fatalf("segments %d -> %d", len(p.Segments), len(q.Segments))
		}
	})
}

// fakeClock is a manual clock for deletion timing.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

func putObjects(t *testing.T, b *blob.Bucket, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if err := b.WriteAll(context.Background(), k, []byte("x"), nil); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLiveWindowSlidesAndDeletesAfterGrace(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	clk := &fakeClock{now: t0}
	p, err := hls.NewPublisher(b, hls.PublisherConfig{Prefix: "live/", TargetDuration: 4 * time.Second, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	all := segs(func() []int64 {
		d := make([]int64, 30)
		for i := range d {
			d[i] = 4 * 90000
		}
		return d
	}(), map[int]bool{10: true}, ".m4s")
	putObjects(t, b, "live/init-0.mp4", "live/init-1.mp4")
	var prev *hlscheck.Media
	for i, s := range all {
		putObjects(t, b, "live/"+s.URI)
		clk.now = clk.now.Add(4 * time.Second)
		if err := p.Add(ctx, s); err != nil {
			t.Fatal(err)
		}
		text, err := b.ReadAll(ctx, "live/index.m3u8")
		if err != nil {
			t.Fatal(err)
		}
		m, errs := hlscheck.Check(string(text))
		for _, e := range errs {
			t.Errorf("update %d: %v\n%s", i, e, text)
		}
		if prev != nil {
			for _, e := range hlscheck.CheckUpdate(prev, m) {
				t.Errorf("update %d: %v", i, e)
			}
		}
		// Every listed object exists.
		for _, e := range m.Entries {
			for _, k := range []string{e.URI, e.Map} {
				if ok, _ := b.Exists(ctx, "live/"+k); !ok {
					t.Errorf("update %d lists %s, which is gone", i, k)
				}
			}
		}
		prev = m
	}
	pl := p.Playlist()
	if len(pl.Segments) != 6 || pl.MediaSequence != 24 || pl.DiscontinuitySequence != 1 {
		t.Errorf("window: %d segments from %d, disc seq %d; want 6 from 24, 1", len(pl.Segments), pl.MediaSequence, pl.DiscontinuitySequence)
	}
	// Segment 0 left at update 6 and is long past its grace period; the
	// most recently removed one (23) is still within it.
	for _, k := range []string{"live/seg-000000.m4s", "live/init-0.mp4"} {
		if ok, _ := b.Exists(ctx, k); ok {
			t.Errorf("%s was not deleted", k)
		}
	}
	if ok, _ := b.Exists(ctx, "live/seg-000023.m4s"); !ok {
		t.Errorf("seg 23 deleted before its grace period")
	}
	if err := p.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	text, _ := b.ReadAll(ctx, "live/index.m3u8")
	if !bytes.HasSuffix(text, []byte("#EXT-X-ENDLIST\n")) {
		t.Errorf("finished live playlist lacks ENDLIST:\n%s", text)
	}
}

func TestVODWrittenOnceOnFinish(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	p, _ := hls.NewPublisher(b, hls.PublisherConfig{Type: hls.VOD})
	for _, s := range segs([]int64{450000, 495000, 300000}, nil, ".ts") {
		if err := p.Add(ctx, s); err != nil {
			t.Fatal(err)
		}
		if ok, _ := b.Exists(ctx, "index.m3u8"); ok {
			t.Fatal("VOD playlist written before Finish")
		}
	}
	if err := p.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	text, _ := b.ReadAll(ctx, "index.m3u8")
	m, errs := hlscheck.Check(string(text))
	for _, e := range errs {
		t.Error(e)
	}
	if m.Type != "VOD" || !m.Ended || m.Target != 6 || len(m.Entries) != 3 {
		t.Errorf("VOD playlist: %+v\n%s", m, text)
	}
	if err := p.Add(ctx, segs([]int64{1}, nil, ".ts")[0]); err == nil {
		t.Error("Add after Finish succeeded")
	}
}

func TestPublisherRejectsBadKeys(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	p, _ := hls.NewPublisher(b, hls.PublisherConfig{FirstMediaSequence: 5})
	s := segs([]int64{450000, 450000, 450000}, nil, ".ts")
	if err := p.Add(ctx, s[0]); err != nil {
		t.Fatal(err)
	}
	if got := p.Playlist().MediaSequence; got != 5 {
		t.Errorf("media sequence %d, want 5", got)
	}
	s[2].URI = "../../etc/passwd.ts"
	if err := p.Add(ctx, s[2]); err == nil {
		t.Error("path traversal accepted")
	}
	if _, err := hls.NewPublisher(b, hls.PublisherConfig{Prefix: "/abs/"}); err == nil {
		t.Error("absolute prefix accepted")
	}
}

func TestMultivariantAndBandwidth(t *testing.T) {
	s := segs([]int64{450000, 450000, 450000}, nil, ".m4s")
	s[1].Bytes = 5_000_000 // a 5 s segment of 8 Mbit/s
	peak, avg := hls.PeakBandwidth(s, 5)
	if peak != 8_000_000 {
		t.Errorf("peak %d, want 8000000", peak)
	}
	wantAvg := (s[0].Bytes + s[1].Bytes + s[2].Bytes) * 8 / 15
	if avg != wantAvg {
		t.Errorf("average %d, want %d", avg, wantAvg)
	}
	m := hls.MultivariantPlaylist{IndependentSegments: true, Variants: []hls.Variant{{
		URI: "cam/index.m3u8", Bandwidth: peak, AverageBandwidth: avg, Codecs: []string{"avc1.64001f", "mp4a.40.2"},
		Width: 1280, Height: 720, FrameRate: 29.97,
	}}}
	golden(t, "multivariant.m3u8", m.Render())
}

func TestHandler(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	seg := bytes.Repeat([]byte("0123456789"), 1000)
	putAll := map[string][]byte{
		"s/live/index.m3u8":     []byte("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6.000,\nseg-000000.m4s\n"),
		"s/vod/index.m3u8":      []byte("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:6.000,\nseg-000000.ts\n#EXT-X-ENDLIST\n"),
		"s/live/seg-000000.m4s": seg,
		"s/live/init-0.mp4":     []byte("init"),
		"s/vod/seg-000000.ts":   seg,
		"secret.ts":             []byte("outside the prefix"),
		"s/notes.txt":           []byte("not media"),
	}
	for k, v := range putAll {
		if err := b.WriteAll(ctx, k, v, nil); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(http.StripPrefix("/hls", hls.NewHandler(b, "s/")))
	defer srv.Close()
	get := func(method, p string, hdr map[string]string) (*http.Response, []byte) {
		req, _ := http.NewRequest(method, srv.URL+p, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	cases := []struct {
		path, ctype, cache string
		status             int
	}{
		{"/hls/live/index.m3u8", "application/vnd.apple.mpegurl", "public, max-age=3", 200},
		{"/hls/vod/index.m3u8", "application/vnd.apple.mpegurl", "public, max-age=31536000, immutable", 200},
		{"/hls/live/seg-000000.m4s", "video/iso.segment", "public, max-age=31536000, immutable", 200},
		{"/hls/live/init-0.mp4", "video/mp4", "public, max-age=31536000, immutable", 200},
		{"/hls/vod/seg-000000.ts", "video/mp2t", "public, max-age=31536000, immutable", 200},
		{"/hls/live/missing.ts", "", "", 404},
		{"/hls/notes.txt", "", "", 404},
		{"/hls/../secret.ts", "", "", 404},
		{"/hls/live/..%2f..%2fsecret.ts", "", "", 404},
		{"/hls/%2e%2e/secret.ts", "", "", 404},
	}
	for _, c := range cases {
		resp, _ := get("GET", c.path, nil)
		if resp.StatusCode != c.status {
			t.Errorf("%s: status %d, want %d", c.path, resp.StatusCode, c.status)
			continue
		}
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s: no CORS header", c.path)
		}
		if c.status != 200 {
			continue
		}
		if got := resp.Header.Get("Content-Type"); got != c.ctype {
			t.Errorf("%s: content type %q, want %q", c.path, got, c.ctype)
		}
		if got := resp.Header.Get("Cache-Control"); got != c.cache {
			t.Errorf("%s: cache control %q, want %q", c.path, got, c.cache)
		}
	}
	// Range and HEAD.
	resp, body := get("GET", "/hls/live/seg-000000.m4s", map[string]string{"Range": "bytes=10-19"})
	if resp.StatusCode != 206 || string(body) != "0123456789" || resp.Header.Get("Content-Range") != "bytes 10-19/10000" {
		t.Errorf("range: %d %q %q", resp.StatusCode, body, resp.Header.Get("Content-Range"))
	}
	resp, body = get("HEAD", "/hls/vod/seg-000000.ts", nil)
	if resp.StatusCode != 200 || len(body) != 0 || resp.Header.Get("Content-Length") != "10000" {
		t.Errorf("head: %d %d %q", resp.StatusCode, len(body), resp.Header.Get("Content-Length"))
	}
	// Playlists carry a validator: the same version is 304, a changed one
	// is sent again.
	resp, _ = get("GET", "/hls/live/index.m3u8", nil)
	etag := resp.Header.Get("ETag")
	if etag == "" || resp.Header.Get("Last-Modified") == "" {
		t.Fatalf("playlist without ETag or Last-Modified: %v", resp.Header)
	}
	if resp, _ = get("GET", "/hls/live/index.m3u8", map[string]string{"If-None-Match": etag}); resp.StatusCode != 304 {
		t.Errorf("same playlist: %d, want 304", resp.StatusCode)
	}
	if resp, _ = get("GET", "/hls/live/index.m3u8", map[string]string{"If-None-Match": `"other", ` + etag, "Accept-Encoding": "gzip"}); resp.StatusCode != 304 {
		t.Errorf("same playlist, gzip, in a list: %d, want 304", resp.StatusCode)
	}
	if err := b.WriteAll(ctx, "s/live/index.m3u8", []byte("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6.000,\nseg-000000.m4s\n#EXTINF:6.000,\nseg-000001.m4s\n"), nil); err != nil {
		t.Fatal(err)
	}
	if resp, _ = get("GET", "/hls/live/index.m3u8", map[string]string{"If-None-Match": etag}); resp.StatusCode != 200 {
		t.Errorf("changed playlist: %d, want 200", resp.StatusCode)
	}
	// Gzip for playlists.
	resp, body = get("GET", "/hls/live/index.m3u8", map[string]string{"Accept-Encoding": "gzip"})
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("playlist not gzipped")
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	if !strings.HasPrefix(string(plain), "#EXTM3U") {
		t.Errorf("gunzipped playlist: %q", plain)
	}
	// Preflight.
	resp, _ = get("OPTIONS", "/hls/live/index.m3u8", nil)
	if resp.StatusCode != 204 || !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Range") ||
		resp.Header.Get("Access-Control-Max-Age") == "" || resp.Header.Get("Allow") != "GET, HEAD, OPTIONS" {
		t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	// Scripts of other origins read the headers players need.
	resp, _ = get("GET", "/hls/live/seg-000000.m4s", map[string]string{"Range": "bytes=0-9"})
	for _, h := range []string{"Content-Range", "ETag", "Accept-Ranges"} {
		if !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), h) {
			t.Errorf("%s not exposed: %v", h, resp.Header)
		}
	}
	resp, _ = get("PUT", "/hls/live/index.m3u8", nil)
	if resp.StatusCode != 405 {
		t.Errorf("PUT: %d", resp.StatusCode)
	}
}

func TestCheckKey(t *testing.T) {
	for _, k := range []string{"a/b.ts", "streams/cam-1/index.m3u8", "x"} {
		if err := hls.CheckKey(k); err != nil {
			t.Errorf("CheckKey(%q) = %v", k, err)
		}
	}
	for _, k := range []string{"", "/a", "a/../b", "..", "a//b", "a/./b", "a\\b", "a\x00b", "a\nb", strings.Repeat("a", 2000)} {
		if err := hls.CheckKey(k); err == nil {
			t.Errorf("CheckKey(%q) accepted", k)
		}
	}
}

// TestPublisherStartDuration checks that a live or event playlist with a
// StartDuration is first written once its segments last that long (three
// target durations: what a player needs to start, RFC 8216 6.3.3, and less
// than Chromium's own HLS player accepts), then on every segment; that
// Finish writes a shorter one; and that by default it is written from the
// first segment.
func TestPublisherStartDuration(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name  string
		typ   hls.Type
		start time.Duration
		first int // segments added when the playlist first exists
	}{
		{"live", hls.Live, 6 * time.Second, 3},
		{"event", hls.Event, 6 * time.Second, 3},
		{"default", hls.Event, 0, 1},
		{"10s", hls.Live, 10 * time.Second, 5},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := memblob.OpenBucket(nil)
			defer b.Close()
			p, err := hls.NewPublisher(b, hls.PublisherConfig{Type: c.typ, TargetDuration: 2 * time.Second, StartDuration: c.start})
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range segs([]int64{2 * 90000, 2 * 90000, 2 * 90000, 2 * 90000, 2 * 90000, 2 * 90000}, nil, ".m4s") {
				if err := p.Add(ctx, s); err != nil {
					t.Fatal(err)
				}
				ok, err := b.Exists(ctx, "index.m3u8")
				if err != nil {
					t.Fatal(err)
				}
				if want := i+1 >= c.first; ok != want {
					t.Fatalf("after %d segments: playlist exists %v, want %v", i+1, ok, want)
				}
			}
		})
	}
	b := memblob.OpenBucket(nil)
	defer b.Close()
	p, _ := hls.NewPublisher(b, hls.PublisherConfig{Type: hls.Live, TargetDuration: 2 * time.Second, StartDuration: 6 * time.Second})
	if err := p.Add(ctx, segs([]int64{2 * 90000}, nil, ".m4s")[0]); err != nil {
		t.Fatal(err)
	}
	if ok, _ := b.Exists(ctx, "index.m3u8"); ok {
		t.Fatal("playlist written before StartDuration")
	}
	if err := p.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	pl, err := hls.LoadMedia(ctx, b, "index.m3u8")
	if err != nil || len(pl.Segments) != 1 || !pl.Ended {
		t.Fatalf("a one-segment recording after Finish: %v %+v", err, pl)
	}
}

// TestHandlerCORS: without AllowOrigins every page may read the answers
// ("*", the same answer for every origin); with a list, a listed origin
// is named in the answer and granted the preflight, an unlisted one gets
// neither, and every answer varies by Origin.
func TestHandlerCORS(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	for k, v := range map[string]string{
		"s/index.m3u8":     "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.000,\nseg-000000.m4s\n",
		"s/seg-000000.m4s": "segment bytes",
	} {
		if err := b.WriteAll(ctx, k, []byte(v), nil); err != nil {
			t.Fatal(err)
		}
	}
	const listed, unlisted = "https://app.example.com", "https://evil.example.net"
	cases := []struct {
		name      string
		allow     []string
		origin    string
		wantAllow string // Access-Control-Allow-Origin
		wantVary  bool   // Vary: Origin
	}{
		{"default, another origin", nil, unlisted, "*", false},
		{"default, no origin", nil, "", "*", false},
		{"star in a list", []string{listed, "*"}, unlisted, "*", false},
		{"listed", []string{listed}, listed, listed, true},
		{"unlisted", []string{listed}, unlisted, "", true},
		{"list, no origin", []string{listed}, "", "", true},
		{"list, origin that differs in case", []string{listed}, strings.ToUpper(listed), "", true},
		// An entry is taken as browsers spell the origin.
		{"listed otherwise", []string{"HTTPS://App.Example.com:443/"}, listed, listed, true},
		{"listed with a path", []string{listed + "/x"}, listed, "", true},
	}
	for _, c := range cases {
		srv := httptest.NewServer(&hls.Handler{Bucket: b, Prefix: "s/", AllowOrigins: c.allow})
		send := func(method, p string, hdr ...string) *http.Response {
			t.Helper()
			req, _ := http.NewRequest(method, srv.URL+p, nil)
			if c.origin != "" {
				req.Header.Set("Origin", c.origin)
			}
			for i := 0; i+1 < len(hdr); i += 2 {
				req.Header.Set(hdr[i], hdr[i+1])
			}
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp
		}
		check := func(what string, resp *http.Response, status int) {
			t.Helper()
			h := resp.Header
			vary := slices.Contains(h.Values("Vary"), "Origin")
			if n := strings.Count(strings.Join(h.Values("Vary"), ","), "Origin"); n > 1 {
				t.Errorf("%s: %s: Vary %q names Origin %d times", c.name, what, h.Values("Vary"), n)
			}
			if resp.StatusCode != status || h.Get("Access-Control-Allow-Origin") != c.wantAllow || vary != c.wantVary {
				t.Errorf("%s: %s: %d, Access-Control-Allow-Origin %q, Vary %q; want %d, %q, Vary: Origin %v",
					c.name, what, resp.StatusCode, h.Get("Access-Control-Allow-Origin"), h.Values("Vary"), status, c.wantAllow, c.wantVary)
			}
			if exposed := h.Get("Access-Control-Expose-Headers"); (c.wantAllow != "") != strings.Contains(exposed, "Content-Range") {
				t.Errorf("%s: %s: Access-Control-Expose-Headers %q", c.name, what, exposed)
			}
		}
		check("playlist", send("GET", "/index.m3u8", "Accept-Encoding", "gzip"), 200)
		check("segment range", send("GET", "/seg-000000.m4s", "Range", "bytes=0-3"), 206)
		check("missing", send("GET", "/seg-000009.m4s"), 404)
		check("POST", send("POST", "/index.m3u8"), 405)
		pre := send("OPTIONS", "/seg-000000.m4s", "Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "range")
		check("preflight", pre, 204)
		granted := strings.Contains(pre.Header.Get("Access-Control-Allow-Methods"), "GET") &&
			strings.Contains(pre.Header.Get("Access-Control-Allow-Headers"), "Range") && pre.Header.Get("Access-Control-Max-Age") != ""
		if granted != (c.wantAllow != "") || !strings.Contains(pre.Header.Get("Allow"), "GET") {
			t.Errorf("%s: preflight grants GET with Range: %v; Allow %q", c.name, granted, pre.Header.Get("Allow"))
		}
		srv.Close()
	}
}
