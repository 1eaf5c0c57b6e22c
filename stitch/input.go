package stitch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"gocloud.dev/blob"

	"github.com/livechunk/livechunk/hls"
)

// A Part is one input object: an MPEG-TS segment, an fMP4 media segment
// (styp/moof/mdat), an fMP4 init section (ftyp/moov without samples), or a
// self-contained MP4 file (progressive, or fragmented with its own moov).
// The container is recognized from the bytes, never from the name.
type Part struct {
	// Name identifies the object in errors and logs: a key, path or URL.
	Name string
	// Open returns a reader of the object's bytes [off, off+n), or
	// [off, end) when n < 0, and the size of the whole object. Reading past
	// the end returns the bytes that exist. Open is called several times
	// per part (a few small range reads for MP4 indexes, then the payload
	// ranges), possibly from several goroutines at once; the package
	// closes every reader it gets. It must not be nil (the part is then
	// ErrInvalid).
	Open func(ctx context.Context, off, n int64) (io.ReadCloser, int64, error)
	// Init, when set, is the fMP4 initialization section (EXT-X-MAP) that
	// this part's movie fragments use. Parts that share an init should
	// share the pointer: it is read once.
	Init *Part
	// Discontinuity declares that the part's timestamps do not continue
	// those of the part before it (EXT-X-DISCONTINUITY). It is appended
	// right after the previous part's last picture. Timestamp jumps are
	// also detected without it.
	Discontinuity bool
	// Duration, when known (a playlist's EXTINF), is how long the part
	// plays. A step of the part's decode times shorter than it, or one to
	// a next part that begins where this Duration ends, is a pause of the
	// video (a variable frame rate), kept as it is, not a timestamp jump
	// to close.
	Duration time.Duration
}

// Input is an ordered list of parts to join into one stream. Create it with
// [FromPlaylist], [FromObjects], [FromFiles] or [New]. An Input holds no
// open resources and no media; every Write call reads its parts anew, so an
// Input may be written several times and from several goroutines.
type Input struct {
	parts []Part
}

// New returns an Input over parts, in order; it copies the slice.
func New(parts ...Part) *Input {
	return &Input{parts: append([]Part(nil), parts...)}
}

// Parts returns a copy of the input's parts (Init pointers are shared).
func (in *Input) Parts() []Part {
	if in == nil {
		return nil
	}
	return append([]Part(nil), in.parts...)
}

// BucketPart returns a Part that reads the object key of b with range
// reads. b stays the caller's: it must remain open while the Part is used.
func BucketPart(b *blob.Bucket, key string) Part {
	return Part{
		Name: key,
		Open: func(ctx context.Context, off, n int64) (io.ReadCloser, int64, error) {
			var f *os.File
			r, err := b.NewRangeReader(ctx, key, off, n, &blob.ReaderOptions{BeforeRead: func(as func(any) bool) error {
				as(&f) // a file bucket's *os.File, positioned at off
				return nil
			}})
			if err != nil {
				return nil, 0, err
			}
			size := r.Size()
			if f != nil {
				// Read the file directly, so that copying to another file
				// can stay in the kernel; r closes it.
				if n < 0 || n > size-off {
					n = max(size-off, 0)
				}
				return &fileRange{f: f, lr: io.LimitedReader{R: f, N: n}, c: r}, size, nil
			}
			return r, size, nil
		},
	}
}

// FilePart returns a Part that reads the local file at path.
func FilePart(path string) Part {
	return Part{
		Name: path,
		Open: func(_ context.Context, off, n int64) (io.ReadCloser, int64, error) {
			f, err := os.Open(path)
			if err != nil {
				return nil, 0, err
			}
			st, err := f.Stat()
			if err != nil {
				f.Close()
				return nil, 0, err
			}
			size := st.Size()
			off = min(max(off, 0), size)
			if n < 0 || n > size-off {
				n = size - off
			}
			if _, err := f.Seek(off, io.SeekStart); err != nil {
				f.Close()
				return nil, 0, err
			}
			return &fileRange{f: f, lr: io.LimitedReader{R: f, N: n}}, size, nil
		},
	}
}

// fileRange reads a range of a file. Its WriteTo lets io.Copy to another
// file use copy_file_range or sendfile where the OS has them.
type fileRange struct {
	f  *os.File
	lr io.LimitedReader
	c  io.Closer // closes f; nil: f.Close
}

func (r *fileRange) Read(p []byte) (int, error)         { return r.lr.Read(p) }
func (r *fileRange) WriteTo(w io.Writer) (int64, error) { return io.Copy(w, &r.lr) }

func (r *fileRange) Close() error {
	if r.c != nil {
		return r.c.Close()
	}
	return r.f.Close()
}

// sectionCloser reads a range of an io.ReaderAt.
type sectionCloser struct{ sr *io.SectionReader }

func (r *sectionCloser) Close() error                       { return nil }
func (r *sectionCloser) Read(p []byte) (int, error)         { return r.sr.Read(p) }
func (r *sectionCloser) WriteTo(w io.Writer) (int64, error) { return io.Copy(w, r.sr) }

// ReaderAtPart returns a Part over the first size bytes of r, for example
// an uploaded chunk held by the caller. r is read concurrently, with ReadAt
// only (as io.ReaderAt allows); a nil r makes the part ErrInvalid.
func ReaderAtPart(name string, r io.ReaderAt, size int64) Part {
	return Part{
		Name: name,
		Open: func(_ context.Context, off, n int64) (io.ReadCloser, int64, error) {
			if r == nil {
				return nil, 0, fmt.Errorf("%w: part %q has no reader", ErrInvalid, name)
			}
			off = min(max(off, 0), size)
			if n < 0 || n > size-off {
				n = size - off
			}
			return &sectionCloser{sr: io.NewSectionReader(r, off, n)}, size, nil
		},
	}
}

// FromObjects returns an Input over the objects keys of b, in order: media
// segments (fMP4 or MPEG-TS) with the init sections they need placed
// before them, or self-contained MP4 chunks (each starting at time 0, as a
// phone uploads them), or a mix. Objects are read with range reads.
func FromObjects(b *blob.Bucket, keys ...string) *Input {
	in := &Input{parts: make([]Part, len(keys))}
	for i, k := range keys {
		in.parts[i] = BucketPart(b, k)
	}
	return in
}

// FromFiles returns an Input over local files, in order, recognized as for
// [FromObjects]: typically the MP4 chunks of a phone upload, or an init
// section followed by its segments.
func FromFiles(paths ...string) *Input {
	in := &Input{parts: make([]Part, len(paths))}
	for i, p := range paths {
		in.parts[i] = FilePart(p)
	}
	return in
}

// FromPlaylist reads the HLS media playlist key of b and returns an Input
// over its segments, with their EXT-X-MAP init sections and
// EXT-X-DISCONTINUITY tags. Segment and map URIs are resolved relative to
// the playlist's key; URIs that are absolute URLs, rooted, or that leave the
// bucket are rejected with ErrUnsupported.
func FromPlaylist(ctx context.Context, b *blob.Bucket, key string) (*Input, error) {
	pl, err := hls.LoadMedia(ctx, b, key)
	if err != nil {
		return nil, fmt.Errorf("stitch: playlist %s: %w", key, err)
	}
	if len(pl.Segments) == 0 {
		return nil, fmt.Errorf("%w: playlist %s lists no segments", ErrNoInput, key)
	}
	dir := path.Dir(key)
	inits := map[string]*Part{}
	in := &Input{parts: make([]Part, 0, len(pl.Segments))}
	for _, s := range pl.Segments {
		k, err := resolveURI(dir, s.URI)
		if err != nil {
			return nil, fmt.Errorf("stitch: playlist %s: %w", key, err)
		}
		p := BucketPart(b, k)
		p.Discontinuity = s.Discontinuity
		p.Duration = time.Duration(s.Seconds() * float64(time.Second))
		if s.Map != "" {
			ip, ok := inits[s.Map]
			if !ok {
				mk, err := resolveURI(dir, s.Map)
				if err != nil {
					return nil, fmt.Errorf("stitch: playlist %s: %w", key, err)
				}
				v := BucketPart(b, mk)
				ip = &v
				inits[s.Map] = ip
			}
			p.Init = ip
		}
		in.parts = append(in.parts, p)
	}
	return in, nil
}

// resolveURI resolves a playlist URI against the playlist's directory.
func resolveURI(dir, uri string) (string, error) {
	switch {
	case uri == "":
		return "", errors.New("empty URI")
	case strings.Contains(uri, "://") || strings.HasPrefix(uri, "/") || strings.ContainsAny(uri, "?#\\"):
		return "", fmt.Errorf("%w: URI %q is not relative to the playlist", ErrUnsupported, uri)
	}
	k := path.Clean(path.Join(dir, uri))
	if k == ".." || strings.HasPrefix(k, "../") || k == "." {
		return "", fmt.Errorf("%w: URI %q leaves the bucket", ErrUnsupported, uri)
	}
	return k, nil
}
