package sink

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"weak"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// dirs maps each bucket that Open opened on a directory to the directory,
// weakly: the entry goes when the bucket is garbage.
var dirs sync.Map // weak.Pointer[blob.Bucket] -> string

// rememberDir records that b is the directory dir, for CreateExclusive.
func rememberDir(b *blob.Bucket, dir string) {
	k := weak.Make(b)
	dirs.Store(k, dir)
	runtime.AddCleanup(b, func(k weak.Pointer[blob.Bucket]) { dirs.Delete(k) }, k)
}

// bucketDir returns the directory of a bucket that Open opened on one.
func bucketDir(b *blob.Bucket) (string, bool) {
	dir, ok := dirs.Load(weak.Make(b))
	if !ok {
		return "", false
	}
	return dir.(string), true
}

// ErrExists is the error of CreateExclusive when the key exists.
var ErrExists = errors.New("sink: object exists")

// CreateExclusive writes data at key unless an object is there (then the
// error matches ErrExists), in one atomic step, so that of several writers
// of one key, in any processes, exactly one succeeds: it is the store's
// conditional create (blob.WriterOptions.IfNotExist: S3, GCS, Azure, mem),
// and for a directory that Open opened, a hard link to a file written
// aside (fileblob's own IfNotExist checks and then renames, two steps that
// two writers race). opts may be nil; b must not be. Other errors are the
// store's, unclassified: a caller that retries decides which are transient.
func CreateExclusive(ctx context.Context, b *blob.Bucket, key string, data []byte, opts *blob.WriterOptions) error {
	if dir, ok := bucketDir(b); ok && plainKey(key) {
		return linkCreate(ctx, dir, key, data)
	}
	o := blob.WriterOptions{}
	if opts != nil {
		o = *opts
	}
	o.IfNotExist = true
	err := b.WriteAll(ctx, key, data, &o)
	if gcerrors.Code(err) == gcerrors.FailedPrecondition {
		return fmt.Errorf("%w: %s", ErrExists, key)
	}
	return err
}

// plainKey reports whether fileblob stores key at dir/key unescaped.
func plainKey(key string) bool {
	if key == "" || strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") || path.Clean(key) != key {
		return false
	}
	for _, r := range key {
		if r < 32 || r == '\\' || r == 0x7f {
			return false
		}
	}
	return true
}

var tmpSeq struct {
	sync.Mutex
	n uint64
}

// linkCreate writes data to a temporary file next to dir/key, then links
// it to dir/key: the link fails if dir/key exists.
func linkCreate(ctx context.Context, dir, key string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p := filepath.Join(dir, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmpSeq.Lock()
	tmpSeq.n++
	n := tmpSeq.n
	tmpSeq.Unlock()
	tmp := p + "." + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(n, 10) + "-" + strconv.FormatInt(time.Now().UnixNano(), 16) + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	defer os.Remove(tmp)
	err := os.Link(tmp, p)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w: %s", ErrExists, key)
	}
	return err
}
