package demux

import (
	"io"

	"github.com/livechunk/livechunk/internal/mpegts"
)

// FindFast runs the packet-by-packet search of FindProgram over head
// alone: done reports that it got to an answer, ok that the answer is
// FindProgram's (not mediacommon's).
func FindFast(head []byte) (p Program, done, ok bool) {
	f := newProgramFinder()
	for i := 0; i+mpegts.PacketSize <= len(head) && !f.done(); i += mpegts.PacketSize {
		f.packet(head[i : i+mpegts.PacketSize])
	}
	if !f.done() {
		return p, false, false
	}
	p, ok = f.program()
	return p, true, ok
}

// FindWithMediacommon runs FindProgram's other search over head.
func FindWithMediacommon(head []byte) (Program, error) {
	p, _, err := findWithMediacommon(eofReader{}, head[:len(head):len(head)], 32<<20)
	return p, err
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
