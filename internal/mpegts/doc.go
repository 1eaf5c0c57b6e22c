// Package mpegts holds the mechanics of the MPEG-2 transport stream
// (ISO/IEC 13818-1) that livechunk reads and writes: 188-byte packets,
// program tables, PES packets, 33-bit timestamps and ADTS framing. Its
// reading side (Reader, Depacketizer, SkipVideo) is the demultiplexer of
// the source package's MPEG-TS reader and of stitch, without allocating per
// packet; finding a program's streams is internal/demux's. Its writing side
// (Muxer) writes the segments of the chunker and stitch's MPEG-TS output.
//
// mediacommon's Reader reassembles every PES packet with astits, which
// allocates per packet and copies a PES packet's payload again each time a
// packet is added to it (quadratic in the PES size): on a 720p recording
// that made reading MPEG-TS input 2.5 times slower than ffmpeg.
package mpegts
