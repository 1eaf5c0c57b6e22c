package sink

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/memblob" // mem:// URLs
)

// Open opens the bucket named by urlOrPath.
//
// A URL with a scheme is opened with [blob.OpenBucket], through the driver
// registered for that scheme. This package registers the file ("file://")
// and memory ("mem://") drivers; like the rest of the library it links no
// cloud SDK, so the application imports the drivers of the stores it uses,
// as gocloud.dev's convention has it:
//
//	import (
//		_ "gocloud.dev/blob/azureblob" // azblob://
//		_ "gocloud.dev/blob/gcsblob"   // gs://
//		_ "gocloud.dev/blob/s3blob"    // s3://
//	)
//
// (the livechunk command imports all three). Opening a URL whose driver is
// not linked into the program fails with a [*DriverError] that names the
// import to add. Query parameters are those of the driver (see
// https://gocloud.dev/concepts/urls/), and the portable "prefix" parameter
// confines the bucket to a key prefix, for example
// "s3://media?region=eu-west-1&prefix=live/". For "file://" URLs the
// directory is created unless the URL sets "create_dir" itself.
//
// Anything else is a local directory path (absolute or relative), opened as
// a file bucket; the directory is created if needed, and temporary files are
// written next to their final name so that the closing rename stays on one
// file system.
//
// A local directory holds plain files: no "NAME.attrs" attribute files are
// written (for "file://" URLs too, unless the URL sets "metadata" itself).
// Content-Type follows from the name (see hls.ContentType), and skipping
// them spares the file driver an MD5 of every object, which costs more CPU
// than writing it.
//
// Before a directory is opened (path or "file://" URL), attribute files
// that a process killed in the middle of a write left empty are removed
// (see [RepairDir]): the file driver writes them in place, and an empty one
// would make the object unreadable and the recording impossible to resume.
//
// The error wraps [ErrInvalid] for an empty urlOrPath and for a
// [*DriverError]; other errors come from the driver or the file system.
// The caller closes the bucket after closing every [Sink] that uses it.
func Open(ctx context.Context, urlOrPath string) (*blob.Bucket, error) {
	if urlOrPath == "" {
		return nil, fmt.Errorf("%w: empty bucket URL or path", ErrInvalid)
	}
	if scheme, ok := urlScheme(urlOrPath); ok {
		if scheme == fileblob.Scheme {
			u, err := url.Parse(urlOrPath)
			if err != nil {
				return nil, fmt.Errorf("sink: open %q: %w", urlOrPath, err)
			}
			if u.Path != "" {
				if _, err := RepairDir(filepath.FromSlash(u.Path)); err != nil {
					return nil, fmt.Errorf("sink: open %q: %w", urlOrPath, err)
				}
			}
			q := u.Query()
			if !q.Has("create_dir") {
				q.Set("create_dir", "true")
			}
			if !q.Has("metadata") {
				q.Set("metadata", string(fileblob.MetadataDontWrite))
			}
			u.RawQuery = q.Encode()
			urlOrPath = u.String()
		}
		if !blob.DefaultURLMux().ValidBucketScheme(scheme) {
			return nil, &DriverError{URL: urlOrPath, Scheme: scheme, Import: driverImports[scheme]}
		}
		b, err := blob.OpenBucket(ctx, urlOrPath)
		if err != nil {
			return nil, fmt.Errorf("sink: open %q: %w", urlOrPath, err)
		}
		if u, err := url.Parse(urlOrPath); err == nil && scheme == fileblob.Scheme && u.Path != "" {
			rememberDir(b, filepath.FromSlash(u.Path))
		}
		return b, nil
	}
	dir, err := filepath.Abs(urlOrPath)
	if err != nil {
		return nil, fmt.Errorf("sink: open %q: %w", urlOrPath, err)
	}
	if _, err := RepairDir(dir); err != nil {
		return nil, fmt.Errorf("sink: open %q: %w", urlOrPath, err)
	}
	b, err := fileblob.OpenBucket(dir, &fileblob.Options{CreateDir: true, NoTempDir: true, Metadata: fileblob.MetadataDontWrite})
	if err != nil {
		return nil, fmt.Errorf("sink: open %q: %w", urlOrPath, err)
	}
	rememberDir(b, dir)
	return b, nil
}

// driverImports names the package that registers the driver of each
// gocloud.dev/blob URL scheme that this package does not register itself.
var driverImports = map[string]string{
	"s3":     "gocloud.dev/blob/s3blob",
	"gs":     "gocloud.dev/blob/gcsblob",
	"azblob": "gocloud.dev/blob/azureblob",
}

// DriverError is the error of [Open] for a URL whose scheme has no driver
// linked into the program. It matches [ErrInvalid].
type DriverError struct {
	URL    string // as given to Open
	Scheme string // lower case, without "://"
	// Import is the package whose blank import registers the driver (for
	// example "gocloud.dev/blob/s3blob"), or "" for a scheme that no
	// gocloud.dev/blob driver known to livechunk serves.
	Import string
}

// Error names the scheme and, when it is known, the import to add.
func (e *DriverError) Error() string {
	if e.Import == "" {
		return fmt.Sprintf("sink: open %q: no driver for %s:// URLs is linked into this program", e.URL, e.Scheme)
	}
	return fmt.Sprintf("sink: open %q: no driver for %s:// URLs is linked into this program: add import _ %q", e.URL, e.Scheme, e.Import)
}

// Unwrap returns [ErrInvalid].
func (e *DriverError) Unwrap() error { return ErrInvalid }

// urlScheme reports the scheme of s if s looks like "scheme://...". A
// scheme is at least two characters long (so that a Windows drive letter is
// not mistaken for one) and follows RFC 3986: a letter, then letters, digits,
// '+', '-' or '.'.
func urlScheme(s string) (string, bool) {
	i := strings.Index(s, "://")
	if i < 2 {
		return "", false
	}
	for j := 0; j < i; j++ {
		c := s[j]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case j > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return "", false
		}
	}
	return strings.ToLower(s[:i]), true
}

// attrsExt is the suffix of the file driver's attribute files.
const attrsExt = ".attrs"

// RepairDir makes a directory written by the file driver (gocloud.dev's
// fileblob) readable again after a writer was killed. That driver stores
// an object's attributes in "NAME.attrs", which it truncates and rewrites
// in place just before renaming the object's data into place; a process
// killed in between leaves an empty attribute file, and every read or list
// of the object then fails (with io.EOF) until it is removed. RepairDir
// removes such empty attribute files under dir and returns how many it
// removed; the object keeps its data and reads back with default
// attributes. A missing dir is not an error.
func RepairDir(dir string) (removed int, err error) {
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || !strings.HasSuffix(d.Name(), attrsExt) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if fi.Size() != 0 {
			return nil
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		removed++
		return nil
	})
	return removed, err
}
