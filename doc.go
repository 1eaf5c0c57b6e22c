// Package livechunk turns a live H.264 stream into short, closed,
// keyframe-aligned segments, uploads each one to any blob store as soon as
// it closes, and publishes an HLS playlist that players follow live — all
// without re-encoding.
//
// It is the server side of the usual pattern for live video from phones and
// cameras: the device cuts its stream into chunks and uploads each closed
// chunk; the server remuxes them into HLS segments (a container change
// only) and, when the broadcast ends, stitches them into one file.
//
// The stages are separate packages, each usable on its own:
//
//   - [github.com/livechunk/livechunk/source] reads real inputs (MP4/MOV,
//     fragmented MP4, MPEG-TS, raw H.264, sequences of MP4 chunks) into
//     timestamped samples;
//   - [github.com/livechunk/livechunk/chunker] cuts samples into fMP4 or
//     MPEG-TS segments at IDR pictures;
//   - [github.com/livechunk/livechunk/sink] uploads closed segments to a
//     gocloud.dev/blob bucket (file, mem, S3, GCS, Azure) while the next
//     one fills, with bounded memory, retries and in-order durability events;
//   - [github.com/livechunk/livechunk/hls] writes live, EVENT and VOD
//     playlists only after what they reference is durable, and serves them.
//
// This package wires them: [NewPipeline] for samples arriving one by one,
// [Record] for a whole source. A [Pipeline] composes: [Config.Output] sends
// segments to a destination of the application's instead of a bucket,
// [Config.OnSegment] and [Config.OnDurable] see each segment when it
// closes and once it is stored (and its playlist write attempted), and
// [hls.SegmentOf] turns a stored segment into a playlist entry for code
// that writes its own playlists.
//
// # Goroutines and errors
//
// A Pipeline's writing methods must not run concurrently (one goroutine,
// or several that take turns under a lock); its Stats may be read from any.
// NewPipeline starts goroutines (uploads, playlist writes) that end when
// Close or Abort returns. Errors are sentinels and types to test with
// [errors.Is] and [errors.As]: a [chunker.SampleError] refuses one sample
// and the recording goes on; a context that ends while the uploads have no
// room is reported and held over, not permanent; an upload that failed for
// good ([sink.UploadError]) or an error of Config.Output stops it, and
// Close then reports what did not land and leaves the playlist open for a
// later pipeline to resume. Every package documents its own.
package livechunk
