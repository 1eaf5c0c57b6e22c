package server

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
)

// upload is the bytes of a chunk upload, held while the chunk is checked,
// waits for its turn and is fed: in memory when Config.MaxUploadMemory has
// room for them, else in a temporary file of Config.SpoolDir, unlinked as
// soon as it is made (the bytes go with the last open descriptor, also
// when the process dies). Its room (in memory, or in the spool) is given
// back by close; an upload dropped unclosed (a stream object dropped on a
// failure) gives it back when it is garbage.
type upload struct {
	mem  []byte
	file *os.File
	size int64
	sum  digest

	once   sync.Once
	closed atomic.Bool
	free   func() // gives the room back
	stop   runtime.Cleanup
}

// spooler makes uploads.
type spooler struct {
	dir  string
	mem  *room // Config.MaxUploadMemory, taken whole
	disk *room // Config.MaxUploadBytes, taken as the bytes are written
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
	if size >= int64(len(head)) && size <= limit && sp.mem.tryTake(size) {
		n := size
		u.free = func() { sp.mem.give(n) }
		// Exactly the declared length, read in place: the memory held is
		// the room taken.
		u.mem = make([]byte, size)
		copy(u.mem, head)
		if _, err := io.ReadFull(io.TeeReader(r, h), u.mem[len(head):]); err != nil {
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
		u.size = size
	} else {
		f, err := os.CreateTemp(sp.dir, "livechunk-upload-*")
		if err != nil {
			return nil, fmt.Errorf("%w: spooling the upload: %w", ErrOverloaded, err)
		}
		if err := os.Remove(f.Name()); err != nil {
			f.Close()
			return nil, fmt.Errorf("%w: spooling the upload: %w", ErrOverloaded, err)
		}
		u.file = f
		fw := &fileWriter{f: f, room: sp.disk}
		u.free = func() { sp.disk.give(fw.taken) }
		fw.Write(head) // hashed above
		n, err := io.Copy(io.MultiWriter(fw, h), io.LimitReader(r, limit-int64(len(head))+1))
		n += int64(len(head))
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

// fileWriter writes a spool file, taking room for the bytes as it goes,
// and keeps its error, to tell it from the body's.
type fileWriter struct {
	f     *os.File
	room  *room
	taken int64 // given back by the upload's free
	err   error
}

// errSpoolFull: the room of the spool files is taken.
var errSpoolFull = errors.New("the uploads being held fill the room given to them (MaxUploadBytes)")

func (w *fileWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if !w.room.tryTake(int64(len(p))) {
		w.err = errSpoolFull
		return 0, w.err
	}
	w.taken += int64(len(p))
	n, err := w.f.Write(p)
	if err != nil {
		w.err = err
	}
	return n, err
}

// errTooLong: a body over the limit given to spool.
var errTooLong = fmt.Errorf("%w: the body is longer than allowed", ErrTooLarge)

// arm makes the garbage collector close u if nobody does.
func (u *upload) arm() {
	f, free := u.file, u.free
	u.stop = runtime.AddCleanup(u, func(struct{}) {
		if f != nil {
			f.Close()
		}
		free()
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
		u.closed.Store(true)
		u.stop.Stop()
		if u.file != nil {
			u.file.Close()
		}
		if u.free != nil {
			u.free() // nil for an upload that never held room
		}
		u.mem = nil
	})
}

// isClosed reports whether close was called.
func (u *upload) isClosed() bool { return u.closed.Load() }

// closingReader is a reader over an upload, for the stream's source, that
// closes the upload when it is closed (after the chunk's last sample) and
// lets go of its bytes then: the source may keep the reader until the
// next chunk.
type closingReader struct {
	sr *io.SectionReader
	u  *upload
}

func newClosingReader(u *upload) *closingReader { return &closingReader{sr: u.reader(), u: u} }

var errReaderClosed = errors.New("server: chunk reader closed")

func (r *closingReader) Read(p []byte) (int, error) {
	if r.sr == nil {
		return 0, errReaderClosed
	}
	return r.sr.Read(p)
}

func (r *closingReader) ReadAt(p []byte, off int64) (int, error) {
	if r.sr == nil {
		return 0, errReaderClosed
	}
	return r.sr.ReadAt(p, off)
}

func (r *closingReader) Seek(off int64, whence int) (int64, error) {
	if r.sr == nil {
		return 0, errReaderClosed
	}
	return r.sr.Seek(off, whence)
}

func (r *closingReader) Close() error {
	r.sr = nil
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
