package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/internal/testkit/browsertest"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
)

// The end-to-end tests run the real `livechunk serve` (the command line's
// code path, on 127.0.0.1 with an ephemeral port), feed it with ffmpeg and
// curl-like requests, play it live in headless Chromium and judge the
// stitched MP4 by its decoded pictures and its audio packets.

// serveURL finds the base URL that serve prints when it listens.
var serveURL = regexp.MustCompile(`serving .* on (http://127\.0\.0\.1:[0-9]+)`)

// cliServer is `livechunk serve` running in this process.
type cliServer struct {
	base     string
	store    string
	cancel   context.CancelFunc
	done     chan int
	out, err *mediatest.SyncBuffer
}

// startServe runs `livechunk serve -addr 127.0.0.1:0 -store DIR args...`
// until the test ends (or stop), and waits for the URL it prints.
func startServe(t *testing.T, args ...string) *cliServer {
	t.Helper()
	s := &cliServer{store: filepath.Join(t.TempDir(), "store"), done: make(chan int, 1), out: &mediatest.SyncBuffer{}, err: &mediatest.SyncBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	args = append([]string{"serve", "-addr", "127.0.0.1:0", "-store", s.store}, args...)
	go func() { s.done <- runContext(ctx, args, s.out, s.err) }()
	t.Cleanup(func() { s.stop(t) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := serveURL.FindStringSubmatch(s.out.String()); m != nil {
			s.base = m[1]
			return s
		}
		select {
		case code := <-s.done:
			s.done <- code
			t.Fatalf("serve exited with %d before listening:\n%s%s", code, s.out.String(), s.err.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve printed no URL:\n%s%s", s.out.String(), s.err.String())
		}
		time.Sleep(5 * time.Millisecond) // polling an observable condition
	}
}

// stop cancels serve (as SIGINT does) and returns its exit code.
func (s *cliServer) stop(t *testing.T) int {
	t.Helper()
	s.cancel()
	select {
	case code := <-s.done:
		s.done <- code
		return code
	case <-time.After(90 * time.Second):
		t.Fatalf("serve did not shut down:\n%s", s.err.String())
		return -1
	}
}

// request sends one request and returns the status and body.
func request(t *testing.T, method, url string, body []byte, hdr ...string) (int, []byte, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header
}

// phoneChunks encodes n independent MP4 chunks of 2 s (H.264 with B-frames
// and an IDR every second, AAC audio at 44.1 kHz), each starting at time 0
// with its own encoder priming, as consecutive parts of one scene.
func phoneChunks(t *testing.T, n int) []string {
	t.Helper()
	dir := t.TempDir()
	var out []string
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("chunk%d.mp4", i))
		mediatest.FFmpeg(t, "-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=320x240:rate=30:duration=%d", 2*n),
			"-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=440:sample_rate=44100:duration=%d", 2*n),
			"-ss", strconv.Itoa(2*i), "-t", "2",
			"-c:v", "libx264", "-preset", "ultrafast", "-x264-params", "keyint=30:scenecut=0:bframes=2", "-pix_fmt", "yuv420p",
			"-c:a", "aac", "-b:a", "64k", p)
		out = append(out, p)
	}
	return out
}

// audioPacketHashes returns the MD5 of every packet of the first audio
// stream of input (copied, not decoded: the bytes must be the input's;
// without the ADTS headers MPEG-TS carries) and their PTS.
func audioPacketHashes(t *testing.T, input string) (hashes []string, pts []int64) {
	t.Helper()
	out := mediatest.FFmpeg(t, "-i", input, "-map", "0:a:0", "-c", "copy", "-bsf:a", "aac_adtstoasc", "-f", "framemd5", "-")
	for _, line := range strings.Split(string(out), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) < 6 {
			continue
		}
		p, err := strconv.ParseInt(strings.TrimSpace(f[2]), 10, 64)
		if err != nil {
			t.Fatalf("framemd5 line %q", line)
		}
		hashes = append(hashes, strings.TrimSpace(f[5]))
		pts = append(pts, p)
	}
	return hashes, pts
}

// streamInfo returns the stream's entry of /api/streams.
func streamInfo(t *testing.T, base, name string) map[string]any {
	t.Helper()
	code, body, _ := request(t, "GET", base+"/api/streams", nil)
	if code != http.StatusOK {
		t.Fatalf("/api/streams: %d %s", code, body)
	}
	var list []map[string]any
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatalf("/api/streams: %v: %s", err, body)
	}
	for _, s := range list {
		if s["name"] == name {
			return s
		}
	}
	return nil
}

// waitVOD polls /vod/{name}.mp4 (503 while it is being stitched) until it
// is there, and returns it.
func waitVOD(t *testing.T, base, name string) []byte {
	t.Helper()
	var got []byte
	waitFor(t, "/vod/"+name+".mp4", func() bool {
		code, body, _ := request(t, "GET", base+"/vod/"+name+".mp4", nil)
		if code != http.StatusOK && code != http.StatusServiceUnavailable && code != http.StatusNotFound {
			t.Fatalf("/vod/%s.mp4: %d %s", name, code, body)
		}
		got = body
		return code == http.StatusOK
	})
	return got
}

// checkRanges asks for parts of /vod/{name}.mp4 as a seeking browser does.
func checkRanges(t *testing.T, base, name string, full []byte) {
	t.Helper()
	n := len(full)
	for _, r := range []struct {
		hdr        string
		start, end int // inclusive
	}{
		{"bytes=0-99", 0, 99},
		{fmt.Sprintf("bytes=%d-%d", n/2, n/2+4095), n / 2, n/2 + 4095},
		{"bytes=-500", n - 500, n - 1},
		{fmt.Sprintf("bytes=%d-", n-10), n - 10, n - 1},
	} {
		code, body, h := request(t, "GET", base+"/vod/"+name+".mp4", nil, "Range", r.hdr)
		want := fmt.Sprintf("bytes %d-%d/%d", r.start, r.end, n)
		if code != http.StatusPartialContent || h.Get("Content-Range") != want || !bytes.Equal(body, full[r.start:r.end+1]) {
			t.Errorf("Range %s: %d, Content-Range %q (want %q), %d bytes", r.hdr, code, h.Get("Content-Range"), want, len(body))
		}
	}
	if code, _, h := request(t, "GET", base+"/vod/"+name+".mp4", nil, "Range", fmt.Sprintf("bytes=%d-", n+10)); code != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("Range past the end: %d %v", code, h)
	}
}

// TestServeEndToEnd is the phone pattern through `livechunk serve`: four
// independent MP4 chunks with audio, each starting at 0, are uploaded with
// an ingest token, one twice and two swapped; Chromium starts playing the
// live stream after the first two and keeps playing while the others
// arrive (with bad uploads among them); the stream is ended, and the
// stitched /vod MP4 (also fetched in ranges) has exactly the chunks'
// pictures and audio packets.
func TestServeEndToEnd(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	mediatest.RequireTool(t, "chromium")
	chunks := phoneChunks(t, 4)
	data := make([][]byte, len(chunks))
	for i, c := range chunks {
		data[i] = mustReadFile(t, c)
	}
	const token = "e2e-secret"
	auth := []string{"Authorization", "Bearer " + token}
	srv := startServe(t, "-segment", "1s", "-ingest-token", token)
	ingest := func(n int, want string) {
		t.Helper()
		code, body, _ := request(t, "PUT", fmt.Sprintf("%s/ingest/phone/%d", srv.base, n), data[n], auth...)
		if code != http.StatusOK || !strings.Contains(string(body), `"status": "`+want+`"`) {
			t.Errorf("chunk %d: %d %s; want status %q", n, code, body, want)
		}
	}
	// Without the token nothing is created.
	if code, body, _ := request(t, "PUT", srv.base+"/ingest/phone/0", data[0]); code != http.StatusUnauthorized {
		t.Fatalf("chunk without token: %d %s", code, body)
	}
	ingest(0, "recorded")
	ingest(1, "recorded")
	// The first chunks' segments are listed before the player starts.
	waitFor(t, "segments of the first chunks", func() bool {
		// The playlist appears once the first segment is durable: a 404
		// until then is the answer to expect, not a failure.
		code, body, _ := request(t, "GET", srv.base+"/live/phone/index.m3u8", nil)
		if code == http.StatusNotFound {
			return false
		}
		pl, err := hls.ParseMedia(body)
		return code == http.StatusOK && err == nil && len(pl.Segments) >= 3
	})

	// The rest arrive once Chromium plays: chunk 3 before chunk 2, chunk 2
	// twice, bad uploads in between (a few local requests: OnPoll may make
	// them).
	uploaded := false
	res := browsertest.PlayHLS(t, srv.base+"/live/phone/index.m3u8", browsertest.Options{
		MinTime: 4.5, // into chunk 2, which arrives during playback
		Timeout: 90 * time.Second,
		OnPoll: func(r browsertest.Result) {
			if r.StartTime < 0 || uploaded {
				return
			}
			uploaded = true
			t.Logf("playing at %.2f s; uploading chunks 3, 2, 2", r.CurrentTime)
			ingest(3, "buffered")
			badUploads(t, srv.base, auth, data[1])
			ingest(2, "recorded")
			ingest(2, "duplicate")
		},
		Until: func(r browsertest.Result) bool {
			return r.Live && len(r.PlaylistSizes) > 0 && r.PlaylistSizes[len(r.PlaylistSizes)-1] > r.PlaylistSizes[0]
		},
	})
	if !uploaded || !res.Reached || len(res.Fatal()) > 0 || len(res.ForeignRequests) > 0 {
		t.Fatalf("live playback while chunks arrived failed:\n%s", res)
	}
	t.Logf("played live from %.2f s to %.2f s while chunks 2 and 3 arrived; playlist sizes %v", res.StartTime, res.CurrentTime, res.PlaylistSizes)

	// End the stream: ENDLIST, then the stitched MP4.
	if code, body, _ := request(t, "POST", srv.base+"/ingest/phone/end", nil); code != http.StatusUnauthorized {
		t.Errorf("end without token: %d %s", code, body)
	}
	if code, body, _ := request(t, "POST", srv.base+"/ingest/phone/end", nil, auth...); code != http.StatusOK {
		t.Fatalf("end: %d %s", code, body)
	}
	pl, err := hls.ParseMedia(mustGet(t, srv.base+"/live/phone/index.m3u8"))
	if err != nil || !pl.Ended || len(pl.Segments) != 8 {
		t.Fatalf("final playlist: %v, %+v", err, pl)
	}
	vod := waitVOD(t, srv.base, "phone")
	checkRanges(t, srv.base, "phone", vod)
	if i, j := bytes.Index(vod, []byte("moov")), bytes.Index(vod, []byte("mdat")); i < 0 || j < 0 || i > j {
		t.Error("the VOD MP4 is not faststart (moov after mdat)")
	}
	vodFile := filepath.Join(t.TempDir(), "phone.mp4")
	if err := os.WriteFile(vodFile, vod, 0o644); err != nil {
		t.Fatal(err)
	}

	// Pictures: those of the chunks, in order. Audio: every packet of the
	// chunks, byte for byte, less the encoder priming of chunks 1 to 3
	// (before their time 0) that would overlap the chunk before.
	var wantV, wantA []string
	for i, c := range chunks {
		wantV = append(wantV, mediatest.FrameHashes(t, c)...)
		h, pts := audioPacketHashes(t, c)
		for j := range h {
			if i == 0 || pts[j] >= 0 {
				wantA = append(wantA, h[j])
			}
		}
	}
	if d := mediatest.EqualHashes(wantV, mediatest.FrameHashes(t, vodFile)); d != "" {
		t.Errorf("video of /vod/phone.mp4: %s", d)
	}
	gotA, _ := audioPacketHashes(t, vodFile)
	if d := mediatest.EqualHashes(wantA, gotA); d != "" {
		t.Errorf("audio of /vod/phone.mp4: %s", d)
	}
	if info := streamInfo(t, srv.base, "phone"); info == nil || info["state"] != "vod" || info["vod"] != "/vod/phone.mp4" {
		t.Errorf("/api/streams entry: %v", info)
	}
	if home := string(mustGet(t, srv.base+"/")); !strings.Contains(home, `href="/watch/phone"`) || !strings.Contains(home, `href="/vod/phone.mp4"`) {
		t.Errorf("the stream list does not link the stream and its MP4:\n%s", home)
	}
	if code := srv.stop(t); code != exitOK {
		t.Errorf("serve exited with %d:\n%s", code, srv.err.String())
	}
}

// TestServeBasePath: with -base-path, serve prints its URL with the path
// and serves every route under it: a chunk uploaded there is listed with
// URLs under the path, and the player page's script is there too.
func TestServeBasePath(t *testing.T) {
	srv := startServe(t, "-base-path", "/studio/")
	base := srv.base + "/studio"
	for _, want := range []string{" on " + base + "\n", "streams: " + base + "/\n"} {
		if !strings.Contains(srv.out.String(), want) {
			t.Errorf("serve printed no %q:\n%s", want, srv.out.String())
		}
	}
	if code, body, _ := request(t, "PUT", base+"/ingest/cam/0", mustReadFile(t, "../../testdata/chunk0.mp4")); code != http.StatusOK {
		t.Fatalf("chunk 0: %d %s", code, body)
	}
	if info := streamInfo(t, base, "cam"); info == nil || info["playlist"] != "/studio/live/cam/index.m3u8" || info["watch"] != "/studio/watch/cam" {
		t.Errorf("/studio/api/streams entry: %v", info)
	}
	for _, p := range []string{"/", "/watch/cam", "/live/cam/index.m3u8", "/assets/hls.min.js"} {
		mustGet(t, base+p)
	}
	if code, _, _ := request(t, "GET", srv.base+"/studiox/", nil); code != http.StatusNotFound {
		t.Errorf("GET /studiox/: %d, want 404", code)
	}
}

// badUploads tries a bad request of each kind against the live stream
// "phone" (which waits for chunk 2): each is refused with a 4xx and a JSON
// message, and none changes the stream.
func badUploads(t *testing.T, base string, auth []string, good []byte) {
	t.Helper()
	cases := []struct {
		name, method, path string
		body               []byte
		hdr                []string
		status             int
		msg                string
	}{
		{"no token", "PUT", "/ingest/phone/2", good, nil, 401, "token"},
		{"wrong token", "PUT", "/ingest/phone/2", good, []string{"Authorization", "Bearer nope"}, 401, "token"},
		{"garbage", "PUT", "/ingest/phone/2", bytes.Repeat([]byte("garbage!"), 512), auth, 400, "not an mp4"},
		{"truncated", "PUT", "/ingest/phone/2", good[:len(good)*2/3], auth, 400, "phone"},
		{"bad name", "PUT", "/ingest/ph%20one/2", good, auth, 400, "invalid stream name"},
		{"bad number", "PUT", "/ingest/phone/two", good, auth, 400, "invalid chunk number"},
		{"push to a chunk stream", "POST", "/ingest/phone", good, auth, 409, "already being recorded"},
	}
	for _, c := range cases {
		code, body, _ := request(t, c.method, base+c.path, c.body, c.hdr...)
		var e struct{ Error string }
		if code != c.status || json.Unmarshal(body, &e) != nil || !strings.Contains(strings.ToLower(e.Error), c.msg) {
			t.Errorf("%s: %d %s; want %d with a JSON error containing %q", c.name, code, body, c.status, c.msg)
		}
	}
}

func mustGet(t *testing.T, url string) []byte {
	t.Helper()
	code, body, _ := request(t, "GET", url, nil)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	return body
}

func mustReadFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// liveInput encodes an MPEG-TS file of secs seconds with H.264 (B-frames,
// an IDR every second) and AAC audio, for pushing.
func liveInput(t *testing.T, secs int) string {
	t.Helper()
	in := filepath.Join(t.TempDir(), "live.ts")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=320x240:rate=30:duration=%d", secs),
		"-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=330:sample_rate=48000:duration=%d", secs),
		"-c:v", "libx264", "-preset", "ultrafast", "-x264-params", "keyint=30:scenecut=0:bframes=2", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "64k", "-f", "mpegts", in)
	return in
}

// process is a started command; done is closed when it has exited, with
// its exit error in err.
type process struct {
	cmd  *exec.Cmd
	out  mediatest.SyncBuffer
	done chan struct{}
	err  error
}

// startProcess starts cmd (its output collected unless set) and kills it
// at the end of the test if it still runs.
func startProcess(t *testing.T, cmd *exec.Cmd) *process {
	t.Helper()
	p := &process{cmd: cmd, done: make(chan struct{})}
	if cmd.Stdout == nil {
		cmd.Stdout = &p.out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = &p.out
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits up to limit for the process to end and returns its exit
// error.
func (p *process) wait(t *testing.T, limit time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(limit):
		t.Fatalf("%s still runs after %v:\n%s", p.cmd.Path, limit, p.out.String())
		return nil
	}
}

// pushFFmpeg starts `ffmpeg -re -i in -c copy -f mpegts URL`, the README's
// command.
func pushFFmpeg(t *testing.T, in, url string) *process {
	t.Helper()
	return startProcess(t, exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-i", in,
		"-c", "copy", "-f", "mpegts", url))
}

// feedLive writes data, an MPEG-TS file of secs seconds, to w at the pace
// of real time (its size over its duration) until release is closed, then
// the rest at once, and closes w. It stops early when a write fails (the
// reader is gone). Until released, the push it feeds goes on for as long
// as the input lasts, however slowly the test's browsers start.
func feedLive(data []byte, secs int, w io.WriteCloser, release <-chan struct{}) {
	defer w.Close()
	const packet = 188
	rate := float64(len(data)) / float64(secs) // bytes per second
	start := time.Now()
	tick := time.NewTicker(50 * time.Millisecond) // pacing, not synchronization
	defer tick.Stop()
	for off := 0; off < len(data); {
		end := len(data)
		select {
		case <-release:
		case <-tick.C:
			end = min(int(rate*time.Since(start).Seconds())/packet*packet, len(data))
		}
		if end > off {
			if _, err := w.Write(data[off:end]); err != nil {
				return
			}
			off = end
		}
	}
}

// pushFFmpegLive starts `ffmpeg -i - -c copy -f mpegts URL` (the README's
// command, reading its standard input) and feeds it the MPEG-TS file in,
// of secs seconds, in real time with [feedLive]. The returned release
// function (safe to call more than once) lets the rest of the input go at
// once: the push ends as soon as the test has seen what it needs while it
// was live, rather than when a fixed duration of input runs out.
func pushFFmpegLive(t *testing.T, in string, secs int, url string) (*process, func()) {
	t.Helper()
	data := mustReadFile(t, in)
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-analyzeduration", "1000000",
		"-f", "mpegts", "-i", "pipe:0", "-c", "copy", "-f", "mpegts", url)
	w, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := startProcess(t, cmd)
	release := make(chan struct{})
	var once sync.Once
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		feedLive(data, secs, w, release)
	}()
	rel := func() { once.Do(func() { close(release) }) }
	t.Cleanup(func() {
		// A test that stopped early: end the push (a write to the dead
		// process's pipe fails) before waiting for the feed.
		rel()
		if !p.exited() {
			p.cmd.Process.Kill()
		}
		<-fed
	})
	return p, rel
}

// TestServePushLive pushes MPEG-TS with ffmpeg in real time to
// POST /ingest/live of `livechunk serve`; Chromium plays the stream while
// the body still streams, and so does the player page; the end of the body
// ends the stream, and the stitched MP4 has the input's pictures and audio
// packets.
//
// The input is fed to ffmpeg in real time and its rest only once the player
// page has shown the stream live, so the browsers' start-up time (long
// under -race on a loaded machine) cannot outlast the push; the input is
// long enough (60 s) that only a broken stream or a browser that never
// plays runs it out.
func TestServePushLive(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	mediatest.RequireTool(t, "chromium")
	const secs = 60
	in := liveInput(t, secs)
	srv := startServe(t, "-segment", "1s", "-v") // -v: the push also goes through the request logger
	push, release := pushFFmpegLive(t, in, secs, srv.base+"/ingest/live")
	waitFor(t, "the pushed stream's first segments", func() bool {
		code, body, _ := request(t, "GET", srv.base+"/live/live/index.m3u8", nil)
		if code != http.StatusOK {
			return false
		}
		pl, err := hls.ParseMedia(body)
		return err == nil && len(pl.Segments) >= 2
	})
	stillPushing := false
	res := browsertest.PlayHLS(t, srv.base+"/live/live/index.m3u8", browsertest.Options{
		MinPlayed: 2,
		Timeout:   60 * time.Second,
		Until: func(r browsertest.Result) bool {
			if !r.Live {
				return false
			}
			stillPushing = !push.exited()
			return true
		},
	})
	if !res.Reached || !stillPushing || len(res.Fatal()) > 0 || len(res.ForeignRequests) > 0 {
		t.Fatalf("live playback of the pushed stream failed (still pushing: %v):\n%s", stillPushing, res)
	}
	t.Logf("played the pushed stream live from %.2f s to %.2f s", res.StartTime, res.CurrentTime)
	checkWatchPage(t, srv.base, "live", push, release)
	release() // also when the page never saw the stream live
	if err := push.wait(t, 60*time.Second); err != nil {
		t.Fatalf("ffmpeg push: %v %s", err, push.out.String())
	}
	// The end of the body ended the stream.
	vod := waitVOD(t, srv.base, "live")
	pl, err := hls.ParseMedia(mustGet(t, srv.base+"/live/live/index.m3u8"))
	if err != nil || !pl.Ended {
		t.Fatalf("playlist after the push: %v %+v", err, pl)
	}
	vodFile := filepath.Join(t.TempDir(), "live.mp4")
	if err := os.WriteFile(vodFile, vod, 0o644); err != nil {
		t.Fatal(err)
	}
	if d := mediatest.EqualHashes(mediatest.FrameHashes(t, in), mediatest.FrameHashes(t, vodFile)); d != "" {
		t.Errorf("video of /vod/live.mp4: %s", d)
	}
	wantA, _ := audioPacketHashes(t, in)
	gotA, _ := audioPacketHashes(t, vodFile)
	if d := mediatest.EqualHashes(wantA, gotA); d != "" {
		t.Errorf("audio of /vod/live.mp4: %s", d)
	}
	// An ended stream takes no more input.
	if code, body, _ := request(t, "POST", srv.base+"/ingest/live", mustReadFile(t, in)); code != http.StatusConflict {
		t.Errorf("push after the end: %d %s", code, body)
	}
	// -v logged the requests and the uploads, as structured logs.
	logs := srv.err.String()
	for _, want := range []string{`msg="http request" method=POST path=/ingest/live status=200`, `msg="sink: uploaded" stream=live`} {
		if !strings.Contains(logs, want) {
			t.Errorf("-v logs lack %q", want)
		}
	}
}

// startServeProcess runs `livechunk serve` as a process on store with args
// and returns it and its URL once it listens.
func startServeProcess(t *testing.T, store string, args ...string) (*process, *exec.Cmd, string) {
	t.Helper()
	args = append([]string{"serve", "-addr", "127.0.0.1:0", "-store", store, "-segment", "1s"}, args...)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRecordProcess$")
	cmd.Env = append(os.Environ(), "LIVECHUNK_HELPER_ARGS="+strings.Join(args, "\n"))
	var stdout mediatest.SyncBuffer
	cmd.Stdout = &stdout
	serve := startProcess(t, cmd)
	var base string
	waitFor(t, "the URL serve prints", func() bool {
		if serve.exited() {
			t.Fatalf("serve exited before listening: %v\n%s", serve.err, serve.out.String())
		}
		m := serveURL.FindStringSubmatch(stdout.String())
		if m != nil {
			base = m[1]
		}
		return m != nil
	})
	return serve, cmd, base
}

// TestServeSignalSuspends runs `livechunk serve` as a process and sends it
// SIGTERM while a chunk stream is live and an MPEG-TS push is streaming:
// it exits 0, and both streams stay live (no ENDLIST), with every
// acknowledged chunk listed. A new serve process on the store goes on
// with them: the next chunk continues the chunk stream with no
// discontinuity, and a new push continues the pushed stream after one.
// Each is then ended and stitched: the chunk stream holds every picture
// of its chunks, once, in order; the pushed one a prefix of the first
// push's pictures, then all of the second's.
func TestServeSignalSuspends(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	chunks := phoneChunks(t, 3)
	in, in2 := liveInput(t, 30), liveInput(t, 2)
	store := filepath.Join(t.TempDir(), "store")
	serve, cmd, base := startServeProcess(t, store)
	for i, c := range chunks[:2] {
		if code, body, _ := request(t, "PUT", fmt.Sprintf("%s/ingest/phone/%d", base, i), mustReadFile(t, c)); code != http.StatusOK {
			t.Fatalf("chunk %d: %d %s", i, code, body)
		}
	}
	// Every acknowledged chunk is listed: nothing waits in an open segment.
	if pl, _ := hls.ParseMedia(mustGet(t, base+"/live/phone/index.m3u8")); pl.Ended || len(pl.Segments) != 4 {
		t.Fatalf("after two 2 s chunks, phone lists %d segments (ended %v), want 4", len(pl.Segments), pl.Ended)
	}
	push := pushFFmpeg(t, in, base+"/ingest/cam")
	waitFor(t, "the pushed stream's first segments", func() bool {
		code, body, _ := request(t, "GET", base+"/live/cam/index.m3u8", nil)
		pl, err := hls.ParseMedia(body)
		return code == http.StatusOK && err == nil && len(pl.Segments) >= 2
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := serve.wait(t, 90*time.Second); err != nil {
		t.Fatalf("serve after SIGTERM: %v\n%s", err, serve.out.String())
	}
	if !strings.Contains(serve.out.String(), "shutting down") {
		t.Errorf("no shutdown message on stderr:\n%s", serve.out.String())
	}
	err := push.wait(t, 30*time.Second)
	t.Logf("the ffmpeg push ended with the server: %v %s", err, push.out.String())
	for _, name := range []string{"phone", "cam"} {
		pl, err := hls.ParseMedia(mustReadFile(t, filepath.Join(store, name, "index.m3u8")))
		if err != nil || pl.Ended {
			t.Fatalf("%s: after SIGTERM the playlist is %+v (%v), want it live", name, pl, err)
		}
	}

	serve2, cmd2, base2 := startServeProcess(t, store)
	if code, body, _ := request(t, "PUT", base2+"/ingest/phone/2", mustReadFile(t, chunks[2])); code != http.StatusOK || !strings.Contains(string(body), "recorded") {
		t.Fatalf("chunk 2 after the restart: %d %s", code, body)
	}
	if code, body, _ := request(t, "PUT", base2+"/ingest/phone/1", mustReadFile(t, chunks[1])); code != http.StatusOK || !strings.Contains(string(body), "duplicate") {
		t.Fatalf("chunk 1 again after the restart: %d %s", code, body)
	}
	if err := pushFFmpeg(t, in2, base2+"/ingest/cam").wait(t, 60*time.Second); err != nil {
		t.Fatalf("the second push: %v", err)
	}
	if code, body, _ := request(t, "POST", base2+"/ingest/phone/end", nil); code != http.StatusOK {
		t.Fatalf("end: %d %s", code, body)
	}
	for _, name := range []string{"phone", "cam"} {
		waitFor(t, name+"'s VOD file", func() bool {
			code, _, _ := request(t, "HEAD", base2+"/vod/"+name+".mp4", nil)
			return code == http.StatusOK
		})
	}
	var all []string
	for _, c := range chunks {
		all = append(all, mediatest.FrameHashes(t, c)...)
	}
	if d := mediatest.EqualHashes(all, mediatest.FrameHashes(t, filepath.Join(store, "phone", "vod.mp4"))); d != "" {
		t.Errorf("phone: vod.mp4: %s", d)
	}
	discont := func(name string) int {
		pl, err := hls.ParseMedia(mustReadFile(t, filepath.Join(store, name, "index.m3u8")))
		if err != nil || !pl.Ended {
			t.Fatalf("%s: final playlist %+v (%v)", name, pl, err)
		}
		n := 0
		for _, sg := range pl.Segments {
			if sg.Discontinuity {
				n++
			}
		}
		return n
	}
	if n := discont("phone"); n != 0 {
		t.Errorf("phone: %d discontinuities, want none", n)
	}
	if n := discont("cam"); n != 1 {
		t.Errorf("cam: %d discontinuities, want 1 (where the push came back)", n)
	}
	got, second := mediatest.FrameHashes(t, filepath.Join(store, "cam", "vod.mp4")), mediatest.FrameHashes(t, in2)
	if len(got) < len(second)+30 {
		t.Fatalf("cam: %d pictures", len(got))
	}
	if d := mediatest.EqualHashes(second, got[len(got)-len(second):]); d != "" {
		t.Errorf("cam: the second push: %s", d)
	}
	if d := cutPrefix(mediatest.FrameHashes(t, in), got[:len(got)-len(second)]); d != "" {
		t.Errorf("cam: the first push: %s", d)
	}
	if err := cmd2.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := serve2.wait(t, 90*time.Second); err != nil {
		t.Fatalf("second serve after SIGTERM: %v\n%s", err, serve2.out.String())
	}
}

// cutPrefix checks got, the pictures of a stream cut off in the middle,
// against want, those of the whole input: got is want's beginning, except
// that the last pictures in display order may skip B-frames that come
// after the cut in decode order (here up to 2, as the inputs have
// bframes=2). It returns "" when that holds.
func cutPrefix(want, got []string) string {
	const maxB = 2
	exact := max(len(got)-maxB, 0)
	if len(got) > len(want) {
		return fmt.Sprintf("%d pictures, the input has %d", len(got), len(want))
	}
	if d := mediatest.EqualHashes(want[:exact], got[:exact]); d != "" {
		return d
	}
	at := exact
	for i := exact; i < len(got); i++ {
		j := slices.Index(want[at:], got[i])
		if j < 0 || j > maxB {
			return fmt.Sprintf("picture %d (%s) is not among the input's next pictures", i, got[i])
		}
		at += j + 1
	}
	return ""
}

// startPiped starts `src | dst`: src's standard output is a pipe to
// dst's standard input (dst's stdout is left as set).
func startPiped(t *testing.T, src, dst *exec.Cmd) (*process, *process) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	src.Stdout, dst.Stdin = w, r
	sp := startProcess(t, src)
	w.Close() // src holds its own copy; dst then sees the end of src's output
	dp := startProcess(t, dst)
	r.Close()
	return sp, dp
}

// TestRecordStdin pipes ffmpeg into `livechunk record - DEST` (a real
// process reading its standard input), as MPEG-TS with audio and as raw
// Annex-B H.264: the format is detected from the bytes, and the recording
// decodes to the input's pictures.
func TestRecordStdin(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	in := liveInput(t, 4)
	want := mediatest.FrameHashes(t, in)
	for _, c := range []struct {
		name  string
		ff    []string // ffmpeg output options
		args  []string // record flags
		audio bool
	}{
		{"mpegts", []string{"-c", "copy", "-f", "mpegts"}, nil, true},
		{"annexb", []string{"-map", "0:v", "-c", "copy", "-bsf:v", "h264_mp4toannexb", "-f", "h264"}, []string{"-fps", "30"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "out")
			ff := exec.Command("ffmpeg", append([]string{"-hide_banner", "-loglevel", "error", "-nostdin", "-i", in}, append(c.ff, "-")...)...)
			args := slices.Concat([]string{"record", "-vod", "-segment", "1s"}, c.args, []string{"-", dest})
			rec := exec.Command(os.Args[0], "-test.run=^TestHelperRecordProcess$")
			rec.Env = append(os.Environ(), "LIVECHUNK_HELPER_ARGS="+strings.Join(args, "\n"))
			var stdout mediatest.SyncBuffer
			rec.Stdout = &stdout
			ffp, recp := startPiped(t, ff, rec)
			if err := ffp.wait(t, 60*time.Second); err != nil {
				t.Fatalf("ffmpeg: %v %s", err, ffp.out.String())
			}
			if err := recp.wait(t, 60*time.Second); err != nil {
				t.Fatalf("record -: %v\n%s%s", err, stdout.String(), recp.out.String())
			}
			if !strings.Contains(stdout.String(), "4 segments, 120 frames") {
				t.Errorf("summary:\n%s", stdout.String())
			}
			if strings.Contains(recp.out.String(), "\r") {
				t.Errorf("progress written to a stderr that is not a terminal: %q", recp.out.String())
			}
			playlist := filepath.Join(dest, "index.m3u8")
			if d := mediatest.EqualHashes(want, mediatest.FrameHashes(t, playlist)); d != "" {
				t.Error(d)
			}
			if c.audio {
				wantA, _ := audioPacketHashes(t, in)
				gotA, _ := audioPacketHashes(t, playlist)
				if d := mediatest.EqualHashes(wantA, gotA); d != "" {
					t.Errorf("audio: %s", d)
				}
			}
		})
	}
}

// watchState is what checkWatchPage reads from the player page, collected
// over the polls: the states the badge showed, the largest latency it
// printed while the stream was live, the rows of its segment list, the
// video position and the link to the stitched MP4.
const watchState = `(() => {
  const w = window.__e2e = window.__e2e || {states: [], latency: 0, rows: 0};
  const state = document.getElementById("state").textContent.trim();
  if (state && !w.states.includes(state)) w.states.push(state);
  const lat = parseFloat(document.getElementById("latency").textContent);
  if (state === "live" && lat > 0) w.latency = Math.max(w.latency, lat);
  w.rows = Math.max(w.rows, document.querySelectorAll("#seglist tr").length);
  w.nsegs = document.getElementById("nsegs").textContent;
  w.time = document.getElementById("v").currentTime;
  w.res = document.getElementById("res").textContent;
  const a = document.querySelector("#vod a");
  w.vod = a ? a.getAttribute("href") : "";
  w.errors = (window.playerErrors || []).filter((e) => e.includes("fatal"));
  return w;
})()`

// checkWatchPage opens /watch/{name} while the stream is pushed: the page
// plays it, shows the state "live", a latency and the list of segments,
// and after the end the state "vod" with a link to the MP4. Once it has
// seen the stream live (push still running), it calls release to let the
// push end.
func checkWatchPage(t *testing.T, base, name string, push *process, release func()) {
	t.Helper()
	type page struct {
		States  []string
		Latency float64
		Rows    int
		Time    float64
		Res     string
		VOD     string
		Errors  []string
	}
	var p page
	sawLive := false
	raw, ok, console := browsertest.PageState(t, base+"/watch/"+name, watchState, 90*time.Second, func(v json.RawMessage) bool {
		p = page{}
		if err := json.Unmarshal(v, &p); err != nil {
			t.Fatalf("page state %s: %v", v, err)
		}
		if !sawLive && !push.exited() && p.Latency > 0 && p.Rows >= 2 && p.Time > 0.5 {
			sawLive = true
			release()
		}
		return sawLive && slices.Contains(p.States, "vod") && p.VOD != "" || len(p.Errors) > 0
	})
	if !ok || !sawLive || len(p.Errors) > 0 || !slices.Contains(p.States, "live") || p.VOD != "/vod/"+name+".mp4" || p.Res != "320×240" {
		t.Errorf("player page /watch/%s: saw it live with latency and segments: %v; last state %s\nconsole:\n%s",
			name, sawLive, raw, strings.Join(console, "\n"))
	}
	t.Logf("player page: states %v, latency up to %.1f s, %d segment rows, video at %.1f s", p.States, p.Latency, p.Rows, p.Time)
}

// TestRecordSignal interrupts `record -` (a real process, fed in real time
// by ffmpeg through a pipe) with SIGINT: it stops reading, closes the open
// segment, finishes the uploads and the playlist, and exits 0.
func TestRecordSignal(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	in := liveInput(t, 30)
	dest := filepath.Join(t.TempDir(), "out")
	ff := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-i", in, "-c", "copy", "-f", "mpegts", "-")
	args := []string{"record", "-event", "-segment", "1s", "-", dest}
	rec := exec.Command(os.Args[0], "-test.run=^TestHelperRecordProcess$")
	rec.Env = append(os.Environ(), "LIVECHUNK_HELPER_ARGS="+strings.Join(args, "\n"))
	var stdout mediatest.SyncBuffer
	rec.Stdout = &stdout
	_, recp := startPiped(t, ff, rec)
	playlist := filepath.Join(dest, "index.m3u8")
	waitFor(t, "two segments listed", func() bool {
		text, err := os.ReadFile(playlist)
		pl, perr := hls.ParseMedia(text)
		return err == nil && perr == nil && len(pl.Segments) >= 2
	})
	if err := rec.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := recp.wait(t, 60*time.Second); err != nil {
		t.Fatalf("record after SIGINT: %v\n%s%s", err, stdout.String(), recp.out.String())
	}
	pl, err := hls.ParseMedia(mustReadFile(t, playlist))
	if err != nil || !pl.Ended {
		t.Fatalf("playlist after SIGINT: %v %+v", err, pl)
	}
	got := mediatest.FrameHashes(t, playlist)
	if len(got) < 60 || len(got) > 600 {
		t.Errorf("%d pictures recorded", len(got))
	}
	if d := cutPrefix(mediatest.FrameHashes(t, in), got); d != "" {
		t.Error(d)
	}
	t.Logf("interrupted after %d segments, %d pictures:\n%s", len(pl.Segments), len(got), stdout.String())
}
