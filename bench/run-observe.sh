#!/usr/bin/env bash
# run-observe.sh - what seeing inside a program costs: edo with its always-on counters
# against a build with them compiled out (cmake -DEDO_COUNTERS=OFF), and the same server
# with its console endpoint open and a client attached, reading a snapshot every second.
#
# Usage (from the root of the checkout):
#   bash bench/run-observe.sh [-r ROUNDS] [--rt-only | --echo-only]
#
#   -r ROUNDS     rtbench rounds, each build in turn (default 5); the echo part runs
#                 REPEAT (default 3) interleaved rounds of the anchors' run-net.sh
#   --rt-only     only the runtime micro-benchmarks (rtbench -w 2)
#   --echo-only   only the echo server (echoload 64 B and 4 KiB x 64 connections)
#
# It builds build/ (counters on, as released) and build-nocounters/ (counters compiled
# out) if they are missing, then prints, per benchmark, the median of each build and the
# ratio counters/no-counters (1.00 = no cost; above 1 = slower for ns/op). The echo rows
# are run by ../shared/anchors/run-net.sh (ANCHORS to change it), beside raw epoll:
#   edo           build/examples/echo-server, counters on, nobody looking
#   edo-nocount   build-nocounters/examples/echo-server
#   edo-console   build/examples/echo-server with EDO_CONSOLE set and `nc -U` attached
# The environment passes through (SERVER_QUOTA=50, REPEAT, DURATION, ...).
#
# The goal (docs: the issue of the console): counters on and no console within 2% of the
# build without them; console attached and refreshing every second within 5%.
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
die() { printf 'bench/run-observe.sh: %s\n' "$*" >&2; exit 2; }

ROUNDS=5
RT=1
ECHO=1
while (($#)); do
    case $1 in
    -r) ROUNDS=${2:?-r needs a number}; shift 2 ;;
    --rt-only) ECHO=0; shift ;;
    --echo-only) RT=0; shift ;;
    -h | --help) sed -n '2,/^set -u/{/^set -u/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) die "unknown argument $1 (-h for help)" ;;
    esac
done

build() { # build DIR [CMAKE ARGS...]
    local dir=$1; shift
    if [ ! -x "$dir/bench/rtbench" ] || [ ! -x "$dir/examples/echo-server" ]; then
        cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEDO_BUILD_TESTS=OFF "$@" \
            >/dev/null || die "configure $dir failed"
    fi
    cmake --build "$dir" -j "$(nproc)" >/dev/null || die "build $dir failed"
}
build build
build build-nocounters -DEDO_COUNTERS=OFF

OUT=${OUT_DIR:-/tmp/edo-run-observe.$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"

if ((RT)); then
    for ((r = 1; r <= ROUNDS; r++)); do
        for b in build build-nocounters; do
            "$b/bench/rtbench" -w 2 2>/dev/null | sed "s/^/$b /" >>"$OUT/rt.txt"
        done
    done
    echo "rtbench -w 2, median of $ROUNDS rounds, ns/op"
    awk '
        { split($3, n, "="); split($5, v, "="); k = n[2]; b = $1;
          vals[b, k] = vals[b, k] " " v[2]; if (!(k in seen)) { seen[k] = 1; order[++nk] = k } }
        function median(s,   a, c, i, j, t) {
            c = split(s, a, " ");
            for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++)
                if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
            return c % 2 ? a[(c + 1) / 2] : (a[c / 2] + a[c / 2 + 1]) / 2 }
        END {
            printf "%-28s %12s %12s %7s\n", "bench", "counters", "no counters", "ratio"
            for (i = 1; i <= nk; i++) { k = order[i]
                on = median(vals["build", k]); off = median(vals["build-nocounters", k])
                printf "%-28s %12.2f %12.2f %7.3f\n", k, on, off, off > 0 ? on / off : 0 } }
    ' "$OUT/rt.txt" | tee "$OUT/rt-table.txt"
fi

if ((ECHO)); then
    ANCHORS=${ANCHORS:-$ROOT/../shared/anchors}
    [ -x "$ANCHORS/run-net.sh" ] || [ -f "$ANCHORS/run-net.sh" ] || die "no $ANCHORS/run-net.sh"
    SOCK="$OUT/console.sock"
    # The reader is forked before the exec, so that the measured pid is the server's.
    ATTACHED="sh -c '(while [ ! -S $SOCK ]; do sleep 0.05; done; exec nc -d -U $SOCK >/dev/null) & \
exec env EDO_CONSOLE=$SOCK EDO_LOG=0 build/examples/echo-server -p \$0 -w 1' PORT"
    REPEAT=${REPEAT:-3} bash "$ANCHORS/run-net.sh" raw 2>&1 \
        "edo-echo=build/examples/echo-server -p PORT -w 1" \
        "edo-nocount-echo=build-nocounters/examples/echo-server -p PORT -w 1" \
        "edo-console-echo=$ATTACHED" | tee "$OUT/echo.txt"
fi
echo "results in $OUT"
