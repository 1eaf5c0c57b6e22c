package demux

import "github.com/livechunk/livechunk/internal/mpegts"

// Format is a container format that Sniff recognizes.
type Format int

const (
	// Unknown is not a recognized format.
	Unknown Format = iota
	// MP4 is ISO BMFF: progressive or fragmented MP4, or QuickTime MOV.
	MP4
	// TS is MPEG-2 transport stream with 188-byte packets.
	TS
	// AnnexB is a raw H.264 byte stream (ITU-T H.264 Annex B).
	AnnexB
)

// SniffLen is the number of leading bytes that Sniff looks at: an MPEG-TS
// stream may begin with bytes that are not packets (a capture started in
// the middle of a packet, a header), up to SniffLen - 3 packets of them.
const SniffLen = 8 << 10

// mp4Boxes are the box types that an MP4 file or segment begins with.
var mp4Boxes = map[string]bool{
	"ftyp": true, "styp": true, "moov": true, "moof": true, "mdat": true, "free": true, "skip": true,
	"wide": true, "sidx": true, "pdin": true, "uuid": true, "emsg": true, "prft": true, "meta": true,
}

// Sniff detects the format of an input from its first bytes (up to
// SniffLen are examined): an MP4 box type at offset 4, MPEG-TS sync bytes
// every 188 bytes (from the start, or after some bytes that are not
// packets: see TSStart), or an Annex-B start code.
func Sniff(b []byte) Format {
	if len(b) >= 8 && mp4Boxes[string(b[4:8])] {
		return MP4
	}
	k := TSStart(b)
	if k == 0 {
		return TS
	}
	i := 0
	for i < len(b) && b[i] == 0 {
		i++
	}
	if i >= 2 && i < len(b) && b[i] == 1 && (k < 0 || !tsRun(b, k, 20)) {
		// (A capture of MPEG-TS cut at a PES header also starts with a
		// start code: twenty packets in a row after it say MPEG-TS.)
		return AnnexB
	}
	if k > 0 && !IsM2TS(b) {
		return TS
	}
	return Unknown
}

// TSStart returns the offset of the first MPEG-TS packet in b: 0 when b
// starts with sync bytes 188 bytes apart (three, or as many as b holds),
// else the first offset followed by five of them (bytes that are not
// packets before it: the stronger evidence keeps raw H.264 or other data
// whose 0x47 bytes happen to fall 188 apart from passing for MPEG-TS);
// -1 if there is none.
func TSStart(b []byte) int {
	if len(b) > 0 && tsRun(b, 0, min(3, (len(b)-1)/mpegts.PacketSize+1)) {
		return 0
	}
	for k := 1; k+4*mpegts.PacketSize < len(b); k++ {
		if tsRun(b, k, 5) {
			return k
		}
	}
	return -1
}

// tsRun reports whether b holds n sync bytes 188 bytes apart from k on.
func tsRun(b []byte, k, n int) bool {
	if k+(n-1)*mpegts.PacketSize >= len(b) {
		return false
	}
	for i := range n {
		if b[k+i*mpegts.PacketSize] != mpegts.SyncByte {
			return false
		}
	}
	return true
}

// IsM2TS reports whether b looks like 192-byte M2TS/BDAV packets (a
// 4-byte time code before each sync byte), which livechunk does not read.
func IsM2TS(b []byte) bool {
	const m2ts = mpegts.PacketSize + 4
	return len(b) > 4+2*m2ts && b[4] == mpegts.SyncByte && b[4+m2ts] == mpegts.SyncByte && b[4+2*m2ts] == mpegts.SyncByte
}
