#!/usr/bin/env bash
# Compares livechunk with ffmpeg doing the same job, in the same run,
# alternating, median of N runs: remux one input into HLS VOD (fMP4 and TS),
# and cp of the same bytes as the physical floor.
#
#   bench/run.sh [N]          (default N=5; inputs are generated once into bench/.cache)
#
# Prints a Markdown table: wall time, CPU time (user+sys), peak RSS, and
# throughput relative to ffmpeg.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-5}
cache=bench/.cache
mkdir -p "$cache"
in="$cache/720p30-120s.mp4"
if [ ! -s "$in" ]; then
  echo "generating $in (120 s 1280x720 30 fps H.264 High with B-frames)..." >&2
  ffmpeg -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=1280x720:rate=30:duration=120" \
    -f lavfi -i "sine=frequency=440:duration=120" -map 0:v -map 1:a \
    -c:v libx264 -profile:v high -preset veryfast -b:v 5M -x264-params keyint=60:bframes=3 \
    -c:a aac -b:a 128k -pix_fmt yuv420p "$in"
fi
go build -o "$cache/livechunk" ./cmd/livechunk
bytes=$(stat -c %s "$in")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# measure NAME CMD... : appends "wall cpu rss_kb" to $work/NAME
measure() {
  local name=$1; shift
  rm -rf "$work/out"; mkdir -p "$work/out"
  sync
  /usr/bin/time -f "%e %U %S %M" -o "$work/t" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  awk '{printf "%s %.3f %s\n", $1, $2+$3, $4}' "$work/t" >> "$work/$name"
}

for i in $(seq "$N"); do
  measure cp cp "$in" "$work/out/copy.mp4"
  measure ffmpeg-fmp4 ffmpeg -nostdin -hide_banner -loglevel error -i "$in" -map 0:v -c copy -f hls -hls_time 5 \
    -hls_playlist_type vod -hls_segment_type fmp4 -hls_segment_filename "$work/out/s%d.m4s" "$work/out/index.m3u8"
  measure livechunk-fmp4 "$cache/livechunk" record -vod -format fmp4 -segment 5s "$in" "$work/out"
  measure ffmpeg-ts ffmpeg -nostdin -hide_banner -loglevel error -i "$in" -map 0:v -c copy -f hls -hls_time 5 \
    -hls_playlist_type vod -hls_segment_type mpegts -hls_segment_filename "$work/out/s%d.ts" "$work/out/index.m3u8"
  measure livechunk-ts "$cache/livechunk" record -vod -format ts -segment 5s "$in" "$work/out"
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
stat_of() { awk -v c="$2" '{print $c}' "$work/$1" | median; }

echo
echo "Input: $in ($((bytes / 1000000)) MB, video track only is remuxed), N=$N, $(nproc) cores, $(go version | awk '{print $3}'), $(ffmpeg -version | head -1 | awk '{print $1, $3}')"
echo
echo "| job | wall s (median) | CPU s | peak RSS MB | throughput MB/s | vs ffmpeg |"
echo "|---|---|---|---|---|---|"
for pair in "cp:" "ffmpeg-fmp4:ffmpeg-fmp4" "livechunk-fmp4:ffmpeg-fmp4" "ffmpeg-ts:ffmpeg-ts" "livechunk-ts:ffmpeg-ts"; do
  name=${pair%%:*}; ref=${pair#*:}
  w=$(stat_of "$name" 1); c=$(stat_of "$name" 2); r=$(stat_of "$name" 3)
  tp=$(awk -v b="$bytes" -v w="$w" 'BEGIN {printf "%.0f", (w > 0) ? b / w / 1e6 : 0}')
  vs="—"
  if [ -n "$ref" ]; then
    rw=$(stat_of "$ref" 1)
    vs=$(awk -v a="$w" -v b="$rw" 'BEGIN {printf "%.2fx", (a > 0) ? b / a : 0}')
  fi
  printf "| %s | %.3f | %.3f | %.1f | %s | %s |\n" "$name" "$w" "$c" "$(awk -v r="$r" 'BEGIN {print r / 1024}')" "$tp" "$vs"
done
