#!/usr/bin/env bash
# Reading files with edo against the system's own tools, in one go, on one file:
#   sequential, page cache warm:  dd bs=1M          vs fsbench seq_qd1 and seq_qd4 (MiB/s)
#   random 4 KiB, queue depth 64: fio io_uring      vs fsbench rand_qd64 (IOPS, O_DIRECT)
#   and fsbench pread_4k: ns per 4 KiB edo_fs_pread of cached data, beside plain pread(2)
#   and beside edo_spawn_blocking + edo_join of a pread(2).
# Rounds are interleaved (dd, edo, fio, edo, ... then the next round) and the table shows
# medians, so that a burst of load from elsewhere hits every row alike. fio runs with
# --invalidate=0: by default it drops the file from the page cache before it starts, which
# would leave the next round's sequential reads to the disk.
#
# usage: bash bench/run-fs.sh [-b epoll|uring|both] [-f FILE] [-t SECONDS] [-r ROUNDS] [-w N]
#   -b  edo's backend(s) (default both: each that this build and kernel can run)
#   -f  the file (default $TMPDIR/edo-fsbench.dat, else /tmp/...); made with 1 GiB of random
#       bytes if it does not exist, left in place for the next run (delete it yourself)
#   -t  seconds of each random-read run, fio's and edo's alike (default 10)
#   -r  rounds (default 3)
#   -w  edo's workers (default: the runtime's, EDO_WORKERS or the CPUs)
#   PASSES=N in the environment: sequential passes per round, dd's and edo's (default 5)
# Needs build/bench/fsbench (make build) and fio (Debian: apt-get install -y fio).
# Prints the table and where the raw output went (OUT_DIR, default /tmp/edo-run-fs.<date>).
set -euo pipefail

backends="epoll uring"
file="${TMPDIR:-/tmp}/edo-fsbench.dat"
secs=10
rounds=3
passes=${PASSES:-5}
workers=
while getopts "b:f:t:r:w:h" o; do
    case $o in
    b) case $OPTARG in
        epoll | uring) backends=$OPTARG ;;
        both) backends="epoll uring" ;;
        *) echo "run-fs.sh: -b epoll, uring or both" >&2; exit 2 ;;
        esac ;;
    f) file=$OPTARG ;;
    t) secs=$OPTARG ;;
    r) rounds=$OPTARG ;;
    w) workers=$OPTARG ;;
    h) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) exit 2 ;;
    esac
done

fsbench=build/bench/fsbench
[ -x "$fsbench" ] || { echo "run-fs.sh: $fsbench not found: run make build first" >&2; exit 1; }
command -v fio >/dev/null || { echo "run-fs.sh: fio not found (apt-get install -y fio)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "run-fs.sh: python3 is needed to read fio's output" >&2; exit 1; }

out=${OUT_DIR:-/tmp/edo-run-fs.$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
wopt=()
[ -n "$workers" ] && wopt=(-w "$workers")

# Backends this build and kernel can run.
usable=
for b in $backends; do
    if "$fsbench" -b "$b" "${wopt[@]}" --probe 2>/dev/null; then
        usable="$usable $b"
    else
        echo "run-fs.sh: edo cannot run on $b here; left out" >&2
    fi
done
[ -n "$usable" ] || exit 1

if [ ! -f "$file" ] || [ "$(stat -c %s "$file")" -lt $((1 << 30)) ]; then
    echo "making $file (1 GiB of random bytes)..." >&2
    dd if=/dev/urandom of="$file" bs=1M count=1024 status=none
fi

{
    echo "command: bash bench/run-fs.sh $*"
    echo "file: $file ($(stat -c %s "$file") bytes)"
    echo "rounds: $rounds, random reads: $secs s each, backends:$usable, workers: ${workers:-default}"
    uname -sr
    nproc
    uptime
} >"$out/run.txt"

# One line per measurement: round, row, metric, value.
res="$out/results.tsv"
: >"$res"

for ((r = 1; r <= rounds; r++)); do
    echo "round $r/$rounds" >&2
    cat "$file" >/dev/null # the page cache warm for the sequential runs, in every round
    # dd's last line: "1073741824 bytes (1.1 GB, 1.0 GiB) copied, 0.2 s, 5.4 GB/s". As many
    # passes as fsbench's, and the median, like fsbench's.
    : >"$out/dd.$r.txt"
    for ((k = 0; k < passes; k++)); do
        dd if="$file" of=/dev/null bs=1M 2>>"$out/dd.$r.txt"
    done
    awk '/copied/ { print $1 / $(NF - 3) / 1048576 }' "$out/dd.$r.txt" | sort -n |
        awk -v r="$r" '{ v[NR] = $1 } END { printf "%s\tdd bs=1M\tseq MiB/s\t%.0f\n", r, v[int(NR / 2) + 1] }' >>"$res"
    for b in $usable; do
        "$fsbench" -b "$b" "${wopt[@]}" -n "$passes" --only seq_qd1,seq_qd4 "$file" | tee "$out/seq.$b.$r.txt" |
            awk -v r="$r" -v b="$b" '/^BENCH/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
                printf "%s\tedo %s %s\tseq MiB/s\t%s\n", r, b, v["name"], v["mib_per_s"] }' >>"$res"
    done
    fio --name=randread --filename="$file" --ioengine=io_uring --iodepth=64 --rw=randread \
        --bs=4k --direct=1 --invalidate=0 --time_based --runtime="$secs" --numjobs=1 \
        --output-format=json >"$out/fio.$r.json"
    python3 -c 'import json, sys; print("%s\tfio io_uring qd64\trand IOPS\t%.0f" % (sys.argv[2],
        json.load(open(sys.argv[1]))["jobs"][0]["read"]["iops"]))' "$out/fio.$r.json" "$r" >>"$res"
    for b in $usable; do
        "$fsbench" -b "$b" "${wopt[@]}" -t "$secs" --only rand_qd64,pread_4k "$file" |
            tee "$out/rand.$b.$r.txt" |
            awk -v r="$r" -v b="$b" '/^BENCH/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
                if (v["name"] == "rand_qd64") printf "%s\tedo %s rand_qd64\trand IOPS\t%s\n", r, b, v["iops"]
                else { printf "%s\tedo %s pread_4k\tns per 4 KiB read\t%s\n", r, b, v["ns_per_op"]
                       printf "%s\tedo %s spawn_blocking+join of pread(2)\tns per 4 KiB read\t%s\n", r, b, v["spawn_blocking_ns_per_op"]
                       printf "%s\tpread(2) on the thread\tns per 4 KiB read\t%s\n", r, v["plain_ns_per_op"] } }' >>"$res"
    done
done

# Medians and ratios: each seq row against dd, each rand row against fio.
python3 - "$res" >"$out/table.md" <<'EOF'
import statistics, sys
rows = {}
order = []
for line in open(sys.argv[1]):
    r, row, metric, value = line.rstrip("\n").split("\t")
    key = (row, metric)
    if key not in rows:
        rows[key] = []
        order.append(key)
    rows[key].append(float(value))
med = {k: statistics.median(v) for k, v in rows.items()}
base = {"seq MiB/s": med.get(("dd bs=1M", "seq MiB/s")),
        "rand IOPS": med.get(("fio io_uring qd64", "rand IOPS"))}
print("| row | metric | median | rounds | vs baseline |")
print("|---|---|---:|---|---:|")
for k in order:
    row, metric = k
    b = base.get(metric)
    ratio = "%.2fx" % (med[k] / b) if b and not row.startswith(("dd", "fio")) else ""
    print("| %s | %s | %.0f | %s | %s |" % (row, metric, med[k],
          " ".join("%.0f" % v for v in rows[k]), ratio))
EOF
cat "$out/table.md"
echo "raw output: $out" >&2
