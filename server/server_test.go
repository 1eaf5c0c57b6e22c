package server_test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/internal/testkit/hlscheck"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"github.com/livechunk/livechunk/server"
	"github.com/livechunk/livechunk/sink"
	"github.com/livechunk/livechunk/source"
	"gocloud.dev/blob"
)

// makeChunks encodes n independent 2-second MP4 chunks of one scene, each
// starting at time 0, as a phone writes them.
func makeChunks(t *testing.T, n int) []string {
	t.Helper()
	dir := t.TempDir()
	var out []string
	for i := 0; i < n; i++ {
		p := filepath.Join(dir, fmt.Sprintf("chunk%d.mp4", i))
		mediatest.FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=10", "-ss", fmt.Sprint(2*i), "-t", "2",
			"-c:v", "libx264", "-preset", "ultrafast", "-x264-params", "keyint=30:scenecut=0:bframes=2", "-pix_fmt", "yuv420p", p)
		out = append(out, p)
	}
	return out
}

type testServer struct {
	*httptest.Server
	srv    *server.Server
	bucket *blob.Bucket
	dir    string
}

func start(t *testing.T, cfg server.Config) *testServer {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	b, err := sink.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	cfg.Bucket = b
	if cfg.SegmentDuration == 0 {
		cfg.SegmentDuration = time.Second
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return &testServer{Server: ts, srv: srv, bucket: b, dir: dir}
}

func (ts *testServer) do(t *testing.T, method, path string, body io.Reader, hdr ...string) (int, string) {
	t.Helper()
	code, answer, _ := call(t, ts, method, path, body, hdr...)
	return code, answer
}

// call sends one request to ts and returns its status, body and headers.
func call(t *testing.T, ts *testServer, method, path string, body io.Reader, hdr ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// holdRoom starts uploading body as chunk 0 of "cam" on a raw connection,
// sends its first n bytes and returns once the upload holds them in the
// spool's room; the caller sends the rest.
func holdRoom(t *testing.T, ts *testServer, body []byte, n int) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "PUT /ingest/cam/0 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", len(body))
	conn.Write(body[:n])
	for ts.srv.UploadBytesHeld() != int64(n) {
		time.Sleep(time.Millisecond) // polling until the server holds what was sent
	}
	return conn
}

func put(t *testing.T, ts *testServer, stream string, n int, file string, hdr ...string) (int, string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return ts.do(t, "PUT", fmt.Sprintf("/ingest/%s/%d", stream, n), bytes.NewReader(data), hdr...)
}

// TestChunkIngestReordersAndStitches uploads four chunks with one sent twice
// and two swapped; the playlist and the stitched MP4 decode to the chunks'
// frames in order.
func TestChunkIngestReordersAndStitches(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	chunks := makeChunks(t, 4)
	var want []string
	for _, c := range chunks {
		want = append(want, mediatest.FrameHashes(t, c)...)
	}
	stitched := make(chan string, 1)
	ts := start(t, server.Config{Stitch: func(ctx context.Context, b *blob.Bucket, playlistKey, outKey string) error {
		stitched <- playlistKey + " -> " + outKey
		return nil
	}})
	for i, step := range []struct {
		n      int
		status string
	}{{0, "recorded"}, {2, "buffered"}, {1, "recorded"}, {1, "duplicate"}, {3, "recorded"}} {
		code, body := put(t, ts, "phone", step.n, chunks[step.n])
		if code != 200 || !strings.Contains(body, `"status": "`+step.status+`"`) {
			t.Fatalf("step %d: chunk %d: %d %s", i, step.n, code, body)
		}
	}
	// A retry must be the same bytes: other bytes under a received number
	// are refused (they used to be answered "duplicate" and dropped).
	if code, body := put(t, ts, "phone", 2, chunks[0]); code != http.StatusConflict || !strings.Contains(body, "other bytes") {
		t.Errorf("chunk 2 again with chunk 0's bytes: %d %s, want 409", code, body)
	}
	// Before the end the playlist is live (EVENT, no ENDLIST) and valid.
	text := waitSegments(t, ts.bucket, "phone/index.m3u8", 1)
	m, errs := hlscheck.Check(string(text))
	for _, e := range errs {
		t.Error(e)
	}
	if m.Ended {
		t.Error("playlist ended before /end")
	}
	code, body := ts.do(t, "POST", "/ingest/phone/end", nil)
	if code != 200 || !strings.Contains(body, `"state"`) {
		t.Fatalf("end: %d %s", code, body)
	}
	if got := <-stitched; got != "phone/index.m3u8 -> phone/vod.mp4" {
		t.Errorf("stitch called with %q", got)
	}
	pl, err := hls.LoadMedia(context.Background(), ts.bucket, "phone/index.m3u8")
	if err != nil || !pl.Ended {
		t.Fatalf("final playlist: %v %+v", err, pl)
	}
	for _, s := range pl.Segments {
		if s.Discontinuity {
			t.Errorf("unexpected discontinuity at %s", s.URI)
		}
	}
	got := mediatest.FrameHashes(t, ts.URL+"/live/phone/index.m3u8")
	if d := mediatest.EqualHashes(want, got); d != "" {
		t.Errorf("live playlist decodes differently from the chunks: %s", d)
	}
	// A chunk after the end is refused; the recording is untouched.
	if code, body := put(t, ts, "phone", 4, chunks[0]); code != http.StatusConflict {
		t.Errorf("chunk after end: %d %s", code, body)
	}
}

// TestMissingChunkBecomesDiscontinuity skips chunk 1: once the window is
// full the stream goes on after a discontinuity instead of stalling.
func TestMissingChunkBecomesDiscontinuity(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	chunks := makeChunks(t, 4)
	ts := start(t, server.Config{ReorderWindow: 2})
	for _, n := range []int{0, 2} {
		if code, body := put(t, ts, "cam", n, chunks[n]); code != 200 {
			t.Fatalf("chunk %d: %d %s", n, code, body)
		}
	}
	code, body := put(t, ts, "cam", 3, chunks[3])
	if code != 200 || !strings.Contains(body, `"status": "recorded"`) || !strings.Contains(body, `"next": 4`) {
		t.Fatalf("chunk 3 should release the window: %d %s", code, body)
	}
	// Chunk 1 arriving now is too late: it is not recorded, and the answer
	// must not tell the device it was (it used to say "duplicate", 200).
	if code, body := put(t, ts, "cam", 1, chunks[1]); code != http.StatusConflict || !strings.Contains(body, "not recorded") {
		t.Errorf("late chunk 1: %d %s, want 409", code, body)
	}
	if code, _ := ts.do(t, "POST", "/ingest/cam/end", nil); code != 200 {
		t.Fatal("end failed")
	}
	pl, err := hls.LoadMedia(context.Background(), ts.bucket, "cam/index.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	disc := 0
	for _, s := range pl.Segments {
		if s.Discontinuity {
			disc++
		}
	}
	if disc != 1 {
		t.Errorf("%d discontinuities, want 1", disc)
	}
	var want []string
	for _, n := range []int{0, 2, 3} {
		want = append(want, mediatest.FrameHashes(t, chunks[n])...)
	}
	got := mediatest.FrameHashes(t, ts.URL+"/live/cam/index.m3u8")
	if d := mediatest.EqualHashes(want, got); d != "" {
		t.Errorf("decoded: %s", d)
	}
}

// TestBadRequestsLeaveStreamIntact tries every kind of bad upload against a
// stream that already holds a chunk.
func TestBadRequestsLeaveStreamIntact(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	chunks := makeChunks(t, 2)
	ts := start(t, server.Config{IngestToken: "s3cret", MaxChunkBytes: 2 << 20})
	auth := []string{"Authorization", "Bearer s3cret"}
	if code, body := put(t, ts, "cam", 0, chunks[0], auth...); code != 200 {
		t.Fatalf("good chunk: %d %s", code, body)
	}
	// The chunk's first segment closes (the second stays open until more
	// input): wait until the playlist lists it.
	before := waitSegments(t, ts.bucket, "cam/index.m3u8", 1)

	dir := t.TempDir()
	hevc := filepath.Join(dir, "hevc.mp4")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=1", "-c:v", "libx265", "-preset", "ultrafast",
		"-x265-params", "log-level=error", "-tag:v", "hvc1", hevc)
	good, _ := os.ReadFile(chunks[1])
	truncated := filepath.Join(dir, "trunc.mp4")
	os.WriteFile(truncated, good[:len(good)/2], 0o644)
	garbage := filepath.Join(dir, "garbage.mp4")
	os.WriteFile(garbage, bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 1000), 0o644)
	zeros := filepath.Join(dir, "zeros.mp4")
	os.WriteFile(zeros, make([]byte, 64<<10), 0o644)
	big := filepath.Join(dir, "big.mp4")
	// An MP4 box header (an mdat running to the end), then zeros: the size
	// limit refuses it, not the first bytes.
	os.WriteFile(big, append([]byte{0, 0, 0, 0, 'm', 'd', 'a', 't'}, make([]byte, 3<<20)...), 0o644)
	empty := filepath.Join(dir, "empty.mp4")
	os.WriteFile(empty, nil, 0o644)
	vp9 := filepath.Join(dir, "vp9.mp4")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=1", "-c:v", "libvpx-vp9", "-deadline", "realtime",
		"-cpu-used", "8", vp9)
	tsFile := filepath.Join(dir, "push.ts")
	mediatest.FFmpeg(t, "-i", chunks[1], "-c", "copy", "-f", "mpegts", tsFile)

	cases := []struct {
		name   string
		path   string
		file   string
		hdr    []string
		status int
		msg    string
		method string // default PUT
		chunk  bool   // send without Content-Length (chunked)
	}{
		{"no token", "/ingest/cam/1", chunks[1], nil, 401, "token", "", false},
		{"wrong token", "/ingest/cam/1", chunks[1], []string{"Authorization", "Bearer nope"}, 401, "token", "", false},
		{"another scheme", "/ingest/cam/1", chunks[1], []string{"Authorization", "Basic czNjcmU="}, 401, "token", "", false},
		{"garbage", "/ingest/cam/1", garbage, auth, 400, "not an mp4", "", false},
		{"zeros", "/ingest/cam/1", zeros, auth, 400, "not an mp4 file (it starts with 00 00", "", false},
		{"truncated", "/ingest/cam/1", truncated, auth, 400, "", "", false},
		{"empty", "/ingest/cam/1", empty, auth, 400, "empty", "", false},
		{"hevc", "/ingest/cam/1", hevc, auth, 415, "unsupported", "", false},
		{"too large", "/ingest/cam/1", big, auth, 413, "limit", "", false},
		{"bad name", "/ingest/..%2fetc/1", chunks[1], auth, 400, "invalid stream name", "", false},
		{"dot name", "/ingest/.hidden/1", chunks[1], auth, 400, "invalid stream name", "", false},
		{"bad number", "/ingest/cam/-1", chunks[1], auth, 400, "invalid chunk number", "", false},
		{"huge number", "/ingest/cam/99999999999", chunks[1], auth, 400, "invalid chunk number", "", false},
		{"vp9", "/ingest/cam/1", vp9, auth, 415, "unsupported", "", false},
		{"too large, chunked", "/ingest/cam/1", big, auth, 413, "limit", "", true},
		{"end without token", "/ingest/cam/end", empty, nil, 401, "token", "POST", false},
		{"end with a wrong token", "/ingest/cam/end", empty, []string{"Authorization", "Bearer s3cre"}, 401, "token", "POST", false},
		{"push without token", "/ingest/other", tsFile, nil, 401, "token", "POST", true},
		{"push into a chunk stream", "/ingest/cam", tsFile, auth, 409, "already being recorded", "POST", true},
		{"push garbage", "/ingest/junk", garbage, auth, 400, "junk", "POST", true},
		{"push hevc", "/ingest/junk", hevc, auth, 415, "unsupported", "POST", true},
		{"push bad name", "/ingest/a%2Fb", tsFile, auth, 400, "invalid stream name", "POST", true},
		{"end of an unknown stream", "/ingest/nothing/end", empty, auth, 404, "no live stream", "POST", false},
	}
	for _, c := range cases {
		data, _ := os.ReadFile(c.file)
		var rd io.Reader = bytes.NewReader(data)
		if c.chunk {
			rd = io.MultiReader(rd) // hides the length: the body is sent chunked
		}
		method := cmp.Or(c.method, "PUT")
		code, body := ts.do(t, method, c.path, rd, c.hdr...)
		if code != c.status || !strings.Contains(strings.ToLower(body), c.msg) {
			t.Errorf("%s: %d %s; want %d containing %q", c.name, code, body, c.status, c.msg)
		}
		var e struct{ Error string }
		if code != 200 && (json.Unmarshal([]byte(body), &e) != nil || e.Error == "") {
			t.Errorf("%s: error body is not JSON {error}: %s", c.name, body)
		}
	}
	after, _ := ts.bucket.ReadAll(context.Background(), "cam/index.m3u8")
	if !bytes.Equal(before, after) {
		t.Errorf("bad requests changed the playlist")
	}
	// Refused pushes left no stream behind.
	list, _, err := ts.srv.Streams(context.Background(), server.StreamsPage{})
	if err != nil || len(list) != 1 || list[0].Name != "cam" || list[0].State != "live" {
		t.Errorf("streams after the bad requests: %v %+v", err, list)
	}
	// The stream still takes good chunks and ends normally (the scheme of
	// the token is case-insensitive).
	if code, body := put(t, ts, "cam", 1, chunks[1], "Authorization", "bearer s3cret"); code != 200 {
		t.Fatalf("good chunk after bad ones: %d %s", code, body)
	}
	if code, body := ts.do(t, "POST", "/ingest/cam/end", nil, auth...); code != 200 {
		t.Fatalf("end: %d %s", code, body)
	}
	var want []string
	for _, c := range chunks {
		want = append(want, mediatest.FrameHashes(t, c)...)
	}
	if d := mediatest.EqualHashes(want, mediatest.FrameHashes(t, ts.URL+"/live/cam/index.m3u8")); d != "" {
		t.Errorf("decoded: %s", d)
	}
	// Playback needs no token.
	if code, _ := ts.do(t, "GET", "/api/streams", nil); code != 200 {
		t.Errorf("api: %d", code)
	}
	if code, _ := ts.do(t, "GET", "/watch/cam", nil); code != 200 {
		t.Errorf("watch: %d", code)
	}
}

// TestPushMPEGTS streams an MPEG-TS body with ffmpeg, as a camera would; the
// playlist is live while the body streams and ends with it.
func TestPushMPEGTS(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	ts := start(t, server.Config{})
	in := mediatest.Testdata("bframes.mp4")
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-i", in, "-c", "copy",
		"-f", "mpegts", "-method", "POST", ts.URL+"/ingest/cam")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// While ffmpeg pushes in real time, the playlist appears and is live.
	sawLive := false
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		pl, err := hls.LoadMedia(context.Background(), ts.bucket, "cam/index.m3u8")
		if err == nil && len(pl.Segments) > 0 && !pl.Ended {
			sawLive = true
			break
		}
		if err == nil && pl.Ended {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling an observable condition
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ffmpeg: %v %s", err, stderr.String())
	}
	if !sawLive {
		t.Error("never saw the playlist live while the body streamed")
	}
	// The end of the body ends the stream.
	deadline = time.Now().Add(10 * time.Second)
	var pl *hls.MediaPlaylist
	for time.Now().Before(deadline) {
		var err error
		pl, err = hls.LoadMedia(context.Background(), ts.bucket, "cam/index.m3u8")
		if err == nil && pl.Ended {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if pl == nil || !pl.Ended {
		t.Fatal("stream did not end with the body")
	}
	want := mediatest.FrameHashes(t, in)
	if d := mediatest.EqualHashes(want, mediatest.FrameHashes(t, ts.URL+"/live/cam/index.m3u8")); d != "" {
		t.Errorf("decoded: %s", d)
	}
}

// waitSegments polls the playlist until it lists n segments.
func waitSegments(t *testing.T, b *blob.Bucket, key string, n int) []byte {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		text, err := b.ReadAll(context.Background(), key)
		if err == nil {
			if pl, err := hls.ParseMedia(text); err == nil && len(pl.Segments) >= n {
				return text
			}
		}
		time.Sleep(10 * time.Millisecond) // polling an observable condition
	}
	t.Fatalf("%s never listed %d segments", key, n)
	return nil
}

// TestChunkIngestKeepsRotation uploads portrait chunks (a phone held
// upright: the picture is coded 320x240 and the track's matrix turns it by
// 90 degrees): the live playlist and the stitched /vod MP4 keep the
// rotation, so ffmpeg decodes the same upright frames from them as from
// the chunks.
func TestChunkIngestKeepsRotation(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	chunks := makeChunks(t, 2)
	var want []string
	for _, c := range chunks {
		mediatest.SetRotation(t, c, 90)
		want = append(want, mediatest.FrameHashes(t, c)...)
	}
	ts := start(t, server.Config{Stitch: server.StitchMP4})
	for i, c := range chunks {
		if code, body := put(t, ts, "phone", i, c); code != 200 {
			t.Fatalf("chunk %d: %d %s", i, code, body)
		}
	}
	if code, body := ts.do(t, "POST", "/ingest/phone/end", nil); code != 200 {
		t.Fatalf("end: %d %s", code, body)
	}
	// Shutdown returns once the ended stream is finished and stitched.
	if err := ts.srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if d := mediatest.EqualHashes(want, mediatest.FrameHashes(t, ts.URL+"/live/phone/index.m3u8")); d != "" {
		t.Errorf("live playlist: %s", d)
	}
	if d := mediatest.EqualHashes(want, mediatest.FrameHashes(t, ts.URL+"/vod/phone.mp4")); d != "" {
		t.Errorf("stitched MP4: %s", d)
	}
}

// TestChunkWithMP3Audio uploads a chunk whose audio is MP3: the video is
// recorded and the answer says the audio is not.
func TestChunkWithMP3Audio(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	p := filepath.Join(t.TempDir(), "mp3.mp4")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=2", "-f", "lavfi", "-i", "sine=duration=2",
		"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "libmp3lame", p)
	ts := start(t, server.Config{})
	code, body := put(t, ts, "cam", 0, p)
	if code != 200 || !strings.Contains(body, `"status": "recorded"`) || !strings.Contains(body, `"note": "the input's audio (MP3) is not recorded: livechunk records readable AAC-LC and HE-AAC audio only"`) {
		t.Errorf("chunk: %d %s", code, body)
	}
}

// TestValidStreamName checks the hand-written check against the rule as a
// regular expression, on names at and around every boundary.
func TestValidStreamName(t *testing.T) {
	rule := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	refused := regexp.MustCompile(`\.\.|\.$`)
	names := []string{"", "a", "A", "0", "_", ".", "-", "a_", "a.", "a-", "cam1", "Cam_1.hd-2", "..", "a/b",
		"a b", "é", "aé", "a\x00", "a\n", strings.Repeat("a", 63), strings.Repeat("a", 64), strings.Repeat("a", 65),
		"a" + strings.Repeat("-", 63), "a" + strings.Repeat("-", 64), "-a", ".hidden", "a%2f", "a..", "a..b", "a.b", "a.b.", "a.-."}
	for c := 0; c < 256; c++ {
		names = append(names, string([]byte{byte(c)}), "x"+string([]byte{byte(c)}))
	}
	for _, n := range names {
		if got, want := server.ValidStreamName(n), rule.MatchString(n) && !refused.MatchString(n); got != want {
			t.Errorf("ValidStreamName(%q) = %v, want %v", n, got, want)
		}
	}
}

// TestChunkAudioConfigChange: a chunk whose AAC configuration differs from
// the stream's (44.1 kHz mono after 48 kHz stereo: a microphone that
// changed) has its video recorded and its audio left out, with a note; its
// frames used to go into the stream's 48 kHz track and played 8.8% fast.
func TestChunkAudioConfigChange(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	dir := t.TempDir()
	chunk := func(name, rate, channels string) string {
		p := filepath.Join(dir, name)
		mediatest.FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=2",
			"-f", "lavfi", "-i", "sine=frequency=880:duration=2:sample_rate="+rate, "-c:v", "libx264", "-preset", "ultrafast",
			"-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", channels, p)
		return p
	}
	c0, c1 := chunk("c0.mp4", "48000", "2"), chunk("c1.mp4", "44100", "1")
	ts := start(t, server.Config{})
	if code, body := put(t, ts, "mic", 0, c0); code != 200 || strings.Contains(body, "note") {
		t.Fatalf("chunk 0: %d %s", code, body)
	}
	code, body := put(t, ts, "mic", 1, c1)
	if code != 200 || !strings.Contains(body, `"status": "recorded"`) || !strings.Contains(body, "44100 Hz, 1 channels") {
		t.Errorf("chunk 1: %d %s, want recorded with a note on its audio", code, body)
	}
	if code, _ := ts.do(t, "POST", "/ingest/mic/end", nil); code != 200 {
		t.Fatal("end failed")
	}
	live := ts.URL + "/live/mic/index.m3u8"
	want := append(mediatest.FrameHashes(t, c0), mediatest.FrameHashes(t, c1)...)
	if d := mediatest.EqualHashes(want, mediatest.FrameHashes(t, live)); d != "" {
		t.Errorf("video: %s", d)
	}
	if got, in := mediatest.PacketCount(t, live, "audio"), mediatest.PacketCount(t, c0, "audio"); got > in {
		t.Errorf("%d audio frames recorded, chunk 0 has %d: chunk 1's went into the 48 kHz track", got, in)
	}
}

// TestChunksWithAudioLead: chunks whose video an edit list delays by 0.5 s
// behind their audio (4.5 s of audio, 4 s of video from 0.5 s on) are
// joined by their pictures (each chunk's pictures continue the previous
// chunk's, no hole), their audio moving with them: the first 0.5 s of
// every chunk's audio after the first lands on the last 0.5 s of the chunk
// before's, a true overlap, and is dropped (about 24 frames a join); every
// other frame is kept. (Before, each chunk was placed after its
// predecessor's audio: all audio kept, and a 0.5 s hole in the video at
// every join.)
func TestChunksWithAudioLead(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	dir := t.TempDir()
	var chunks []string
	audio := 0
	for i := range 3 {
		v, a := filepath.Join(dir, fmt.Sprintf("v%d.mp4", i)), filepath.Join(dir, fmt.Sprintf("a%d.m4a", i))
		mediatest.FFmpeg(t, "-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=320x240:rate=30:duration=4,hue=h=%d", 90*i),
			"-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-pix_fmt", "yuv420p", v)
		mediatest.FFmpeg(t, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=4.5", "-c:a", "aac", a)
		p := filepath.Join(dir, fmt.Sprintf("c%d.mp4", i))
		mediatest.FFmpeg(t, "-itsoffset", "0.5", "-i", v, "-i", a, "-map", "0:v", "-map", "1:a", "-c", "copy", p)
		chunks = append(chunks, p)
		audio += mediatest.PacketCount(t, p, "audio")
	}
	ts := start(t, server.Config{})
	for i, c := range chunks {
		if code, body := put(t, ts, "lead", i, c); code != 200 {
			t.Fatalf("chunk %d: %d %s", i, code, body)
		}
	}
	if code, _ := ts.do(t, "POST", "/ingest/lead/end", nil); code != 200 {
		t.Fatal("end failed")
	}
	live := ts.URL + "/live/lead/index.m3u8"
	if got := mediatest.PacketCount(t, live, "audio"); got < audio-2*26 || got > audio-2*22 {
		t.Errorf("%d audio frames recorded, the chunks have %d: want all but the 0.5 s overlaps of two joins", got, audio)
	}
	var want []string
	for _, c := range chunks {
		want = append(want, mediatest.FrameHashes(t, c)...)
	}
	if d := mediatest.EqualHashes(want, mediatest.FrameHashes(t, live)); d != "" {
		t.Errorf("video: %s", d)
	}
}

// TestChunkWithUnreadableAudio: a chunk whose pictures read but whose last
// audio frames lie past its end is refused whole (400) before the stream
// depends on it, and the stream goes on with the chunks that follow; so
// is a chunk with an audio frame larger than AAC allows.
func TestChunkWithUnreadableAudio(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	dir := t.TempDir()
	good := filepath.Join(dir, "good.mp4")
	mediatest.FFmpeg(t, "-i", mediatest.Testdata("av.mp4"), "-c", "copy", "-movflags", "+faststart", good)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	// Cut the file where every picture still reads and an audio frame
	// does not.
	bad := ""
	for n := len(data) - 1; n > len(data)/2 && bad == ""; n-- {
		src, err := source.NewMP4(bytes.NewReader(data[:n]), source.Options{})
		if err != nil {
			continue
		}
		videoOK := true
		for {
			if _, err := src.Next(); err != nil {
				videoOK = err == io.EOF
				break
			}
		}
		src, _ = source.NewMP4(bytes.NewReader(data[:n]), source.Options{})
		for {
			_, err := src.NextPacket()
			if err == io.EOF {
				break
			}
			if err != nil && videoOK {
				bad = filepath.Join(dir, "bad.mp4")
				if err := os.WriteFile(bad, data[:n], 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err != nil {
				break
			}
		}
	}
	if bad == "" {
		t.Fatal("no cut of the fixture loses audio but keeps its pictures")
	}
	ts := start(t, server.Config{})
	for i, tc := range []struct {
		n    int
		file string
		want int
	}{{0, good, 200}, {1, bad, 400}, {1, good, 200}, {2, good, 200}} {
		if code, body := put(t, ts, "cam", tc.n, tc.file); code != tc.want {
			t.Fatalf("upload %d (chunk %d): %d %s, want %d", i, tc.n, code, body, tc.want)
		}
	}
}

// TestRefusalsAreReadable: a client that sends its whole body before it
// reads the answer (as Python's urllib does) gets the refusal, not a reset
// connection: a wrong token, a declared size over the limit. And a body
// that does not start as an MP4 file is refused after its first bytes:
// the answer comes while the rest is still unsent.
func TestRefusalsAreReadable(t *testing.T) {
	ts := start(t, server.Config{IngestToken: "s3cret", MaxChunkBytes: 8 << 20})
	body := append([]byte{0, 0, 0, 24, 'f', 't', 'y', 'p'}, make([]byte, 5<<20)...)
	send := func(hdr string, data []byte) string {
		t.Helper()
		conn, err := net.Dial("tcp", ts.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.WriteString(conn, hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(data); err != nil {
			return "write: " + err.Error()
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			return "read: " + err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return fmt.Sprintf("%d %s", resp.StatusCode, b)
	}
	put := func(length int, auth string) string {
		return fmt.Sprintf("PUT /ingest/cam/0 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n", length, auth)
	}
	for _, c := range []struct {
		name, hdr string
		data      []byte
		want      string
	}{
		{"wrong token", put(len(body), "Authorization: Bearer nope\r\n"), body, "401 "},
		{"over the limit", put(300<<20, "Authorization: Bearer s3cret\r\n"), body, "413 "},
		{"not an MP4 file, first bytes only", put(len(body), "Authorization: Bearer s3cret\r\n"), make([]byte, 1<<20), "400 "},
	} {
		if got := send(c.hdr, c.data); !strings.HasPrefix(got, c.want) || !strings.Contains(got, `"error"`) {
			t.Errorf("%s: %.120s, want %s with a JSON error", c.name, got, c.want)
		}
	}
}

// padded returns the chunk in file followed by a free box, size bytes in
// all: an MP4 file that reads as the chunk.
func padded(t *testing.T, file string, size int) []byte {
	t.Helper()
	data := mustRead(t, file)
	n := size - len(data)
	if n < 8 {
		t.Fatalf("%s is %d bytes already", file, len(data))
	}
	free := make([]byte, n)
	binary.BigEndian.PutUint32(free, uint32(n))
	copy(free[4:], "free")
	return append(data, free...)
}

// TestUploadRoomIsBounded: with room for 3 MiB of spooled uploads, an
// upload of 2.5 MiB whose body is partly sent holds what it sent (2 MiB,
// not what it declared); a second upload of 2 MiB is refused at once
// with 503 and Retry-After once it finds the room full (nothing waits,
// so that clients that trickle cannot hold others back); the first one
// is then recorded, gives its room back, and the second sent again is
// recorded.
func TestUploadRoomIsBounded(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	chunks := makeChunks(t, 2)
	ts := start(t, server.Config{MaxChunkBytes: 3 << 20, MaxUploadBytes: 3 << 20, MaxUploadMemory: 1})
	a, b := padded(t, chunks[0], 5<<19), padded(t, chunks[1], 2<<20)
	conn := holdRoom(t, ts, a, 2<<20)
	code, answer, h := call(t, ts, "PUT", "/ingest/cam/1", bytes.NewReader(b))
	if code != 503 || h.Get("Retry-After") == "" || !strings.Contains(answer, "MaxUploadBytes") {
		t.Fatalf("an upload that finds the room full: %d %s (Retry-After %q)", code, answer, h.Get("Retry-After"))
	}
	conn.Write(a[2<<20:])
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the first upload: %v %v", resp, err)
	}
	if code, answer := ts.do(t, "PUT", "/ingest/cam/1", bytes.NewReader(b)); code != 200 || !strings.Contains(answer, `"recorded"`) {
		t.Fatalf("the second upload sent again: %d %s", code, answer)
	}
	if held := ts.srv.UploadBytesHeld(); held != 0 {
		t.Errorf("%d bytes of room still held", held)
	}
}

// TestSlowUploadIsCutOff: a body that trickles in (here: 100 KiB, then
// nothing) is cut off once it falls behind the minimum rate, with a 408
// that the client can read; nothing of it is recorded, and the stream
// takes the chunk when it comes again.
func TestSlowUploadIsCutOff(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	chunks := makeChunks(t, 1)
	ts := start(t, server.Config{MinUploadRate: 64 << 10})
	body := padded(t, chunks[0], 1<<20)
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT /ingest/cam/0 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", len(body))
	conn.Write(body[:100<<10])
	conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(answer), "too slow") {
		t.Fatalf("a stalled upload: %d %s", resp.StatusCode, answer)
	}
	if code, answer := ts.do(t, "PUT", "/ingest/cam/0", bytes.NewReader(body)); code != 200 || !strings.Contains(answer, `"recorded"`) {
		t.Fatalf("the chunk sent again: %d %s", code, answer)
	}
}
