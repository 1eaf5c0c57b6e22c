package main

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestIngestToken: the ingest token comes from -ingest-token, else the
// first line of -ingest-token-file, else $LIVECHUNK_INGEST_TOKEN; both
// flags at once, a missing file or an empty one are errors.
func TestIngestToken(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("  from-file \nsecond line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LIVECHUNK_INGEST_TOKEN", "from-env")
	for _, c := range []struct {
		name        string
		flag, file  string
		want        string
		wantFailure bool
	}{
		{"flag", "from-flag", "", "from-flag", false},
		{"file", "", file, "from-file", false},
		{"environment", "", "", "from-env", false},
		{"both flags", "from-flag", file, "", true},
		{"missing file", "", filepath.Join(dir, "nope"), "", true},
		{"empty file", "", empty, "", true},
	} {
		f := serveFlags{token: c.flag, tokenFile: c.file}
		got, err := f.ingestToken()
		if (err != nil) != c.wantFailure || got != c.want {
			t.Errorf("%s: %q, %v; want %q (failure %v)", c.name, got, err, c.want, c.wantFailure)
		}
	}
}

// TestOpenIngestWarning: serving beyond the loopback interface without a
// token or key secret is warned about; with either, or on 127.0.0.1 or
// ::1, it is not.
func TestOpenIngestWarning(t *testing.T) {
	for _, c := range []struct {
		ip        string
		protected bool
		warn      bool
	}{
		{"0.0.0.0", false, true},
		{"10.0.0.5", false, true},
		{"::", false, true},
		{"0.0.0.0", true, false},
		{"127.0.0.1", false, false},
		{"::1", false, false},
	} {
		got := openIngestWarning(&net.TCPAddr{IP: net.ParseIP(c.ip), Port: 8080}, c.protected)
		if (got != "") != c.warn {
			t.Errorf("%s, protected %v: %q", c.ip, c.protected, got)
		}
	}
}
