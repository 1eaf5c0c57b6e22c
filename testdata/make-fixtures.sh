#!/usr/bin/env bash
# Regenerates the small committed fixtures in this directory with ffmpeg.
# The tests never run this; they use the committed files (and generate
# larger inputs themselves).
set -euo pipefail
cd "$(dirname "$0")"
ff() { ffmpeg -hide_banner -loglevel error -y "$@"; }
src="testsrc2=size=320x240:rate=30"

# H.264 High with B-frames and B-pyramid, progressive MP4 (edit list from ffmpeg).
ff -f lavfi -i "$src:duration=4" -c:v libx264 -profile:v high -preset fast -crf 30 \
   -x264-params keyint=30:min-keyint=30:scenecut=0:bframes=3:b-pyramid=normal -pix_fmt yuv420p bframes.mp4
# Baseline, no B-frames.
ff -f lavfi -i "$src:duration=3" -c:v libx264 -profile:v baseline -preset fast -crf 30 \
   -x264-params keyint=45:scenecut=0 -pix_fmt yuv420p baseline.mp4
# Variable frame rate MOV with timescale 600, as phones write it.
ff -f lavfi -i "testsrc2=size=320x240:rate=60:duration=4" \
   -vf "select='not(mod(n\,3))+not(mod(n\,5))'" -fps_mode passthrough \
   -c:v libx264 -profile:v main -preset fast -crf 30 -x264-params keyint=40:scenecut=0:bframes=2 \
   -pix_fmt yuv420p -video_track_timescale 600 vfr.mov
# Fragmented MP4.
ff -f lavfi -i "$src:duration=3" -c:v libx264 -preset fast -crf 30 -x264-params keyint=30:scenecut=0 \
   -pix_fmt yuv420p -movflags frag_keyframe+empty_moov+default_base_moof fragmented.mp4
# MPEG-TS with a resolution change in the middle: two encodes (SPS/PPS
# in-band at every IDR), remuxed into one stream by ffmpeg's concat demuxer
# so timestamps and continuity counters run on.
ff -f lavfi -i "$src:duration=2" -c:v libx264 -preset fast -crf 30 -x264-params keyint=30:scenecut=0 \
   -pix_fmt yuv420p -f mpegts /tmp/lc_a.ts
ff -f lavfi -i "testsrc2=size=480x270:rate=30:duration=2" -c:v libx264 -preset fast -crf 30 \
   -x264-params keyint=30:scenecut=0 -pix_fmt yuv420p -f mpegts /tmp/lc_b.ts
printf "file '/tmp/lc_a.ts'\nfile '/tmp/lc_b.ts'\n" > /tmp/lc_list.txt
ff -f concat -safe 0 -i /tmp/lc_list.txt -c copy -f mpegts reschange.ts
rm -f /tmp/lc_a.ts /tmp/lc_b.ts /tmp/lc_list.txt
# MPEG-TS whose 33-bit PTS wraps around about 1.5 s in.
ff -f lavfi -i "$src:duration=4" -c:v libx264 -preset fast -crf 30 \
   -x264-params keyint=30:scenecut=0:bframes=2 -pix_fmt yuv420p -output_ts_offset 95442.2 -f mpegts wrap.ts
# Raw Annex-B H.264 with B-frames (timing only in the SPS VUI).
ff -f lavfi -i "$src:duration=3" -c:v libx264 -preset fast -crf 30 \
   -x264-params keyint=30:scenecut=0:bframes=2 -pix_fmt yuv420p -f h264 raw.h264
# Self-contained MP4 chunks as a phone uploads them, each starting at time 0.
for i in 0 1 2; do
  ff -f lavfi -i "testsrc2=size=320x240:rate=30:duration=6" -ss $((i * 2)) -t 2 \
     -c:v libx264 -preset fast -crf 30 -x264-params keyint=30:scenecut=0:bframes=2 -pix_fmt yuv420p \
     chunk$i.mp4
done
# Audio and video: progressive MP4 with AAC 44.1 kHz stereo (priming in the
# edit list) and B-frames; MPEG-TS with AAC 48 kHz mono whose PTS wrap.
ff -f lavfi -i "testsrc2=size=160x120:rate=30:duration=1" -f lavfi -i "sine=frequency=440:sample_rate=44100:duration=1" \
   -c:v libx264 -profile:v high -preset fast -crf 32 -x264-params keyint=15:min-keyint=15:scenecut=0:bframes=2 \
   -pix_fmt yuv420p -c:a aac -b:a 32k -ac 2 av.mp4
ff -f lavfi -i "testsrc2=size=160x120:rate=30:duration=1" -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=1" \
   -c:v libx264 -preset fast -crf 32 -x264-params keyint=15:min-keyint=15:scenecut=0:bframes=2 -pix_fmt yuv420p \
   -c:a aac -b:a 32k -ac 1 -output_ts_offset 95443 -f mpegts av.ts
ls -l
