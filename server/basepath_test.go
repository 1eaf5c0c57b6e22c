package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livechunk/livechunk/internal/testkit/browsertest"
	"github.com/livechunk/livechunk/server"
	"github.com/livechunk/livechunk/sink"
	"gocloud.dev/blob/memblob"
)

// pathLog is what an application's middleware saw: the path of every
// request.
type pathLog struct {
	mu    sync.Mutex
	paths []string
}

func (l *pathLog) add(p string) {
	l.mu.Lock()
	l.paths = append(l.paths, p)
	l.mu.Unlock()
}

// count returns how many requests asked for p.
func (l *pathLog) count(p string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, q := range l.paths {
		if q == p {
			n++
		}
	}
	return n
}

// outside returns the paths seen that are neither /studio nor under
// /studio/.
func (l *pathLog) outside() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, p := range l.paths {
		if p != "/studio" && !strings.HasPrefix(p, "/studio/") {
			out = append(out, p)
		}
	}
	return out
}

// sessionCookie is what the application's middleware asks for when it
// guards the studio.
const sessionCookie = "session=ann"

// studioApp is an application that embeds srv under /studio/ in its own
// ServeMux, behind its own middleware: mount "self" hands the Server the
// whole path, "StripPrefix" takes /studio off first (http.StripPrefix).
// The application's other routes answer 418: a URL of the Server without
// the prefix lands there. The middleware logs every path and marks every
// answer (X-App); with guard, it refuses requests without sessionCookie
// (401).
func studioApp(srv http.Handler, mount string, guard bool, log *pathLog) http.Handler {
	mux := http.NewServeMux()
	switch mount {
	case "self":
		mux.Handle("/studio/", srv)
	case "StripPrefix":
		mux.Handle("/studio/", http.StripPrefix("/studio", srv))
	default:
		panic("unknown mount " + mount)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "the application's own route", http.StatusTeapot)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add(r.URL.Path)
		w.Header().Set("X-App", "1")
		if guard && !strings.Contains(r.Header.Get("Cookie"), sessionCookie) {
			http.Error(w, "log in first", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// withCookie sends sessionCookie with every request.
type withCookie struct{ rt http.RoundTripper }

func (c withCookie) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Cookie", sessionCookie)
	return c.rt.RoundTrip(r)
}

// startStudio starts a Server with BasePath "/studio/" (its trailing "/"
// is taken off) embedded as studioApp says, and returns the application's
// URL and a client that follows no redirect (and presents the session
// when guard).
func startStudio(t *testing.T, mount string, guard bool, log *pathLog) (string, *http.Client) {
	t.Helper()
	b, err := sink.Open(context.Background(), filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	srv, err := server.New(server.Config{Bucket: b, BasePath: "/studio/", SegmentDuration: time.Second, Stitch: server.StitchMP4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	app := httptest.NewServer(studioApp(srv, mount, guard, log))
	t.Cleanup(app.Close)
	client := &http.Client{
		Transport:     withCookie{http.DefaultTransport},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return app.URL, client
}

// send sends one request and returns its answer with its whole body.
func send(t *testing.T, c *http.Client, method, u string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// record uploads the chunk files to the stream under base (the Server's
// URL, with its prefix), ends it and waits for its VOD file.
func record(t *testing.T, c *http.Client, base, stream string, files ...string) {
	t.Helper()
	for i, file := range files {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		resp, body := send(t, c, "PUT", fmt.Sprintf("%s/ingest/%s/%d", base, stream, i), f)
		f.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("chunk %d of %s: %d %s", i, stream, resp.StatusCode, body)
		}
	}
	if resp, body := send(t, c, "POST", base+"/ingest/"+stream+"/end", nil); resp.StatusCode != 200 {
		t.Fatalf("end of %s: %d %s", stream, resp.StatusCode, body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, body := send(t, c, "GET", base+"/api/streams/"+stream, nil)
		var in server.StreamInfo
		if json.Unmarshal(body, &in) == nil && in.State == "vod" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %s has no VOD file: %s", stream, body)
		}
		time.Sleep(20 * time.Millisecond) // polling an observable condition
	}
}

var (
	// attrURL finds the URLs of a page's attributes: links, sources, and
	// the data-* attributes its script reads them from.
	attrURL = regexp.MustCompile(`\s(?:href|src|data-[a-z-]+)="([^"]*)"`)
	// inlineScript finds the scripts written in a page.
	inlineScript = regexp.MustCompile(`(?s)<script>(.*?)</script>`)
	// rootLiteral finds a JavaScript string that starts with "/": a
	// root-absolute URL, which misses the prefix.
	rootLiteral = regexp.MustCompile(`["'` + "`" + `]/[^"'` + "`" + `]*`)
	// linkURL finds the URLs of a Link header.
	linkURL = regexp.MustCompile(`<([^>]*)>`)
	// playlistURI finds the URIs of a playlist's tags (EXT-X-MAP).
	playlistURI = regexp.MustCompile(`URI="([^"]*)"`)
)

// crawl fetches start (URLs) and every URL that the answers reference
// (in the attributes of pages, JSON strings that start with "/", Link
// headers and playlists), once each, and returns the URLs it fetched.
// Each one must be under base + "/" and answer 200 through the
// application's middleware; an inline script must not hold a
// root-absolute URL.
func crawl(t *testing.T, c *http.Client, base string, start ...string) []string {
	t.Helper()
	from := map[string]string{} // URL -> the URL that referenced it
	var queue, done []string
	add := func(ref *url.URL, raw string) {
		u, err := ref.Parse(raw)
		if err != nil {
			t.Errorf("%s references %q: %v", ref, raw, err)
			return
		}
		u.Fragment = ""
		s := u.String()
		if !strings.HasPrefix(s, base+"/") {
			t.Errorf("%s references %q (%s): not under %s/", ref, raw, s, base)
			return
		}
		if _, ok := from[s]; !ok {
			from[s] = ref.String()
			queue = append(queue, s)
		}
	}
	for _, s := range start {
		u, _ := url.Parse(s)
		add(u, s)
	}
	for len(queue) > 0 && len(done) < 200 {
		s := queue[0]
		queue = queue[1:]
		done = append(done, s)
		resp, body := send(t, c, "GET", s, nil)
		if resp.StatusCode != 200 || resp.Header.Get("X-App") != "1" {
			t.Errorf("GET %s (referenced by %s): %d, X-App %q: %.200s", s, from[s], resp.StatusCode, resp.Header.Get("X-App"), body)
			continue
		}
		ref := resp.Request.URL
		for _, l := range resp.Header.Values("Link") {
			for _, m := range linkURL.FindAllStringSubmatch(l, -1) {
				add(ref, m[1])
			}
		}
		ctype, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";")
		switch ctype {
		case "text/html":
			// The attributes of the page, not those its scripts write.
			for _, m := range attrURL.FindAllSubmatch(inlineScript.ReplaceAll(body, nil), -1) {
				add(ref, html.UnescapeString(string(m[1])))
			}
			for _, m := range inlineScript.FindAllSubmatch(body, -1) {
				if bad := rootLiteral.FindAll(m[1], -1); len(bad) > 0 {
					t.Errorf("the script of %s holds root-absolute URLs: %q", s, bad)
				}
			}
		case "application/json":
			var v any
			if err := json.Unmarshal(body, &v); err != nil {
				t.Errorf("GET %s: %v", s, err)
			}
			for _, str := range jsonStrings(v) {
				if strings.HasPrefix(str, "/") {
					add(ref, str)
				}
			}
		case "application/vnd.apple.mpegurl":
			for line := range strings.Lines(string(body)) {
				line = strings.TrimSpace(line)
				if line != "" && !strings.HasPrefix(line, "#") {
					add(ref, line)
				}
				for _, m := range playlistURI.FindAllStringSubmatch(line, -1) {
					add(ref, m[1])
				}
			}
		}
	}
	return done
}

// jsonStrings returns every string in a decoded JSON value.
func jsonStrings(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			out = append(out, jsonStrings(e)...)
		}
		return out
	case map[string]any:
		var out []string
		for _, e := range v {
			out = append(out, jsonStrings(e)...)
		}
		return out
	}
	return nil
}

// TestMountedUnderBasePath embeds a Server with BasePath "/studio/" in an
// application's ServeMux, behind middleware that asks for a session,
// mounted as documented (the Server takes the prefix off) and behind
// http.StripPrefix; two streams are recorded through it. Then every URL
// that the pages, the JSON (with its Link header) and the playlists
// reference, crawled from the index, is under /studio/ and answers 200,
// the player's script among them, and the redirects name paths under
// /studio/ too. No request reaches the application outside /studio/.
func TestMountedUnderBasePath(t *testing.T) {
	for _, mount := range []string{"self", "StripPrefix"} {
		t.Run(mount, func(t *testing.T) {
			var log pathLog
			app, c := startStudio(t, mount, true, &log)
			base := app + "/studio"
			if resp, _ := send(t, http.DefaultClient, "GET", base+"/", nil); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("the middleware let a request without a session in: %d", resp.StatusCode)
			}
			record(t, c, base, "cam", "../testdata/chunk0.mp4", "../testdata/chunk1.mp4")
			record(t, c, base, "desk", "../testdata/chunk2.mp4")

			got := crawl(t, c, base, base+"/", base+"/api/streams?limit=1", base+"/watch/desk")
			for _, want := range []string{
				"/", "/assets/hls.min.js", "/watch/cam", "/watch/desk", "/api/streams/cam", "/api/streams/desk",
				"/api/streams?after=cam&limit=1", "/live/cam/index.m3u8", "/live/cam/init-0.mp4", "/live/cam/seg-000000.m4s",
				"/vod/cam.mp4", "/vod/desk.mp4",
			} {
				if !slices.Contains(got, base+want) {
					t.Errorf("the crawl did not reach %s%s; it fetched:\n%s", base, want, strings.Join(got, "\n"))
				}
			}

			// The redirects of the Server's ServeMux, and the Server's own
			// to its index page, stay under the prefix.
			for path, want := range map[string]string{
				"/studio/live":       "/studio/live/",
				"/studio/ingest":     "/studio/ingest/",
				"/studio":            "/studio/",
				"/studio?after=desk": "/studio/?after=desk",
			} {
				resp, _ := send(t, c, "GET", app+path, nil)
				if resp.StatusCode/100 != 3 || resp.Header.Get("Location") != want {
					t.Errorf("GET %s: %d, Location %q; want a redirect to %q", path, resp.StatusCode, resp.Header.Get("Location"), want)
				}
			}
			// A refusal names the route with its prefix.
			if resp, body := send(t, c, "DELETE", base+"/ingest/cam", nil); resp.StatusCode != http.StatusMethodNotAllowed ||
				!strings.Contains(string(body), `\"/studio/ingest/cam\"`) {
				t.Errorf("DELETE .../ingest/cam: %d %s", resp.StatusCode, body)
			}
			if out := log.outside(); len(out) > 0 {
				t.Errorf("requests outside /studio/: %q", out)
			}
		})
	}
}

// TestBasePathServedEitherWay: a Server with a BasePath serves a path with
// it or without it (taken off by a proxy), redirects BasePath itself to
// its index page, and leaves other paths alone.
func TestBasePathServedEitherWay(t *testing.T) {
	ts := start(t, server.Config{BasePath: "/a/studio"})
	addStreams(t, ts, "cam")
	for path, want := range map[string]int{
		"/a/studio/api/streams/cam":          200,
		"/a/%73tudio/api/streams/cam":        404, // as http.StripPrefix: the escaped path does not start with BasePath
		"/a/%73tudio":                        404,
		"/a/studio%2Fapi/streams/cam":        200, // no RawPath "%2Fapi/...": served as /api/streams/cam
		"/a/studio%2F":                       200,
		"/a/studio/api/streams/c%61m":        200,
		"/a/studio/watch/c%61m":              200,
		"/api/streams/cam":                   200,
		"/a/studio/live/cam/index.m3u8":      200,
		"/live/cam/index.m3u8":               200,
		"/a/studio/":                         200,
		"/":                                  200,
		"/a/studio":                          307,
		"/a/studiox/api/streams/cam":         404,
		"/a/api/streams/cam":                 404,
		"/a/studio/a/studio/api/streams/cam": 404,
	} {
		resp, body := get(t, ts, "GET", path)
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d: %s", path, resp.StatusCode, want, body)
		}
		if want == 200 && strings.Contains(path, "/api/streams/") && !strings.Contains(string(body), `"/a/studio/watch/cam"`) {
			t.Errorf("GET %s: %s", path, body)
		}
	}
	if resp, _ := get(t, ts, "GET", "/a/studio"); resp.Header.Get("Location") != "/a/studio/" {
		t.Errorf("GET /a/studio: Location %q", resp.Header.Get("Location"))
	}
	// The redirects of the ServeMux name the path as clients spelled it,
	// escaped once.
	for path, want := range map[string]string{
		"/a/studio%2Fingest": "/a/studio/ingest/",
		"/a/studio/ingest":   "/a/studio/ingest/",
	} {
		if resp, _ := get(t, ts, "GET", path); resp.StatusCode/100 != 3 || resp.Header.Get("Location") != want {
			t.Errorf("GET %s: %d, Location %q; want a redirect to %q", path, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
}

// TestLocationNeverProtocolRelative: the Location of an answer under a
// BasePath never starts with "//" or "/\" (a browser reads either as the
// start of another host), whatever the handler wrote.
func TestLocationNeverProtocolRelative(t *testing.T) {
	for _, c := range []struct{ base, loc, want string }{
		{"/studio", "/live/", "/studio/live/"},
		{"/studio", "https://example.com/x", "https://example.com/x"},
		{"/studio", "x/", "x/"},
		{"/studio", "//evil.example.com/x", "/studio/evil.example.com/x"},
		{"/studio", "/\\evil.example.com/x", "/studio/evil.example.com/x"},
		{"/", "/live/", "/live/"},
		{"//", "/live/", "/live/"},
	} {
		if got := server.LocationUnder(c.base, c.loc); got != c.want {
			t.Errorf("Location %q under %q: %q, want %q", c.loc, c.base, got, c.want)
		}
	}
}

// TestBasePathChecked: New takes a clean path of the allowed characters,
// with or without one trailing "/", and refuses any other, or one that
// starts like a route of the Server's own.
func TestBasePathChecked(t *testing.T) {
	b := memblob.OpenBucket(nil)
	defer b.Close()
	for _, p := range []string{"", "/", "/studio", "/studio/", "/a/b-c/d_e.f~g", "/livestream", "/apis"} {
		srv, err := server.New(server.Config{Bucket: b, BasePath: p})
		if err != nil {
			t.Errorf("BasePath %q refused: %v", p, err)
			continue
		}
		_ = srv.Shutdown(context.Background())
	}
	refused := []string{"studio", "//", "///", "////", "/studio//", "//studio", "/a//b", "/a/./b", "/a/../b", "/studio?x=1", "/studio#x",
		"/stu dio", "/%73tudio"}
	// Nor may it start like a route of the Server's own: those its
	// ServeMux is made from.
	roots := server.RouteRoots()
	if len(roots) == 0 {
		t.Fatal("no route roots")
	}
	for _, r := range roots {
		refused = append(refused, "/"+r, "/"+r+"/", "/"+r+"/x")
	}
	for _, p := range refused {
		if srv, err := server.New(server.Config{Bucket: b, BasePath: p}); err == nil {
			_ = srv.Shutdown(context.Background())
			t.Errorf("BasePath %q accepted", p)
		} else if !errors.Is(err, server.ErrInvalid) {
			t.Errorf("BasePath %q: %v, want server.ErrInvalid", p, err)
		}
	}
}

// TestNodesUnderBasePath: two nodes, each embedded under /studio/ in its
// application, share a stream: a chunk that reaches the node that does not
// record it is forwarded to the other under its prefix, whether
// AdvertiseURL names the prefix or not.
func TestNodesUnderBasePath(t *testing.T) {
	for _, suffix := range []string{"", "/studio", "/studio/"} {
		t.Run("advertise"+suffix, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "store")
			var log pathLog
			var bases []string
			for _, id := range []string{"a", "b"} {
				b, err := sink.Open(context.Background(), dir)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { b.Close() })
				sh := &switchHandler{h: http.NotFoundHandler()}
				hs := httptest.NewServer(sh)
				t.Cleanup(hs.Close)
				srv, err := server.New(server.Config{Bucket: b, NodeID: id, AdvertiseURL: hs.URL + suffix, BasePath: "/studio",
					SegmentDuration: time.Second})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
				sh.h = studioApp(srv, "self", false, &log)
				bases = append(bases, hs.URL+"/studio")
			}
			for i, file := range []string{"../testdata/chunk0.mp4", "../testdata/chunk1.mp4", "../testdata/chunk2.mp4"} {
				f, err := os.Open(file)
				if err != nil {
					t.Fatal(err)
				}
				resp, body := send(t, http.DefaultClient, "PUT", fmt.Sprintf("%s/ingest/cam/%d", bases[i%2], i), f)
				f.Close()
				if resp.StatusCode != 200 || !strings.Contains(string(body), `"status": "recorded"`) {
					t.Fatalf("chunk %d to node %d: %d %s", i, i%2, resp.StatusCode, body)
				}
			}
			if out := log.outside(); len(out) > 0 {
				t.Errorf("requests outside /studio/: %q", out)
			}
			// Chunk 1 reached node b first, then node a from b.
			if n := log.count("/studio/ingest/cam/1"); n != 2 {
				t.Errorf("chunk 1 was asked for %d times, not forwarded once", n)
			}
		})
	}
}

// TestAdvertiseURL: the chunks of a node's streams are forwarded to its
// AdvertiseURL with BasePath added to the URL's path, unless that path is
// BasePath or ends with its segments already; New refuses an AdvertiseURL
// that is not an absolute http or https URL without query or fragment.
func TestAdvertiseURL(t *testing.T) {
	b := memblob.OpenBucket(nil)
	defer b.Close()
	for _, c := range []struct{ advertise, base, want string }{
		{"", "/studio", ""},
		{"http://10.0.0.5:8080", "", "http://10.0.0.5:8080"},
		{"http://10.0.0.5:8080/", "", "http://10.0.0.5:8080"},
		{"http://10.0.0.5:8080", "/studio", "http://10.0.0.5:8080/studio"},
		{"http://10.0.0.5:8080/studio", "/studio", "http://10.0.0.5:8080/studio"},
		{"http://10.0.0.5:8080/studio/", "/studio", "http://10.0.0.5:8080/studio"},
		{"https://proxy/node-a/studio", "/studio", "https://proxy/node-a/studio"},
		{"https://proxy/node-a", "/studio", "https://proxy/node-a/studio"},
		// The host is no path.
		{"http://studio", "/studio", "http://studio/studio"},
		{"http://studio:8080", "/studio", "http://studio:8080/studio"},
		// Whole segments only.
		{"http://h/mystudio", "/studio", "http://h/mystudio/studio"},
		{"http://h/a/studio", "/a/studio", "http://h/a/studio"},
		{"http://h/x/a/studio", "/a/studio", "http://h/x/a/studio"},
		{"http://h/studio", "/a/studio", "http://h/studio/a/studio"},
		{"HTTP://H:8080", "", "http://H:8080"},
		{"http://h/a%2Fb/", "/studio", "http://h/a%2Fb/studio"},
	} {
		srv, err := server.New(server.Config{Bucket: b, AdvertiseURL: c.advertise, BasePath: c.base})
		if err != nil {
			t.Errorf("AdvertiseURL %q, BasePath %q: %v", c.advertise, c.base, err)
			continue
		}
		if got := srv.OwnerURL(); got != c.want {
			t.Errorf("AdvertiseURL %q, BasePath %q: chunks go to %q, want %q", c.advertise, c.base, got, c.want)
		}
		_ = srv.Shutdown(context.Background())
	}
	for _, u := range []string{"10.0.0.5:8080", "localhost:8080", "/studio", "ftp://h/", "http://", "http:///x",
		"http://h/?x=1", "http://h/?", "http://h/#x", "http://h:port/", "mailto:ops@example.com"} {
		if srv, err := server.New(server.Config{Bucket: b, AdvertiseURL: u}); err == nil {
			_ = srv.Shutdown(context.Background())
			t.Errorf("AdvertiseURL %q accepted", u)
		} else if !errors.Is(err, server.ErrInvalid) {
			t.Errorf("AdvertiseURL %q: %v, want server.ErrInvalid", u, err)
		}
	}
}

// watchPageState is what TestWatchPageUnderBasePath reads from the player
// page: the video's position, the state badge, the link to the MP4, and
// the player's errors.
const watchPageState = `(() => ({
  time: document.getElementById("v").currentTime,
  state: document.getElementById("state").textContent.trim(),
  vod: (document.querySelector("#vod a") || {href: ""}).href,
  src: document.getElementById("src").textContent,
  errors: window.playerErrors || [],
}))()`

// TestWatchPageUnderBasePath opens the player page of a stream recorded
// through an application that embeds the Server under /studio/ in
// Chromium: the page loads hls.js, the playlist and the stream's JSON
// under the prefix and plays, and the browser asks for nothing outside
// /studio/.
func TestWatchPageUnderBasePath(t *testing.T) {
	var log pathLog
	app, c := startStudio(t, "self", false, &log)
	base := app + "/studio"
	record(t, c, base, "cam", "../testdata/chunk0.mp4", "../testdata/chunk1.mp4", "../testdata/chunk2.mp4")
	type page struct {
		Time   float64
		State  string
		VOD    string
		Src    string
		Errors []string
	}
	var p page
	raw, ok, console := browsertest.PageState(t, base+"/watch/cam", watchPageState, 60*time.Second, func(v json.RawMessage) bool {
		p = page{}
		if err := json.Unmarshal(v, &p); err != nil {
			t.Fatalf("page state %s: %v", v, err)
		}
		return p.Time > 1.5 && p.State == "vod" && p.VOD != "" || len(p.Errors) > 0
	})
	if !ok || len(p.Errors) > 0 || p.VOD != base+"/vod/cam.mp4" || p.Src != base+"/live/cam/index.m3u8" {
		t.Errorf("player page under /studio/: last state %s\nconsole:\n%s", raw, strings.Join(console, "\n"))
	}
	// (The browser asks for /favicon.ico on its own: the application's.)
	if out := slices.DeleteFunc(log.outside(), func(p string) bool { return p == "/favicon.ico" }); len(out) > 0 {
		t.Errorf("requests outside /studio/: %q", out)
	}
	t.Logf("played to %.1f s under %s", p.Time, base)
}
