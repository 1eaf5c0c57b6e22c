// Package stitchrun runs a stitch named by command-line words - sources that
// are paths or bucket URLs, an output path or bucket URL - for
// "livechunk stitch" and the stitch benchmark (bench/stitchbench).
package stitchrun

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"gocloud.dev/blob"

	"github.com/livechunk/livechunk/sink"
	"github.com/livechunk/livechunk/stitch"
)

// ErrUsage reports sources or an output that cannot be used as given.
var ErrUsage = errors.New("stitchrun: bad arguments")

// IsPlaylist reports whether s names a media playlist: its path (without a
// URL's query) ends in ".m3u8".
func IsPlaylist(s string) bool {
	return strings.HasSuffix(strings.ToLower(trimQuery(s)), ".m3u8")
}

// IsTS reports whether out names MPEG-TS output: its path (without a URL's
// query) ends in ".ts". Anything else is MP4.
func IsTS(out string) bool {
	return strings.EqualFold(path.Ext(trimQuery(out)), ".ts")
}

func trimQuery(s string) string {
	if IsURL(s) {
		s, _, _ = strings.Cut(s, "?")
	}
	return s
}

// IsURL reports whether s is a URL ("scheme://...") rather than a local path.
func IsURL(s string) bool {
	i := strings.Index(s, "://")
	return i >= 2 && !strings.ContainsAny(s[:i], `/\`)
}

// Run stitches sources into out and returns what was written. sources is
// one media playlist (a local path or bucket URL ending in ".m3u8") or one
// or more objects in order (local paths or bucket URLs: MP4 chunks, an
// init section and its segments, MPEG-TS segments). out is a local path or
// a bucket URL; a name ending in ".ts" gives MPEG-TS, anything else a
// faststart MP4. Nothing is left at out when Run fails.
func Run(ctx context.Context, sources []string, out string, opt stitch.Options) (stitch.Result, error) {
	if len(sources) == 0 {
		return stitch.Result{}, fmt.Errorf("%w: no source", ErrUsage)
	}
	if out == "" {
		return stitch.Result{}, fmt.Errorf("%w: no output", ErrUsage)
	}
	var buckets []*blob.Bucket
	defer func() {
		for _, b := range buckets {
			b.Close()
		}
	}()
	var in *stitch.Input
	if len(sources) == 1 && IsPlaylist(sources[0]) {
		if !IsURL(sources[0]) {
			if _, err := os.Stat(sources[0]); err != nil {
				return stitch.Result{}, err // not a directory created by sink.Open
			}
		}
		b, key, err := OpenObject(ctx, sources[0])
		if err != nil {
			return stitch.Result{}, err
		}
		buckets = append(buckets, b)
		if in, err = stitch.FromPlaylist(ctx, b, key); err != nil {
			return stitch.Result{}, err
		}
	} else {
		parts := make([]stitch.Part, 0, len(sources))
		for _, s := range sources {
			if IsPlaylist(s) {
				return stitch.Result{}, fmt.Errorf("%w: a playlist (%s) must be the only source", ErrUsage, s)
			}
			if !IsURL(s) {
				parts = append(parts, stitch.FilePart(s))
				continue
			}
			b, key, err := OpenObject(ctx, s)
			if err != nil {
				return stitch.Result{}, err
			}
			buckets = append(buckets, b)
			p := stitch.BucketPart(b, key)
			p.Name = s
			parts = append(parts, p)
		}
		in = stitch.New(parts...)
	}
	if IsURL(out) {
		b, key, err := OpenObject(ctx, out)
		if err != nil {
			return stitch.Result{}, err
		}
		buckets = append(buckets, b)
		return stitch.WriteBlob(ctx, b, key, in, opt)
	}
	return writeFile(ctx, out, in, opt)
}

// writeFile writes the stitch to a temporary file beside path and renames
// it into place, so that a failure leaves no partial file (and an existing
// file as it was).
func writeFile(ctx context.Context, name string, in *stitch.Input, opt stitch.Options) (stitch.Result, error) {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*.tmp")
	if err != nil {
		return stitch.Result{}, err
	}
	tmp := f.Name()
	var res stitch.Result
	if IsTS(name) {
		res, err = stitch.WriteTS(ctx, f, in, opt)
	} else {
		res, err = stitch.WriteMP4(ctx, f, in, opt)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
		return stitch.Result{}, err
	}
	return res, nil
}

// OpenObject splits a path or URL naming one object into its bucket (the
// directory, or the URL without its path) and key, and opens the bucket
// with [sink.Open]. The caller closes the bucket.
func OpenObject(ctx context.Context, s string) (*blob.Bucket, string, error) {
	if !IsURL(s) {
		if s == "" || strings.HasSuffix(s, "/") || strings.HasSuffix(s, string(filepath.Separator)) {
			return nil, "", fmt.Errorf("%w: %q names no file", ErrUsage, s)
		}
		b, err := sink.Open(ctx, filepath.Dir(s))
		return b, filepath.Base(s), err
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrUsage, err)
	}
	key := strings.TrimPrefix(u.Path, "/")
	if u.Scheme == "file" {
		if key == "" || strings.HasSuffix(u.Path, "/") {
			return nil, "", fmt.Errorf("%w: URL names no object: %s", ErrUsage, s)
		}
		u.Path, key = path.Dir(u.Path), path.Base(u.Path)
		b, err := sink.Open(ctx, u.String())
		return b, key, err
	}
	if key == "" || strings.HasSuffix(key, "/") {
		return nil, "", fmt.Errorf("%w: URL names no object: %s", ErrUsage, s)
	}
	u.Path = ""
	b, err := sink.Open(ctx, u.String())
	return b, key, err
}
