#!/usr/bin/env bash
# run-net.sh - edo's echo and HTTP servers against raw epoll, Tokio and Go, in one run of
# the anchors' run-net.sh (../shared/anchors/run-net.sh, next to this checkout).
#
# Usage (from anywhere; it works in the root of the checkout):
#   bash bench/run-net.sh [-w N] [-b BACKEND | --both-backends] [--idle]
#                         [--echo-only | --http-only] [ROW ...]
#   bash bench/run-net.sh -h
#
#   (no option)   throughput, echo and HTTP, of the rows raw, tokio, go and edo:
#                 edo-echo=build/examples/echo-server -p PORT -w 1
#                 edo-http=build/examples/http-server -p PORT -w 1
#   -w N          N workers for every server (default 1): edo -w N, raw and uv -t N
#                 (N SO_REUSEPORT epoll loops), tokio --workers N, go GOMAXPROCS=N.
#                 Pinning is run-net.sh's and does not change: every server runs on
#                 SERVER_CPU (default: core 0), so N > 1 shows what N threads cost on that
#                 core, not what N cores gain (SERVER_CPU=0-3 LOAD_CPU=4 on a bigger
#                 machine spreads the servers, but run-net.sh then checks only LOAD_CPU
#                 for quiet and steal time)
#   -b BACKEND    edo's servers run with -b BACKEND (epoll, uring or auto), in the row
#                 edo-BACKEND (edo-auto for auto); without -b they choose as EDO_BACKEND
#                 says (else automatically), in the row edo
#   --both-backends
#                 two edo rows instead of one: edo-epoll (-b epoll) and edo-uring
#                 (-b uring), so that the backends are measured in the same run
#   --idle        memory per idle connection instead (run-net.sh --idle, echo servers):
#                 server RSS growth per connection with 10000 idle connections, never
#                 used and after one 64 B echo
#   --echo-only   echo tests only (the echo halves of every row: quicker)
#   --http-only   HTTP tests only
#   ROW ...       more rows: uv or go-nethttp (anchors, also with -w N), or
#                 NAME=COMMAND as run-net.sh takes it
#
# The environment passes through to run-net.sh, e.g. SERVER_QUOTA=50 (cap each server
# at half a core: the fair comparison, needs root), REPEAT=3, DURATION, CONNS,
# IDLE_CONNS, ANCHOR_BUILD. ANCHORS (default ../shared/anchors) is where run-net.sh
# is; EDO_SERVER (default build/examples/echo-server) and EDO_HTTP_SERVER (default
# build/examples/http-server) are the servers to measure.
# OUT_DIR (default /tmp/edo-run-net.YYYYmmdd-HHMMSS) gets the tables and logs, and
# run.txt with this script's command and the worker count; the last line printed says
# where they are.
#
# The goal (bench/README.md): echo 64 B >= 1.00x raw and >= 1.05x tokio, measured with
#   SERVER_QUOTA=50 REPEAT=3 bash bench/run-net.sh
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2

usage() { sed -n '2,/^set -u/{/^set -u/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }
die() { printf 'bench/run-net.sh: %s\n' "$*" >&2; exit 2; }

ARGV=("$@")
IDLE=()
KINDS="echo http"
WORKERS=1
BACKENDS=()
BOTH=0
EXTRA=()
while (($#)); do
    case $1 in
    -h|--help) usage; exit 0 ;;
    -w) (($# >= 2)) || die "-w needs a number"; WORKERS=$2; shift ;;
    -w*) WORKERS=${1#-w} ;;
    -b) (($# >= 2)) || die "-b needs a backend (epoll, uring or auto)"; BACKENDS=("$2"); shift ;;
    -b*) BACKENDS=("${1#-b}") ;;
    --both-backends) BOTH=1 ;;
    --idle) IDLE=(--idle) ;;
    --echo-only) KINDS="echo" ;;
    --http-only) KINDS="http" ;;
    -*) die "unknown option $1 (see -h)" ;;
    *) EXTRA+=("$1") ;;
    esac
    shift
done
[[ $WORKERS =~ ^[1-9][0-9]*$ ]] || die "-w wants a worker count of 1 or more, not '$WORKERS'"
if ((BOTH)); then
    ((${#BACKENDS[@]} == 0)) || die "-b and --both-backends do not go together"
    BACKENDS=(epoll uring)
fi
for be in "${BACKENDS[@]}"; do
    case $be in
    epoll|uring|auto) ;;
    io_uring) die "-b wants epoll, uring or auto (not io_uring: the row would be edo-io_uring)" ;;
    *) die "-b wants epoll, uring or auto, not '$be'" ;;
    esac
done
# Idle memory is measured on echo servers only.
((${#IDLE[@]})) && KINDS="echo"

ANCHORS=${ANCHORS:-../shared/anchors}
EDO_SERVER=${EDO_SERVER:-build/examples/echo-server}
EDO_HTTP_SERVER=${EDO_HTTP_SERVER:-build/examples/http-server}
RUN_NET=$ANCHORS/run-net.sh
[[ -r $RUN_NET ]] || die "$RUN_NET not found: the anchors live in ../shared/anchors next to the checkout (or set ANCHORS)"
ANCHOR_BUILD=${ANCHOR_BUILD:-${XDG_CACHE_HOME:-${HOME:-}/.cache}/edo-anchors}

export OUT_DIR=${OUT_DIR:-/tmp/edo-run-net.$(date +%Y%m%d-%H%M%S)}

# The anchors' rows are given as commands rather than as run-net.sh's built-in names,
# because the built-ins always run with one worker. The commands are the built-ins'
# otherwise. A go server gets its GOMAXPROCS through env, which execs it: run-net.sh
# measures and kills the pid it started, so the command must not fork.
ROWS=()
SEEN=" "
anchor_row() {   # anchor_row NAME: appends NAME's halves (those in KINDS) to ROWS
    local name=$1 b=$ANCHOR_BUILD q kind bin cmd part
    q=$(printf '%q' "$b")
    [[ $SEEN == *" $name "* ]] && return 0
    SEEN+="$name "
    for kind in $KINDS; do
        case $name,$kind in
        raw,*) bin=raw-$kind part=c cmd="$q/raw-$kind -p PORT -t $WORKERS" ;;
        uv,*) bin=uv-$kind part=c cmd="$q/uv-$kind -p PORT -t $WORKERS" ;;
        go,*) bin=go-$kind part=go cmd="env GOMAXPROCS=$WORKERS $q/go-$kind -addr 127.0.0.1:PORT" ;;
        go-nethttp,http)
            bin=go-http part=go
            cmd="env GOMAXPROCS=$WORKERS $q/go-http -nethttp -addr 127.0.0.1:PORT" ;;
        go-nethttp,echo) continue ;; # net/http has no echo server
        tokio,*)
            bin=tokio-$kind part=tokio
            cmd="$q/tokio-$kind --addr 127.0.0.1:PORT --workers $WORKERS" ;;
        *) die "unknown row '$name' (anchors: raw uv go go-nethttp tokio; or NAME=COMMAND)" ;;
        esac
        [[ -x $b/$bin ]] || die "$b/$bin not built: run make -C $ANCHORS $part"
        ROWS+=("$name-$kind=$cmd")
    done
}

anchor_row raw
anchor_row tokio
anchor_row go
for r in "${EXTRA[@]}"; do
    if [[ $r == *=* ]]; then ROWS+=("$r"); else anchor_row "$r"; fi
done
# starts SERVER -b BACKEND on a free port and stops it again: a backend this build or
# kernel cannot run is an error now rather than a row of FAILs after the whole run.
check_backend() {   # check_backend SERVER BACKEND
    local out pid i
    out=$(mktemp) || die "mktemp failed"
    "$1" -p 0 -w 1 -b "$2" >"$out" 2>&1 &
    pid=$!
    for ((i = 0; i < 100; i++)); do
        grep -q "listening on" "$out" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if ! grep -q "listening on" "$out"; then
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        sed 's/^/    /' "$out" >&2
        rm -f "$out"
        die "$1 cannot run with -b $2"
    fi
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null
    rm -f "$out"
}
for kind in $KINDS; do
    if [[ $kind == echo ]]; then srv=$EDO_SERVER; else srv=$EDO_HTTP_SERVER; fi
    [[ -x $srv ]] || die "$srv not built: run make build"
    if ((${#BACKENDS[@]} == 0)); then
        ROWS+=("edo-$kind=$(printf '%q' "$srv") -p PORT -w $WORKERS")
        continue
    fi
    for be in "${BACKENDS[@]}"; do
        check_backend "$srv" "$be"
        ROWS+=("edo-$be-$kind=$(printf '%q' "$srv") -p PORT -w $WORKERS -b $be")
    done
done

mkdir -p "$OUT_DIR" || die "cannot create $OUT_DIR"
{
    printf 'bash bench/run-net.sh'
    for a in "${ARGV[@]}"; do printf ' %q' "$a"; done
    printf '\nworkers per server: %s (edo -w, raw/uv -t, tokio --workers, go GOMAXPROCS)\n' "$WORKERS"
    if ((${#BACKENDS[@]})); then
        printf 'edo backends: %s (-b)\n' "${BACKENDS[*]}"
    else
        printf 'edo backend: EDO_BACKEND=%s\n' "${EDO_BACKEND:-(unset: automatic)}"
    fi
    printf 'bash %s' "$RUN_NET"
    printf ' %q' "${IDLE[@]}" "${ROWS[@]}"
    printf '\n'
} >"$OUT_DIR/run.txt"
sed 's|^|bench/run-net.sh: |' "$OUT_DIR/run.txt" >&2
bash "$RUN_NET" "${IDLE[@]}" "${ROWS[@]}"
rc=$?

if ((${#IDLE[@]})); then
    echo "bench/run-net.sh: idle-memory table in $OUT_DIR/idle.md, logs in $OUT_DIR" >&2
else
    echo "bench/run-net.sh: $WORKERS worker(s) per server; tables in $OUT_DIR/table.md (summary.tsv, runs.tsv, logs alongside)" >&2
fi
exit $rc
