package demux

import (
	"fmt"

	"github.com/Eyevinn/mp4ff/mp4"
)

// The names of the codecs that livechunk leaves out, for a user's note
// (source.Info.IgnoredAudio, source.AudioNote).

// AACName names the kind of AAC an AudioSpecificConfig describes: "AAC"
// for what livechunk records (AAC-LC, HE-AAC), else the profile ("AAC
// Main", "AAC LTP", "xHE-AAC", ...).
func AACName(asc []byte) string {
	if len(asc) == 0 {
		return "AAC"
	}
	ot := int(asc[0] >> 3)
	if ot == 31 && len(asc) > 1 { // escaped: 32 + the next 6 bits
		ot = 32 + (int(asc[0]&7)<<3 | int(asc[1]>>5))
	}
	switch ot {
	case 2, 5, 29:
		return "AAC"
	case 1:
		return "AAC Main"
	case 3:
		return "AAC SSR"
	case 4:
		return "AAC LTP"
	case 23:
		return "AAC-LD"
	case 39:
		return "AAC-ELD"
	case 42:
		return "xHE-AAC"
	}
	return fmt.Sprintf("AAC (object type %d)", ot)
}

// UnreadableAAC names an AAC track that could not be read: its profile,
// or "AAC (unreadable)" for a kind livechunk records.
func UnreadableAAC(asc []byte) string {
	if name := AACName(asc); name != "AAC" {
		return name
	}
	return "AAC (unreadable)"
}

// audioEntryName names the codec of a sound track's sample entry that is
// not AAC; "" for a track that is not a sound track.
func audioEntryName(t *mp4.TrakBox, entry mp4.Box) string {
	if t.Mdia.Hdlr == nil || t.Mdia.Hdlr.HandlerType != "soun" {
		return ""
	}
	if esds := mp4aEsds(entry); esds != nil && esds.DecConfigDescriptor != nil {
		switch ot := esds.DecConfigDescriptor.ObjectType; ot {
		case 0x69, 0x6b:
			return "MP3"
		case 0xa5:
			return "AC-3"
		case 0xa6:
			return "E-AC-3"
		default:
			return fmt.Sprintf("mp4a object type 0x%02x", ot)
		}
	}
	switch typ := entry.Type(); typ {
	case "ac-3":
		return "AC-3"
	case "ec-3":
		return "E-AC-3"
	case "Opus":
		return "Opus"
	case ".mp3":
		return "MP3"
	default:
		return typ
	}
}
