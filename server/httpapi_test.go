package server_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/livechunk/livechunk/server"
)

// get sends a request to ts with the headers hdr (pairs) through a client
// that neither adds Accept-Encoding nor decompresses, and returns the
// answer with its whole body.
func get(t *testing.T, ts *testServer, method, path string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	tr := ts.Client().Transport.(*http.Transport).Clone()
	tr.DisableCompression = true
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// addStreams makes a recorded stream (a playlist in the bucket) for each
// name.
func addStreams(t *testing.T, ts *testServer, names ...string) {
	t.Helper()
	for _, n := range names {
		pl := "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.000,\nseg-000000.m4s\n#EXT-X-ENDLIST\n"
		if err := ts.bucket.WriteAll(context.Background(), n+"/index.m3u8", []byte(pl), nil); err != nil {
			t.Fatal(err)
		}
	}
}

// TestVODValidators: the VOD file has a strong ETag; the same version is
// 304 to If-None-Match, ranges are served, and If-Range gives the range
// only for the same version.
func TestVODValidators(t *testing.T) {
	ts := start(t, server.Config{})
	data := bytes.Repeat([]byte("0123456789"), 10_000)
	if err := ts.bucket.WriteAll(context.Background(), "clip/vod.mp4", data, nil); err != nil {
		t.Fatal(err)
	}
	resp, body := get(t, ts, "GET", "/vod/clip.mp4")
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("GET: %d, %d bytes", resp.StatusCode, len(body))
	}
	if !regexp.MustCompile(`^"[!#-~]+"$`).MatchString(etag) {
		t.Fatalf("ETag %q is not a strong entity tag", etag)
	}
	if resp.Header.Get("Last-Modified") == "" || resp.Header.Get("Accept-Ranges") != "bytes" {
		t.Errorf("headers: %v", resp.Header)
	}
	if again, _ := get(t, ts, "HEAD", "/vod/clip.mp4"); again.Header.Get("ETag") != etag {
		t.Errorf("ETag changed between requests: %q, %q", etag, again.Header.Get("ETag"))
	}
	resp, body = get(t, ts, "GET", "/vod/clip.mp4", "If-None-Match", `"other", `+etag)
	if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Errorf("If-None-Match of the same version: %d, %d bytes; want 304", resp.StatusCode, len(body))
	}
	if resp, _ = get(t, ts, "GET", "/vod/clip.mp4", "If-None-Match", `"other"`); resp.StatusCode != 200 {
		t.Errorf("If-None-Match of another version: %d, want 200", resp.StatusCode)
	}
	resp, body = get(t, ts, "GET", "/vod/clip.mp4", "Range", "bytes=10-19")
	if resp.StatusCode != http.StatusPartialContent || string(body) != "0123456789" ||
		resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 10-19/%d", len(data)) {
		t.Errorf("range: %d %q %q", resp.StatusCode, body, resp.Header.Get("Content-Range"))
	}
	if resp, body = get(t, ts, "GET", "/vod/clip.mp4", "Range", "bytes=10-19", "If-Range", etag); resp.StatusCode != 206 || len(body) != 10 {
		t.Errorf("If-Range of the same version: %d, %d bytes; want 206", resp.StatusCode, len(body))
	}
	if resp, body = get(t, ts, "GET", "/vod/clip.mp4", "Range", "bytes=10-19", "If-Range", `"other"`); resp.StatusCode != 200 || len(body) != len(data) {
		t.Errorf("If-Range of another version: %d, %d bytes; want 200 and the whole file", resp.StatusCode, len(body))
	}
	// A file the store keeps no MD5 of (put there by hand) has a strong
	// tag too, from the store's ETag.
	if err := os.MkdirAll(filepath.Join(ts.dir, "raw"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ts.dir, "raw", "vod.mp4"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	resp, _ = get(t, ts, "GET", "/vod/raw.mp4")
	rawTag := resp.Header.Get("ETag")
	if resp.StatusCode != 200 || !regexp.MustCompile(`^"[!#-~]+"$`).MatchString(rawTag) || rawTag == etag {
		t.Errorf("file without MD5: %d, ETag %q", resp.StatusCode, rawTag)
	}
	if resp, _ = get(t, ts, "GET", "/vod/raw.mp4", "If-None-Match", rawTag); resp.StatusCode != http.StatusNotModified {
		t.Errorf("file without MD5, If-None-Match: %d, want 304", resp.StatusCode)
	}
	// Another file (other bytes, other time) has another tag.
	if err := ts.bucket.WriteAll(context.Background(), "clip/vod.mp4", data[:500], nil); err != nil {
		t.Fatal(err)
	}
	if resp, _ = get(t, ts, "GET", "/vod/clip.mp4", "If-None-Match", etag); resp.StatusCode != 200 || resp.Header.Get("ETag") == etag {
		t.Errorf("changed file: %d, ETag %q (was %q)", resp.StatusCode, resp.Header.Get("ETag"), etag)
	}
}

// TestMediaCORS: the VOD file and the playlists and segments answer
// preflights, and expose the headers players read, from one rule.
func TestMediaCORS(t *testing.T) {
	ts := start(t, server.Config{})
	ctx := context.Background()
	for k, v := range map[string]string{
		"cam/vod.mp4":        "mp4 bytes",
		"cam/index.m3u8":     "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.000,\nseg-000000.m4s\n",
		"cam/seg-000000.m4s": "segment bytes",
	} {
		if err := ts.bucket.WriteAll(ctx, k, []byte(v), nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"/vod/cam.mp4", "/live/cam/index.m3u8", "/live/cam/seg-000000.m4s"} {
		resp, _ := get(t, ts, "OPTIONS", p, "Origin", "https://example.com", "Access-Control-Request-Method", "GET",
			"Access-Control-Request-Headers", "range")
		h := resp.Header
		if resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "*" ||
			!strings.Contains(h.Get("Access-Control-Allow-Methods"), "GET") ||
			!strings.Contains(h.Get("Access-Control-Allow-Methods"), "HEAD") ||
			!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Range") || h.Get("Access-Control-Max-Age") == "" ||
			!strings.Contains(h.Get("Allow"), "GET") {
			t.Errorf("preflight %s: %d %v", p, resp.StatusCode, h)
		}
		resp, _ = get(t, ts, "GET", p, "Origin", "https://example.com", "Range", "bytes=0-3")
		h = resp.Header
		if resp.StatusCode/100 != 2 || h.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("GET %s: %d %v", p, resp.StatusCode, h)
		}
		exposed := strings.Split(h.Get("Access-Control-Expose-Headers"), ", ")
		for _, want := range []string{"Content-Length", "Content-Range", "Accept-Ranges", "ETag", "Last-Modified"} {
			if !slices.Contains(exposed, want) {
				t.Errorf("GET %s: %s not exposed (%q)", p, want, exposed)
			}
		}
	}
	// A missing VOD file is readable from another origin too.
	if resp, _ := get(t, ts, "GET", "/vod/nothing.mp4"); resp.StatusCode != 404 || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("missing VOD: %d %v", resp.StatusCode, resp.Header)
	}
}

// TestPlaybackOrigins: with Config.PlaybackOrigins, playback answers
// (playlists, segments, VOD, stream information) and their preflights grant
// the listed origin only, and vary by origin; a malformed origin is refused
// by New.
func TestPlaybackOrigins(t *testing.T) {
	const app, other = "https://app.example.com", "https://other.example.com"
	ts := start(t, server.Config{PlaybackOrigins: []string{"https://App.example.com:443"}}) // as browsers spell it: app
	ctx := context.Background()
	for k, v := range map[string]string{
		"cam/vod.mp4":        "mp4 bytes",
		"cam/index.m3u8":     "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.000,\nseg-000000.m4s\n",
		"cam/seg-000000.m4s": "segment bytes",
	} {
		if err := ts.bucket.WriteAll(ctx, k, []byte(v), nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"/vod/cam.mp4", "/live/cam/index.m3u8", "/live/cam/seg-000000.m4s", "/api/streams", "/api/streams/cam"} {
		for origin, want := range map[string]string{app: app, other: ""} {
			resp, _ := get(t, ts, "GET", p, "Origin", origin)
			if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != want ||
				!slices.Contains(resp.Header.Values("Vary"), "Origin") {
				t.Errorf("GET %s from %s: %d, Access-Control-Allow-Origin %q (want %q), Vary %q", p, origin, resp.StatusCode,
					resp.Header.Get("Access-Control-Allow-Origin"), want, resp.Header.Values("Vary"))
			}
			if strings.HasPrefix(p, "/api/") {
				continue
			}
			resp, _ = get(t, ts, "OPTIONS", p, "Origin", origin, "Access-Control-Request-Method", "GET")
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != want || (want != "") != (resp.Header.Get("Access-Control-Allow-Methods") != "") {
				t.Errorf("preflight %s from %s: Access-Control-Allow-Origin %q (want %q), methods %q", p, origin, got, want, resp.Header.Get("Access-Control-Allow-Methods"))
			}
		}
	}
	if _, err := server.New(server.Config{Bucket: ts.bucket, PlaybackOrigins: []string{"app.example.com/path"}}); !errors.Is(err, server.ErrInvalid) {
		t.Errorf("a malformed playback origin: %v, want server.ErrInvalid", err)
	}
}

// TestStreamsGzip: /api/streams is gzipped for clients that accept it, and
// only for them; refusals are not.
func TestStreamsGzip(t *testing.T) {
	ts := start(t, server.Config{})
	var names []string
	for i := range 20 {
		names = append(names, fmt.Sprintf("cam%02d", i))
	}
	addStreams(t, ts, names...)
	resp, plain := get(t, ts, "GET", "/api/streams")
	var list []server.StreamInfo
	if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "" || json.Unmarshal(plain, &list) != nil || len(list) != 20 {
		t.Fatalf("without Accept-Encoding: %d %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Encoding"), len(plain))
	}
	if !slices.Contains(resp.Header.Values("Vary"), "Accept-Encoding") {
		t.Errorf("no Vary: Accept-Encoding: %v", resp.Header)
	}
	resp, body := get(t, ts, "GET", "/api/streams", "Accept-Encoding", "br, gzip;q=0.8")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "gzip" || len(body) >= len(plain) {
		t.Fatalf("with gzip: %d %q, %d bytes (plain %d)", resp.StatusCode, resp.Header.Get("Content-Encoding"), len(body), len(plain))
	}
	if resp.Header.Get("Content-Length") != fmt.Sprint(len(body)) {
		t.Errorf("Content-Length %q, body %d bytes", resp.Header.Get("Content-Length"), len(body))
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	unzipped, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(unzipped, plain) {
		t.Errorf("gunzipped answer differs: %v\n%s", err, unzipped)
	}
	if resp, _ = get(t, ts, "GET", "/api/streams", "Accept-Encoding", "gzip;q=0, identity"); resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("gzip;q=0 got %q", resp.Header.Get("Content-Encoding"))
	}
	resp, body = get(t, ts, "GET", "/api/streams?limit=many", "Accept-Encoding", "gzip")
	var e struct{ Error string }
	if resp.StatusCode != 400 || resp.Header.Get("Content-Encoding") != "" || json.Unmarshal(body, &e) != nil || e.Error == "" {
		t.Errorf("bad limit: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Encoding"), body)
	}
}

var nextRE = regexp.MustCompile(`^<(/api/streams\?[^>]+)>; rel="next"$`)

// TestStreamsPages walks /api/streams page by page through its Link
// headers: every stream exactly once, in name order (names where the
// order of the bucket's keys, "cam-1/" before "cam/", differs).
func TestStreamsPages(t *testing.T) {
	ts := start(t, server.Config{})
	names := []string{"cam", "cam-1", "cam.2", "cam0", "cam_3", "a", "b", "Z", "9", "cam-1-x"}
	for i := range 13 {
		names = append(names, fmt.Sprintf("s%d", i))
	}
	addStreams(t, ts, names...)
	want := slices.Clone(names)
	slices.Sort(want)
	var got []string
	pages := 0
	for path := "/api/streams?limit=4"; path != ""; pages++ {
		if pages > len(names) {
			t.Fatalf("more pages than streams: %v", got)
		}
		resp, body := get(t, ts, "GET", path)
		var list []server.StreamInfo
		if resp.StatusCode != 200 || json.Unmarshal(body, &list) != nil || len(list) == 0 || len(list) > 4 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
		for _, in := range list {
			got = append(got, in.Name)
		}
		path = ""
		if link := resp.Header.Get("Link"); link != "" {
			if !slices.Contains(strings.Split(resp.Header.Get("Access-Control-Expose-Headers"), ", "), "Link") {
				t.Errorf("Link not exposed to other origins: %v", resp.Header)
			}
			m := nextRE.FindStringSubmatch(link)
			if m == nil {
				t.Fatalf("Link %q", link)
			}
			path = m[1]
		}
	}
	if !slices.Equal(got, want) || pages != (len(names)+3)/4 {
		t.Errorf("%d pages: %v\nwant %v", pages, got, want)
	}
	// The default page holds them all: no Link.
	resp, body := get(t, ts, "GET", "/api/streams")
	var list []server.StreamInfo
	if json.Unmarshal(body, &list) != nil || len(list) != len(names) || resp.Header.Get("Link") != "" {
		t.Errorf("default page: %d streams, Link %q", len(list), resp.Header.Get("Link"))
	}
	// Server.Streams pages the same way.
	page, next, err := ts.srv.Streams(context.Background(), server.StreamsPage{After: "cam", Limit: 2})
	if err != nil || len(page) != 2 || page[0].Name != "cam-1" || page[1].Name != "cam-1-x" || next != "cam-1-x" {
		t.Errorf("Streams after cam: %v %v %q", err, page, next)
	}
	// One stream alone, as the /watch page polls it.
	resp, body = get(t, ts, "GET", "/api/streams/cam.2")
	var one server.StreamInfo
	if resp.StatusCode != 200 || json.Unmarshal(body, &one) != nil || one.Name != "cam.2" || one.State != "ended" || one.Segments != 1 {
		t.Errorf("one stream: %d %s", resp.StatusCode, body)
	}
	if resp, body = get(t, ts, "GET", "/api/streams/nothing"); resp.StatusCode != 404 || !strings.Contains(string(body), `"error"`) {
		t.Errorf("no stream: %d %s", resp.StatusCode, body)
	}
}

// TestMissingChunksAreRanges: the chunks given up are listed as ranges,
// at most 100 of them, with their counts.
func TestMissingChunksAreRanges(t *testing.T) {
	var in server.StreamInfo
	var ranges [][2]uint64
	for i := range uint64(150) {
		ranges = append(ranges, [2]uint64{10 * i, 10*i + 4}) // 5 chunks each
	}
	in.SetMissing(ranges)
	if len(in.Missing) != 100 || in.Missing[99] != ranges[99] || in.MissingRanges != 150 || in.MissingCount != 750 {
		t.Errorf("%d ranges listed (last %v), %d ranges, %d chunks", len(in.Missing), in.Missing[len(in.Missing)-1], in.MissingRanges, in.MissingCount)
	}
	in.SetMissing([][2]uint64{{3, 3}, {7, 9}})
	b, _ := json.Marshal(in)
	if !strings.Contains(string(b), `"chunks_missing_spans":[[3,3],[7,9]],"chunks_missing_spans_total":2,"chunks_missing_count":4`) {
		t.Errorf("JSON: %s", b)
	}
	in.SetMissing(nil)
	if b, _ := json.Marshal(in); strings.Contains(string(b), "chunks_missing") {
		t.Errorf("nothing missing: %s", b)
	}
}

// TestIngestMethodsJSON: every answer under /ingest/ is JSON, a wrong
// method included (405 with Allow), and the real routes still answer.
func TestIngestMethodsJSON(t *testing.T) {
	ts := start(t, server.Config{})
	for _, c := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"PUT", "/ingest/x", 405, "POST"},
		{"GET", "/ingest/x", 405, "POST"},
		{"GET", "/ingest/x/3", 405, "PUT"},
		{"POST", "/ingest/x/3", 405, "PUT"},
		{"DELETE", "/ingest/x/end", 405, "POST"},
		{"GET", "/ingest/x/3/4", 404, ""},
		{"GET", "/ingest/", 404, ""},
		{"PUT", "/ingest/x/end", 405, "POST"},
		{"PUT", "/ingest/x/01", 400, ""},         // one spelling per chunk number
		{"PUT", "/ingest/x/notanumber", 400, ""}, // the chunk route, not shadowed
		{"POST", "/ingest/nothing/end", 404, ""}, // the end route, not shadowed
	} {
		resp, body := get(t, ts, c.method, c.path)
		var e struct{ Error string }
		if resp.StatusCode != c.status || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") ||
			json.Unmarshal(body, &e) != nil || e.Error == "" {
			t.Errorf("%s %s: %d %q %s; want %d in JSON", c.method, c.path, resp.StatusCode, resp.Header.Get("Content-Type"), body, c.status)
		}
		if allow := resp.Header.Get("Allow"); c.allow != "" && !slices.Contains(strings.Split(allow, ", "), c.allow) {
			t.Errorf("%s %s: Allow %q, want %s", c.method, c.path, allow, c.allow)
		}
	}
}
