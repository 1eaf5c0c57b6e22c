#!/usr/bin/env bash
# The performance benchmarks of BENCHMARKS.md, in one run:
#
#   1. remux to HLS VOD: `livechunk record -vod` (fMP4, MPEG-TS; the default
#      build and one with -tags livechunk_nocloud) against
#      `ffmpeg -c copy -f hls -hls_playlist_type vod` with the same segment
#      type and `cp` of the same input bytes;
#   2. stitch a recording into one faststart MP4: `livechunk stitch` against
#      `ffmpeg -c copy -movflags +faststart` and `cat` of the same segment
#      bytes;
#      both on 120 s of 1280x720 30 fps and 60 s of 1920x1080 60 fps H.264
#      High with B-frames plus AAC, jobs alternating, median of N runs; the
#      720p input also as MPEG-TS (remuxed by ffmpeg), record jobs only;
#   3. memory against input length: `livechunk record -vod` and ffmpeg on
#      real 30 s, 5 min and 30 min files (the 30 s input repeated with
#      `ffmpeg -stream_loop -c copy`; 1.4 GB in bench/.cache);
#   4. Write latency of a live 1080p60 stream while every upload takes 3 s;
#   5. 50 concurrent live 720p streams paced to real time in one process;
#   6. 50 live MPEG-TS pushes over HTTP into the server, in real time.
#
#   bench/run.sh [N]        (default N=5; inputs are generated once into bench/.cache)
#   SKIP_LIVE=1 bench/run.sh  skips 4 to 6 (they take about 3 minutes of wall time)
#   SKIP_MEM=1 bench/run.sh   stops after 1 and 2 (the throughput table and chart)
#
# Prints Markdown tables; writes the throughput rows to bench/.cache/results.tsv
# and the chart bench/throughput.svg. Wall time comes from the shell's clock
# (ns), CPU time (user+sys) and peak RSS from GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-5}
cache=bench/.cache
mkdir -p "$cache"

gen() { # gen NAME W H FPS SECONDS KEYINT BITRATE
  local out="$cache/$1.mp4"
  [ -s "$out" ] && return
  echo "generating $out ($5 s ${2}x$3 $4 fps H.264 High with B-frames, AAC)..." >&2
  ffmpeg -hide_banner -nostdin -loglevel error -y -f lavfi -i "testsrc2=size=${2}x$3:rate=$4:duration=$5" \
    -f lavfi -i "sine=frequency=440:duration=$5" -map 0:v -map 1:a \
    -c:v libx264 -profile:v high -preset veryfast -b:v "$7" -x264-params "keyint=$6:bframes=3" \
    -c:a aac -b:a 128k -pix_fmt yuv420p "$out.tmp.mp4"
  mv "$out.tmp.mp4" "$out"
}
gen 720p30-120s 1280 720 30 120 60 5M
gen 1080p60-60s 1920 1080 60 60 120 8M
[ -s "$cache/720p30-30s.mp4" ] || ffmpeg -hide_banner -nostdin -loglevel error -y -i "$cache/720p30-120s.mp4" -t 30 -c copy "$cache/720p30-30s.mp4"
# The 720p input as MPEG-TS too (same packets, remuxed by ffmpeg): record
# jobs only. An input name ending in -ts is read from NAME.ts.
[ -s "$cache/720p30-120s.ts" ] || ffmpeg -hide_banner -nostdin -loglevel error -y -i "$cache/720p30-120s.mp4" -map 0 -c copy "$cache/720p30-120s.ts"
inputs="720p30-120s 1080p60-60s 720p30-120s-ts"
srcof() { case $1 in *-ts) echo "$cache/${1%-ts}.ts" ;; *) echo "$cache/$1.mp4" ;; esac; }

go build -o "$cache/livechunk" ./cmd/livechunk
go build -tags livechunk_nocloud -o "$cache/livechunk-nocloud" ./cmd/livechunk
go build -o "$cache/benchtool" ./bench/benchtool
lc="$cache/livechunk"
lcn="$cache/livechunk-nocloud"
bt="$cache/benchtool"

# Peak RSS counts the pages of each binary that are mapped, and how many a
# page fault maps depends on the folios the page cache holds the file in,
# which depends on how the file got there (written by the linker, copied,
# read): the same binary measured 33 or 39 MB on this machine. When the
# caches can be dropped (root), every binary and input is evicted and
# read back the same way, the binaries by running them.
settle() {
  sync
  if [ -w /proc/sys/vm/drop_caches ]; then
    echo 3 > /proc/sys/vm/drop_caches
  else
    echo "note: cannot drop the page cache (not root); peak RSS may vary by a few MB" >&2
  fi
  cat "$cache"/*.mp4 "$cache"/*.ts > /dev/null
  "$lc" version > /dev/null; "$lcn" version > /dev/null; ffmpeg -version > /dev/null; "$bt" > /dev/null 2>&1 || true
}
work=$(mktemp -d "${TMPDIR:-/tmp}/lcbench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# measure NAME CMD... : appends "wall cpu rss_kb" to $work/NAME.
measure() {
  local name=$1; shift
  rm -rf "$work/out"; mkdir -p "$work/out" "$work/$(dirname "$name")"
  sync
  local t0 t1
  t0=$(date +%s%N)
  /usr/bin/time -f "%U %S %M" -o "$work/t" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  t1=$(date +%s%N)
  awk -v ns=$((t1 - t0)) '{printf "%.4f %.3f %s\n", ns / 1e9, $1+$2, $3}' "$work/t" >> "$work/$name"
}

# measure_inproc NAME CMD... : appends "wall 0 0" to $work/NAME, wall being
# what CMD prints: the time of one run inside a process that has run the
# same job before (benchtool record -warm), i.e. the library's cost in a
# long-lived process, without the process's start. CPU and RSS are not
# taken (the process ran the job three times).
measure_inproc() {
  local name=$1; shift
  rm -rf "$work/out"; mkdir -p "$work/$(dirname "$name")"
  sync
  local w
  w=$("$@" 2>"$work/err") || { cat "$work/err" >&2; exit 1; }
  echo "$w 0 0" >> "$work/$name"
}

# The recordings that the stitch jobs join (made once, by livechunk).
for in in $inputs; do
  [ "${in%-ts}" = "$in" ] || continue
  for fmt in fmp4 ts; do
    d="$cache/rec-$in-$fmt"
    if [ ! -s "$d/index.m3u8" ]; then
      rm -rf "$d"
      "$lc" record -vod -format "$fmt" -segment 5s "$cache/$in.mp4" "$d" >/dev/null
    fi
  done
done
# segments DIR: the init section (if any) and the segments, in playlist order.
segments() {
  local d=$1
  { grep -o 'URI="[^"]*"' "$d/index.m3u8" || true; } | head -1 | sed 's/URI="\(.*\)"/\1/' | sed "s|^|$d/|"
  grep -v '^#' "$d/index.m3u8" | grep . | sed "s|^|$d/|"
}

settle
for i in $(seq "$N"); do
  for in in $inputs; do
    src=$(srcof "$in")
    measure "$in/record/cp" cp "$src" "$work/out/copy.mp4"
    for fmt in fmp4 ts; do
      seg=$fmt; [ "$fmt" = ts ] && seg=mpegts
      # ffmpeg 5.1 does not convert ADTS to MP4's AAC framing by itself.
      bsf=(); [ "$fmt" = fmp4 ] && [ "${in%-ts}" != "$in" ] && bsf=(-bsf:a aac_adtstoasc)
      measure "$in/record-$fmt/ffmpeg" ffmpeg -nostdin -hide_banner -loglevel error -i "$src" -map 0 -c copy "${bsf[@]}" \
        -f hls -hls_time 5 -hls_playlist_type vod -hls_segment_type "$seg" \
        -hls_segment_filename "$work/out/s%d.$fmt" "$work/out/index.m3u8"
      measure "$in/record-$fmt/livechunk" "$lc" record -vod -format "$fmt" -segment 5s "$src" "$work/out"
      measure "$in/record-$fmt/livechunk-nocloud" "$lcn" record -vod -format "$fmt" -segment 5s "$src" "$work/out"
      measure_inproc "$in/record-$fmt/library" "$bt" record -warm 2 -format "$fmt" "$src" "$work/out"
    done
    [ "${in%-ts}" = "$in" ] || continue # no recordings of the TS input to stitch
    for fmt in fmp4 ts; do
      d="$cache/rec-$in-$fmt"
      mapfile -t files < <(segments "$d")
      measure "$in/stitch-$fmt/cat" sh -c 'cat "$@" > "'"$work/out/cat.mp4"'"' sh "${files[@]}"
      measure "$in/stitch-$fmt/ffmpeg" ffmpeg -nostdin -hide_banner -loglevel error -i "$d/index.m3u8" -c copy \
        -movflags +faststart "$work/out/out.mp4"
      measure "$in/stitch-$fmt/livechunk" "$lc" stitch -o "$work/out/out.mp4" "$d/index.m3u8"
      measure "$in/stitch-$fmt/livechunk-nocloud" "$lcn" stitch -o "$work/out/out.mp4" "$d/index.m3u8"
    done
  done
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
stat_of() { awk -v c="$2" '{print $c}' "$work/$1" | median; }

echo
echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/^Mem:/ {print $2}') GiB;" \
  "$(go version | awk '{print $3}'), $(ffmpeg -version | head -1 | awk '{print $1, $3}'); N=$N; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| input | job | tool | wall s (median) | wall s (min) | CPU s | peak RSS MB | throughput MB/s | vs ffmpeg | vs floor |"
echo "|---|---|---|---|---|---|---|---|---|---|"
: > "$cache/results.tsv"
for in in $inputs; do
  inbytes=$(stat -c %s "$(srcof "$in")")
  jobs="record-fmp4 record-ts stitch-fmp4 stitch-ts"
  [ "${in%-ts}" = "$in" ] || jobs="record-fmp4 record-ts"
  for job in $jobs; do
    case $job in
      record-*) bytes=$inbytes; floor="$in/record/cp"; fname=cp ;;
      stitch-*) bytes=$(segments "$cache/rec-$in-${job#stitch-}" | xargs stat -c %s | awk '{s+=$1} END {print s}')
                floor="$in/$job/cat"; fname=cat ;;
    esac
    ffw=$(stat_of "$in/$job/ffmpeg" 1)
    flw=$(stat_of "$floor" 1)
    tools="$fname ffmpeg livechunk livechunk-nocloud"
    [ "$fname" = cp ] && tools="$tools library"
    for tool in $tools; do
      key="$in/$job/$tool"; [ "$tool" = cp ] && key=$floor
      w=$(stat_of "$key" 1); c=$(stat_of "$key" 2); r=$(stat_of "$key" 3)
      wmin=$(awk '{print $1}' "$work/$key" | sort -n | head -1)
      awk -v inp="$in" -v job="$job" -v tool="$tool" -v mb="$bytes" -v w="$w" -v wmin="$wmin" -v c="$c" -v r="$r" -v ff="$ffw" -v fl="$flw" \
        -v tsv="$cache/results.tsv" 'BEGIN {
        tp = (w > 0) ? mb / 1e6 / w : 0
        rel = (tool == "ffmpeg" || tool == "cp" || tool == "cat") ? "—" : sprintf("%.2fx", ff / w)
        flr = (tool == "cp" || tool == "cat") ? "—" : sprintf("%.2fx", w / fl)
        cpu = (tool == "library") ? "—" : sprintf("%.2f", c)
        rss = (tool == "library") ? "—" : sprintf("%.1f", r / 1024)
        printf "| %s (%.0f MB) | %s | %s | %.3f | %.3f | %s | %s | %.0f | %s | %s |\n", inp, mb / 1e6, job, tool, w, wmin, cpu, rss, tp, rel, flr
        printf "%s %s\t%s\t%.1f\n", inp, job, tool, tp >> tsv
      }'
    done
  done
done
"$bt" chart "$cache/results.tsv" bench/throughput.svg
# Every run's wall time, in the order run, for a look at the spread.
(cd "$work" && find . -type f -path './*/*/*' | sort | while read -r f; do
  printf '%s\t%s\n' "${f#./}" "$(awk '{printf "%s ", $1}' "$f")"
done) > "$cache/raw.tsv"
echo
echo "(vs ffmpeg: ffmpeg's wall time / livechunk's; vs floor: the tool's wall time / cp's or cat's. Chart: bench/throughput.svg)"

[ -n "${SKIP_MEM:-}" ] && exit 0

# 3. Peak memory against input length: `livechunk record -vod` and ffmpeg
# on real files of 30 s, 5 min and 30 min of 720p30 (the 30 s input
# repeated 10 and 60 times with `ffmpeg -stream_loop N -c copy`, video and
# audio, one moov each: 190 MB and 1.16 GB, made once in bench/.cache).
for n in 10 60; do
  f="$cache/720p30-$((n / 2))min.mp4"
  [ -s "$f" ] || { ffmpeg -hide_banner -nostdin -loglevel error -y -stream_loop $((n - 1)) -i "$cache/720p30-30s.mp4" \
    -map 0 -c copy "$f.tmp.mp4" && mv "$f.tmp.mp4" "$f"; }
done
settle
echo
echo "| input | format | tool | wall s | CPU s | peak RSS MB |"
echo "|---|---|---|---|---|---|"
for fmt in fmp4 ts; do
  seg=$fmt; [ "$fmt" = ts ] && seg=mpegts
  for len in 30s 5min 30min; do
    for tool in livechunk ffmpeg; do
      rm -f "$work/mem"
      for i in 1 2 3; do
        case $tool in
          livechunk) measure mem "$lc" record -vod -format "$fmt" -segment 5s "$cache/720p30-$len.mp4" "$work/out" ;;
          ffmpeg) measure mem ffmpeg -nostdin -hide_banner -loglevel error -i "$cache/720p30-$len.mp4" \
            -map 0 -c copy -f hls -hls_time 5 -hls_playlist_type vod -hls_segment_type "$seg" \
            -hls_segment_filename "$work/out/s%d.$fmt" "$work/out/index.m3u8" ;;
        esac
      done
      w=$(stat_of mem 1); c=$(stat_of mem 2); r=$(stat_of mem 3)
      awk -v len="$len" -v fmt="$fmt" -v tool="$tool" -v w="$w" -v c="$c" -v r="$r" 'BEGIN {
        printf "| %s | %s | %s | %.2f | %.2f | %.1f |\n", len, fmt, tool, w, c, r / 1024
      }'
    done
  done
done
rm -rf "$work/out"
echo "(median of 3)"

[ -n "${SKIP_LIVE:-}" ] && exit 0

# 4. Write latency, live 1080p60, uploads taking 3 s each: at real time
# (one upload in flight at a time), and at 4x real time (several in flight,
# below the 64 MiB bound).
echo
echo "| pace | call | p50 ms | p99 ms | p99.9 ms | max ms |"
echo "|---|---|---|---|---|---|"
"$bt" latency -upload 3s -for 60s "$cache/1080p60-60s.mp4" | sed 's/^|/| 1x, 60 s |/'
"$bt" latency -upload 3s -for 15s -speed 4 "$cache/1080p60-60s.mp4" | sed 's/^|/| 4x, 15 s |/'

# 5. 50 live 720p streams in one process.
echo
echo "| streams | each for | shared chunker.Pool | wall s | CPU s | CPU use of $(nproc) cores | peak RSS MB | video samples | worst lateness ms |"
echo "|---|---|---|---|---|---|---|---|---|"
for shared in true false; do
  rm -rf "$work/streams"
  "$bt" streams -n 50 -for 30s -shared-pool=$shared "$cache/720p30-120s.mp4" "$work/streams"
done

# 6. 50 live MPEG-TS pushes over HTTP into the server (as `livechunk serve`).
echo
echo "| pushes | each for | wall s | CPU s | CPU use of $(nproc) cores | peak RSS MB | segments recorded |"
echo "|---|---|---|---|---|---|---|"
rm -rf "$work/push"
"$bt" push -n 50 -for 30s "$cache/720p30-120s.ts" "$work/push"
rm -rf "$work/push"
