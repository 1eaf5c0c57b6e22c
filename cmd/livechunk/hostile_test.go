package main

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livechunk/livechunk/hls"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
)

// peakRSS is the peak resident set size of process pid (VmHWM), in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// rawPUT sends a PUT with a declared length through a raw connection,
// writing body as send returns it (nil: stop), and returns the answer's
// status line and body ("" and the error when the connection breaks).
func rawPUT(addr, path string, length int64, chunked bool, send func() []byte) string {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return "dial: " + err.Error()
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Minute))
	hdr := fmt.Sprintf("PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", path, length)
	if chunked {
		hdr = fmt.Sprintf("PUT %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", path)
	}
	answer := make(chan string, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			answer <- "read: " + err.Error()
			return
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		answer <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	if _, err := io.WriteString(conn, hdr); err != nil {
		return "write: " + err.Error()
	}
	for {
		select {
		case a := <-answer:
			return a
		default:
		}
		b := send()
		if b == nil {
			break
		}
		if chunked {
			b = append(fmt.Appendf(nil, "%x\r\n", len(b)), append(b, "\r\n"...)...)
		}
		if _, err := conn.Write(b); err != nil {
			break // refused early: the answer says why
		}
	}
	if chunked {
		io.WriteString(conn, "0\r\n\r\n")
	}
	return <-answer
}

// mdatBody sends an MP4 file's start (ftyp, then an mdat box of length
// bytes in all) and zeros up to length, in pieces of 1 MiB.
func mdatBody(length int64) func() []byte {
	head := make([]byte, 32)
	binary.BigEndian.PutUint32(head, 24)
	copy(head[4:], "ftypisom")
	binary.BigEndian.PutUint32(head[24:], uint32(length-24))
	copy(head[28:], "mdat")
	sent := int64(0)
	zeros := make([]byte, 1<<20)
	return func() []byte {
		switch {
		case sent == 0:
			sent = int64(len(head))
			return head
		case sent >= length:
			return nil
		}
		n := min(int64(len(zeros)), length-sent)
		sent += n
		return zeros[:n]
	}
}

// TestServeUnderAttack runs `livechunk serve` with its defaults while 50
// devices upload their chunks and attackers, at the same time, send
// large uploads that look like MP4 files (declared and chunked), trickle
// bodies below and above the minimum rate, send garbage, and jump a
// stream's chunk numbers by a million.
// The server's peak memory stays bounded (the bodies go to disk past
// the memory room), every attacker gets a readable answer, and every
// device's chunks are acknowledged and recorded.
func TestServeUnderAttack(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	// The binary users run: the test binary may be built with -race,
	// which multiplies the memory measured.
	bin := filepath.Join(t.TempDir(), "livechunk")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	n := &serveNode{t: t, store: filepath.Join(t.TempDir(), "store"), addr: freeAddr(t), bin: bin,
		env: []string{"TMPDIR=" + t.TempDir()}}
	n.start()
	defer n.stop(os.Interrupt)
	pid := n.proc.cmd.Process.Pid
	baseline := peakRSS(t, pid)

	chunks := [][]byte{}
	for _, f := range []string{"chunk0.mp4", "chunk1.mp4", "chunk2.mp4"} {
		b, err := os.ReadFile(mediatest.Testdata(f))
		if err != nil {
			t.Fatal(err)
		}
		chunks = append(chunks, b)
	}
	// Trickling clients that declare 128 MiB each (all of MaxUploadBytes
	// together) and send 20 KB a second, above the minimum rate, until
	// the devices are done: they hold what they sent, not what they
	// declared, and the devices are not held back.
	devicesDone := make(chan struct{})
	var trickles sync.WaitGroup
	for i := range 8 {
		trickles.Go(func() {
			body, sentHead := mdatBody(128<<20), false
			answer := rawPUT(n.addr, fmt.Sprintf("/ingest/trickle%d/0", i), 128<<20, false, func() []byte {
				select {
				case <-devicesDone:
					return nil
				case <-time.After(time.Second): // the client's pace: what is tested
				}
				if !sentHead {
					sentHead = true
					return body() // the first 32 bytes: ftyp and an mdat header
				}
				return make([]byte, 20000)
			})
			// Cut off 30 s after the devices are done (uploadIdle), or
			// refused earlier when the spool's room is full.
			if !strings.HasPrefix(answer, "408 ") && !strings.HasPrefix(answer, "503 ") {
				t.Errorf("trickle %d: %.200s, want 408 or 503", i, answer)
			}
		})
	}
	const devices, perDevice = 50, 6
	var wg sync.WaitGroup
	d := &device{t: t, client: &http.Client{Timeout: 2 * time.Minute}}
	for i := range devices {
		wg.Go(func() {
			for k := range perDevice {
				d.upload(n.url(), fmt.Sprintf("dev%d", i), k, chunks[k%len(chunks)])
			}
			d.do("POST", fmt.Sprintf("%s/ingest/dev%d/end", n.url(), i), nil)
		})
	}

	var mu sync.Mutex
	answers := map[string][]string{}
	attack := func(kind string, f func() string) {
		wg.Go(func() {
			a := f()
			mu.Lock()
			answers[kind] = append(answers[kind], a)
			mu.Unlock()
		})
	}
	const big = 200 << 20
	for i := range 6 {
		attack("large", func() string { return rawPUT(n.addr, fmt.Sprintf("/ingest/big%d/0", i), big, false, mdatBody(big)) })
	}
	for i := range 4 {
		// 60 MiB: two of them fit the memory room at once.
		attack("in memory", func() string {
			return rawPUT(n.addr, fmt.Sprintf("/ingest/mem%d/0", i), 60<<20, false, mdatBody(60<<20))
		})
	}
	for i := range 2 {
		attack("chunked", func() string { return rawPUT(n.addr, fmt.Sprintf("/ingest/chunked%d/0", i), -1, true, mdatBody(big)) })
	}
	for i := range 10 {
		attack("slow", func() string {
			body := mdatBody(10 << 20)
			return rawPUT(n.addr, fmt.Sprintf("/ingest/slow%d/0", i), 10<<20, false, func() []byte {
				time.Sleep(time.Second) // a client that sends 100 bytes a second
				b := body()
				return b[:min(len(b), 100)]
			})
		})
	}
	for i := range 100 {
		attack("garbage", func() string {
			junk := make([]byte, 1<<20)
			rand.Read(junk)
			sent := false
			return rawPUT(n.addr, fmt.Sprintf("/ingest/junk%d/0", i), int64(len(junk)), false, func() []byte {
				if sent {
					return nil
				}
				sent = true
				return junk
			})
		})
	}
	attack("jump", func() string {
		var out []string
		for _, k := range []int{0, 1000000, 999999, 999998, 999997} {
			out = append(out, string(d.do("PUT", fmt.Sprintf("%s/ingest/jump/%d", n.url(), k), chunks[0])))
		}
		return strings.Join(out, "\n---\n")
	})
	wg.Wait()
	close(devicesDone)
	trickles.Wait()
	peak := peakRSS(t, pid)
	t.Logf("peak RSS %d MiB (at start %d MiB)", peak>>20, baseline>>20)

	// Large uploads are refused as not MP4 files once read (400), or at
	// once when the spool's room is full (503).
	for kind, want := range map[string]string{"large": "400 503 ", "in memory": "400 503 ", "chunked": "400 503 ", "slow": "408 ", "garbage": "400 "} {
		for _, a := range answers[kind] {
			if len(a) < 4 || !strings.Contains(want, a[:4]) || !strings.Contains(a, `"error"`) {
				t.Errorf("%s: %.200s, want one of %q with a JSON error", kind, a, want)
			}
		}
	}
	if jump := strings.Split(answers["jump"][0], "\n---\n"); len(jump) != 5 || strings.Count(answers["jump"][0], `"status"`) != 5 {
		t.Errorf("the jumping device's answers: %q", jump)
	}
	// The memory room (128 MiB) and the rest of the server: the bodies of
	// 1.6 GB of large uploads (up to 1 GiB of them at once) do not count.
	if limit := int64(600 << 20); peak > limit {
		t.Errorf("peak RSS %d MiB, over %d MiB", peak>>20, limit>>20)
	}
	for i := range devices {
		key := fmt.Sprintf("dev%d/index.m3u8", i)
		data, err := os.ReadFile(filepath.Join(n.store, key))
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		pl, err := hls.ParseMedia(data)
		if err != nil {
			t.Fatal(err)
		}
		var secs float64
		for _, s := range pl.Segments {
			secs += s.Seconds()
		}
		if !pl.Ended || secs < 2*perDevice-0.5 {
			t.Errorf("%s: ended %v, %.1f s of media, want %d s", key, pl.Ended, secs, 2*perDevice)
		}
	}
}
