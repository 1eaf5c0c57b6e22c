package hls

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/livechunk/livechunk/internal/httpx"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// Handler serves playlists and segments from a bucket over HTTP: the request
// path (after the handler's mount point, see http.StripPrefix) names an
// object under Prefix. It sets the content types, cache lifetimes and CORS
// headers players need, answers HEAD and Range requests, gzips playlists for
// clients that accept it, and never serves anything outside Prefix.
type Handler struct {
	// Bucket holds the objects. Without one, every request that names an
	// object is answered 500.
	Bucket *blob.Bucket
	// Prefix is prepended to the request path to form the object key.
	Prefix string
	// AllowOrigins lists the web origins whose pages may read the answers
	// ("https://app.example.com": scheme, host and port); "*" allows
	// every origin. An entry is compared with the request's Origin header
	// in the spelling browsers send (scheme and host in lower case, no
	// default port, no trailing "/": "HTTPS://App.example.com/" matches
	// "https://app.example.com"); an entry that is no origin
	// ("app.example.com", a URL with a path) matches nothing. Empty
	// (the default): every origin may, with Access-Control-Allow-Origin:
	// * on every answer, since players on other sites commonly fetch
	// public HLS. With a list, an answer to a listed origin names that
	// origin, an answer to any other request names none (its browser
	// keeps it from the page), and every answer carries Vary: Origin for
	// caches. It governs the browsers' CORS checks only: who may fetch
	// the objects at all is not restricted.
	AllowOrigins []string
}

// NewHandler returns a Handler serving the objects under prefix in b.
func NewHandler(b *blob.Bucket, prefix string) *Handler {
	return &Handler{Bucket: b, Prefix: prefix}
}

// ContentType returns the media type for a playlist or segment name, or ""
// for names the handler does not serve.
func ContentType(name string) string {
	switch strings.ToLower(path.Ext(name)) {
	case ".m3u8":
		return "application/vnd.apple.mpegurl"
	case ".ts":
		return "video/mp2t"
	case ".m4s":
		return "video/iso.segment"
	case ".mp4":
		return "video/mp4"
	case ".m4a":
		return "audio/mp4"
	case ".aac":
		return "audio/aac"
	}
	return ""
}

// ServeHTTP implements http.Handler. Every answer, errors included, may
// be read by the pages that AllowOrigins lets in, with the headers players
// read (Content-Range, ETag, ...). OPTIONS is answered 204 with Allow:
// GET, HEAD, OPTIONS; to a page that AllowOrigins lets in, it also grants
// GET and HEAD with the Range and conditional request headers, a CORS
// preflight answer that browsers may cache for a day. Other methods are
// answered 405.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	httpx.SetMediaCORS(w.Header(), r, h.AllowOrigins)
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		httpx.Preflight(w, r, h.AllowOrigins)
		return
	default:
		w.Header().Set("Allow", httpx.MediaMethods)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/")
	ctype := ContentType(name)
	key := h.Prefix + name
	if ctype == "" || CheckKey(key) != nil || strings.Contains(r.URL.Path, "..") {
		http.NotFound(w, r)
		return
	}
	if h.Bucket == nil {
		http.Error(w, "hls: Handler has no Bucket", http.StatusInternalServerError)
		return
	}
	ctx := r.Context()
	rd, err := h.Bucket.NewReader(ctx, key, nil)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			http.NotFound(w, r)
			return
		}
		http.Error(w, "storage unavailable", http.StatusBadGateway)
		return
	}
	defer rd.Close()
	hdr := w.Header()
	hdr.Set("Content-Type", ctype)
	hdr.Set("X-Content-Type-Options", "nosniff")
	mod := rd.ModTime()

	if ctype == "application/vnd.apple.mpegurl" {
		h.servePlaylist(w, r, rd)
		return
	}
	hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	hdr.Set("ETag", fmt.Sprintf(`"%x-%x"`, rd.Size(), mod.UnixNano()))
	http.ServeContent(w, r, "", mod, rd)
}

func (h *Handler) servePlaylist(w http.ResponseWriter, r *http.Request, rd *blob.Reader) {
	body, err := io.ReadAll(io.LimitReader(rd, 16<<20))
	if err != nil {
		http.Error(w, "storage unavailable", http.StatusBadGateway)
		return
	}
	hdr := w.Header()
	hdr.Set("Cache-Control", playlistCacheControl(body))
	hdr.Add("Vary", "Accept-Encoding")
	// A weak validator of the playlist's text (the same whether gzipped
	// or not): a player or cache that has this version gets 304.
	sum := sha256.Sum256(body)
	etag := fmt.Sprintf(`W/"%x"`, sum[:12])
	hdr.Set("ETag", etag)
	if mod := rd.ModTime(); !mod.IsZero() {
		hdr.Set("Last-Modified", mod.UTC().Format(http.TimeFormat))
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if httpx.AcceptsGzip(r) {
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestSpeed)
		_, _ = zw.Write(body)
		_ = zw.Close()
		hdr.Set("Content-Encoding", "gzip")
		body = b.Bytes()
	}
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// playlistCacheControl: long for finished or VOD playlists, about half a
// target duration for live ones.
func playlistCacheControl(body []byte) string {
	if bytes.Contains(body, []byte("#EXT-X-ENDLIST")) || bytes.Contains(body, []byte("#EXT-X-PLAYLIST-TYPE:VOD")) {
		return "public, max-age=31536000, immutable"
	}
	if !bytes.Contains(body, []byte("#EXT-X-TARGETDURATION")) {
		// A multivariant playlist: it changes rarely, but may appear late.
		return "public, max-age=5"
	}
	td := 2
	if i := bytes.Index(body, []byte("#EXT-X-TARGETDURATION:")); i >= 0 {
		rest := body[i+len("#EXT-X-TARGETDURATION:"):]
		if j := bytes.IndexByte(rest, '\n'); j >= 0 {
			rest = rest[:j]
		}
		if v, err := strconv.Atoi(strings.TrimSpace(string(rest))); err == nil && v > 0 {
			td = v
		}
	}
	half := td / 2
	if half < 1 {
		half = 1
	}
	return fmt.Sprintf("public, max-age=%d", half)
}

// etagMatch reports whether the If-None-Match list inm names etag, by weak
// comparison (RFC 9110, section 13.1.2).
func etagMatch(inm, etag string) bool {
	opaque := strings.TrimPrefix(etag, "W/")
	for _, t := range strings.Split(inm, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == opaque {
			return true
		}
	}
	return false
}
