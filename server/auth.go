package server

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/livechunk/livechunk/internal/httpx"
)

// Who may write to a stream. Every write route (PUT /ingest/{stream}/{n},
// POST /ingest/{stream}, POST /ingest/{stream}/end) goes through
// authorized, which applies two rules in this order:
//
//  1. Origin: a browser's request from a web page of another origin is
//     refused (403), unless Config.AllowOrigins lists that origin. Without
//     it, a page on any site could end or push into a stream with a
//     "no-cors" POST, which browsers send without asking first.
//  2. Credentials: with neither Config.IngestToken nor Config.KeySecret
//     set, ingest is open; otherwise the request presents the token, or a
//     stream key for its stream (see MintKey), or it is refused.
//
// Playback (GET and HEAD routes) is never restricted.

// MinKeySecret is the shortest Config.KeySecret (and secret of MintKey
// and CheckKey) accepted, in bytes.
const MinKeySecret = 16

// keyVersion starts every stream key; keyContext starts the signed
// message, so that a MAC made with the same secret for another purpose
// is never a valid key.
const (
	keyVersion = "lck1"
	keyContext = "livechunk stream key v1\x00"
	maxKeyLen  = 256 // longer than any key MintKey makes
)

// Refusals of a stream key; test with errors.Is. The HTTP layer answers
// the first two with 401 and ErrKeyStream with 403.
var (
	// ErrKeyInvalid: not a stream key made with this secret (malformed,
	// altered, or signed with another secret).
	ErrKeyInvalid = errors.New("invalid stream key")
	// ErrKeyExpired: a genuine key past its expiry.
	ErrKeyExpired = errors.New("stream key has expired")
	// ErrKeyStream: a genuine key for another stream.
	ErrKeyStream = errors.New("stream key is for another stream")
)

// MintKey returns a key that opens the stream called stream until
// expires (to the second, rounded down), for a server whose
// Config.KeySecret is secret. It is like a signed URL: whoever holds it
// may upload chunks to that stream, push to it and end it, and nothing
// else; the server keeps no list of keys, so a key cannot be revoked
// before it expires except by changing the secret (which revokes all).
//
// A key has the form "lck1.<stream>.<expiry>.<mac>": expiry in Unix
// seconds, mac the unpadded base64url HMAC-SHA256, under secret, of
// "livechunk stream key v1\x00" + stream + "\x00" + expiry. It is not
// secret from its holder (the stream and expiry are readable) but cannot
// be altered without the secret. A key is presented as
// "Authorization: Bearer <key>" or, by clients that cannot set headers, as
// the query parameter "?key=<key>" (which may end up in access logs).
//
// MintKey fails when secret is shorter than MinKeySecret, stream is not a
// valid stream name (ValidStreamName), or expires is not after 1970. An
// expiry in the past is accepted: the key is refused as expired.
func MintKey(secret []byte, stream string, expires time.Time) (string, error) {
	if len(secret) < MinKeySecret {
		return "", fmt.Errorf("server: key secret of %d bytes; at least %d needed", len(secret), MinKeySecret)
	}
	if !ValidStreamName(stream) {
		return "", fmt.Errorf("server: %w: stream name %q", ErrInvalid, stream)
	}
	exp := expires.Unix()
	if exp <= 0 {
		return "", fmt.Errorf("server: key expiry %v is not after 1970", expires)
	}
	return keyVersion + "." + stream + "." + strconv.FormatInt(exp, 10) + "." +
		base64.RawURLEncoding.EncodeToString(keyMAC(secret, stream, exp)), nil
}

// CheckKey reports whether key, made by MintKey with secret, opens the
// stream called stream at the time now. It returns nil when it does, else
// an error wrapping ErrKeyInvalid (the key was not made with secret, or
// was altered), ErrKeyExpired (genuine, and now is at or past its expiry;
// the message says when it expired) or ErrKeyStream (genuine, unexpired,
// for another stream; the message names it), checked in that order. The
// MAC is compared in constant time.
func CheckKey(secret []byte, stream, key string, now time.Time) error {
	keyStream, exp, ok := verifyKey(secret, key)
	if !ok {
		return ErrKeyInvalid
	}
	if expires := time.Unix(exp, 0); !now.Before(expires) {
		return fmt.Errorf("%w: it expired at %s", ErrKeyExpired, expires.UTC().Format(time.RFC3339))
	}
	if keyStream != stream {
		return fmt.Errorf("%w: it opens stream %q, not %q", ErrKeyStream, keyStream, stream)
	}
	return nil
}

// verifyKey returns the stream and expiry of key when its MAC under
// secret is right.
func verifyKey(secret []byte, key string) (stream string, exp int64, ok bool) {
	if len(secret) < MinKeySecret || len(key) > maxKeyLen {
		return "", 0, false
	}
	rest, ok := strings.CutPrefix(key, keyVersion+".")
	if !ok {
		return "", 0, false
	}
	// Stream names may hold dots; the expiry and the MAC cannot.
	i := strings.LastIndexByte(rest, '.')
	if i < 0 {
		return "", 0, false
	}
	rest, mac64 := rest[:i], rest[i+1:]
	j := strings.LastIndexByte(rest, '.')
	if j < 0 {
		return "", 0, false
	}
	stream, expText := rest[:j], rest[j+1:]
	exp, err := strconv.ParseInt(expText, 10, 64)
	if err != nil || exp <= 0 || expText != strconv.FormatInt(exp, 10) || !ValidStreamName(stream) {
		return "", 0, false
	}
	mac, err := base64.RawURLEncoding.Strict().DecodeString(mac64)
	if err != nil || !hmac.Equal(mac, keyMAC(secret, stream, exp)) {
		return "", 0, false
	}
	return stream, exp, true
}

// keyMAC is the MAC of a stream key (see MintKey).
func keyMAC(secret []byte, stream string, exp int64) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(keyContext + stream + "\x00" + strconv.FormatInt(exp, 10)))
	return m.Sum(nil)
}

// guard holds the ingest rules of a Server's Config.
type guard struct {
	token  string
	secret []byte
	// origins: Config.AllowOrigins; with "*" in it, cop is unused.
	origins httpx.Origins
	cop     *http.CrossOriginProtection
}

// newGuard checks the ingest rules of cfg: a KeySecret of at least
// MinKeySecret bytes, and AllowOrigins as checkOrigins left it.
func newGuard(cfg Config) (*guard, error) {
	if n := len(cfg.KeySecret); n > 0 && n < MinKeySecret {
		return nil, fmt.Errorf("server: %w: KeySecret of %d bytes; at least %d needed", ErrInvalid, n, MinKeySecret)
	}
	g := &guard{token: cfg.IngestToken, cop: http.NewCrossOriginProtection()}
	if len(cfg.KeySecret) > 0 {
		g.secret = bytes.Clone(cfg.KeySecret)
	}
	for _, o := range cfg.AllowOrigins {
		if o == "*" {
			continue
		}
		if err := g.cop.AddTrustedOrigin(o); err != nil {
			return nil, fmt.Errorf("server: %w: AllowOrigins: %w", ErrInvalid, err)
		}
	}
	g.origins = slices.Clone(httpx.Origins(cfg.AllowOrigins))
	return g, nil
}

// checkOrigins returns the entries of list, Config.AllowOrigins or
// PlaybackOrigins (field), as browsers spell them (see httpx.Origin: the
// Origin header is compared with them exactly), or why one is neither
// "*" nor an origin ("scheme://host[:port]", nothing after but one "/").
func checkOrigins(field string, list []string) ([]string, error) {
	if list == nil {
		return nil, nil
	}
	out := make([]string, len(list))
	for i, o := range list {
		c, err := httpx.Origin(o)
		if err != nil {
			return nil, fmt.Errorf("server: %w: %s: %w", ErrInvalid, field, err)
		}
		out[i] = c
	}
	return out, nil
}

// authorized reports whether the request r may write to the stream called
// stream (see the rules at the top of this file); when not, the refusal
// is written. The answer to an allowed origin carries the CORS headers
// that let its page read it, refusals included.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request, stream string) bool {
	g := s.guard
	httpx.SetIngestCORS(w.Header(), r, g.origins)
	if !g.origins.Any() {
		// Sec-Fetch-Site "same-origin" and "none" (typed by the user) pass;
		// "same-site" does not: a page of a sibling host is another origin.
		// Without Sec-Fetch-Site, an Origin whose host is not the request's
		// Host is refused; without either (curl, ffmpeg, apps), it passes.
		if err := g.cop.Check(r); err != nil {
			from := ""
			if origin := r.Header.Get("Origin"); origin != "" {
				from = " " + strconv.Quote(origin)
			}
			failStatus(w, http.StatusForbidden, "ingest from a web page of another origin%s is refused (%v); "+
				"the server's AllowOrigins lists the origins allowed", from, err)
			return false
		}
	}
	if g.token == "" && g.secret == nil {
		return true
	}
	cred, fromHeader := credential(r)
	if fromHeader && g.token != "" && subtle.ConstantTimeCompare([]byte(cred), []byte(g.token)) == 1 {
		return true
	}
	if g.secret != nil && strings.HasPrefix(cred, keyVersion+".") {
		err := CheckKey(g.secret, stream, cred, time.Now())
		if err == nil {
			return true
		}
		if statusOf(err) == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="livechunk ingest", error="invalid_token"`)
		}
		fail(w, err, "")
		return false
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="livechunk ingest"`)
	switch {
	case g.secret == nil:
		failStatus(w, http.StatusUnauthorized, "ingest needs a valid token (Authorization: Bearer ...)")
	case g.token == "":
		failStatus(w, http.StatusUnauthorized, "ingest needs a valid stream key (Authorization: Bearer ..., or ?key=...)")
	default:
		failStatus(w, http.StatusUnauthorized, "ingest needs a valid token or stream key (Authorization: Bearer ..., or ?key=...)")
	}
	return false
}

// credential returns what r presents: the "Authorization: Bearer" value
// (fromHeader), else the "key" query parameter. The ingest token counts
// only from the header; a stream key from either.
func credential(r *http.Request) (cred string, fromHeader bool) {
	if h := strings.TrimSpace(r.Header.Get("Authorization")); h != "" {
		// The scheme is case-insensitive (RFC 9110, section 11.1).
		scheme, got, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return "", true
		}
		return strings.TrimSpace(got), true
	}
	return r.URL.Query().Get("key"), false
}

// handlePreflight answers CORS preflight requests (OPTIONS) on the
// ingest routes: an origin that Config.AllowOrigins lists may send PUT and
// POST with Authorization and Content-Type; any other origin is refused
// (403). An OPTIONS request without Origin is no preflight: it is answered
// with the methods allowed.
func (s *Server) handlePreflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	method := ingestMethod(r.PathValue("n"))
	h.Set("Allow", "OPTIONS, "+method)
	origin := r.Header.Get("Origin")
	if origin == "" {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	httpx.VaryOrigin(h)
	if !s.guard.origins.Allows(origin) {
		failStatus(w, http.StatusForbidden, "ingest from pages of origin %q is not allowed (the server's AllowOrigins lists the origins allowed)", origin)
		return
	}
	httpx.GrantIngestPreflight(h, origin, method)
	w.WriteHeader(http.StatusNoContent)
}
