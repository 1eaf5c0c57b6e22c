// Package stitch joins what was recorded into one ordinary file, without
// re-encoding: HLS segments (fMP4 with their init sections, or MPEG-TS), a
// list of segment objects, or the self-contained MP4 chunks a phone uploads
// (each with its own moov, each starting at time 0). The result is a
// progressive, faststart MP4 ([WriteMP4]) or an MPEG-TS stream ([WriteTS]),
// written to any io.Writer or bucket object ([WriteBlob]) in one forward
// pass, optionally clipped to a time range.
//
// # Inputs
//
// An [Input] is an ordered list of [Part]s: objects read with range reads,
// from a gocloud.dev/blob bucket ([FromPlaylist], [FromObjects],
// [BucketPart]), local files ([FromFiles], [FilePart]) or memory
// ([ReaderAtPart]). Each part's container is recognized from its bytes:
// MPEG-TS, an fMP4 init section (moov without samples: it applies to the
// fragments that follow), fMP4 media segments (moof+mdat), or a
// self-contained MP4 (progressive, or fragmented with its own moov). The
// first H.264 (avc1/avc3) track and the first AAC (mp4a) track are joined
// - in MPEG-TS the first H.264 stream and the first ADTS one; other tracks
// are ignored. Audio-only input (AAC without video) is joined too.
//
// # Timeline
//
// Timestamps that continue from part to part are kept as they are (the
// last picture of a part lasts until the next part's first DTS). Where they
// do not continue - a DTS that does not increase, a step of more than one
// second or ten frames, a declared EXT-X-DISCONTINUITY with a gap, or the
// next chunk of a phone upload starting again at 0 - the part is appended
// right after the previous part's last picture, whose duration is its own
// (MP4) or the previous step (MPEG-TS). Chunks are thus laid end to end
// after their own edit lists, as
// [github.com/livechunk/livechunk/source.Chunks] reads them. MPEG-TS
// timestamps are unwrapped across the 33-bit rollover. The output keeps the
// first part's track timescale (90 kHz for MPEG-TS); other timescales are
// converted.
//
// The AAC frames of a part take the same offset as its pictures, so the
// tracks stay in sync as recorded; the audio timescale is the sample rate.
// Frames follow each other exactly (jitter of up to half a frame is
// absorbed; a larger gap lengthens the frame before it), and a frame that
// overlaps the ones before it by more than half a frame - the encoder
// priming of a chunk that starts again at 0 - is left out
// ([Result].AudioDropped). Audio-only parts are joined end to end like the
// pictures. MPEG-TS audio frames are timed from their PES PTS, one nominal
// frame duration apart.
//
// # Two passes, bounded memory
//
// The first pass reads only indexes: for MP4 parts the box headers and the
// moov/moof boxes, with range reads (one request of 4 KiB per segment
// normally covers its styp and moof; a moov is read with one request);
// MPEG-TS parts are demuxed keeping per access unit its timestamps,
// keyframe flag and AVCC size - never the bytes. Both are read by the same
// demultiplexer as package source's (tracks, sample tables, fragments, edit
// lists, MPEG-TS programs). Several parts
// are indexed at once ([Options].Concurrency). The sample table kept is 16
// bytes per picture and 8 per AAC frame, and the moov built from it
// another 12 (audio: 4) or so; nothing else grows with the input. The second pass writes ftyp, moov and the
// mdat header, then streams the payloads in order: the sample byte ranges
// of MP4 parts (a local file copies in the kernel where the OS can), and
// MPEG-TS access units converted from Annex-B to 4-byte length prefixes
// (access unit delimiters dropped, everything else kept, so SPS and PPS stay
// in-band) and ADTS frames stripped of their headers (a part's audio is held
// in memory until its pictures are written: one part's worth).
//
// # MP4 output
//
// One video track: stts from the joined decode times; ctts where pictures
// are reordered (B-frames), made non-negative by a constant shift that the
// edit list takes back; stss listing exactly the keyframes (IDR pictures;
// MP4 sync samples); stsc with one chunk per input part; stsz; stco, or co64
// once a chunk starts beyond 4 GiB (the mdat header gets a 64-bit size as
// soon as the payload needs one). An edit list starts presentation where the
// input's did: at its first displayed picture, or where the first chunk's
// own edit list starts it. Input sample entries (avc1 with avcC, btrt, pasp,
// colr...) are copied; for MPEG-TS input they are built from the SPS and PPS
// with mp4ff.
//
// The AAC track (track 2, or 1 without video): an mp4a sample entry whose
// esds carries the input's exact AudioSpecificConfig (so mono and 5.1
// stay what they are; a QuickTime entry is rewritten), stts, stsc with one
// chunk per part, stsz and stco/co64. In the mdat each part's pictures are
// followed by its audio frames, so the tracks interleave part by part and
// the file plays while it downloads. Both tracks get edit lists on one
// movie timeline that starts with whichever the input presents first (as
// ffmpeg does when it remuxes): encoder priming that an input MP4's edit
// list hides stays hidden (the audio edit starts after it), and audio that
// a recording carries before the first picture stays audible while the
// video waits in an empty edit. ffprobe thus reads the first audio and
// video timestamps with the input's offset, and ffmpeg decodes the input's
// audio frames. A clip presents audio over the same [From, To) as the
// video, keeping one frame before From for the decoder. Chromium plays the
// result as a plain <video src> (range requests), seeks in it and decodes
// the audio.
//
// # Clipping
//
// [Options].From and To select the presentation range [From, To), measured
// from the first displayed picture. Decoding starts at the keyframe at or
// before From, and the edit list starts presentation with the picture
// presented at From (From is rounded down to that picture's start when it
// falls inside one, because ffmpeg drops a picture that begins before the
// edit) and ends it at To. Decoding ends with the last picture presented
// before To; pictures it references but that are presented at or after To
// are kept in the file, outside the edit. Nothing is re-encoded, so the
// clip is lossless. ffmpeg shows exactly the pictures of [From, To);
// Chromium (which demuxes MP4 with FFmpeg) plays to the end of the last
// kept picture, up to one frame past To.
//
// # Parameter set changes
//
// When the SPS or PPS change (a resolution change: the chunker starts a new
// init section, or new parameter sets arrive in-band in MPEG-TS), the MP4
// gets a second sample description (stsd entry 2) and stsc switches to it
// at the first keyframe with the new parameters; the parameter sets also
// stay in-band at every keyframe, as recorded. With several descriptions
// each gets a square-pixel pasp box: without it ffmpeg derives a pixel
// aspect ratio from the tkhd size and the last entry's size, and Chromium
// stretches the picture with it. ffmpeg decodes every picture at its own
// size (ffprobe reports the first description's); Chromium plays such a
// file, reports the new size at the change and seeks across it.
//
// # MPEG-TS output
//
// [WriteTS] concatenates MPEG-TS parts packet by packet, rewriting only the
// continuity counters so that they run on across parts (audio included);
// other input, or a clip, is remuxed into a new transport stream: H.264,
// and the AAC track as ADTS on its own PID, interleaved by time, with the
// input's offset between audio and video (audio alone works too). There
// is no edit list in MPEG-TS, so the encoder priming an MP4 input's edit
// list hides is played, and a clip starts at a keyframe, its audio with
// it (see [WriteTS]). The audio frames of MP4 parts are read by a second
// sequence of requests alongside the pictures', so memory stays bounded
// by the audio due before the next picture.
//
// # Concurrency
//
// [WriteMP4], [WriteTS] and [WriteBlob] block until the output is written
// or fails. Each call reads its parts on goroutines of its own, which call
// [Part].Open ([Options].Concurrency bounds the requests in flight); all
// of them have ended when the call returns. Cancelling ctx stops the reads,
// and the call returns an error.
// An [Input] is immutable: several calls may use one at the same time.
//
// # Errors
//
// Bad input gives an error matching [ErrInvalid], [ErrUnsupported],
// [ErrNoInput], [ErrEmptyRange] or [ErrChanged] with errors.Is, usually
// inside a [*PartError] naming the object; panics of the parsers are
// recovered. Errors of Part.Open and its readers, of the writer, and of
// ctx are returned as they are (inside a *PartError when they concern one
// object). Input errors are found by the first pass, before anything is
// written. No error is kept between calls: a call may be repeated.
package stitch
