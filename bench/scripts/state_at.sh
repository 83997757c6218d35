#!/usr/bin/env bash
# state_at.sh: `evlogctl state DIR --at T` end to end (process start to
# exit) with snapshots vs --no-snapshot, in the same run (issue 17, item 2).
#
#   bench/scripts/state_at.sh EVENTS [RUNS]
#
# Builds evlogctl once, loads EVENTS events (batches of 1,000 over 1,000
# streams, ~110-byte events, SyncNever) taking a stats snapshot every
# 100,000 events, picks T three quarters into the last interval (the
# recorded time of event EVENTS-25,000), then times each command RUNS times
# (default 3) and prints the median with min–max in milliseconds and the
# ratio of the medians.
set -euo pipefail
events=${1:?usage: state_at.sh EVENTS [RUNS]}
runs=${2:-3}
every=100000
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bin=$work/evlogctl
(cd "$root" && go build -o "$bin" ./cmd/evlogctl)
dir=$work/log
mkdir "$dir"
for ((n = 0; n < events; n += every)); do
	"$bin" load "$dir" --count "$every" --batch 1000 --sync never --streams 1000 --size 60 >/dev/null
	"$bin" snapshot "$dir" >/dev/null
done
seq=$((events - every / 4))
t=$("$bin" dump "$dir" --from "$seq" --to "$seq" --format jsonl | sed 's/.*"time":"\([^"]*\)".*/\1/')
echo "events=$events snapshot-every=$every T=$t (seq $seq)"

# run runs its arguments once and prints "WALL CPU" in microseconds:
# process start to exit, and user+system time (less sensitive to a loaded
# machine).
run() {
	local a b t
	t=$(mktemp)
	a=$(date +%s%N)
	/usr/bin/time -f "%U %S" -o "$t" "$@" >/dev/null
	b=$(date +%s%N)
	awk -v w=$(((b - a) / 1000)) '{printf "%d %d\n", w, ($1 + $2) * 1000000}' "$t"
	rm -f "$t"
}
# stats prints "median min max" (ms, 2 decimals) of microsecond values.
stats() {
	sort -n | awk '{v[NR]=$1} END {printf "%.2f %.2f %.2f\n", v[int((NR+1)/2)]/1000, v[1]/1000, v[NR]/1000}'
}
with=() without=()
for ((i = 0; i < runs; i++)); do # interleaved: the same conditions for both
	with+=("$(run "$bin" state "$dir" --at "$t" --format json)")
	without+=("$(run "$bin" state "$dir" --at "$t" --no-snapshot --format json)")
done
col() { printf '%s\n' "${@:2}" | awk -v c="$1" '{print $c}' | stats; }
read -r wm wl wh < <(col 1 "${with[@]}")
read -r nm nl nh < <(col 1 "${without[@]}")
read -r cwm cwl cwh < <(col 2 "${with[@]}")
read -r cnm cnl cnh < <(col 2 "${without[@]}")
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "state --at T:               wall median ${wm} ms (min ${wl}, max ${wh}); cpu median ${cwm} ms (min ${cwl}, max ${cwh})"
echo "state --at T --no-snapshot: wall median ${nm} ms (min ${nl}, max ${nh}); cpu median ${cnm} ms (min ${cnl}, max ${cnh})"
awk -v a="$cnm" -v b="$cwm" 'BEGIN {printf "cpu speed-up: %.1fx (ratio of medians)\n", a / b}'
awk -v a="$nm" -v b="$wm" 'BEGIN {printf "wall speed-up: %.1fx (ratio of medians)\n", a / b}'
"$bin" state "$dir" --at "$t" --dry-run --format json | head -c 400; echo
