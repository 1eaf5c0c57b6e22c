#!/usr/bin/env bash
# Stitching a finished recording into one faststart MP4, in the same run,
# alternating, median of N runs, for 1 minute and 30 minutes of segments
# (fMP4 and MPEG-TS):
#
#   stitch  livechunk's stitch package (bench/stitchbench, the
#           code path of "livechunk stitch -o OUT PLAYLIST")
#   ffmpeg  ffmpeg -i index.m3u8 -c copy -movflags +faststart OUT.mp4
#   cat     cat of the same segment bytes (init + segments) - the I/O floor;
#           its output is not a progressive MP4
#
#   bench/stitch.sh [N]       (default N=5; inputs are generated once into bench/.cache/stitch)
#
# Prints a Markdown table: wall time, CPU time (user+sys), peak RSS, and
# throughput (segment bytes read per second of wall time).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-5}
SEG=${SEG:-2s}
cache=bench/.cache/stitch
mkdir -p "$cache"
go build -o "$cache/stitchbench" ./bench/stitchbench

src="$cache/640x360p30-1800s.mp4"
if [ ! -s "$src" ]; then
  echo "generating $src (30 min 640x360 30 fps H.264 High, B-frames, 1 Mbit/s)..." >&2
  ffmpeg -hide_banner -nostdin -loglevel error -y -f lavfi -i "testsrc2=size=640x360:rate=30:duration=1800" \
    -c:v libx264 -profile:v high -preset veryfast -b:v 1M -x264-params keyint=60:min-keyint=60:scenecut=0:bframes=3 \
    -pix_fmt yuv420p "$src.tmp.mp4"
  mv "$src.tmp.mp4" "$src"
fi
if [ ! -s "$cache/640x360p30-60s.mp4" ]; then
  ffmpeg -hide_banner -nostdin -loglevel error -y -i "$src" -t 60 -c copy "$cache/640x360p30-60s.mp4"
fi
for len in 60 1800; do
  for fmt in fmp4 ts; do
    d="$cache/rec-$fmt-$len"
    if [ ! -s "$d/index.m3u8" ]; then
      echo "recording $d ($SEG segments)..." >&2
      rm -rf "$d"
      "$cache/stitchbench" -record -format "$fmt" -segment "$SEG" "$cache/640x360p30-$len"s.mp4 "$d" 2>/dev/null
    fi
  done
done

work=$(mktemp -d "${TMPDIR:-/tmp}/stitchbench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# segments DIR: the init section (if any) and the segments, in playlist order.
segments() {
  local d=$1
  { grep -o 'URI="[^"]*"' "$d/index.m3u8" || true; } | head -1 | sed 's/URI="\(.*\)"/\1/' | sed "s|^|$d/|"
  grep -v '^#' "$d/index.m3u8" | grep . | sed "s|^|$d/|"
}

# measure NAME CMD... : appends "wall cpu rss_kb" to $work/NAME (wall time
# from the shell's clock in ns: /usr/bin/time's %e has 10 ms steps)
measure() {
  local name=$1; shift
  rm -f "$work/out.mp4"
  local t0 t1
  t0=$(date +%s%N)
  /usr/bin/time -f "%U %S %M" -o "$work/t" "$@" 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  t1=$(date +%s%N)
  awk -v ns=$((t1 - t0)) '{printf "%.4f %.3f %s\n", ns / 1e9, $1+$2, $3}' "$work/t" >> "$work/$name"
}

for i in $(seq "$N"); do
  for len in 60 1800; do
    for fmt in fmp4 ts; do
      d="$cache/rec-$fmt-$len"
      key="$fmt-$len"
      mapfile -t files < <(segments "$d")
      [ "${#files[@]}" -gt 1 ] || { echo "no segments in $d" >&2; exit 1; }
      measure "cat-$key" sh -c 'cat "$@" > "'"$work/out.mp4"'"' sh "${files[@]}"
      measure "ffmpeg-$key" ffmpeg -nostdin -hide_banner -loglevel error -y -i "$d/index.m3u8" -c copy -movflags +faststart "$work/out.mp4"
      measure "stitch-$key" "$cache/stitchbench" -o "$work/out.mp4" "$d/index.m3u8"
    done
  done
done

# Sanity: the stitched file of the longest input has every packet.
d="$cache/rec-fmp4-1800"
"$cache/stitchbench" -o "$work/check.mp4" "$d/index.m3u8" 2>/dev/null
want=$(ffprobe -v error -select_streams v:0 -count_packets -show_entries stream=nb_read_packets -of csv=p=0 "$src")
got=$(ffprobe -v error -select_streams v:0 -count_packets -show_entries stream=nb_read_packets -of csv=p=0 "$work/check.mp4")
[ "$want" = "$got" ] || { echo "stitched file has $got packets, input $want" >&2; exit 1; }

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
stat_of() { awk -v c="$2" '{print $c}' "$work/$1" | median; }

echo
echo "| input | job | wall s (median) | CPU s | peak RSS MB | throughput MB/s | vs ffmpeg |"
echo "|---|---|---|---|---|---|---|"
for len in 60 1800; do
  for fmt in fmp4 ts; do
    key="$fmt-$len"
    bytes=$(segments "$cache/rec-$fmt-$len" | xargs stat -c %s | awk '{s+=$1} END {print s}')
    ffw=$(stat_of "ffmpeg-$key" 1)
    for job in cat ffmpeg stitch; do
      w=$(stat_of "$job-$key" 1); c=$(stat_of "$job-$key" 2); r=$(stat_of "$job-$key" 3)
      awk -v len="$len" -v fmt="$fmt" -v mb="$bytes" -v job="$job" -v w="$w" -v c="$c" -v r="$r" -v ff="$ffw" 'BEGIN {
        tp = (w > 0) ? mb / 1e6 / w : 0
        rel = (job == "cat") ? "—" : sprintf("%.2fx", ff / w)
        printf "| %d min %s (%.0f MB) | %s | %.3f | %.2f | %.1f | %.0f | %s |\n", len / 60, fmt, mb / 1e6, job, w, c, r / 1024, tp, rel
      }'
    done
  done
done
