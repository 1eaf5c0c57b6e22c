#!/usr/bin/env bash
# Regenerates sample.mp4, the clip embedded in the livechunk command: 12 s of
# 640x360 H.264 (High, B-frames, an IDR every 2 s) with a burned-in clock,
# and AAC-LC 48 kHz mono audio that beeps for 0.1 s at every full second, so
# audio/video sync can be checked by eye and ear (1 kHz on even seconds,
# 440 Hz on odd ones).
set -euo pipefail
cd "$(dirname "$0")"
ffmpeg -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=640x360:rate=30:duration=12" \
  -f lavfi -i "aevalsrc='0.5*lt(mod(t\,1)\,0.1)*sin(2*PI*t*if(mod(floor(t)\,2)\,440\,1000))':s=48000:d=12" \
  -vf "drawtext=text='livechunk %{pts\:hms}':x=20:y=20:fontsize=28:fontcolor=white:box=1:boxcolor=black@0.6" \
  -c:v libx264 -profile:v high -preset medium -crf 30 \
  -x264-params keyint=60:min-keyint=60:scenecut=0:bframes=3 -pix_fmt yuv420p \
  -c:a aac -b:a 64k -ac 1 -movflags +faststart sample.mp4
