#!/usr/bin/env bash
# What "an acknowledgement means durable" (issue 18) costs a chunk upload:
# `livechunk serve` built from 1ff5d07 (before; a chunk was answered once
# it was fed to the chunker) against HEAD (after; answered once its
# segments, the playlist listing them and the stream's state are in the
# store), in one run, alternating, with `benchtool chunks`:
#
#   a. 1 device, 30 chunks back to back (pace 0): the ack latency alone;
#   b. 50 devices at real-time pace (a 2 s chunk every 2 s), 15 chunks each;
#   c. 200 devices at real-time pace, 10 chunks each (-max-streams 256 on
#      both binaries: the default, 64, would refuse 136 of them);
#
# each on a directory store and on versitygw (a real S3 server, posix
# backend, started fresh for every run). Then one run of each binary with
# serve -v on a and b, both stores, whose logs say where the time goes
# (benchtool chunklog).
#
#   bench/ack.sh [REPS_A REPS_B REPS_C]    (default 5 3 2; about 22 minutes)
#   SKIP_C=1 bench/ack.sh                  leaves c out
#   C_STORES=dir, SKIP_V=1 (no -v runs), OUT=DIR (default bench/.cache/ack):
#   OUT=bench/.cache/ack-c C_STORES=dir SKIP_V=1 bench/ack.sh 0 0 3  (c alone, again)
#   NEW=COMMIT: the "after" binary from COMMIT instead of HEAD
#
# Inputs (generated once into bench/.cache/ack-chunks): 15 chunks of 2 s,
# each encoded on its own and starting at 0 as a phone's are: 1280x720
# 30 fps H.264 High at 4 Mbit/s (keyframe every second, 3 B-frames) and
# 128 kbit/s AAC at 48 kHz, faststart; about 1.1 MB each. Prints Markdown
# tables; per-run details (answers, errors, serve's warnings) go to
# bench/.cache/ack/details.log, every upload's latency to
# bench/.cache/ack/raw.tsv.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS_A=${1:-5} REPS_B=${2:-3} REPS_C=${3:-2}
OLD=1ff5d07
cache=bench/.cache
out=${OUT:-$cache/ack}
chunkdir=$cache/ack-chunks
mkdir -p "$out" "$chunkdir"

# Chunks.
for i in $(seq 0 14); do
  f=$(printf '%s/chunk%02d.mp4' "$chunkdir" "$i")
  [ -s "$f" ] && continue
  echo "generating $f..." >&2
  ffmpeg -hide_banner -nostdin -loglevel error -y \
    -f lavfi -i "testsrc2=size=1280x720:rate=30:duration=$((2 * i + 2))" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=$((2 * i + 2))" \
    -ss $((2 * i)) -t 2 -map 0:v -map 1:a \
    -c:v libx264 -profile:v high -preset veryfast -b:v 4M -maxrate 4M -bufsize 4M \
    -x264-params keyint=30:min-keyint=30:scenecut=0:bframes=3 -pix_fmt yuv420p \
    -c:a aac -b:a 128k -movflags +faststart "$f.tmp.mp4"
  mv "$f.tmp.mp4" "$f"
done

# Binaries: both from clean worktrees (the working tree may hold someone's
# unfinished changes), and benchtool from this tree.
NEW=${NEW:-$(git rev-parse --short HEAD)}
build() { # build COMMIT OUT
  local wt=/tmp/lc-$1
  git worktree remove --force "$wt" 2>/dev/null || true
  git worktree add --detach "$wt" "$1" >/dev/null
  (cd "$wt" && go build -o "$OLDPWD/$2" ./cmd/livechunk)
  git worktree remove --force "$wt"
}
build "$OLD" "$out/livechunk-$OLD"
build "$NEW" "$out/livechunk-$NEW"
go build -o "$out/benchtool" ./bench/benchtool
bt=$out/benchtool
: > "$out/raw.tsv"
: > "$out/details.log"
: > "$out/rows.md"

echo "before: $OLD, after: $NEW (HEAD); $(nproc) cores; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
hdr='| binary | store | devices | uploads | p50 ms | p90 ms | p99 ms | max ms | errors | serve peak RSS MB | serve CPU s | gateway CPU s | load (1 min) |'
sep='|---|---|---|---|---|---|---|---|---|---|---|---|---|'
echo "$hdr"; echo "$sep"
run() { # run VERSION STORE ARGS...
  local v=$1 store=$2 label; shift 2
  if [ "$v" = "$OLD" ]; then label="before $v"; else label="after $v"; fi
  echo "== $(date +%T) $v $store $*" >> "$out/details.log"
  if ! "$bt" chunks -serve "$out/livechunk-$v" -label "$label" -store "$store" -raw "$out/raw.tsv" "$@" "$chunkdir" \
    2>>"$out/details.log" | tee -a "$out/rows.md"; then
    echo "| $label | $store | $* | failed: $(tail -1 "$out/details.log") |" | tee -a "$out/rows.md"
  fi
}
scenario() { # scenario REPS STORE ARGS...
  local reps=$1 store=$2; shift 2
  for r in $(seq "$reps"); do
    if [ $((r % 2)) = 1 ]; then run "$OLD" "$store" "$@"; run "$NEW" "$store" "$@"
    else run "$NEW" "$store" "$@"; run "$OLD" "$store" "$@"; fi
  done
}
for store in dir versitygw; do scenario "$REPS_A" "$store" -devices 1 -chunks 30 -pace 0; done
for store in dir versitygw; do scenario "$REPS_B" "$store" -devices 50 -chunks 15 -pace 2s; done
if [ -z "${SKIP_C:-}" ]; then
  for store in ${C_STORES:-dir versitygw}; do scenario "$REPS_C" "$store" -devices 200 -chunks 10 -pace 2s -max-streams 256; done
fi
echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "Pooled over the runs (every upload of every run of a scenario):"
echo
"$bt" chunkpool "$out/raw.tsv"

# Where the time goes: serve -v logs every request (its time in the
# server) and every segment upload (its time).
[ -n "${SKIP_V:-}" ] && exit 0
echo
for args in "-devices 1 -chunks 30 -pace 0" "-devices 50 -chunks 15 -pace 2s"; do
  for store in dir versitygw; do
    for v in "$OLD" "$NEW"; do
      log=$out/serve-$v-$store-$(echo "$args" | awk '{print $2}').log
      "$bt" chunks -serve "$out/livechunk-$v" -label "$v" -store "$store" -log "$log" $args "$chunkdir" >/dev/null 2>>"$out/details.log" || true
      echo "serve -v, $v, $store, $args:"
      "$bt" chunklog "$log"
      echo
    done
  done
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
