package server_test

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livechunk/livechunk/internal/testkit/mediatest"
	"github.com/livechunk/livechunk/server"
)

// An end of a stream that does not exist is answered 404 once the
// request may write, so it tells an authorized request from a refused one
// without recording anything.
const passed = http.StatusNotFound

// TestCrossOriginIngestRefused: a browser's write from a page of another
// origin (Sec-Fetch-Site cross-site or same-site, or, without it, a
// foreign Origin) is refused with 403 on every write route, token or
// not; same-origin requests, requests typed by the user, and requests
// without browser headers (curl, ffmpeg) pass; AllowOrigins lets the
// listed origins (or "*", all) through and gives them the CORS headers.
func TestCrossOriginIngestRefused(t *testing.T) {
	const studio, evil = "https://studio.example.com", "https://evil.example"
	open := start(t, server.Config{})
	listed := start(t, server.Config{AllowOrigins: []string{studio}})
	all := start(t, server.Config{AllowOrigins: []string{"*"}})
	spelled := start(t, server.Config{AllowOrigins: []string{"HTTPS://Studio.Example.com:443/"}})
	token := start(t, server.Config{IngestToken: "s3cret"})
	auth := []string{"Authorization", "Bearer s3cret"}
	self := open.URL // the Origin of the server's own pages
	for _, c := range []struct {
		name         string
		ts           *testServer
		method, path string
		hdr          []string
		want         int
		wantACAO     string
	}{
		{"curl-like", open, "POST", "/ingest/cam/end", nil, passed, ""},
		{"no-cors POST from another site", open, "POST", "/ingest/cam/end", []string{"Sec-Fetch-Site", "cross-site", "Origin", evil}, 403, ""},
		{"cross-site, Sec-Fetch-Site only", open, "POST", "/ingest/cam/end", []string{"Sec-Fetch-Site", "cross-site"}, 403, ""},
		{"same-site is another origin", open, "POST", "/ingest/cam/end", []string{"Sec-Fetch-Site", "same-site", "Origin", "https://other.127.0.0.1"}, 403, ""},
		{"foreign Origin, old browser", open, "POST", "/ingest/cam/end", []string{"Origin", evil}, 403, ""},
		{"chunk from another site", open, "PUT", "/ingest/cam/0", []string{"Sec-Fetch-Site", "cross-site", "Origin", evil}, 403, ""},
		{"push from another site", open, "POST", "/ingest/cam", []string{"Origin", evil}, 403, ""},
		{"same origin", open, "POST", "/ingest/cam/end", []string{"Sec-Fetch-Site", "same-origin", "Origin", self}, passed, ""},
		{"typed by the user", open, "POST", "/ingest/cam/end", []string{"Sec-Fetch-Site", "none"}, passed, ""},
		{"own Origin, old browser", open, "POST", "/ingest/cam/end", []string{"Origin", self}, passed, ""},
		{"listed origin", listed, "POST", "/ingest/cam/end", []string{"Sec-Fetch-Site", "cross-site", "Origin", studio}, passed, studio},
		{"listed origin, old browser", listed, "POST", "/ingest/cam/end", []string{"Origin", studio}, passed, studio},
		{"listed origin spelled otherwise", spelled, "POST", "/ingest/cam/end", []string{"Sec-Fetch-Site", "cross-site", "Origin", studio}, passed, studio},
		{"listed origin spelled otherwise, old browser", spelled, "POST", "/ingest/cam/end", []string{"Origin", studio}, passed, studio},
		{"unlisted origin", listed, "POST", "/ingest/cam/end", []string{"Sec-Fetch-Site", "cross-site", "Origin", evil}, 403, ""},
		{"any origin", all, "POST", "/ingest/cam/end", []string{"Sec-Fetch-Site", "cross-site", "Origin", evil}, passed, evil},
		{"token from another site", token, "POST", "/ingest/cam/end", append([]string{"Sec-Fetch-Site", "cross-site", "Origin", evil}, auth...), 403, ""},
		{"token, curl-like", token, "POST", "/ingest/cam/end", auth, passed, ""},
	} {
		var body io.Reader
		if c.method == "PUT" {
			body = strings.NewReader("not a chunk")
		}
		code, text, h := call(t, c.ts, c.method, c.path, body, c.hdr...)
		if code != c.want {
			t.Errorf("%s: %d %s; want %d", c.name, code, text, c.want)
		}
		if code == 403 && !strings.Contains(text, `"error": "ingest from a web page of another origin`) {
			t.Errorf("%s: the refusal says %s", c.name, text)
		}
		if got := h.Get("Access-Control-Allow-Origin"); got != c.wantACAO {
			t.Errorf("%s: Access-Control-Allow-Origin %q; want %q", c.name, got, c.wantACAO)
		}
	}
	// Playback stays open to every origin.
	if code, text, _ := call(t, open, "GET", "/api/streams", nil, "Sec-Fetch-Site", "cross-site", "Origin", evil); code != 200 {
		t.Errorf("cross-site GET /api/streams: %d %s", code, text)
	}
}

// TestPreflight: CORS preflights on the ingest routes are answered for
// the origins of AllowOrigins (the methods and headers ingest uses) and
// refused (403) for others; an OPTIONS request without Origin is answered
// with the methods allowed.
func TestPreflight(t *testing.T) {
	const studio = "https://studio.example.com"
	ts := start(t, server.Config{AllowOrigins: []string{"https://Studio.example.com/", "http://127.0.0.1:9999"}})
	none := start(t, server.Config{})
	for path, method := range map[string]string{"/ingest/cam/0": "PUT", "/ingest/cam": "POST", "/ingest/cam/end": "POST"} {
		code, text, h := call(t, ts, "OPTIONS", path, nil, "Origin", studio,
			"Access-Control-Request-Method", method, "Access-Control-Request-Headers", "authorization,content-type")
		if code != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != studio ||
			h.Get("Access-Control-Allow-Methods") != method ||
			h.Get("Access-Control-Allow-Headers") != "Authorization, Content-Type" || h.Get("Vary") != "Origin" {
			t.Errorf("preflight of %s from %s: %d %s %v", path, studio, code, text, h)
		}
		for _, c := range []struct {
			ts     *testServer
			origin string
		}{{ts, "https://evil.example"}, {ts, "https://studio.example.com:8443"}, {none, studio}} {
			code, text, h := call(t, c.ts, "OPTIONS", path, nil, "Origin", c.origin, "Access-Control-Request-Method", "POST")
			if code != http.StatusForbidden || h.Get("Access-Control-Allow-Origin") != "" || !strings.Contains(text, `"error"`) {
				t.Errorf("preflight of %s from %s: %d %s %v", path, c.origin, code, text, h)
			}
		}
		code, _, h = call(t, none, "OPTIONS", path, nil)
		if code != http.StatusNoContent || h.Get("Allow") != "OPTIONS, "+method {
			t.Errorf("OPTIONS %s without Origin: %d %v", path, code, h)
		}
	}
}

var secret = []byte("0123456789abcdef-test-secret")

func mint(t *testing.T, key []byte, stream string, expires time.Time) string {
	t.Helper()
	k, err := server.MintKey(key, stream, expires)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestMintKeyCheckKey: a key opens its stream until its expiry and no
// other; altered keys, keys of another secret and non-keys are invalid;
// MintKey refuses short secrets, invalid names and no expiry.
func TestMintKeyCheckKey(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	key := mint(t, secret, "cam.1", now.Add(time.Hour))
	if !strings.HasPrefix(key, "lck1.cam.1.1800003600.") {
		t.Errorf("key %q", key)
	}
	flip := func(s string, i int) string {
		b := []byte(s)
		b[i] ^= 1
		return string(b)
	}
	mac := key[strings.LastIndexByte(key, '.')+1:]
	for _, c := range []struct {
		name, stream, key string
		at                time.Time
		want              error
	}{
		{"its stream", "cam.1", key, now, nil},
		{"a second before expiry", "cam.1", key, now.Add(time.Hour - time.Second), nil},
		{"at expiry", "cam.1", key, now.Add(time.Hour), server.ErrKeyExpired},
		{"another stream", "cam", key, now, server.ErrKeyStream},
		{"MAC altered", "cam.1", flip(key, len(key)-3), now, server.ErrKeyInvalid},
		{"stream altered", "cam.2", "lck1.cam.2.1800003600." + mac, now, server.ErrKeyInvalid},
		{"expiry altered", "cam.1", "lck1.cam.1.1800007200." + mac, now, server.ErrKeyInvalid},
		{"expiry with a plus", "cam.1", "lck1.cam.1.+1800003600." + mac, now, server.ErrKeyInvalid},
		{"another secret", "cam.1", mint(t, []byte("another-secret-of-16+"), "cam.1", now.Add(time.Hour)), now, server.ErrKeyInvalid},
		{"another version", "cam.1", "lck2" + key[4:], now, server.ErrKeyInvalid},
		{"the MAC cut", "cam.1", key[:len(key)-1], now, server.ErrKeyInvalid},
		{"no MAC", "cam.1", "lck1.cam.1.1800003600", now, server.ErrKeyInvalid},
		{"empty", "cam.1", "", now, server.ErrKeyInvalid},
	} {
		err := server.CheckKey(secret, c.stream, c.key, c.at)
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: %v; want %v", c.name, err, c.want)
		}
	}
	if err := server.CheckKey(secret, "cam.1", key, now.Add(2*time.Hour)); err == nil ||
		!strings.Contains(err.Error(), "2027-01-15T09:00:00Z") {
		t.Errorf("expired key: %v (the message should say when it expired)", err)
	}
	if err := server.CheckKey(secret, "cam", key, now); err == nil || !strings.Contains(err.Error(), `"cam.1"`) {
		t.Errorf("key of another stream: %v (the message should name its stream)", err)
	}
	for _, c := range []struct {
		name    string
		secret  []byte
		stream  string
		expires time.Time
	}{
		{"short secret", secret[:15], "cam", now},
		{"invalid name", secret, "../cam", now},
		{"no expiry", secret, "cam", time.Time{}},
	} {
		if k, err := server.MintKey(c.secret, c.stream, c.expires); err == nil {
			t.Errorf("%s: key %q", c.name, k)
		}
	}
}

// TestStreamKeys: with a KeySecret and no token, ingest needs a key: a
// key for stream a opens a (in the Authorization header or in ?key=) and
// not b (403 naming a); an expired key is refused with 401 saying it
// expired; altered keys and other values with 401. With a token too, the
// token opens every stream (from the header only) and keys still open
// theirs. New refuses a secret shorter than MinKeySecret and a malformed
// origin.
func TestStreamKeys(t *testing.T) {
	keys := start(t, server.Config{KeySecret: secret})
	both := start(t, server.Config{KeySecret: secret, IngestToken: "s3cret"})
	keyA := mint(t, secret, "a", time.Now().Add(time.Hour))
	expired := mint(t, secret, "a", time.Now().Add(-time.Minute))
	altered := keyA[:len(keyA)-2] + map[bool]string{true: "AA", false: "BB"}[!strings.HasSuffix(keyA, "AA")]
	bearer := func(k string) []string { return []string{"Authorization", "Bearer " + k} }
	for _, c := range []struct {
		name    string
		ts      *testServer
		method  string
		path    string
		hdr     []string
		want    int
		message string
	}{
		{"no credential", keys, "POST", "/ingest/a/end", nil, 401, "stream key"},
		{"key of a, for a", keys, "POST", "/ingest/a/end", bearer(keyA), passed, ""},
		{"key of a, lower-case scheme", keys, "POST", "/ingest/a/end", []string{"Authorization", "bearer " + keyA}, passed, ""},
		{"key of a, in the query", keys, "POST", "/ingest/a/end?key=" + url.QueryEscape(keyA), nil, passed, ""},
		{"key of a, chunk upload", keys, "PUT", "/ingest/a/0", bearer(keyA), 400, "chunk"},
		{"key of a, push", keys, "POST", "/ingest/a", bearer(keyA), 400, ""},
		{"key of a, for b", keys, "POST", "/ingest/b/end", bearer(keyA), 403, `opens stream \"a\", not \"b\"`},
		{"key of a, for b, chunk", keys, "PUT", "/ingest/b/0", bearer(keyA), 403, `stream \"a\"`},
		{"key of a, for b, in the query", keys, "POST", "/ingest/b/end?key=" + keyA, nil, 403, "another stream"},
		{"expired key", keys, "POST", "/ingest/a/end", bearer(expired), 401, "expired at " + time.Unix(mustExpiry(t, expired), 0).UTC().Format(time.RFC3339)},
		{"altered key", keys, "POST", "/ingest/a/end", bearer(altered), 401, "invalid stream key"},
		{"altered key, in the query", keys, "POST", "/ingest/a/end?key=" + altered, nil, 401, "invalid stream key"},
		{"not a key", keys, "POST", "/ingest/a/end", bearer("s3cret"), 401, "stream key"},
		{"token", both, "POST", "/ingest/a/end", bearer("s3cret"), passed, ""},
		{"token, another stream", both, "POST", "/ingest/b/end", bearer("s3cret"), passed, ""},
		{"token in the query", both, "POST", "/ingest/a/end?key=s3cret", nil, 401, "token or stream key"},
		{"wrong token", both, "POST", "/ingest/a/end", bearer("s3cre"), 401, "token or stream key"},
		{"key with a token set", both, "POST", "/ingest/a/end", bearer(keyA), passed, ""},
		{"key with a token set, for b", both, "POST", "/ingest/b/end", bearer(keyA), 403, "another stream"},
	} {
		var body io.Reader
		if c.method == "PUT" || c.path == "/ingest/a" {
			body = strings.NewReader("not a chunk")
		}
		code, text, h := call(t, c.ts, c.method, c.path, body, c.hdr...)
		if code != c.want || !strings.Contains(text, c.message) {
			t.Errorf("%s: %d %s; want %d with %q", c.name, code, text, c.want, c.message)
		}
		if code == 401 && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer ") {
			t.Errorf("%s: 401 without WWW-Authenticate", c.name)
		}
	}
	for _, cfg := range []server.Config{
		{KeySecret: secret[:server.MinKeySecret-1]},
		{AllowOrigins: []string{"https://studio.example.com/path"}},
		{AllowOrigins: []string{"studio.example.com"}},
		{AllowOrigins: []string{"null"}},
		{PlaybackOrigins: []string{"https://app.example.com?x"}},
	} {
		if _, err := server.New(cfg); err == nil {
			t.Errorf("New accepts %+v", cfg)
		}
	}
}

// mustExpiry is the expiry (Unix seconds) written in key.
func mustExpiry(t *testing.T, key string) int64 {
	t.Helper()
	parts := strings.Split(key, ".")
	exp, err := strconv.ParseInt(parts[len(parts)-2], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return exp
}

// TestStreamKeyForwarded: a chunk with its key in the query that reaches
// the node that does not record its stream is forwarded with the key, and
// recorded by the node that does.
func TestStreamKeyForwarded(t *testing.T) {
	mediatest.RequireTool(t, "ffmpeg")
	chunks := makeChunks(t, 2)
	dir := filepath.Join(t.TempDir(), "store")
	a := startNode(t, dir, "a", server.Config{KeySecret: secret})
	b := startNode(t, dir, "b", server.Config{KeySecret: secret})
	q := "?key=" + mint(t, secret, "cam", time.Now().Add(time.Hour))
	for i, ts := range []*testServer{a.testServer, b.testServer} {
		code, text := ts.do(t, "PUT", "/ingest/cam/"+string(rune('0'+i))+q, strings.NewReader(string(mustRead(t, chunks[i]))))
		if code != 200 || !strings.Contains(text, `"status": "recorded"`) {
			t.Fatalf("chunk %d to node %d: %d %s", i, i, code, text)
		}
	}
	if code, text := b.do(t, "POST", "/ingest/cam/end"+q, nil); code != 200 {
		t.Fatalf("end at b: %d %s", code, text)
	}
}
