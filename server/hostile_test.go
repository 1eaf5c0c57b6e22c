package server_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"github.com/livechunk/livechunk/server"
)

// spooled counts this process's open files in dir (deleted or not).
func spooled(t *testing.T, dir string) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && strings.HasPrefix(target, dir+"/") {
			n++
		}
	}
	return n
}

// chunkedBody hides the length of data: the upload goes without a
// Content-Length (Transfer-Encoding: chunked).
type chunkedBody struct{ r io.Reader }

func (c chunkedBody) Read(p []byte) (int, error) { return c.r.Read(p) }

// TestChunkBodiesBeyondMemoryGoToDisk: a chunk body that the memory room
// cannot take (or of undeclared length) is held in an unlinked temporary
// file while it is checked, one the room can take in memory. A chunk that
// waits for an earlier one holds neither once acknowledged: it waits in
// the store's journal and is read back when its turn comes. Either way
// its digest is its bytes': the same bytes sent again, with or without a
// length, are a duplicate, and a node that takes the stream over (a
// restart) reads the waiting chunk back and records it.
func TestChunkBodiesBeyondMemoryGoToDisk(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	chunks := makeChunks(t, 2)
	for _, c := range []struct {
		name   string
		memory int64
	}{{"disk", 1}, {"memory", 64 << 20}} {
		t.Run(c.name, func(t *testing.T) {
			spool := t.TempDir()
			dir := filepath.Join(t.TempDir(), "store")
			cfg := server.Config{MaxUploadMemory: c.memory, SpoolDir: spool}
			ts := startNode(t, dir, "a", cfg).testServer
			if code, body := put(t, ts, "cam", 1, chunks[1]); code != 200 || !strings.Contains(body, `"buffered"`) {
				t.Fatalf("chunk 1: %d %s", code, body)
			}
			// It waits in the journal only: no file, no room held here.
			if files, held, disk := spooled(t, spool), ts.srv.UploadMemoryHeld(), ts.srv.UploadBytesHeld(); files != 0 || held != 0 || disk != 0 {
				t.Errorf("chunk 1 waits with %d spool files open, %d bytes of memory room and %d of spool room held, want none", files, held, disk)
			}
			if entries, _ := os.ReadDir(spool); len(entries) != 0 {
				t.Errorf("spool files are not unlinked: %v", entries)
			}
			for _, body := range []io.Reader{bytes.NewReader(mustRead(t, chunks[1])), chunkedBody{bytes.NewReader(mustRead(t, chunks[1]))}} {
				if code, answer := ts.do(t, "PUT", "/ingest/cam/1", body); code != 200 || !strings.Contains(answer, `"duplicate"`) {
					t.Errorf("chunk 1 again (%T): %d %s, want a duplicate", body, code, answer)
				}
			}
			// The same node restarted: it reads the waiting chunk back.
			if err := ts.srv.Shutdown(t.Context()); err != nil {
				t.Fatal(err)
			}
			if files, held := spooled(t, spool), ts.srv.UploadMemoryHeld(); files != 0 || held != 0 {
				t.Errorf("after a shutdown: %d spool files open, %d bytes of memory room held", files, held)
			}
			ts = startNode(t, dir, "a", cfg).testServer
			if code, body := put(t, ts, "cam", 0, chunks[0]); code != 200 || !strings.Contains(body, `"recorded"`) {
				t.Fatalf("chunk 0: %d %s", code, body)
			}
			if files, held := spooled(t, spool), ts.srv.UploadMemoryHeld(); files != 0 || held != 0 {
				t.Errorf("after both chunks were fed: %d spool files open, %d bytes of memory room held", files, held)
			}
			if code, body := ts.do(t, "POST", "/ingest/cam/end", nil); code != 200 {
				t.Fatalf("end: %d %s", code, body)
			}
			want := append(mediatest.FrameHashes(t, chunks[0]), mediatest.FrameHashes(t, chunks[1])...)
			if d := mediatest.EqualHashes(want, mediatest.FrameHashes(t, ts.URL+"/live/cam/index.m3u8")); d != "" {
				t.Errorf("decoded: %s", d)
			}
		})
	}
}

// TestChunkLimits: a chunk with more samples than MaxChunkSamples is
// refused with 413, one with a longer stretch without a keyframe than
// MaxKeyframeInterval with 422; each with a message that says which limit. At the limit it is
// taken.
func TestChunkLimits(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	chunks := makeChunks(t, 1) // 60 pictures at 30 fps, a keyframe every second
	for _, c := range []struct {
		name string
		cfg  server.Config
		want int
		says string
	}{
		{"samples over", server.Config{MaxChunkSamples: 59}, 413, "more than 59 samples"},
		{"samples at", server.Config{MaxChunkSamples: 60}, 200, `"recorded"`},
		{"keyframes too rare", server.Config{MaxKeyframeInterval: 900 * time.Millisecond}, 422, "without a picture a segment can start at"},
		{"keyframes often enough", server.Config{MaxKeyframeInterval: 1100 * time.Millisecond}, 200, `"recorded"`},
	} {
		ts := start(t, c.cfg)
		if code, body := put(t, ts, "cam", 0, chunks[0]); code != c.want || !strings.Contains(body, c.says) {
			t.Errorf("%s: %d %s, want %d saying %q", c.name, code, body, c.want, c.says)
		}
	}
}

// TestPushAndChunksToOneName: a stream takes one kind of input. A push to
// a stream of chunks (one of them waiting for an earlier one) and a chunk
// or an end sent while a push streams are each refused with 409 and a
// message saying why; the chunks acknowledged before are all recorded,
// and the push goes on.
func TestPushAndChunksToOneName(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	chunks := makeChunks(t, 2)
	ts := start(t, server.Config{})
	tsFile := filepath.Join(t.TempDir(), "in.ts")
	mediatest.FFmpeg(t, "-i", mediatest.Testdata("bframes.mp4"), "-c", "copy", "-f", "mpegts", tsFile)
	tsData := mustRead(t, tsFile)

	if code, body := put(t, ts, "cam", 1, chunks[1]); code != 200 || !strings.Contains(body, `"buffered"`) {
		t.Fatalf("chunk 1: %d %s", code, body)
	}
	if code, body := ts.do(t, "POST", "/ingest/cam", bytes.NewReader(tsData)); code != 409 || !strings.Contains(body, "chunk uploads") {
		t.Errorf("a push to a stream of chunks: %d %s, want 409 naming the chunk uploads", code, body)
	}
	if code, body := put(t, ts, "cam", 0, chunks[0]); code != 200 || !strings.Contains(body, `"recorded"`) {
		t.Fatalf("chunk 0: %d %s", code, body)
	}
	if code, body := ts.do(t, "POST", "/ingest/cam/end", nil); code != 200 {
		t.Fatalf("end: %d %s", code, body)
	}
	want := append(mediatest.FrameHashes(t, chunks[0]), mediatest.FrameHashes(t, chunks[1])...)
	if d := mediatest.EqualHashes(want, mediatest.FrameHashes(t, ts.URL+"/live/cam/index.m3u8")); d != "" {
		t.Errorf("the stream of chunks after the refused push: %s", d)
	}

	// A push that is streaming: its first half is sent, the rest waits.
	pr, pw := io.Pipe()
	pushed := make(chan string, 1)
	go func() {
		code, body := ts.do(t, "POST", "/ingest/live", pr)
		pushed <- fmt.Sprintf("%d %s", code, body)
	}()
	go pw.Write(tsData[:len(tsData)/2])
	waitSegments(t, ts.bucket, "live/index.m3u8", 1)
	if code, body := put(t, ts, "live", 0, chunks[0]); code != 409 || !strings.Contains(body, "pushed") {
		t.Errorf("a chunk to a stream being pushed: %d %s, want 409", code, body)
	}
	if code, body := ts.do(t, "POST", "/ingest/live/end", nil); code != 409 || !strings.Contains(body, "pushed") {
		t.Errorf("an end while a push streams: %d %s, want 409", code, body)
	}
	go func() { pw.Write(tsData[len(tsData)/2:]); pw.Close() }()
	if got := <-pushed; !strings.HasPrefix(got, "200 ") {
		t.Fatalf("the push: %s", got)
	}
	if d := mediatest.EqualHashes(mediatest.FrameHashes(t, tsFile), mediatest.FrameHashes(t, ts.URL+"/live/live/index.m3u8")); d != "" {
		t.Errorf("the pushed stream: %s", d)
	}
}

// TestEveryAcceptedNameIsServed: a stream name that ingest takes is one
// whose playlist, page and VOD are served; one it refuses is refused with
// 400 before anything is stored.
func TestEveryAcceptedNameIsServed(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	chunks := makeChunks(t, 1)
	ts := start(t, server.Config{Stitch: server.StitchMP4})
	for _, name := range []string{"a", "a.b", "a-b_c", "a..", "a..b", "a.", "a.b.", "A9", strings.Repeat("z", 64)} {
		code, body := put(t, ts, name, 0, chunks[0])
		if !server.ValidStreamName(name) {
			if code != 400 || !strings.Contains(body, "invalid stream name") {
				t.Errorf("%q: %d %s, want 400", name, code, body)
			}
			continue
		}
		if code != 200 {
			t.Fatalf("%q: %d %s", name, code, body)
		}
		if code, body := ts.do(t, "POST", "/ingest/"+name+"/end", nil); code != 200 {
			t.Fatalf("end %q: %d %s", name, code, body)
		}
		for _, path := range []string{"/live/" + name + "/index.m3u8", "/watch/" + name, "/vod/" + name + ".mp4"} {
			code, body := ts.do(t, "GET", path, nil)
			for deadline := time.Now().Add(30 * time.Second); code == 503 && time.Now().Before(deadline); {
				time.Sleep(20 * time.Millisecond) // polling until the VOD is stitched
				code, body = ts.do(t, "GET", path, nil)
			}
			if code != 200 {
				t.Errorf("%s: %d %.200s", path, code, body)
			}
		}
	}
	if entries, _ := os.ReadDir(ts.dir); len(entries) != 0 {
		for _, e := range entries {
			if !server.ValidStreamName(e.Name()) && !strings.HasPrefix(e.Name(), ".") {
				t.Errorf("the store holds %q", e.Name())
			}
		}
	}
}

// latestState returns the newest ingest state object of a stream in the
// test's directory store.
func latestState(t *testing.T, ts *testServer, stream string) []byte {
	t.Helper()
	dir := filepath.Join(ts.dir, ".ingest", stream)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	last := ""
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "state-") && e.Name() > last {
			last = e.Name()
		}
	}
	if last == "" {
		t.Fatalf("no state in %s", dir)
	}
	return mustRead(t, filepath.Join(dir, last))
}

// TestGapsAreBounded: a client that skips every other chunk number makes
// a gap each time. The stream goes on; its stored state (written with
// every chunk) stays bounded, the oldest gaps are forgotten, and a chunk
// from a forgotten stretch is refused (409) rather than acknowledged. A
// client that jumps a million numbers ahead makes one gap, logged once.
func TestGapsAreBounded(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	chunk := makeChunks(t, 1)[0]
	var logs mediatest.SyncBuffer
	ts := start(t, server.Config{ReorderWindow: 1, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	const gaps = 300
	var sizes []int
	for i := 0; i <= gaps; i++ {
		if code, body := put(t, ts, "cam", 2*i, chunk); code != 200 {
			t.Fatalf("chunk %d: %d %s", 2*i, code, body)
		}
		sizes = append(sizes, len(latestState(t, ts, "cam")))
	}
	if a, b := sizes[gaps/2], sizes[gaps]; b > a+a/4 {
		t.Errorf("the state grows with the gaps: %d bytes after %d gaps, %d after %d", a, gaps/2, b, gaps)
	}
	if code, body := put(t, ts, "cam", 1, chunk); code != 409 || !strings.Contains(body, "older than the stream remembers") {
		t.Errorf("a chunk of a forgotten gap: %d %s, want 409", code, body)
	}
	if code, body := put(t, ts, "cam", 2*gaps-1, chunk); code != 409 || !strings.Contains(body, "went on without it") {
		t.Errorf("a chunk of the last gap: %d %s, want 409", code, body)
	}
	if code, body := put(t, ts, "cam", 2*gaps, chunk); code != 200 || !strings.Contains(body, `"duplicate"`) {
		t.Errorf("the last chunk again: %d %s, want a duplicate", code, body)
	}

	ts = start(t, server.Config{ReorderWindow: 4, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	before := strings.Count(logs.String(), "chunks missing")
	for _, n := range []int{0, 1000000, 999999, 999998, 999997} {
		if code, body := put(t, ts, "far", n, chunk); code != 200 {
			t.Fatalf("chunk %d: %d %s", n, code, body)
		}
	}
	if n := strings.Count(logs.String(), "chunks missing") - before; n != 1 {
		t.Errorf("a jump of a million chunk numbers logged %d gaps, want 1", n)
	}
	if code, body := ts.do(t, "GET", "/api/streams", nil); code != 200 || len(body) > 64<<10 {
		t.Errorf("/api/streams: %d, %d bytes", code, len(body))
	}
}

// TestPushKeyframeLimits: a push that goes longer than MaxKeyframeInterval,
// or more bytes than MaxSegmentBytes, or more samples than MaxChunkSamples,
// without a keyframe is stopped there
// (its segment would be held in memory whole): the answer says why, and
// the stream keeps what came before.
func TestPushKeyframeLimits(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	in := filepath.Join(t.TempDir(), "rare.ts")
	// A keyframe at 0 s and 4 s of an 8 s stream.
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=8", "-c:v", "libx264", "-preset", "ultrafast",
		"-x264-params", "keyint=120:min-keyint=120:scenecut=0", "-pix_fmt", "yuv420p", "-f", "mpegts", in)
	data := mustRead(t, in)
	for _, c := range []struct {
		name string
		cfg  server.Config
		says string
	}{
		{"time", server.Config{MaxKeyframeInterval: 3 * time.Second}, "s without a picture a segment can start at"},
		{"bytes", server.Config{MaxSegmentBytes: 64 << 10}, "over 65536 bytes without a picture"},
		{"samples", server.Config{MaxChunkSamples: 100}, "over 100 samples without a picture"},
		{"within the limits", server.Config{MaxKeyframeInterval: 5 * time.Second}, `"status": "ended"`},
	} {
		ts := start(t, c.cfg)
		if code, body := ts.do(t, "POST", "/ingest/cam", bytes.NewReader(data)); code != 200 || !strings.Contains(body, c.says) {
			t.Errorf("%s: %d %s, want %q", c.name, code, body, c.says)
		}
	}
}

// TestIngestNilSource: Ingest of a nil source, and New without a bucket,
// are ErrInvalid, not a panic.
func TestIngestNilSource(t *testing.T) {
	ts := start(t, server.Config{})
	if err := ts.srv.Ingest(t.Context(), "cam", nil, nil); !errors.Is(err, server.ErrInvalid) {
		t.Errorf("Ingest of a nil source: %v, want server.ErrInvalid", err)
	}
	if _, err := server.New(server.Config{}); !errors.Is(err, server.ErrInvalid) {
		t.Errorf("New without a bucket: %v, want server.ErrInvalid", err)
	}
}

// TestFastThenTrickleIsCutOff: a body sent fast, then a few bytes a
// second (the way to hold the room and a connection for hours under an
// average rate: 2 MiB at once earned 30 s of trickle at 64 KiB/s, 256 MiB
// earned 4.5 hours at the default rate), is cut off within a window of
// the rate: 408, after few trickled writes.
func TestFastThenTrickleIsCutOff(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	chunks := makeChunks(t, 1)
	ts := start(t, server.Config{MinUploadRate: 64 << 10, MaxChunkBytes: 8 << 20})
	body := padded(t, chunks[0], 4<<20)
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT /ingest/cam/0 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", len(body))
	conn.Write(body[:2<<20])
	answer := make(chan string, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			answer <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		answer <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	off := 2 << 20
	for writes := 0; ; writes++ {
		select {
		case a := <-answer:
			if !strings.HasPrefix(a, "408 ") || !strings.Contains(a, "too slow") {
				t.Fatalf("the trickle after a burst: %s, want 408", a)
			}
			// A window of the rate (10 s) and the grace; an average
			// since the start would have waited 30 s and more.
			if writes > 20 {
				t.Errorf("cut off after %d trickled writes, one a second", writes)
			}
			return
		case <-time.After(time.Second): // the client's pace: what is tested
		}
		conn.Write(body[off : off+10])
		off += 10
	}
}
