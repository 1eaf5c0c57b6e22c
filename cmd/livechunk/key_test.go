package main

import (
	"bytes"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livechunk/livechunk/server"
)

// TestKeyCommand: `livechunk key` prints a key for one stream, signed with
// the secret of -key-secret-file (else $LIVECHUNK_KEY_SECRET), valid for
// -ttl; missing or short secrets, a missing or invalid -stream and a
// non-positive -ttl are refused.
func TestKeyCommand(t *testing.T) {
	dir := t.TempDir()
	const fileSecret, envSecret = "file-secret-0123456789", "env-secret-0123456789"
	file := filepath.Join(dir, "secret")
	short := filepath.Join(dir, "short")
	for p, s := range map[string]string{file: " " + fileSecret + "\nsecond line\n", short: "15-bytes-secret\n"} {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	key := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := runContext(t.Context(), append([]string{"key"}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}
	check := func(name, out, secret string, ttl time.Duration) {
		t.Helper()
		k := strings.TrimSpace(out)
		if err := server.CheckKey([]byte(secret), "phone", k, time.Now()); err != nil {
			t.Errorf("%s: %q: %v", name, out, err)
		}
		if err := server.CheckKey([]byte(secret), "phone", k, time.Now().Add(ttl+time.Second)); err == nil {
			t.Errorf("%s: the key is valid after its -ttl", name)
		}
		if err := server.CheckKey([]byte(secret), "other", k, time.Now()); err == nil {
			t.Errorf("%s: the key opens another stream", name)
		}
	}
	t.Setenv("LIVECHUNK_KEY_SECRET", envSecret)
	code, out, errs := key("-stream", "phone", "-ttl", "1h", "-key-secret-file", file)
	if code != exitOK || !strings.Contains(errs, `opens stream "phone" until`) {
		t.Fatalf("key with a file: %d %q %q", code, out, errs)
	}
	check("file", out, fileSecret, time.Hour)
	code, out, errs = key("-stream", "phone")
	if code != exitOK {
		t.Fatalf("key with the environment: %d %q %q", code, out, errs)
	}
	check("environment", out, envSecret, 24*time.Hour)

	for _, c := range []struct {
		name string
		args []string
		env  string
		want int
	}{
		{"no secret", []string{"-stream", "phone"}, "", exitFailure},
		{"short secret file", []string{"-stream", "phone", "-key-secret-file", short}, envSecret, exitFailure},
		{"short secret in the environment", []string{"-stream", "phone"}, "0123456789", exitFailure},
		{"missing file", []string{"-stream", "phone", "-key-secret-file", filepath.Join(dir, "nope")}, envSecret, exitFailure},
		{"no stream", nil, envSecret, exitUsage},
		{"invalid stream", []string{"-stream", "../x"}, envSecret, exitUsage},
		{"zero ttl", []string{"-stream", "phone", "-ttl", "0s"}, envSecret, exitUsage},
		{"an argument", []string{"-stream", "phone", "extra"}, envSecret, exitUsage},
	} {
		t.Setenv("LIVECHUNK_KEY_SECRET", c.env)
		if code, out, errs := key(c.args...); code != c.want || out != "" {
			t.Errorf("%s: exit %d, %q %q; want exit %d and no key", c.name, code, out, errs, c.want)
		}
	}
}

// TestServeWithKeys: a key that `livechunk key` prints opens its stream of
// `livechunk serve` with the same -key-secret-file (a chunk is recorded,
// the stream ended, with the key in the header or in ?key=) and no other;
// without a key ingest is refused. A page of an -allow-origin origin may
// write with a key; one of another site may not, key or not.
func TestServeWithKeys(t *testing.T) {
	t.Setenv("LIVECHUNK_INGEST_TOKEN", "")
	t.Setenv("LIVECHUNK_KEY_SECRET", "")
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte("serve-secret-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := runContext(t.Context(), []string{"key", "-key-secret-file", file, "-stream", "phone"}, &out, &errb); code != exitOK {
		t.Fatalf("key: %d %s", code, errb.String())
	}
	key := strings.TrimSpace(out.String())
	const studio = "https://studio.example.com"
	srv := startServe(t, "-key-secret-file", file, "-allow-origin", "https://other.example.com,"+studio)
	auth := []string{"Authorization", "Bearer " + key}

	if code, body, _ := request(t, "PUT", srv.base+"/ingest/phone/0", sampleClip); code != http.StatusUnauthorized {
		t.Errorf("chunk without a key: %d %s", code, body)
	}
	if code, body, _ := request(t, "PUT", srv.base+"/ingest/other/0", sampleClip, auth...); code != http.StatusForbidden ||
		!strings.Contains(string(body), `opens stream \"phone\"`) {
		t.Errorf("chunk of another stream with the key: %d %s", code, body)
	}
	evil := append([]string{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}, auth...)
	if code, body, _ := request(t, "PUT", srv.base+"/ingest/phone/0", sampleClip, evil...); code != http.StatusForbidden {
		t.Errorf("chunk from another site's page with the key: %d %s", code, body)
	}
	fromStudio := append([]string{"Origin", studio, "Sec-Fetch-Site", "cross-site"}, auth...)
	code, body, h := request(t, "PUT", srv.base+"/ingest/phone/0", sampleClip, fromStudio...)
	if code != http.StatusOK || !strings.Contains(string(body), `"status": "recorded"`) || h.Get("Access-Control-Allow-Origin") != studio {
		t.Fatalf("chunk with the key from %s: %d %s %v", studio, code, body, h)
	}
	if code, body, _ := request(t, "POST", srv.base+"/ingest/phone/end?key="+url.QueryEscape(key), nil); code != http.StatusOK {
		t.Errorf("end with ?key=: %d %s", code, body)
	}
}
