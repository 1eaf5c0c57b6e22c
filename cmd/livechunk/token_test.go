package main

import (
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
