package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livechunk/livechunk/internal/testkit/hlscheck"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"github.com/livechunk/livechunk/internal/testkit/s3test"
	"gocloud.dev/blob"
)

// flakyS3 is an S3 server (gofakes3) behind a proxy that can refuse uploads
// with 503 ServiceUnavailable, as a store that is down for writes.
type flakyS3 struct {
	srv    *s3test.Server
	down   atomic.Bool
	puts   atomic.Int64 // PUTs refused
	dest   string       // s3:// URL of bucket "rec" through the proxy
	bucket *blob.Bucket // the bucket, opened directly
}

func startFlakyS3(t *testing.T) *flakyS3 {
	t.Helper()
	f := &flakyS3{srv: s3test.Start(t, "rec")}
	u, err := url.Parse(f.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.down.Load() && (r.Method == http.MethodPut || r.Method == http.MethodPost) {
			f.puts.Add(1)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code><Message>down for the test</Message></Error>`))
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	// The sink retries; the SDK's own retries would only slow the test.
	t.Setenv("AWS_MAX_ATTEMPTS", "1")
	f.dest = "s3://rec?region=us-east-1&use_path_style=true&disable_https=true&request_checksum_calculation=when_required&endpoint=" + proxy.URL
	f.bucket = f.srv.Open(t, "rec")
	return f
}

// materialize copies the bucket into a directory, for ffmpeg.
func (f *flakyS3) materialize(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	it := f.bucket.List(nil)
	for {
		obj, err := it.Next(t.Context())
		if err != nil {
			break
		}
		data, err := f.bucket.ReadAll(t.Context(), obj.Key)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(obj.Key))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func (f *flakyS3) read(t *testing.T, key string) []byte {
	t.Helper()
	data, err := f.bucket.ReadAll(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func (f *flakyS3) playlist(t *testing.T) *hlscheck.Media {
	t.Helper()
	text, err := f.bucket.ReadAll(t.Context(), "index.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	m, errs := hlscheck.Check(string(text))
	for _, e := range errs {
		t.Error(e)
	}
	for _, e := range m.Entries {
		if ok, err := f.bucket.Exists(t.Context(), e.URI); !ok || err != nil {
			t.Errorf("listed segment %s missing: %v", e.URI, err)
		}
	}
	return m
}

func spoolFiles(t *testing.T, dir string) int {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	n := 0
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".spool") {
			n++
		}
	}
	return n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling an observable condition
	}
}

// TestRecordSpoolOutage: the store refuses uploads while `record -spool`
// runs. Past the (tiny) in-memory bound the segments go to the spool; when
// the store returns they drain in order, the summary reports them, the
// playlist lists everything, the spool ends empty and the recording
// decodes to the input.
func TestRecordSpoolOutage(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	f := startFlakyS3(t)
	spool := filepath.Join(t.TempDir(), "spool")
	in := mediatest.Testdata("bframes.mp4")
	f.down.Store(true)
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"record", "-spool", spool, "-spool-max", "16000000", "-max-in-flight", "1",
			"-format", "fmp4", "-segment", "1s", "-event", in, f.dest}, &out, &errb)
	}()
	waitFor(t, "segments in the spool", func() bool { return spoolFiles(t, spool) >= 3 })
	spooled := spoolFiles(t, spool)
	f.down.Store(false)
	if code := <-done; code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "objects went through the disk spool") {
		t.Errorf("summary does not mention the spool:\n%s", out.String())
	}
	if n := spoolFiles(t, spool); n != 0 {
		t.Errorf("%d files left in the spool", n)
	}
	m := f.playlist(t)
	if len(m.Entries) != 4 || !m.Ended {
		t.Fatalf("playlist: %d entries, ended %v", len(m.Entries), m.Ended)
	}
	got := mediatest.FrameHashes(t, filepath.Join(f.materialize(t), "index.m3u8"))
	if d := mediatest.EqualHashes(mediatest.FrameHashes(t, in), got); d != "" {
		t.Error(d)
	}
	t.Logf("%d uploads refused, %d objects in the spool at once; %d segments listed, %d frames decoded\n%s",
		f.puts.Load(), spooled, len(m.Entries), len(got), out.String())
}

// TestHelperRecordProcess is the command run as a child process by
// TestRecordSpoolResume (it is not a test of its own).
func TestHelperRecordProcess(t *testing.T) {
	args := os.Getenv("LIVECHUNK_HELPER_ARGS")
	if args == "" {
		t.Skip("helper process only")
	}
	os.Exit(run(strings.Split(args, "\n"), os.Stdout, os.Stderr))
}

// TestRecordSpoolResume: `record -spool` is killed (SIGKILL) while the store
// refuses uploads and its segments wait in the spool. A second run with the
// same -spool, the store back, uploads them before its own segments: all are
// listed, numbering continues after them with a discontinuity, nothing is
// left in the spool, and the whole recording decodes.
func TestRecordSpoolResume(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	f := startFlakyS3(t)
	spool := filepath.Join(t.TempDir(), "spool")
	in := mediatest.Testdata("bframes.mp4")
	args := []string{"record", "-spool", spool, "-max-in-flight", "1", "-format", "fmp4", "-segment", "1s", "-event", in, f.dest}

	f.down.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperRecordProcess$")
	cmd.Env = append(os.Environ(), "LIVECHUNK_HELPER_ARGS="+strings.Join(args, "\n"))
	var log1 bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log1, &log1
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The input is read to its end at once; the four segments (the last
	// closes at the end of the input) wait in the spool for the store.
	waitFor(t, "4 segments in the spool", func() bool { return spoolFiles(t, spool) >= 4 })
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	left := spoolFiles(t, spool)
	if ok, _ := f.bucket.Exists(t.Context(), "index.m3u8"); ok {
		t.Fatalf("a playlist landed during the outage:\n%s", log1.String())
	}

	f.down.Store(false)
	var out, errb bytes.Buffer
	if code := run(args, &out, &errb); code != exitOK {
		t.Fatalf("second run: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "recovered from an earlier run") {
		t.Errorf("summary does not mention the recovery:\n%s", out.String())
	}
	if n := spoolFiles(t, spool); n != 0 {
		t.Errorf("%d files left in the spool", n)
	}
	m := f.playlist(t)
	if len(m.Entries) != 8 || !m.Ended {
		t.Fatalf("playlist: %d entries, ended %v", len(m.Entries), m.Ended)
	}
	for i, e := range m.Entries {
		if want := i == 0 || i == 4; e.Discontinuity != want {
			t.Errorf("entry %d (%s): discontinuity %v", i, e.URI, e.Discontinuity)
		}
	}
	// Both runs recorded the same file, so the timestamps start again at
	// the discontinuity; ffmpeg's HLS reader drops frames that go back in
	// time, so each run's part is decoded on its own (init + segments).
	want := mediatest.FrameHashes(t, in)
	frames := 0
	for run, part := range [][]hlscheck.Entry{m.Entries[:4], m.Entries[4:]} {
		parts := [][]byte{f.read(t, part[0].Map)}
		for _, e := range part {
			if e.Map != part[0].Map {
				t.Fatalf("run %d: entry %s has map %s", run+1, e.URI, e.Map)
			}
			parts = append(parts, f.read(t, e.URI))
		}
		got := mediatest.FrameHashes(t, mediatest.ConcatFiles(t, "part.mp4", parts...))
		if d := mediatest.EqualHashes(want, got); d != "" {
			t.Errorf("run %d: %s", run+1, d)
		}
		frames += len(got)
	}
	t.Logf("killed with %d objects in the spool; second run: %d segments listed, %d frames decoded\n%s",
		left, len(m.Entries), frames, out.String())
}
