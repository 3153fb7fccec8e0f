#!/bin/sh
# tools/edo-console as a user runs it.
#
# usage: console.sh replay CONSOLE FIXTURES
#        console.sh live CONSOLE FIXTURES TARGET
#
# replay: the recorded streams in FIXTURES (tests/console/*.jsonl, written by hand after
#   docs/console.md) through --replay --dump and --once --json: the tasks, the lints, a
#   recording full of garbage; the error paths (nothing to connect to, a stream that is not
#   the protocol); then the UI on a recording in tmux: steps, speed, the malformed-line count.
# live: TARGET (tests/console-target, whose tasks sleeper, reader, holder, locker,
#   receiver, joiner and selector wait in known ways) with its endpoint on a Unix socket:
#   --once --json, then the UI in an 80x24 tmux window (the task list, views, sort, filter,
#   a task's detail with its histogram and backtrace, help, a resize, q's exit status 0),
#   --record and --replay of what was seen, and a reconnect when the program restarts.
#
# The UI parts need tmux (and say so when it is missing). Every wait polls the screen or
# a file with a generous bound, since the machine may be slow.
set -eu
mode=$1
console=$2
fixtures=$3
target=${4:-}
tmp=$(mktemp -d)
tpid=
tmux_up=
ui_n=0
cleanup() {
    rc=$?
    set +e
    [ -n "$tmux_up" ] && tmux -S "$tmp/tmux.$ui_n.sock" kill-server 2>/dev/null
    [ -n "$tpid" ] && kill -KILL "$tpid" 2>/dev/null
    rm -rf "$tmp"
    exit $rc
}
trap cleanup EXIT

fail() {
    echo "console.sh: $*"
    exit 1
}

# ---- the screen ---------------------------------------------------------------------------

have_tmux=
command -v tmux >/dev/null 2>&1 && have_tmux=1

# Each UI gets a tmux server of its own: a new one on the socket of one just killed could
# meet it still going away.
t() {
    tmux -S "$tmp/tmux.$ui_n.sock" "$@"
}

screen() {
    t capture-pane -p -t ui
}

# Waits until the screen has a line matching the (grep) pattern $1.
wait_screen() {
    i=0
    until screen | grep -q -- "$1"; do
        i=$((i + 1))
        [ $i -lt 600 ] || { screen; fail "no \"$1\" on the screen"; }
        sleep 0.1
    done
}

# Waits until the screen has no line matching $1.
wait_gone() {
    i=0
    while screen | grep -q -- "$1"; do
        i=$((i + 1))
        [ $i -lt 600 ] || { screen; fail "\"$1\" stays on the screen"; }
        sleep 0.1
    done
}

# Starts the UI in an 80x24 window: ui_start COMMAND...; its exit status goes to $tmp/ui.exit.
ui_start() {
    rm -f "$tmp/ui.exit"
    ui_n=$((ui_n + 1))
    t new -d -x 80 -y 24 -s ui \
        "$* 2>$tmp/ui.err; echo \"exit \$?\" >$tmp/ui.exit; sleep 600"
    tmux_up=1
}

# Sends q and waits for the UI to exit with status 0.
ui_quit() {
    t send-keys -t ui q
    i=0
    until [ -s "$tmp/ui.exit" ]; do
        i=$((i + 1))
        [ $i -lt 600 ] || { screen; fail "the UI did not exit on q"; }
        sleep 0.1
    done
    grep -q "^exit 0$" "$tmp/ui.exit" || { cat "$tmp/ui.err"; fail "q: $(cat "$tmp/ui.exit")"; }
    t kill-server
    tmux_up=
}

# The line number on the screen of the first line matching $1 (0: none).
line_of() {
    screen | grep -n -- "$1" | head -1 | cut -d: -f1 | grep . || echo 0
}

# ---- JSON, without jq ------------------------------------------------------------------

# One task object a line, out of a --once --json output $1.
tasks_of() {
    sed 's/.*"tasks":\[//; s/\],"done":.*//; s/},{"id"/}\n{"id"/g' "$1"
}

# Checks that the task named $2 in the output $1 has the member text $3 ("wait":"sleep").
task_has() {
    tasks_of "$1" | grep "\"name\":\"$2\"" | grep -q -- "$3" ||
        { tasks_of "$1" | grep "\"name\":\"$2\"" || true; fail "task $2 has no $3"; }
}

if [ "$mode" = replay ]; then
    # ---- recordings, no terminal -----------------------------------------------------------
    "$console" --replay "$fixtures/target.jsonl" --dump >"$tmp/dump.out"
    [ "$(grep -c '^snapshot ' "$tmp/dump.out")" -eq 3 ] || { cat "$tmp/dump.out"; fail "dump: not 3 snapshots"; }
    grep -q "^snapshot 3 at 2.1 s: 8 tasks, 1 done, 2 workers, 0 warnings$" "$tmp/dump.out" || fail "dump: snapshot 3"
    for name in sleeper reader holder locker receiver joiner selector; do
        grep -q " $name .*console-target.c:" "$tmp/dump.out" || fail "dump: no $name"
    done
    "$console" --replay "$fixtures/target.jsonl" --once --json >"$tmp/once.json"
    [ "$(wc -l <"$tmp/once.json")" -eq 1 ] || fail "--once --json printed more than one line"
    grep -q '^{"type":"snapshot","seq":1,' "$tmp/once.json" || fail "--once --json: not the first snapshot"
    grep -q ',"hello":{"type":"hello","version":1,"pid":4242,' "$tmp/once.json" || fail "--once --json: no hello"
    grep -q ',"warnings":\[\]}$' "$tmp/once.json" || fail "--once --json: warnings"
    task_has "$tmp/once.json" locker '"wait":"lock"'
    if command -v jq >/dev/null 2>&1; then
        jq -e '.hello.program == "console-target" and (.tasks | length) == 8' "$tmp/once.json" >/dev/null ||
            fail "--once --json is not the JSON it should be"
    fi

    # Garbage between the lines (not JSON, cut short, nested 100000 deep, a lone surrogate,
    # terminal escapes): skipped and counted, the snapshots around them replayed; a task
    # name with escapes in it is printed without them.
    "$console" --replay "$fixtures/garbage.jsonl" --dump >"$tmp/garbage.out"
    [ "$(grep -c '^snapshot ' "$tmp/garbage.out")" -eq 4 ] || { cat "$tmp/garbage.out"; fail "garbage: not 4 snapshots"; }
    grep -q "^11 malformed lines skipped$" "$tmp/garbage.out" || { tail -3 "$tmp/garbage.out"; fail "garbage: count"; }
    esc=$(printf '\033')
    ! grep -q "$esc" "$tmp/garbage.out" || fail "garbage: an escape reached the output"
    grep -q " evil?\[2J?nam " "$tmp/garbage.out" || fail "garbage: the escaped name"

    # The lints, each on the snapshot built for it; a deadlock of a whole program.
    "$console" --replay "$fixtures/lints.jsonl" --dump >"$tmp/lints.out"
    sed -n '/^snapshot 4 /,$p' "$tmp/lints.out" >"$tmp/lints4.out"
    for w in "lost-wake task 20 (waiter): parked on chan 0x7000, which is no longer" \
        "lost-wake task 21 (orphan): joins task 99, which no longer exists" \
        "blocking task 3 (hash): ran 25.0 ms without suspending on worker 1" \
        "long-run task 2 (spinner): running for 50.0 ms" \
        "busy-loop task 2 (spinner): woke itself 15000 times in 3.0 s" \
        "worker-behind worker 2: queue depth 5 -> 9 -> 14" \
        "waitq-growing mutex 0x8000: waiters 1 -> 2 -> 3 -> 4" \
        "idle-outlier task 13 (conn): parked 60.0 s"; do
        grep -qF "warning $w" "$tmp/lints4.out" || { cat "$tmp/lints4.out"; fail "no warning $w"; }
    done
    [ "$(grep -c '^warning ' "$tmp/lints4.out")" -eq 8 ] || { cat "$tmp/lints4.out"; fail "lints: not 8 warnings"; }
    # Only what the history shows: the first snapshot cannot know of growth or loss.
    sed -n '/^snapshot 1 /,/^snapshot 2 /p' "$tmp/lints.out" | grep -q "warning \(lost-wake\|busy-loop\|worker-behind\|waitq-growing\)" &&
        fail "lints: a history lint on the first snapshot"
    "$console" --replay "$fixtures/deadlock.jsonl" --once --json >"$tmp/deadlock.json"
    grep -q '"warnings":\[{"kind":"deadlock","subject":"3 tasks","task":null,"worker":null,"resource":null,"reason":"every task is parked' "$tmp/deadlock.json" ||
        { cat "$tmp/deadlock.json"; fail "no deadlock warning"; }

    # ---- what goes wrong -------------------------------------------------------------------
    rc=0
    "$console" --once --json "$tmp/nobody.sock" >/dev/null 2>"$tmp/err" || rc=$?
    [ $rc -ne 0 ] && grep -q "cannot connect to $tmp/nobody.sock" "$tmp/err" || fail "--once to nobody: $rc $(cat "$tmp/err")"
    rc=0
    "$console" --once --json 127.0.0.1:1 >/dev/null 2>"$tmp/err" || rc=$?
    [ $rc -ne 0 ] && grep -q "cannot connect to 127.0.0.1:1" "$tmp/err" || fail "--once to a closed port: $rc"
    rc=0
    "$console" --replay "$tmp/no-such-file" --dump >/dev/null 2>"$tmp/err" || rc=$?
    [ $rc -ne 0 ] && grep -q "cannot open" "$tmp/err" || fail "--replay of a missing file: $rc"
    printf 'not\nthe protocol\n' >"$tmp/junk.jsonl"
    rc=0
    "$console" --replay "$tmp/junk.jsonl" --dump >/dev/null 2>"$tmp/err" || rc=$?
    [ $rc -ne 0 ] && grep -q "no snapshot of the console protocol" "$tmp/err" || fail "--replay of junk: $rc"
    rc=0
    "$console" --bogus >/dev/null 2>&1 || rc=$?
    [ $rc -eq 2 ] || fail "an unknown option: exit $rc"
    rc=0
    env -u EDO_CONSOLE "$console" --once --json >/dev/null 2>"$tmp/err" || rc=$?
    [ $rc -eq 2 ] && grep -q "set EDO_CONSOLE" "$tmp/err" || fail "no address: exit $rc"
    if command -v nc >/dev/null 2>&1; then
        # A listener that is not an endpoint: refused with a message, not a hang.
        printf 'HTTP/1.0 200 OK\r\n\r\n' | nc -q 1 -lU "$tmp/http.sock" &
        i=0
        until [ -S "$tmp/http.sock" ]; do
            i=$((i + 1)); [ $i -lt 100 ] || fail "nc did not listen"; sleep 0.05
        done
        rc=0
        "$console" --once --json --timeout 30000 "$tmp/http.sock" >/dev/null 2>"$tmp/err" || rc=$?
        wait
        [ $rc -eq 1 ] && grep -q "does not begin with a hello" "$tmp/err" || fail "not an endpoint: $rc $(cat "$tmp/err")"
    else
        echo "console: nc not found: the not-an-endpoint case is skipped"
    fi

    # ---- the UI on a recording -------------------------------------------------------------
    if [ -z "$have_tmux" ]; then
        echo "console: tmux not found: the UI on a recording is not tested"
        echo "console: replay ok (without the UI)"
        exit 0
    fi
    ui_start "$console" --replay "$fixtures/garbage.jsonl"
    wait_screen "replay [1-4]/4"
    wait_screen "malformed lines: 11"
    wait_screen " sleeper .*console-target.c:40"
    t send-keys -t ui ' '
    t send-keys -t ui ','
    wait_screen "replay [1-3]/4 .*paused"
    t send-keys -t ui '+' '+'
    wait_screen "replay .* x4 "
    t send-keys -t ui 5
    wait_screen "nothing looks wrong"
    ui_quit
    # At its last snapshot: a task found done (shown with d, opened as it was last seen),
    # a lock held by a thread outside the runtime.
    ui_start "$console" --replay "$fixtures/target.jsonl"
    wait_screen "replay 3/3  x1  paused"
    t send-keys -t ui 3
    wait_screen "^rwlock  0x560000004000 a thread"
    t send-keys -t ui 1 d
    wait_screen "9 worker-9 *done "
    t send-keys -t ui G Enter
    wait_screen "^ task 9  worker-9"
    wait_screen "ended .* ago"
    ui_quit
    # A recording's lints in the warnings view, with the blocking report's stack.
    ui_start "$console" --replay "$fixtures/lints.jsonl"
    t send-keys -t ui 5
    wait_screen "lost-wake *task 20 (waiter): parked on chan 0x7000"
    wait_screen "#1 hash (lints.c:20)"
    ui_quit
    echo "console: replay ok"
    exit 0
fi

# ---- live ------------------------------------------------------------------------------------
[ "$mode" = live ] || fail "mode: replay or live"
if [ -z "$target" ] || [ ! -x "$target" ]; then
    echo "console: no tests/console-target in this build: the live console is not tested"
    exit 77
fi

sock=$tmp/c.sock
# Starts the target with its endpoint at $sock and waits for its "ready".
target_start() {
    EDO_CONSOLE=$sock EDO_LOG=0 "$target" >"$tmp/target.out" 2>"$tmp/target.err" &
    tpid=$!
    i=0
    until grep -q "^ready" "$tmp/target.out"; do
        i=$((i + 1))
        [ $i -lt 600 ] || { cat "$tmp/target.err"; fail "console-target did not start"; }
        if ! kill -0 "$tpid" 2>/dev/null; then
            # A kernel may refuse io_uring (seccomp, io_uring_disabled): nothing to test then.
            if grep -q "io_uring asked for, but" "$tmp/target.err"; then
                echo "console: skipped: $(grep "io_uring asked for" "$tmp/target.err")"
                exit 77
            fi
            cat "$tmp/target.err"
            fail "console-target died"
        fi
        sleep 0.1
    done
}

target_stop() {
    kill -TERM "$tpid"
    rc=0
    wait "$tpid" || rc=$?
    tpid=
    [ $rc -eq 0 ] || { cat "$tmp/target.err"; fail "console-target exited with $rc"; }
}

target_start

# --once --json: the known tasks with their states, spawn sites and waits.
"$console" --once --json --timeout 60000 "$sock" >"$tmp/once.json" 2>"$tmp/once.err" ||
    { cat "$tmp/once.err"; fail "--once --json failed"; }
grep -q '^{"type":"snapshot",' "$tmp/once.json" || fail "--once: not a snapshot"
grep -q ',"hello":{"type":"hello","version":1,' "$tmp/once.json" || fail "--once: no hello"
grep -q ',"warnings":\[' "$tmp/once.json" || fail "--once: no warnings"
for name in sleeper reader holder locker receiver joiner selector; do
    task_has "$tmp/once.json" $name '"site":"[^"]*console-target.c:[0-9]*"'
    task_has "$tmp/once.json" $name '"state":"parked"'
done
task_has "$tmp/once.json" sleeper '"wait":"sleep"'
task_has "$tmp/once.json" reader '"wait":"read"'
task_has "$tmp/once.json" locker '"wait":"lock"'
task_has "$tmp/once.json" receiver '"wait":"chan"'
task_has "$tmp/once.json" joiner '"wait":"join"'
task_has "$tmp/once.json" selector '"wait":"select"'
if command -v jq >/dev/null 2>&1; then
    jq -e --arg w "${EDO_WORKERS:-1}" '(.workers | length) == ($w | tonumber) and
        ([.resources[] | select(.kind == "mutex" and .waiters >= 1)] | length) >= 1' \
        "$tmp/once.json" >/dev/null || fail "--once --json: workers or the mutex"
fi

if [ -z "$have_tmux" ]; then
    target_stop
    echo "console: tmux not found: the UI is not tested (--once --json ok)"
    exit 0
fi

# The UI, from EDO_CONSOLE, recording as it goes.
ui_start env EDO_CONSOLE="$sock" "$console" --record "$tmp/rec.jsonl"
wait_screen " sleeper .*console-target.c:"
wait_screen " selector .*console-target.c:"
wait_screen "live: .*c.sock  recording to .*rec.jsonl"
wait_screen "q quit  ? help  Tab view"

# Resources: the mutex with its holder and the waiter.
t send-keys -t ui 3
wait_screen "^mutex .* holder .* locker"
# Workers: one line each.
t send-keys -t ui 4
wait_screen "W STATE"
w=${EDO_WORKERS:-1}
wait_screen "^ *$((w - 1)) \(running\|scheduling\|idle\|blocked\)"
# Tab goes round to the tasks again.
t send-keys -t ui Tab
wait_screen "nothing looks wrong\|warning"
t send-keys -t ui Tab
wait_screen "sorted by id"

# Sort by name, then reversed.
t send-keys -t ui '>'
wait_screen "sorted by name$"
[ "$(line_of ' holder ')" -lt "$(line_of ' sleeper ')" ] || { screen; fail "sort by name"; }
t send-keys -t ui r
wait_screen "sorted by name, reversed"
[ "$(line_of ' holder ')" -gt "$(line_of ' sleeper ')" ] || { screen; fail "reversed sort"; }
t send-keys -t ui '<'
wait_screen "sorted by id, reversed"

# Filter as you type: only the sleeper is left.
t send-keys -t ui / s l e e p
wait_screen "filter: /sleep_"
wait_gone " reader "
wait_screen " sleeper "
t send-keys -t ui Enter
wait_screen "sorted by id, reversed   filter: sleep"
# Its detail: the wait text and the run-time histogram.
t send-keys -t ui Enter
wait_screen "^ task [0-9]*  sleeper"
wait_screen "waits for *sleep"
wait_screen "run times (resume to suspension)"
wait_screen "<1us"
# Its backtrace, or why there is none.
t send-keys -t ui b
wait_screen "^ backtrace:\|no backtrace: "
# Help, closed by any key.
t send-keys -t ui '?'
wait_screen "edo-console keys"
t send-keys -t ui x
wait_gone "edo-console keys"
# A resize redraws for the new size.
t resize-window -t ui -x 100 -y 30
wait_screen "^ q quit  ? help  Tab view  Esc back  b backtrace"
[ "$(screen | wc -l)" -eq 30 ] || fail "not 30 lines after the resize"
t send-keys -t ui Escape
wait_screen "sorted by id, reversed"
t send-keys -t ui Escape
wait_screen " reader "
ui_quit

# What was recorded replays with the same tasks, in the UI and as text.
"$console" --replay "$tmp/rec.jsonl" --dump >"$tmp/rec.out"
for name in sleeper reader holder locker receiver joiner selector; do
    grep -q " $name .*console-target.c:" "$tmp/rec.out" || fail "the recording has no $name"
done
ui_start "$console" --replay "$tmp/rec.jsonl"
wait_screen " locker .*console-target.c:"
wait_screen "replay [0-9]*/[0-9]*"
ui_quit

# The program goes away and comes back: the UI says so and reconnects.
ui_start "$console" "$sock"
wait_screen " receiver "
target_stop
wait_screen "lost $sock: .*reconnecting"
target_start
wait_gone "lost $sock"
wait_screen " joiner "
ui_quit
target_stop
echo "console: live ok"
