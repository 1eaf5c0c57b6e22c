// Package demux reads what an input holds, for the source package and
// stitch alike: which container it is (Sniff), the tracks and samples of
// an MP4 or QuickTime file (ReadMovie, Track.Samples, Fragments) and the
// streams of an MPEG-TS program (FindProgram). The MPEG-TS packets and PES
// packets themselves are internal/mpegts's.
//
// The MP4 reader works over an io.ReaderAt. It reads a moov box without
// its per-sample tables and walks those through small windows, so that its
// memory does not grow with the length of the file; movie fragments are
// read moof by moof. It selects the first H.264 track and the first AAC
// track that livechunk can use, applies edit lists by one rule, and names
// the codecs of the tracks it leaves out.
//
// Bad input yields an *Error whose Kind is ErrInvalid, ErrTruncated or
// ErrUnsupported; panics of mp4ff and mediacommon are recovered into
// ErrInvalid. Errors of the underlying reader are returned as they are.
package demux
