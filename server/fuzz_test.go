package server_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/livechunk/livechunk/internal/testkit/hlscheck"
	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"github.com/livechunk/livechunk/server"
	"gocloud.dev/blob/memblob"
)

// FuzzIngestChunk uploads arbitrary bytes as chunk 0 of a stream, then a
// valid chunk 1, then ends the stream. The server must answer every
// request with 2xx or 4xx (never 5xx, never a panic); a rejected upload
// changes nothing, so the valid chunk that follows is recorded; and the
// ended stream's playlist is valid and references only objects that
// exist.
func FuzzIngestChunk(f *testing.F) {
	good, err := os.ReadFile(mediatest.Testdata("chunk1.mp4"))
	if err != nil {
		f.Fatal(err)
	}
	mediatest.AddFuzzSeeds(f, "chunk0.mp4", "chunk2.mp4", "av.mp4", "fragmented.mp4", "vfr.mov")
	f.Add([]byte{})
	f.Add([]byte("\x00\x00\x00\x08ftyp"))
	f.Fuzz(func(t *testing.T, body []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		b := memblob.OpenBucket(nil)
		defer b.Close()
		srv, err := server.New(server.Config{Bucket: b, SegmentDuration: time.Second, MaxChunkBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		do := func(method, path string, body []byte) (int, string) {
			req := httptest.NewRequestWithContext(ctx, method, path, bytes.NewReader(body))
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, req)
			if rec.Code < 200 || (rec.Code >= 300 && rec.Code < 400) || rec.Code >= 500 {
				t.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body.String())
			}
			return rec.Code, rec.Body.String()
		}
		code, _ := do(http.MethodPut, "/ingest/fz/0", body)
		code1, msg1 := do(http.MethodPut, "/ingest/fz/1", good)
		if code != http.StatusOK && code1 != http.StatusOK {
			t.Fatalf("chunk 0 was rejected (%d) and then a valid chunk 1 too: %d %s", code, code1, msg1)
		}
		do(http.MethodPost, "/ingest/fz/end", nil)
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		text, err := b.ReadAll(ctx, "fz/index.m3u8")
		if err != nil {
			t.Fatalf("no playlist after a recorded chunk: %v", err)
		}
		m, errs := hlscheck.Check(string(text))
		for _, e := range errs {
			t.Errorf("playlist: %v", e)
		}
		if !m.Ended || len(m.Entries) == 0 {
			t.Fatalf("playlist: %d entries, ended %v", len(m.Entries), m.Ended)
		}
		for _, e := range m.Entries {
			for _, key := range []string{e.URI, e.Map} {
				if key == "" {
					continue
				}
				if ok, err := b.Exists(ctx, "fz/"+key); !ok || err != nil {
					t.Fatalf("listed object %s missing (%v)", key, err)
				}
			}
		}
	})
}
