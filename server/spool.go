package server

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
)

// upload is the bytes of a chunk upload, held while the chunk is checked,
// waits for its turn and is fed: in memory when Config.MaxUploadMemory has
// room for them, else in a temporary file of Config.SpoolDir, unlinked as
// soon as it is made (the bytes go with the last open descriptor, also
// when the process dies). Its room in memory is given back by close; a
// chunk that is dropped unclosed (a stream object dropped on a failure)
// gives it back when it is garbage.
type upload struct {
	mem  []byte
	file *os.File
	size int64
	sum  digest

	once sync.Once
	free func() // gives the memory room back (nil on disk)
	stop runtime.Cleanup
}

// spooler makes uploads.
type spooler struct {
	dir string
	mem *room // Config.MaxUploadMemory
}

// checkSpoolDir makes dir unless it exists, and checks that a file can be
// made in it (so that the first large upload does not find out).
func checkSpoolDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("server: SpoolDir: %w", err)
	}
	f, err := os.CreateTemp(dir, "livechunk-probe-*")
	if err != nil {
		return fmt.Errorf("server: SpoolDir: %w", err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// spool reads r (up to its end) into an upload of at most limit bytes,
// whose first bytes head already read; size is the declared length, or -1.
// The upload is in memory when size is known and the memory room can
// take it at once, in a temporary file otherwise. A body longer than
// limit is errTooLong (ErrTooLarge); a file that cannot be made or written
// is ErrOverloaded; an error of r is returned as is.
func (sp *spooler) spool(head []byte, r io.Reader, size, limit int64) (*upload, error) {
	h := sha256.New()
	h.Write(head)
	u := &upload{}
	if size >= 0 && size <= limit && sp.mem.tryTake(size) {
		n := size
		u.free = func() { sp.mem.give(n) }
		buf := bytes.NewBuffer(make([]byte, 0, max(size, int64(len(head)))))
		buf.Write(head)
		// The declared length is the most that is read into memory.
		if _, err := buf.ReadFrom(io.TeeReader(io.LimitReader(r, size-int64(len(head))), h)); err != nil {
			u.close()
			return nil, err
		}
		if extra, err := io.ReadFull(r, make([]byte, 1)); extra > 0 || err != io.EOF {
			u.close()
			if extra == 0 {
				return nil, err
			}
			return nil, errTooLong
		}
		u.mem, u.size = buf.Bytes(), int64(buf.Len())
	} else {
		f, err := os.CreateTemp(sp.dir, "livechunk-upload-*")
		if err != nil {
			return nil, fmt.Errorf("%w: spooling the upload: %w", ErrOverloaded, err)
		}
		os.Remove(f.Name())
		u.file = f
		fw := &fileWriter{f: f}
		n, err := io.Copy(io.MultiWriter(fw, h), io.MultiReader(bytes.NewReader(head), io.LimitReader(r, limit-int64(len(head))+1)))
		if fw.err != nil {
			err = fmt.Errorf("%w: spooling the upload: %w", ErrOverloaded, fw.err)
		}
		if err != nil {
			u.close()
			return nil, err
		}
		if n > limit {
			u.close()
			return nil, errTooLong
		}
		u.size = n
	}
	u.sum = digest(h.Sum(nil))
	u.arm()
	return u, nil
}

// fileWriter keeps the error of the file it writes, to tell it from the
// body's.
type fileWriter struct {
	f   *os.File
	err error
}

func (w *fileWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil {
		w.err = err
	}
	return n, err
}

// errTooLong: a body over the limit given to spool.
var errTooLong = fmt.Errorf("%w: the body is longer than allowed", ErrTooLarge)

// memUpload is an upload of bytes already in memory (a chunk read back
// from the store), which takes no room.
func memUpload(b []byte) *upload {
	return &upload{mem: b, size: int64(len(b)), sum: digest(sha256.Sum256(b))}
}

// arm makes the garbage collector close u if nobody does.
func (u *upload) arm() {
	if u.file == nil && u.free == nil {
		return
	}
	f, free := u.file, u.free
	u.stop = runtime.AddCleanup(u, func(struct{}) {
		if f != nil {
			f.Close()
		}
		if free != nil {
			free()
		}
	}, struct{}{})
}

// reader returns a new reader over the whole upload, which also seeks and
// reads at offsets (an MP4 source reads its samples in place).
func (u *upload) reader() *io.SectionReader {
	if u.file != nil {
		return io.NewSectionReader(u.file, 0, u.size)
	}
	return io.NewSectionReader(bytes.NewReader(u.mem), 0, u.size)
}

// close gives the upload's memory or file back; it may be called more
// than once. Readers made before must not be used after.
func (u *upload) close() {
	u.once.Do(func() {
		u.stop.Stop()
		if u.file != nil {
			u.file.Close()
		}
		if u.free != nil {
			u.free()
		}
		u.mem = nil
	})
}

// closingReader is a reader over an upload that closes the upload when
// it is closed (by the stream's source, after the chunk's last sample).
type closingReader struct {
	*io.SectionReader
	u *upload
}

func (r closingReader) Close() error {
	r.u.close()
	return nil
}

// room is a budget of bytes taken without waiting.
type room struct {
	mu         sync.Mutex
	free, size int64
}

func newRoom(size int64) *room { return &room{free: size, size: size} }

// tryTake takes n bytes of the room if it has them.
func (r *room) tryTake(n int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n > r.free {
		return false
	}
	r.free -= n
	return true
}

// give gives n bytes back.
func (r *room) give(n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.free = min(r.free+n, r.size)
}

// held returns the bytes taken.
func (r *room) held() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.size - r.free
}
