package sink

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/livechunk/livechunk/chunker"
)

// The spool is a directory of files, one per object, named by a counter
// that grows with submission order ("00000000000000000042.spool"). Each
// file holds spoolMagic, the length of a JSON header and its CRC-32 (IEEE)
// (4 bytes each, big endian), the header, then the object's bytes. A file is written under a
// ".tmp" name, synced, renamed and the directory synced, so a file with the
// final name is always complete; the header's MD5 is checked on recovery
// and again by the store on upload.
const (
	spoolMagic  = "LCSPOOL1"
	spoolExt    = ".spool"
	spoolTmpExt = ".tmp"
	spoolBadExt = ".bad"
	// maxSpoolHeader bounds the header read back from disk.
	maxSpoolHeader = 16 << 20
)

// spoolHeader describes a spooled object.
type spoolHeader struct {
	Kind        Kind
	Seq         uint64
	Key         string
	ContentType string
	Size        int64
	MD5         []byte
	// Accepted is when WriteInit or WriteSegment took the object.
	Accepted time.Time
	// Init is the init section (KindInit: without Data, which is the
	// payload; KindSegment: the segment's init with its Data, so that a
	// recovery can upload it again if it never landed).
	Init    *chunker.Init `json:",omitempty"`
	Segment SegmentInfo
}

// spoolEntry is a spool file found on disk.
type spoolEntry struct {
	n    uint64 // counter in the name
	path string
	hdr  spoolHeader
	off  int64 // offset of the object's bytes
}

func spoolName(dir string, n uint64, ext string) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", n, ext))
}

// syncDir makes the directory entries of dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeSpool writes one object to dir under counter n: a temporary file,
// written, synced, renamed, and the directory synced. On error nothing is
// left behind. off is the offset of data in the file.
func writeSpool(dir string, n uint64, hdr *spoolHeader, data []byte) (path string, off int64, err error) {
	hj, err := json.Marshal(hdr)
	if err != nil {
		return "", 0, err
	}
	tmp := spoolName(dir, n, spoolTmpExt)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", 0, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	buf := make([]byte, 0, len(spoolMagic)+8+len(hj))
	buf = append(buf, spoolMagic...)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(hj)))
	buf = binary.BigEndian.AppendUint32(buf, crc32.ChecksumIEEE(hj))
	buf = append(buf, hj...)
	if _, err = f.Write(buf); err != nil {
		return "", 0, err
	}
	if _, err = f.Write(data); err != nil {
		return "", 0, err
	}
	if err = f.Sync(); err != nil {
		return "", 0, err
	}
	if err = f.Close(); err != nil {
		return "", 0, err
	}
	path = spoolName(dir, n, spoolExt)
	if err = os.Rename(tmp, path); err != nil {
		return "", 0, err
	}
	if err = syncDir(dir); err != nil {
		// The rename may not be durable; take the file back so that a
		// crash cannot leave a half-known object behind.
		os.Remove(path)
		return "", 0, err
	}
	return path, int64(len(buf)), nil
}

// readSpoolHeader reads and checks the header of a spool file.
func readSpoolHeader(path string) (hdr spoolHeader, off int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return hdr, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return hdr, 0, err
	}
	return decodeSpool(f, fi.Size())
}

// decodeSpool reads a spool file of size bytes from r: it checks the
// magic, the header and that the object's bytes match their size and MD5.
// It returns the header and the offset of the object's bytes.
func decodeSpool(r io.Reader, size int64) (hdr spoolHeader, off int64, err error) {
	var pre [len(spoolMagic) + 8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return hdr, 0, fmt.Errorf("short spool file: %w", err)
	}
	if string(pre[:len(spoolMagic)]) != spoolMagic {
		return hdr, 0, errors.New("not a spool file")
	}
	n := binary.BigEndian.Uint32(pre[len(spoolMagic):])
	crc := binary.BigEndian.Uint32(pre[len(spoolMagic)+4:])
	if n > maxSpoolHeader || int64(n)+int64(len(pre)) > size {
		return hdr, 0, fmt.Errorf("spool header of %d bytes in a file of %d", n, size)
	}
	hj := make([]byte, n)
	if _, err := io.ReadFull(r, hj); err != nil {
		return hdr, 0, err
	}
	if crc32.ChecksumIEEE(hj) != crc {
		return hdr, 0, errors.New("spool header does not match its CRC")
	}
	if err := json.Unmarshal(hj, &hdr); err != nil {
		return hdr, 0, fmt.Errorf("spool header: %w", err)
	}
	off = int64(len(pre)) + int64(n)
	if hdr.Size != size-off || hdr.Size < 0 {
		return hdr, 0, fmt.Errorf("spool file holds %d bytes, header says %d", size-off, hdr.Size)
	}
	if len(hdr.MD5) != md5.Size || !validSpoolKey(&hdr) {
		return hdr, 0, fmt.Errorf("spool header with a bad key %q, kind, content type or MD5", hdr.Key)
	}
	h := md5.New()
	if m, err := io.Copy(h, r); err != nil || m != hdr.Size {
		return hdr, 0, fmt.Errorf("spool file bytes: %d of %d read: %v", m, hdr.Size, err)
	}
	if !bytes.Equal(h.Sum(nil), hdr.MD5) {
		return hdr, 0, errors.New("spool file bytes do not match their MD5")
	}
	return hdr, off, nil
}

// validSpoolKey reports whether a header read from disk names an object
// the sink could have written: the key is [InitKey] or [SegmentKey] of the
// header's kind and sequence number under a clean prefix (no "..", no
// leading "/", no control characters or backslashes), with our content
// type. A tampered spool file cannot make the sink write elsewhere.
func validSpoolKey(h *spoolHeader) bool {
	var name, ctype string
	switch h.Kind {
	case KindInit:
		name, ctype = InitKey("", h.Seq), contentTypeInit
	case KindSegment:
		f := h.Segment.Format
		if (f != chunker.FMP4 && f != chunker.TS) || h.Segment.Seq != h.Seq {
			return false
		}
		name, ctype = SegmentKey("", f, h.Seq), segmentContentType(f)
	default:
		return false
	}
	prefix, ok := strings.CutSuffix(h.Key, name)
	if !ok || h.ContentType != ctype || CleanPrefix(prefix) != prefix || len(h.Key) > 1024 {
		return false
	}
	return !strings.ContainsFunc(prefix, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' })
}

// scanSpool lists the complete spool files in dir in counter order. It
// removes temporary files (objects that were never accepted) and renames
// damaged files to ".bad" (kept for inspection, never uploaded); each of
// those is reported through bad. next is the counter after the highest
// one in use.
func scanSpool(dir string, bad func(path string, err error)) (entries []spoolEntry, next uint64, err error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, err
	}
	for _, de := range des {
		name := de.Name()
		base, ext, ok := strings.Cut(name, ".")
		n, perr := strconv.ParseUint(base, 10, 64)
		if !ok || perr != nil || de.IsDir() {
			continue
		}
		next = max(next, n+1)
		p := filepath.Join(dir, name)
		switch "." + ext {
		case spoolTmpExt:
			if err := os.Remove(p); err != nil {
				bad(p, err)
			}
		case spoolExt:
			hdr, off, err := readSpoolHeader(p)
			if err != nil {
				bad(p, err)
				if rerr := os.Rename(p, spoolName(dir, n, spoolBadExt)); rerr != nil {
					bad(p, rerr)
				}
				continue
			}
			entries = append(entries, spoolEntry{n: n, path: p, hdr: hdr, off: off})
		}
	}
	slices.SortFunc(entries, func(a, b spoolEntry) int {
		switch {
		case a.n < b.n:
			return -1
		case a.n > b.n:
			return 1
		}
		return 0
	})
	return entries, next, nil
}

// spoolReader opens the bytes of a spooled object.
func spoolReader(path string, off, size int64) (io.Reader, io.Closer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	return io.NewSectionReader(f, off, size), f, nil
}

// blobMD5 returns the MD5 of b, as the spool header and ContentMD5 carry it.
func blobMD5(b []byte) [md5.Size]byte { return md5.Sum(b) }
