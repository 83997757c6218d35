#!/usr/bin/env bash
# Runs every fuzz target of the module for a while each, one after the
# other, and prints a summary.
#
#   ./fuzz/run.sh [DURATION] [TARGET-REGEXP]     e.g. ./fuzz/run.sh 60s
#
# DURATION is go test's -fuzztime (default 60s); TARGET-REGEXP limits the
# targets (default: all). The targets are found with
# `go test -list 'Fuzz.*'` in every package of the module (a package that
# does not build is reported and skipped).
#
# A failing input is written by `go test -fuzz` to the package's
# testdata/fuzz/<Target>/ directory, where `go test` then runs it as a
# regression seed: commit it with the fix. The summary lists such new
# files. The generated corpus stays in go's cache ($(go env GOCACHE)/fuzz).
#
# Environment: FUZZ_TMPDIR (default /dev/shm when writable) is where the
# targets create their temporary log directories: a RAM file system makes
# the targets that write logs (FuzzOpenDir, FuzzReplayModel) several times
# faster. FUZZ_PARALLEL sets -parallel (default: go's, GOMAXPROCS).
# FUZZ_MINIMIZE sets -fuzzminimizetime (default 100x, i.e. 100 runs, rather
# than go's 60s: minimizing each new interesting input of kilobytes byte by
# byte otherwise stalls the run for up to a minute, as it did FuzzOpenDir's).
set -u -o pipefail

dur=${1:-60s}
only=${2:-.}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2

base=${FUZZ_TMPDIR:-}
if [[ -z $base && -d /dev/shm && -w /dev/shm ]]; then
	base=/dev/shm
fi
# A directory of this run's own, removed at the end: the fuzzing processes
# go test kills when the time is up leave their temporary directories.
tmp=$(mktemp -d "${base:-${TMPDIR:-/tmp}}/evlog-fuzz.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
par=()
if [[ -n ${FUZZ_PARALLEL:-} ]]; then
	par=(-parallel "$FUZZ_PARALLEL")
fi
logdir=$(mktemp -d "${TMPDIR:-/tmp}/evlog-fuzz-run.XXXXXX")

# The targets, as "package target" lines.
targets=()
skipped=()
for pkg in $(go list ./...); do
	if ! out=$(go test -list '^Fuzz' "$pkg" 2>&1); then
		skipped+=("$pkg")
		continue
	fi
	for t in $(grep -E '^Fuzz' <<<"$out" | grep -E -- "$only"); do
		targets+=("$pkg $t")
	done
done
if ((${#targets[@]} == 0)); then
	echo "no fuzz targets match '$only'" >&2
	exit 2
fi
echo "fuzzing ${#targets[@]} targets for $dur each (logs in $logdir, temporary directories in $tmp)"

results=()
failed=0
for entry in "${targets[@]}"; do
	read -r pkg t <<<"$entry"
	dir=$(go list -f '{{.Dir}}' "$pkg")
	corpus="$dir/testdata/fuzz/$t"
	before=$(ls "$corpus" 2>/dev/null | sort)
	log="$logdir/${pkg##*/}.$t.log"
	printf '%-50s ' "${pkg#github.com/evlog/evlog}/$t"
	start=$SECONDS
	if TMPDIR=$tmp go test -run '^$' -fuzz "^$t\$" -fuzztime "$dur" -fuzzminimizetime "${FUZZ_MINIMIZE:-100x}" "${par[@]}" "$pkg" >"$log" 2>&1; then
		status=ok
	else
		status=FAIL
		failed=$((failed + 1))
	fi
	# The last progress line: "fuzz: elapsed: 1m0s, execs: 123 (2/sec), new interesting: 4 (total: 30)".
	progress=$(grep -E '^fuzz: elapsed' "$log" | tail -1 | sed -E 's/^fuzz: elapsed: [^,]*, //')
	new=$(comm -13 <(echo "$before") <(ls "$corpus" 2>/dev/null | sort) | grep -v '^$' || true)
	line="$status  $((SECONDS - start))s  ${progress:-no progress line}"
	if [[ -n $new ]]; then
		line+="  NEW CRASHER(S): $(sed "s|^|$corpus/|" <<<"$new" | tr '\n' ' ')"
	fi
	echo "$line"
	results+=("${pkg#github.com/evlog/evlog}/$t: $line")
	if [[ $status == FAIL ]]; then
		grep -E -m 5 -A 8 -- '--- FAIL|panic:|fatal error' "$log" | sed 's/^/    /'
	fi
done

echo
echo "summary: ${#targets[@]} targets, $failed failed (full logs: $logdir)"
for p in "${skipped[@]}"; do
	echo "  skipped $p: its tests do not build (go test -list failed)"
done
((failed == 0))
