package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/livechunk/livechunk/server"
)

// keySecretEnv names the environment variable that holds the key secret
// when -key-secret-file is not given.
const keySecretEnv = "LIVECHUNK_KEY_SECRET"

// keySecret is the secret that signs stream keys: the first line of file
// (-key-secret-file), else $LIVECHUNK_KEY_SECRET; nil for none. A secret
// shorter than server.MinKeySecret bytes is an error.
func keySecret(file string) ([]byte, error) {
	var secret string
	if file != "" {
		line, err := firstLine(file)
		if err != nil {
			return nil, fmt.Errorf("-key-secret-file: %w", err)
		}
		secret = line
	} else {
		secret = strings.TrimSpace(os.Getenv(keySecretEnv))
	}
	if secret == "" {
		return nil, nil
	}
	if len(secret) < server.MinKeySecret {
		return nil, fmt.Errorf("the key secret has %d bytes; at least %d needed (for example: openssl rand -base64 32)",
			len(secret), server.MinKeySecret)
	}
	return []byte(secret), nil
}

// firstLine returns the first line of the file at path, trimmed; a file
// whose first line is empty is an error.
func firstLine(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	if line = strings.TrimSpace(line); line == "" {
		return "", fmt.Errorf("%s: nothing on its first line", path)
	}
	return line, nil
}

func cmdKey(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("key", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stream := fs.String("stream", "", "the `NAME` of the stream the key opens (required)")
	ttl := new(time.Duration)
	durationFlag(fs, ttl, "ttl", 24*time.Hour, true, "how long (`duration`) the key stays valid")
	secretFile := fs.String("key-secret-file", "", "read the key secret from `FILE` (its first line); default $"+keySecretEnv)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: livechunk key -stream NAME [-ttl 24h] [-key-secret-file FILE]

Prints a stream key: it opens one stream of a "livechunk serve" that has the
same key secret (-key-secret-file or $LIVECHUNK_KEY_SECRET, at least 16
bytes) until it expires, as the ingest token opens them all. Give it to one
device: it uploads with "Authorization: Bearer KEY", or with ?key=KEY in the
URL when it cannot set headers. A key cannot be revoked before it expires
except by changing the secret (which revokes every key).

Example:
  openssl rand -base64 32 > key.secret
  livechunk serve -key-secret-file key.secret -addr 0.0.0.0:8080
  KEY=$(livechunk key -key-secret-file key.secret -stream phone -ttl 2h)
  curl -T chunk0.mp4 -H "Authorization: Bearer $KEY" http://HOST:8080/ingest/phone/0

Flags:
`)
		fs.PrintDefaults()
	}
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if *stream == "" || !server.ValidStreamName(*stream) || *ttl <= 0 {
		fmt.Fprintln(stderr, "livechunk key: -stream must be a valid stream name (1-64 of A-Z a-z 0-9 _ - ., starting with a letter or digit) and -ttl positive")
		return errUsage
	}
	secret, err := keySecret(*secretFile)
	if err != nil {
		return err
	}
	if secret == nil {
		return fmt.Errorf("no key secret: -key-secret-file FILE or $%s", keySecretEnv)
	}
	expires := time.Now().Add(*ttl)
	key, err := server.MintKey(secret, *stream, expires)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, key)
	fmt.Fprintf(stderr, "livechunk key: opens stream %q until %s\n", *stream, expires.UTC().Format(time.RFC3339))
	return nil
}

// originList is a flag.Value of origins, given repeatedly or separated by
// commas.
type originList []string

func (l *originList) String() string { return strings.Join(*l, ",") }

func (l *originList) Set(v string) error {
	for o := range strings.SplitSeq(v, ",") {
		if o = strings.TrimSpace(o); o != "" {
			*l = append(*l, o)
		}
	}
	return nil
}
