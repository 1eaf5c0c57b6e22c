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
// [Record] for a whole source.
package livechunk
