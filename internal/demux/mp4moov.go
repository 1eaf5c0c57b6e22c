package demux

import (
	"encoding/binary"
	"errors"
	"io"

	"github.com/Eyevinn/mp4ff/avc"
	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"
)

// The sample tables of a progressive MP4 list every sample: about 14 bytes
// a sample with an audio track, 1.9 MB for 30 minutes of 720p30 with AAC,
// 3.7 MB an hour. ReadMovie does not read them: it copies the moov box
// without them, decodes that with mp4ff, and Track.Samples walks the tables
// in the input through small windows, so that memory does not grow with
// the length of the input.

// MaxMetaBox bounds a moov box without its sample tables, and a moof box.
const MaxMetaBox = 256 << 20

// maxMoovDepth bounds the nesting of moovContainers (moov/trak/mdia/minf/
// stbl is 4 deep): a hostile file could otherwise nest them until the stack
// overflows.
const maxMoovDepth = 8

// maxMoovBoxes bounds the boxes ReadMovie reads a header of (one positional
// read each): real files have tens to a few hundred.
const maxMoovBoxes = 100000

// moovContainers are the boxes ReadMovie descends into, on the way from
// moov to stbl.
var moovContainers = map[string]bool{"trak": true, "mdia": true, "minf": true, "stbl": true}

// Movie is a moov box read without its per-sample tables.
type Movie struct {
	// Moov is the box as mp4ff decodes it, without stts, ctts, stsc,
	// stsz, stco, co64, stss and sdtp: their Stbl fields are nil.
	Moov *mp4.MoovBox
	// Box is where the moov box is.
	Box Box

	r    io.ReaderAt
	tabs []tables // tabs[i]: where the tables of Moov.Traks[i] are
}

// tables are the places in the input of the per-sample tables of one
// trak's stbl box: the bodies (after the box header) of stts, ctts, stsc,
// stsz, stco or co64, and stss.
type tables struct {
	stts, ctts, stsc, stsz, stco, co64, stss body
}

// body is the body of a box in the input.
type body struct {
	off, size int64
	present   bool
}

// ReadMovie reads the moov box at moov from r without its per-sample
// tables: it walks the box tree with positional reads, copies every box
// but the tables of the stbl boxes into a compact moov, decodes that with
// mp4ff, and remembers where the tables are (Track.Samples reads them from
// r, which must stay readable while the Movie is used).
func ReadMovie(r io.ReaderAt, moov Box) (mv *Movie, err error) {
	defer guard(&err, "moov")
	w := moovWalker{r: r}
	out := make([]byte, 0, 4<<10)
	out, err = w.walk(out, moov.Body(), moov.End(), "moov", 0)
	if err != nil {
		return nil, err
	}
	hdr := mp4.BoxHeader{Name: "moov", Size: uint64(8 + len(out)), Hdrlen: 8}
	box, err := mp4.DecodeBoxBodySR(uint64(moov.Off), hdr, bits.NewFixedSliceReader(out))
	if err != nil {
		return nil, decodeErr(err)
	}
	m, ok := box.(*mp4.MoovBox)
	if !ok || len(m.Traks) != len(w.tabs) {
		return nil, errorf(ErrInvalid, "moov box")
	}
	return &Movie{Moov: m, Box: moov, r: r, tabs: w.tabs}, nil
}

// Fragmented reports whether the movie continues in movie fragments (it
// has an mvex box).
func (mv *Movie) Fragmented() bool { return mv.Moov.Mvex != nil }

// decodeErr types an error of mp4ff's box decoder.
func decodeErr(err error) error {
	if errors.Is(err, avc.ErrLengthSize) || errors.Is(err, avc.ErrCannotParseAVCExtension) {
		return errorf(ErrUnsupported, "%v", err)
	}
	return errorf(ErrInvalid, "%v", err)
}

// moovWalker copies a moov box without its sample tables (see ReadMovie).
type moovWalker struct {
	r     io.ReaderAt
	tabs  []tables
	hdr   [16]byte
	boxes int
}

// walk appends to out the children of the box body [off, end) of a box
// named parent, each with an 8-byte header, leaving out the per-sample
// tables of stbl boxes, whose places it records in w.tabs.
func (w *moovWalker) walk(out []byte, off, end int64, parent string, depth int) ([]byte, error) {
	if depth > maxMoovDepth {
		return nil, errorf(ErrInvalid, "moov boxes nested more than %d deep", maxMoovDepth)
	}
	for off < end {
		if w.boxes++; w.boxes > maxMoovBoxes {
			return nil, errorf(ErrUnsupported, "moov box with more than %d boxes", maxMoovBoxes)
		}
		b, err := readBox(w.r, w.hdr[:], off, end, false)
		if err != nil {
			return nil, err
		}
		name, size := b.Type, b.Size-b.Hdr
		switch {
		case moovContainers[name]:
			if name == "trak" {
				w.tabs = append(w.tabs, tables{})
			} else if len(w.tabs) == 0 {
				return nil, errorf(ErrInvalid, "%s box outside a trak", name)
			}
			at := len(out)
			out = append(out, 0, 0, 0, 0, name[0], name[1], name[2], name[3])
			if out, err = w.walk(out, b.Body(), b.End(), name, depth+1); err != nil {
				return nil, err
			}
			binary.BigEndian.PutUint32(out[at:], uint32(len(out)-at))
		case parent == "stbl" && w.table(name, body{off: b.Body(), size: size, present: true}):
			// Left in the input.
		default:
			if int64(len(out))+8+size > MaxMetaBox {
				return nil, errorf(ErrUnsupported, "moov box with more than %d bytes besides its sample tables", MaxMetaBox)
			}
			at := len(out)
			out = append(out, 0, 0, 0, 0, name[0], name[1], name[2], name[3])
			binary.BigEndian.PutUint32(out[at:], uint32(8+size))
			out = append(out, make([]byte, size)...)
			if err := readFull(w.r, out[at+8:], b.Body(), name+" box"); err != nil {
				return nil, err
			}
		}
		off = b.End()
	}
	return out, nil
}

// table records the body of the stbl child name if it is a per-sample
// table, and reports whether it is one.
func (w *moovWalker) table(name string, b body) bool {
	t := &w.tabs[len(w.tabs)-1]
	switch name {
	case "stts":
		t.stts = b
	case "ctts":
		t.ctts = b
	case "stsc":
		t.stsc = b
	case "stsz":
		t.stsz = b
	case "stco":
		t.stco = b
	case "co64":
		t.co64 = b
	case "stss":
		t.stss = b
	case "sdtp":
	default:
		return false
	}
	return true
}
