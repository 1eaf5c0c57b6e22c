package demux

import (
	"encoding/binary"
	"io"
)

// Box is where an ISO BMFF box is in the input.
type Box struct {
	Type string
	Off  int64 // offset of its header
	Size int64 // its size, header included
	Hdr  int64 // its header's length: 8, or 16 with a 64-bit size
}

// Body returns the offset of the box's body.
func (b Box) Body() int64 { return b.Off + b.Hdr }

// End returns the offset right after the box.
func (b Box) End() int64 { return b.Off + b.Size }

// ReadBox reads the header of the box at off of r, which must end by end:
// the end of the input for a top-level box (top set), else the end of its
// parent. A size of 0 means "to end". A top-level box that does not fit
// is ErrTruncated (the input was cut short); a child that does not fit in
// its parent is ErrInvalid.
func ReadBox(r io.ReaderAt, off, end int64, top bool) (Box, error) {
	var h [16]byte
	return readBox(r, h[:], off, end, top)
}

// readBox is ReadBox with a buffer of 16 bytes for the header.
func readBox(r io.ReaderAt, h []byte, off, end int64, top bool) (Box, error) {
	if end-off < 8 {
		if top {
			return Box{}, errorf(ErrTruncated, "box header at %d: %d bytes left", off, end-off)
		}
		return Box{}, errorf(ErrInvalid, "%d stray bytes at %d", end-off, off)
	}
	if err := readFull(r, h[:8], off, "box header"); err != nil {
		return Box{}, err
	}
	b := Box{Type: string(h[4:8]), Off: off, Size: int64(binary.BigEndian.Uint32(h[:4])), Hdr: 8}
	switch b.Size {
	case 0: // to the end
		b.Size = end - off
	case 1:
		if end-off < 16 {
			return Box{}, errorf(ErrInvalid, "%s box at %d: truncated large size", b.Type, off)
		}
		if err := readFull(r, h[8:16], off+8, "box header"); err != nil {
			return Box{}, err
		}
		b.Hdr = 16
		b.Size = int64(binary.BigEndian.Uint64(h[8:16]))
	}
	switch {
	case b.Size < b.Hdr:
		return Box{}, errorf(ErrInvalid, "%s box at %d: size %d", b.Type, off, b.Size)
	case b.Size > end-off && top:
		return Box{}, errorf(ErrTruncated, "%s box at %d: %d bytes, the input has %d", b.Type, off, b.Size, end)
	case b.Size > end-off:
		return Box{}, errorf(ErrInvalid, "%s box at %d: size %d does not fit in its parent", b.Type, off, b.Size)
	}
	return b, nil
}

// BytesAt is an io.ReaderAt over a part of the input held in memory: B
// holds the input's bytes from offset Off on (a moov box read at once).
type BytesAt struct {
	B   []byte
	Off int64
}

// ReadAt reads the input's bytes at off, which must be in B.
func (s BytesAt) ReadAt(p []byte, off int64) (int, error) {
	i := off - s.Off
	if i < 0 || i > int64(len(s.B)) {
		return 0, io.EOF
	}
	n := copy(p, s.B[i:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
