#!/usr/bin/env bash
# run-echo.sh - edo's echo server against raw epoll and Tokio, measured by the anchors'
# run-net.sh (../shared/anchors/run-net.sh, next to this checkout).
#
# Usage (from anywhere; it works in the root of the checkout):
#   bash bench/run-echo.sh [--idle] [--echo-only] [ROW ...]
#   bash bench/run-echo.sh -h
#
#   (no option)   throughput: rows raw and tokio (built-in: echo and HTTP) and
#                 edo-echo=build/examples/echo-server -p PORT -w 1
#   --idle        memory per idle connection instead (run-net.sh --idle): server RSS
#                 growth per connection with 10000 idle connections, never used and
#                 after one 64 B echo
#   --echo-only   raw and tokio as echo-only rows (skips their HTTP tests: quicker)
#   ROW ...       more rows for run-net.sh, e.g. uv go
#
# The environment passes through to run-net.sh, e.g. SERVER_QUOTA=50 (cap each server
# at half a core: the fair comparison, needs root), REPEAT=3, DURATION, CONNS,
# IDLE_CONNS, ANCHOR_BUILD. ANCHORS (default ../shared/anchors) is where run-net.sh
# is; EDO_SERVER (default build/examples/echo-server) the server to measure.
# OUT_DIR (default /tmp/edo-run-echo.YYYYmmdd-HHMMSS) gets the tables and logs; the
# last line printed says where they are.
#
# The goal (bench/README.md): echo 64 B >= 1.00x raw and >= 1.05x tokio, measured with
#   SERVER_QUOTA=50 REPEAT=3 bash bench/run-echo.sh
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2

usage() { sed -n '2,/^set -u/{/^set -u/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }
die() { printf 'run-echo.sh: %s\n' "$*" >&2; exit 2; }

IDLE=()
ECHO_ONLY=0
EXTRA=()
while (($#)); do
    case $1 in
    -h|--help) usage; exit 0 ;;
    --idle) IDLE=(--idle) ;;
    --echo-only) ECHO_ONLY=1 ;;
    -*) die "unknown option $1 (see -h)" ;;
    *) EXTRA+=("$1") ;;
    esac
    shift
done

ANCHORS=${ANCHORS:-../shared/anchors}
EDO_SERVER=${EDO_SERVER:-build/examples/echo-server}
RUN_NET=$ANCHORS/run-net.sh
[[ -r $RUN_NET ]] || die "$RUN_NET not found: the anchors live in ../shared/anchors next to the checkout (or set ANCHORS)"
[[ -x $EDO_SERVER ]] || die "$EDO_SERVER not built: run make build"

export OUT_DIR=${OUT_DIR:-/tmp/edo-run-echo.$(date +%Y%m%d-%H%M%S)}
ANCHOR_BUILD=${ANCHOR_BUILD:-${XDG_CACHE_HOME:-${HOME:-}/.cache}/edo-anchors}

if ((ECHO_ONLY)); then
    # The same commands run-net.sh uses for its built-in rows, echo half only.
    ROWS=("raw-echo=$ANCHOR_BUILD/raw-echo -p PORT -t 1"
          "tokio-echo=$ANCHOR_BUILD/tokio-echo --addr 127.0.0.1:PORT --workers 1")
else
    ROWS=(raw tokio)
fi
ROWS+=("${EXTRA[@]}" "edo-echo=$EDO_SERVER -p PORT -w 1")

printf 'run-echo.sh: bash %s' "$RUN_NET" >&2
printf ' %q' "${IDLE[@]}" "${ROWS[@]}" >&2
printf '\n' >&2
bash "$RUN_NET" "${IDLE[@]}" "${ROWS[@]}"
rc=$?

if ((${#IDLE[@]})); then
    echo "run-echo.sh: idle-memory table in $OUT_DIR/idle.md, logs in $OUT_DIR" >&2
else
    echo "run-echo.sh: tables in $OUT_DIR/table.md (summary.tsv, runs.tsv, logs alongside)" >&2
fi
exit $rc
