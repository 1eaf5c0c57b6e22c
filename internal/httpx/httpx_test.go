package httpx

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
)

// TestOrigin: an entry of an origin list is taken in the spelling
// browsers send in Origin, whatever the case of its scheme and host, a
// default port or one trailing "/"; anything that is not an origin is
// refused, and matches no request.
func TestOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"*":                               "*",
		"https://app.example.com":         "https://app.example.com",
		"https://app.example.com/":        "https://app.example.com",
		"HTTPS://App.Example.COM":         "https://app.example.com",
		"https://app.example.com:443":     "https://app.example.com",
		"http://app.example.com:80/":      "http://app.example.com",
		"https://app.example.com:8443":    "https://app.example.com:8443",
		"http://app.example.com:443":      "http://app.example.com:443",
		"http://127.0.0.1:9999":           "http://127.0.0.1:9999",
		"http://[::1]:8080":               "http://[::1]:8080",
		"chrome-extension://abcdefghijkl": "chrome-extension://abcdefghijkl",
	} {
		got, err := Origin(in)
		if err != nil || got != want {
			t.Errorf("Origin(%q) = %q, %v; want %q", in, got, err, want)
		}
		if want != "*" && (!Origins{in}.Allows(want) || Origins{in}.Allows("https://other.example.com")) {
			t.Errorf("%q does not let exactly %q in", in, want)
		}
	}
	for _, in := range []string{"", "app.example.com", "app.example.com:443", "https://", "https:///x", "https://app.example.com/x",
		"https://app.example.com//", "https://app.example.com?x", "https://app.example.com/?", "https://app.example.com#x",
		"https://user@app.example.com", "null", "https://app.example.com:port", " https://app.example.com", "**"} {
		if got, err := Origin(in); err == nil {
			t.Errorf("Origin(%q) = %q, want an error", in, got)
		}
		if (Origins{in}).Allows(in) {
			t.Errorf("%q lets a request of Origin %q in", in, in)
		}
	}
	// A request's Origin is compared as the browser sent it.
	if (Origins{"https://app.example.com"}).Allows("https://APP.example.com") {
		t.Error("an Origin that differs in case is let in")
	}
}

// TestIngestCORS: a write's answer to a listed origin grants it (never
// "*") with the headers a script reads; every answer to a request with an
// Origin varies by it, once; the preflight grant names the methods.
func TestIngestCORS(t *testing.T) {
	const app = "https://app.example.com"
	for _, c := range []struct {
		allow     Origins
		origin    string
		wantGrant string
		wantVary  bool
	}{
		{Origins{app}, app, app, true},
		{Origins{"HTTPS://App.Example.com/"}, app, app, true},
		{Origins{"*"}, app, app, true},
		{Origins{app}, "https://evil.example", "", true},
		{Origins{app}, "", "", false},
		{nil, app, "", true},
	} {
		r := httptest.NewRequest("POST", "/ingest/cam/end", nil)
		if c.origin != "" {
			r.Header.Set("Origin", c.origin)
		}
		h := http.Header{}
		SetIngestCORS(h, r, c.allow)
		SetIngestCORS(h, r, c.allow)
		if h.Get("Access-Control-Allow-Origin") != c.wantGrant || slices.Contains(h.Values("Vary"), "Origin") != c.wantVary ||
			len(h.Values("Vary")) > 1 || (c.wantGrant != "") != (h.Get("Access-Control-Expose-Headers") == "Retry-After, WWW-Authenticate") {
			t.Errorf("allow %q, Origin %q: %v", c.allow, c.origin, h)
		}
	}
	h := http.Header{}
	GrantIngestPreflight(h, app, "PUT")
	want := http.Header{
		"Access-Control-Allow-Origin":  {app},
		"Access-Control-Allow-Methods": {"PUT"},
		"Access-Control-Allow-Headers": {"Authorization, Content-Type"},
		"Access-Control-Max-Age":       {"600"},
	}
	for k, v := range want {
		if !slices.Equal(h.Values(k), v) {
			t.Errorf("preflight grant: %s %q, want %q", k, h.Values(k), v)
		}
	}
}
