package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livechunk/livechunk/internal/testkit/blobtest"

	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/internal/testkit/faultblob"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"github.com/livechunk/livechunk/server"
	"github.com/livechunk/livechunk/sink"
	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"
)

// node is one server on a shared store, reachable at its own URL.
type node struct {
	*testServer
	handler *switchHandler
}

// switchHandler lets a test know a server's URL before the server exists
// (its AdvertiseURL), and take the server down and up again at that URL.
type switchHandler struct {
	mu sync.Mutex
	h  http.Handler
}

func (sh *switchHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sh.mu.Lock()
	h := sh.h
	sh.mu.Unlock()
	h.ServeHTTP(w, r)
}

// startNode starts a server called id on the store in dir (created by the
// first node), advertising its URL to the other nodes.
func startNode(t *testing.T, dir, id string, cfg server.Config) *node {
	t.Helper()
	b, err := sink.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	sh := &switchHandler{h: http.NotFoundHandler()}
	hs := httptest.NewServer(sh)
	t.Cleanup(hs.Close)
	cfg.Bucket, cfg.NodeID, cfg.AdvertiseURL = b, id, hs.URL
	if cfg.SegmentDuration == 0 {
		cfg.SegmentDuration = time.Second
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	sh.h = srv
	return &node{testServer: &testServer{Server: hs, srv: srv, bucket: b, dir: dir}, handler: sh}
}

// expect uploads chunk n of file to the node and checks the answer's
// status code and, for a 200, its status.
func expect(t *testing.T, ts *testServer, stream string, n int, file string, code int, status string) string {
	t.Helper()
	got, body := put(t, ts, stream, n, file)
	if got != code || code == 200 && !strings.Contains(body, `"status": "`+status+`"`) {
		t.Fatalf("chunk %d of %s: %d %s, want %d %s", n, stream, got, body, code, status)
	}
	return body
}

// endAndCheck ends the stream at ts and checks that its playlist is
// finished without a discontinuity and decodes, like its VOD file, to the
// frames of the chunks in order, each once.
func endAndCheck(t *testing.T, ts *testServer, stream string, chunks []string) {
	t.Helper()
	if code, body := ts.do(t, "POST", "/ingest/"+stream+"/end", nil); code != 200 {
		t.Fatalf("end: %d %s", code, body)
	}
	pl, err := hls.LoadMedia(context.Background(), ts.bucket, stream+"/index.m3u8")
	if err != nil || !pl.Ended {
		t.Fatalf("playlist after the end: %v %+v", err, pl)
	}
	for _, sg := range pl.Segments {
		if sg.Discontinuity {
			t.Errorf("discontinuity at %s", sg.URI)
		}
	}
	var want []string
	for _, c := range chunks {
		want = append(want, mediatest.FrameHashes(t, c)...)
	}
	if d := mediatest.EqualHashes(want, mediatest.FrameHashes(t, ts.URL+"/live/"+stream+"/index.m3u8")); d != "" {
		t.Errorf("the playlist decodes differently from the chunks: %s", d)
	}
}

// TestRestartResumesStream acknowledges chunk 0 (recorded) and chunk 2
// (buffered), then drops the server without a shutdown, as a crash does
// (its memory is never read again), and starts another process's server
// on the store under the same node ID: retries answer duplicate (or 409
// with other bytes), chunk 1 feeds the waiting chunk 2, and the recording
// goes on with no discontinuity: every frame once, in order.
func TestRestartResumesStream(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	chunks := makeChunks(t, 4)
	dir := filepath.Join(t.TempDir(), "store")
	first := startNode(t, dir, "n1", server.Config{})
	expect(t, first.testServer, "phone", 0, chunks[0], 200, "recorded")
	expect(t, first.testServer, "phone", 2, chunks[2], 200, "buffered")
	first.handler.mu.Lock()
	first.handler.h = http.NotFoundHandler() // the crashed process answers nothing more
	first.handler.mu.Unlock()

	again := startNode(t, dir, "n1", server.Config{})
	expect(t, again.testServer, "phone", 0, chunks[0], 200, "duplicate")
	expect(t, again.testServer, "phone", 2, chunks[2], 200, "duplicate")
	expect(t, again.testServer, "phone", 2, chunks[3], http.StatusConflict, "")
	body := expect(t, again.testServer, "phone", 1, chunks[1], 200, "recorded")
	if !strings.Contains(body, `"next": 3`) {
		t.Errorf("chunk 1 should feed the waiting chunk 2: %s", body)
	}
	expect(t, again.testServer, "phone", 3, chunks[3], 200, "recorded")
	endAndCheck(t, again.testServer, "phone", chunks)
	// The waiting chunk was journaled and, once fed, deleted.
	if err := again.srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if left := blobtest.Keys(t, again.bucket, ".ingest/phone/chunk-"); len(left) != 0 {
		t.Errorf("journaled chunks left behind: %v", left)
	}
}

// TestShutdownSuspendsStreams: a shutdown leaves the stream live (no
// ENDLIST) and gives its lease up, so that a server of another node ID
// goes on with it at once, without a discontinuity; a new chunk after the
// shutdown is refused by the old server.
func TestShutdownSuspendsStreams(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	chunks := makeChunks(t, 2)
	dir := filepath.Join(t.TempDir(), "store")
	a := startNode(t, dir, "a", server.Config{})
	expect(t, a.testServer, "phone", 0, chunks[0], 200, "recorded")
	if err := a.srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	pl, err := hls.LoadMedia(context.Background(), a.bucket, "phone/index.m3u8")
	if err != nil || pl.Ended || len(pl.Segments) != 2 {
		t.Fatalf("after shutdown: %v %+v, want 2 segments and no ENDLIST", err, pl)
	}
	expect(t, a.testServer, "phone", 1, chunks[1], http.StatusServiceUnavailable, "")
	b := startNode(t, dir, "b", server.Config{})
	expect(t, b.testServer, "phone", 1, chunks[1], 200, "recorded")
	endAndCheck(t, b.testServer, "phone", chunks)
}

// TestIdleStreamEnds: a stream that gets nothing for IdleTimeout ends by
// itself (ENDLIST, VOD stitched) and frees its place, including one whose
// node is gone (another node ends it once the lease has ended).
func TestIdleStreamEnds(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	chunks := makeChunks(t, 1)
	dir := filepath.Join(t.TempDir(), "store")
	cfg := server.Config{IdleTimeout: 400 * time.Millisecond, LeaseDuration: time.Second, MaxStreams: 1, Stitch: server.StitchMP4}
	a := startNode(t, dir, "a", cfg)
	expect(t, a.testServer, "one", 0, chunks[0], 200, "recorded")
	waitVOD(t, a.testServer, "one")
	// The place is free again.
	expect(t, a.testServer, "two", 0, chunks[0], 200, "recorded")
	a.handler.mu.Lock()
	a.handler.h = http.NotFoundHandler()
	a.handler.mu.Unlock()
	a.srv.Shutdown(context.Background()) //nolint:errcheck // the node is gone: its sweep stops
	// "two" was suspended by a's shutdown; b ends it when idle.
	b := startNode(t, dir, "b", cfg)
	waitVOD(t, b.testServer, "two")
	if code, _ := put(t, b.testServer, "two", 1, chunks[0]); code != http.StatusConflict {
		t.Errorf("a chunk after the idle end: %d, want 409", code)
	}
}

// waitVOD polls until the stream's VOD file is served and checks that the
// playlist is finished.
func waitVOD(t *testing.T, ts *testServer, stream string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Head(ts.URL + "/vod/" + stream + ".mp4")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				pl, err := hls.LoadMedia(context.Background(), ts.bucket, stream+"/index.m3u8")
				if err != nil || !pl.Ended {
					t.Fatalf("VOD made but the playlist is not finished: %v", err)
				}
				return
			}
		}
		time.Sleep(20 * time.Millisecond) // polling an observable condition
	}
	t.Fatalf("stream %s never ended by itself", stream)
}

// TestNodesShareStreams: chunks alternate between two nodes: the one that
// does not record the stream forwards them, and every chunk is recorded
// once. Then the owner goes away (its URL refuses connections): the other
// node takes the stream over from the bucket at the next chunk and goes on
// without a discontinuity.
func TestNodesShareStreams(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	chunks := makeChunks(t, 5)
	dir := filepath.Join(t.TempDir(), "store")
	a := startNode(t, dir, "a", server.Config{})
	b := startNode(t, dir, "b", server.Config{})
	nodes := []*node{a, b}
	for i := 0; i < 4; i++ {
		expect(t, nodes[i%2].testServer, "cam", i, chunks[i], 200, "recorded")
		expect(t, nodes[(i+1)%2].testServer, "cam", i, chunks[i], 200, "duplicate")
	}
	a.Close() // the owner is gone
	expect(t, b.testServer, "cam", 4, chunks[4], 200, "recorded")
	endAndCheck(t, b.testServer, "cam", chunks)
}

// TestStaleOwnerIsFenced: node a records a stream; node b takes it over
// while a still believes it holds it (a's URL was unreachable). A chunk
// that then reaches a is not recorded by a: its state write is refused,
// a drops its copy and forwards the chunk to b. Every chunk is recorded
// once.
func TestStaleOwnerIsFenced(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	chunks := makeChunks(t, 3)
	dir := filepath.Join(t.TempDir(), "store")
	a := startNode(t, dir, "a", server.Config{})
	expect(t, a.testServer, "cam", 0, chunks[0], 200, "recorded")
	// b cannot reach a: a's advertised URL refuses connections.
	b := startNode(t, dir, "b", server.Config{})
	a.handler.mu.Lock()
	a.Listener.Close()
	a.handler.mu.Unlock()
	expect(t, b.testServer, "cam", 1, chunks[1], 200, "recorded")
	// a is reachable again, in-process: it still holds its old copy.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("PUT", "/ingest/cam/2", strings.NewReader(string(mustRead(t, chunks[2]))))
	a.srv.ServeHTTP(rec, req)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"recorded"`) {
		t.Fatalf("chunk 2 at the stale node: %d %s", rec.Code, rec.Body.String())
	}
	endAndCheck(t, b.testServer, "cam", chunks)
}

// TestBrokenPushContinues cuts a pushed MPEG-TS body in the middle, as a
// device that loses its network does (the chunked upload stops without
// its last chunk and the connection closes): the stream is suspended, not
// ended, and a new push under the same name continues it after a
// discontinuity; the end of that body ends it. Decoded, the recording is
// the frames that arrived whole before the cut, then the second push's.
func TestBrokenPushContinues(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	in := filepath.Join(t.TempDir(), "live.ts")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=6",
		"-f", "lavfi", "-i", "sine=frequency=330:sample_rate=48000:duration=6",
		"-c:v", "libx264", "-preset", "ultrafast", "-x264-params", "keyint=30:scenecut=0:bframes=2", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-f", "mpegts", in)
	data := mustRead(t, in)
	all := mediatest.FrameHashes(t, in)
	ts := start(t, server.Config{})

	// The first push: 60% of the file, in HTTP chunks, then the
	// connection closes without the terminating chunk.
	cut := len(data) * 6 / 10 / 188 * 188
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /ingest/cam HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: video/mp2t\r\n\r\n")
	for off := 0; off < cut; off += 188 * 50 {
		end := min(off+188*50, cut)
		fmt.Fprintf(conn, "%x\r\n", end-off)
		conn.Write(data[off:end])
		io.WriteString(conn, "\r\n")
	}
	// Closed once the server has recorded some of it (a connection closed
	// at once can be reset before the server reads what it holds: then
	// nothing was recorded, which no one was told otherwise).
	waitSegments(t, ts.bucket, "cam/index.m3u8", 1)
	conn.Close()

	// The second push (the device's encoder started again). Until the
	// server has seen the first body break it answers 409 busy; a stream
	// that ended is a failure.
	for {
		code, body := ts.do(t, "POST", "/ingest/cam", bytes.NewReader(data))
		if code == 200 {
			if !strings.Contains(body, `"ended"`) {
				t.Fatalf("second push: %s", body)
			}
			break
		}
		if code != 409 || strings.Contains(body, "ended") {
			t.Fatalf("second push: %d %s", code, body)
		}
		time.Sleep(10 * time.Millisecond) // the first push is still being wound up
	}
	pl, err := hls.LoadMedia(context.Background(), ts.bucket, "cam/index.m3u8")
	if err != nil || !pl.Ended {
		t.Fatalf("playlist: %v %+v", err, pl)
	}
	// Each side of the discontinuity decoded on its own (its init section
	// and its segments): the second push starts its own timestamps again,
	// as the tag allows, which ffmpeg's HLS reader does not follow.
	var parts [][]byte
	for i, sg := range pl.Segments {
		if i == 0 || sg.Discontinuity {
			parts = append(parts, readKey(t, ts.bucket, "cam/"+sg.Map))
		}
		parts[len(parts)-1] = append(parts[len(parts)-1], readKey(t, ts.bucket, "cam/"+sg.URI)...)
	}
	if len(parts) != 2 {
		t.Fatalf("%d parts between discontinuities, want 2", len(parts))
	}
	var got [2][]string
	for i, part := range parts {
		f := filepath.Join(t.TempDir(), "part.mp4")
		if err := os.WriteFile(f, part, 0o644); err != nil {
			t.Fatal(err)
		}
		got[i] = mediatest.FrameHashes(t, f)
	}
	// The cut falls at 60% of the bytes: the pictures decoded before it
	// are there, in order; at most the B-frames (2) whose bytes came after
	// a later picture's are missing.
	first := len(got[0])
	if first < len(all)*5/10 || first > len(all)*6/10 {
		t.Fatalf("%d frames before the cut, of %d", first, len(all))
	}
	if d := mediatest.EqualHashes(all[:first-3], got[0][:first-3]); d != "" {
		t.Errorf("the first push's frames: %s", d)
	}
	for i, j := first-3, first-3; i < first; i++ {
		for j < len(all) && all[j] != got[0][i] {
			j++
		}
		if j == len(all) || j > first+2 {
			t.Fatalf("frame %d before the cut is not the input's next one", i)
		}
	}
	if d := mediatest.EqualHashes(all, got[1]); d != "" {
		t.Errorf("the second push's frames: %s", d)
	}
}

// readKey reads an object of b.
func readKey(t *testing.T, b *blob.Bucket, key string) []byte {
	t.Helper()
	data, err := b.ReadAll(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestStaleOwnerAfterTakeover: node a records chunk 0; its address stops
// answering, so node b takes the stream over at the next chunk (while a's
// lease still runs) and records chunks 1-3. Then chunk 4 reaches a, which
// still thinks it records the stream: it must not acknowledge the chunk
// into a state that b's does not know (a version b has deleted would let
// its conditional create succeed). Whatever a answers, a device that got
// no 2xx sends the chunk again, to b; the recording is every chunk once.
func TestStaleOwnerAfterTakeover(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	chunks := makeChunks(t, 5)
	dir := filepath.Join(t.TempDir(), "store")
	a := startNode(t, dir, "a", server.Config{})
	expect(t, a.testServer, "cam", 0, chunks[0], 200, "recorded")
	b := startNode(t, dir, "b", server.Config{})
	a.Listener.Close()
	for i := 1; i <= 3; i++ {
		expect(t, b.testServer, "cam", i, chunks[i], 200, "recorded")
	}
	rec := httptest.NewRecorder()
	a.srv.ServeHTTP(rec, httptest.NewRequest("PUT", "/ingest/cam/4", bytes.NewReader(mustRead(t, chunks[4]))))
	t.Logf("chunk 4 at the stale node: %d %s", rec.Code, rec.Body.String())
	if rec.Code/100 != 2 {
		expect(t, b.testServer, "cam", 4, chunks[4], 200, "recorded")
	}
	endAndCheck(t, b.testServer, "cam", chunks)
}

// TestEndFailureIsFinishedLater: the playlist write of a stream's end
// fails (the store refuses it): the end is answered with an error, and
// the stream is not marked done: the sweep finishes it (EXT-X-ENDLIST and
// the VOD file) once the store takes writes again.
func TestEndFailureIsFinishedLater(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	chunks := makeChunks(t, 1)
	var broken atomic.Bool
	fb := faultblob.New(memblob.OpenBucket(nil), faultblob.Config{Rules: []faultblob.Rule{{
		Ops: faultblob.WriteOps, Prob: 1, Action: faultblob.Fail, Code: gcerrors.PermissionDenied,
		Match: func(k string) bool { return k == "cam/index.m3u8" && broken.Load() },
	}}})
	b := fb.Bucket()
	srv, err := server.New(server.Config{Bucket: b, SegmentDuration: time.Second, Stitch: server.StitchMP4,
		IdleTimeout: 400 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	ts := &testServer{Server: hs, srv: srv, bucket: b}
	expect(t, ts, "cam", 0, chunks[0], 200, "recorded")
	broken.Store(true)
	if code, body := ts.do(t, "POST", "/ingest/cam/end", nil); code/100 == 2 {
		t.Fatalf("end while the playlist cannot be written: %d %s", code, body)
	}
	broken.Store(false)
	deadline := time.Now().Add(30 * time.Second)
	for {
		pl, err := hls.LoadMedia(context.Background(), b, "cam/index.m3u8")
		vod, _ := b.Exists(context.Background(), "cam/vod.mp4")
		if err == nil && pl.Ended && vod {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stream was never finished: playlist %v ended %v, VOD %v", err, pl != nil && pl.Ended, vod)
		}
		time.Sleep(20 * time.Millisecond) // polling for the sweep's work
	}
}

// stalledBody gives data, then blocks until the test ends, as a pushing
// device does whose network stalls.
type stalledBody struct {
	data []byte
	stop <-chan struct{}
}

func (b *stalledBody) Read(p []byte) (int, error) {
	if len(b.data) == 0 {
		<-b.stop
		return 0, errors.New("network broke")
	}
	n := copy(p, b.data[:min(len(b.data), 4096)])
	b.data = b.data[n:]
	return n, nil
}

// TestSuspendedPushEndsWhenIdle: a push is running when its node shuts
// down (the stream is suspended, its pipeline gone); nobody pushes again,
// so another node's sweep ends it after the idle timeout: the playlist
// that the suspended recording left gets EXT-X-ENDLIST and the VOD file is
// stitched.
func TestSuspendedPushEndsWhenIdle(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	in := filepath.Join(t.TempDir(), "in.ts")
	mediatest.FFmpeg(t, "-i", mediatest.Testdata("bframes.mp4"), "-c", "copy", "-f", "mpegts", in)
	dir := filepath.Join(t.TempDir(), "store")
	cfg := server.Config{IdleTimeout: 400 * time.Millisecond, LeaseDuration: time.Second, Stitch: server.StitchMP4}
	a := startNode(t, dir, "a", cfg)
	stop := make(chan struct{})
	defer close(stop)
	pushed := make(chan struct{})
	go func() {
		defer close(pushed)
		req, _ := http.NewRequest("POST", a.URL+"/ingest/cam", &stalledBody{data: mustRead(t, in), stop: stop})
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	waitSegments(t, a.bucket, "cam/index.m3u8", 1)
	if err := a.srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-pushed
	if pl, err := hls.LoadMedia(context.Background(), a.bucket, "cam/index.m3u8"); err != nil || pl.Ended {
		t.Fatalf("after the shutdown: %v %+v (want a suspended stream)", err, pl)
	}
	b := startNode(t, dir, "b", cfg)
	deadline := time.Now().Add(30 * time.Second)
	for {
		pl, err := hls.LoadMedia(context.Background(), b.bucket, "cam/index.m3u8")
		vod, _ := b.bucket.Exists(context.Background(), "cam/vod.mp4")
		if err == nil && pl.Ended && vod {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the idle stream never ended: playlist %v ended %v, VOD %v", err, pl != nil && pl.Ended, vod)
		}
		time.Sleep(20 * time.Millisecond) // polling for the sweep's work
	}
}

// TestShutdownLetsUploadsFinish: a chunk upload whose body is still
// arriving when Shutdown begins is answered as usual (recorded, and
// durable: the next node goes on after it); /healthz says 503 meanwhile,
// and a new upload is refused with 503.
func TestShutdownLetsUploadsFinish(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	chunks := makeChunks(t, 2)
	dir := filepath.Join(t.TempDir(), "store")
	a := startNode(t, dir, "a", server.Config{})
	body := mustRead(t, chunks[0])
	pr, pw := io.Pipe()
	answered := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest("PUT", a.URL+"/ingest/cam/0", pr)
		req.ContentLength = int64(len(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answered <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	pw.Write(body[:len(body)/2])
	for a.srv.InFlight() == 0 {
		time.Sleep(time.Millisecond) // polling until the server handles the upload
	}
	shut := make(chan error, 1)
	go func() { shut <- a.srv.Shutdown(context.Background()) }()
	waitStatus := func(path string, want int) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, _ := a.do(t, "GET", path, nil)
			if code == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %d, want %d", path, code, want)
			}
			time.Sleep(5 * time.Millisecond) // polling for Shutdown to begin
		}
	}
	waitStatus("/healthz", http.StatusServiceUnavailable)
	if code, _ := a.do(t, "PUT", "/ingest/other/0", bytes.NewReader(body)); code != http.StatusServiceUnavailable {
		t.Errorf("a new upload during the shutdown: %d, want 503", code)
	}
	pw.Write(body[len(body)/2:])
	pw.Close()
	if got := <-answered; !strings.HasPrefix(got, "200 ") || !strings.Contains(got, `"recorded"`) {
		t.Fatalf("the upload in progress: %s", got)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	b := startNode(t, dir, "b", server.Config{})
	expect(t, b.testServer, "cam", 0, chunks[0], 200, "duplicate")
	expect(t, b.testServer, "cam", 1, chunks[1], 200, "recorded")
	endAndCheck(t, b.testServer, "cam", chunks)
}

// TestStartDurationAcksListed: with Config.StartDuration, which holds back
// a new playlist, a stream of chunks still acknowledges a chunk only once
// a playlist lists it: a crash right after the answer loses nothing.
func TestStartDurationAcksListed(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	chunks := makeChunks(t, 2)
	dir := filepath.Join(t.TempDir(), "store")
	cfg := server.Config{StartDuration: 10 * time.Second}
	first := startNode(t, dir, "n1", cfg)
	expect(t, first.testServer, "phone", 0, chunks[0], 200, "recorded")
	first.handler.mu.Lock()
	first.handler.h = http.NotFoundHandler() // a crash: the server's memory is never read again
	first.handler.mu.Unlock()
	again := startNode(t, dir, "n1", cfg)
	expect(t, again.testServer, "phone", 1, chunks[1], 200, "recorded")
	endAndCheck(t, again.testServer, "phone", chunks)
}

// TestRetryAfterEnd: a device whose answer to its last chunk was lost
// sends the chunk again after the stream ended: it is answered duplicate
// (the chunk is in the recording), by the node that ended the stream and
// by a new one; other bytes, or a new chunk, are refused (409).
func TestRetryAfterEnd(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	chunks := makeChunks(t, 2)
	dir := filepath.Join(t.TempDir(), "store")
	a := startNode(t, dir, "a", server.Config{})
	expect(t, a.testServer, "cam", 0, chunks[0], 200, "recorded")
	expect(t, a.testServer, "cam", 1, chunks[1], 200, "recorded")
	if code, body := a.do(t, "POST", "/ingest/cam/end", nil); code != 200 {
		t.Fatalf("end: %d %s", code, body)
	}
	for _, n := range []*node{a, startNode(t, dir, "b", server.Config{})} {
		expect(t, n.testServer, "cam", 1, chunks[1], 200, "duplicate")
		expect(t, n.testServer, "cam", 1, chunks[0], 409, "")
		expect(t, n.testServer, "cam", 2, chunks[0], 409, "")
	}
}

// TestShutdownHandsOverStitching: a stream ended, and its VOD file is
// being stitched when the server shuts down with a deadline: the stitch
// is stopped, Shutdown returns without an error, and another node
// finishes the recording (the VOD file is made).
func TestShutdownHandsOverStitching(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	chunks := makeChunks(t, 2)
	dir := filepath.Join(t.TempDir(), "store")
	stitching := make(chan struct{})
	slow := func(ctx context.Context, b *blob.Bucket, playlist, out string) error {
		close(stitching)
		<-ctx.Done() // a long recording: not done before the deadline
		return ctx.Err()
	}
	a := startNode(t, dir, "a", server.Config{Stitch: slow})
	expect(t, a.testServer, "cam", 0, chunks[0], 200, "recorded")
	expect(t, a.testServer, "cam", 1, chunks[1], 200, "recorded")
	if code, body := a.do(t, "POST", "/ingest/cam/end", nil); code != 200 {
		t.Fatalf("end: %d %s", code, body)
	}
	<-stitching
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := a.srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	b := startNode(t, dir, "b", server.Config{Stitch: server.StitchMP4, IdleTimeout: 400 * time.Millisecond})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if ok, _ := b.bucket.Exists(context.Background(), "cam/vod.mp4"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no node finished the recording")
		}
		time.Sleep(20 * time.Millisecond) // polling for the sweep's work
	}
	vod := filepath.Join(t.TempDir(), "vod.mp4")
	if err := os.WriteFile(vod, readKey(t, b.bucket, "cam/vod.mp4"), 0o644); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, c := range chunks {
		want = append(want, mediatest.FrameHashes(t, c)...)
	}
	if d := mediatest.EqualHashes(want, mediatest.FrameHashes(t, vod)); d != "" {
		t.Errorf("the VOD file: %s", d)
	}
}
