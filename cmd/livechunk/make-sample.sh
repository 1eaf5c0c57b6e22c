#!/usr/bin/env bash
# Regenerates sample.mp4, the clip embedded in the livechunk command.
set -euo pipefail
cd "$(dirname "$0")"
ffmpeg -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=640x360:rate=30:duration=12" \
  -vf "drawtext=text='livechunk %{pts\:hms}':x=20:y=20:fontsize=28:fontcolor=white:box=1:boxcolor=black@0.6" \
  -c:v libx264 -profile:v high -preset medium -crf 30 \
  -x264-params keyint=60:min-keyint=60:scenecut=0:bframes=3 -pix_fmt yuv420p -movflags +faststart sample.mp4
