package server_test

import (
	"bufio"
	"bytes"
	"fmt"
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

// TestChunkBodiesBeyondMemoryGoToDisk: a chunk body that the memory room
// cannot take is held in an unlinked temporary file while it is checked
// and while it waits for an earlier chunk, and the file is closed once the
// chunk is fed; one the room can take holds its room until it is fed.
// Both streams record every chunk.
func TestChunkBodiesBeyondMemoryGoToDisk(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	chunks := makeChunks(t, 2)
	for _, c := range []struct {
		name   string
		memory int64
	}{{"disk", 1}, {"memory", 64 << 20}} {
		t.Run(c.name, func(t *testing.T) {
			spool := t.TempDir()
			ts := start(t, server.Config{MaxUploadMemory: c.memory, SpoolDir: spool})
			if code, body := put(t, ts, "cam", 1, chunks[1]); code != 200 || !strings.Contains(body, `"buffered"`) {
				t.Fatalf("chunk 1: %d %s", code, body)
			}
			size := int64(len(mustRead(t, chunks[1])))
			files, held := spooled(t, spool), ts.srv.UploadMemoryHeld()
			if c.memory == 1 && (files != 1 || held != 0) {
				t.Errorf("chunk 1 waits with %d spool files open and %d bytes of memory room, want 1 and 0", files, held)
			}
			if c.memory > 1 && (files != 0 || held != size) {
				t.Errorf("chunk 1 waits with %d spool files open and %d bytes of memory room, want 0 and %d", files, held, size)
			}
			if entries, _ := os.ReadDir(spool); len(entries) != 0 {
				t.Errorf("spool files are not unlinked: %v", entries)
			}
			if code, body := put(t, ts, "cam", 0, chunks[0]); code != 200 || !strings.Contains(body, `"recorded"`) {
				t.Fatalf("chunk 0: %d %s", code, body)
			}
			if files, held := spooled(t, spool), ts.srv.UploadMemoryHeld(); files != 0 || held != 0 {
				t.Errorf("after both chunks were fed: %d spool files open, %d bytes of memory room held", files, held)
			}
			if code, body := ts.do(t, "POST", "/ingest/cam/end", nil); code != 200 {
				t.Fatalf("end: %d %s", code, body)
			}
			waitSegments(t, ts.bucket, "cam/index.m3u8", 4)
		})
	}
}

// TestChunkLimits: a chunk with more samples than MaxChunkSamples, or a
// longer stretch without a keyframe than MaxKeyframeInterval, is refused
// with 413 and a message that says which limit; at the limit it is taken.
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
		{"keyframes too rare", server.Config{MaxKeyframeInterval: 900 * time.Millisecond}, 413, "without a picture a segment can start at"},
		{"keyframes often enough", server.Config{MaxKeyframeInterval: 1100 * time.Millisecond}, 200, `"recorded"`},
	} {
		ts := start(t, c.cfg)
		if code, body := put(t, ts, "cam", 0, chunks[0]); code != c.want || !strings.Contains(body, c.says) {
			t.Errorf("%s: %d %s, want %d saying %q", c.name, code, body, c.want, c.says)
		}
	}
}

// TestWaitForRoomIsBounded: an upload that finds no room under
// MaxUploadBytes within UploadWait is answered 503 with Retry-After, and
// the upload that held the room is recorded.
func TestWaitForRoomIsBounded(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	chunks := makeChunks(t, 2)
	ts := start(t, server.Config{MaxChunkBytes: 2 << 20, MaxUploadBytes: 2 << 20, UploadWait: 300 * time.Millisecond})
	a, b := padded(t, chunks[0], 2<<20), padded(t, chunks[1], 2<<20)
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT /ingest/cam/0 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", len(a))
	conn.Write(a[:1<<20])
	for ts.srv.UploadBytesHeld() != 2<<20 {
		time.Sleep(time.Millisecond) // polling until the first upload holds its room
	}
	req, _ := http.NewRequest("PUT", ts.URL+"/ingest/cam/1", bytes.NewReader(b))
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("an upload with no room: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	conn.Write(a[1<<20:])
	first, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || first.StatusCode != 200 {
		t.Fatalf("the upload that held the room: %v %v", first, err)
	}
}
