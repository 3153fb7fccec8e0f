#!/bin/sh
# The examples as a user runs them: hello, resolve, then echo-server with echo-client against it
# (once on each backend: -b epoll, and -b uring when the build has io_uring), then http-server
# with curl and nc against it, then chat-server with two chat-clients, and a clean stop of each
# server on SIGTERM (exit status 0); then fcopy on each backend.
# usage: examples.sh BUILD_DIR [uring]    (uring: the build has the io_uring backend)
set -eu
bin=$1/examples
have_uring=${2:-}
tmp=$(mktemp -d)
server=
http=
chat=
ben=
cleanup() {
    [ -n "$server" ] && kill -KILL "$server" 2>/dev/null
    [ -n "$http" ] && kill -KILL "$http" 2>/dev/null
    [ -n "$chat" ] && kill -KILL "$chat" 2>/dev/null
    [ -n "$ben" ] && kill -KILL "$ben" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

"$bin/hello" >"$tmp/hello.out"
grep -q "all done" "$tmp/hello.out"

# resolve: names looked up on the blocking pool, in the order given; a name that does not
# resolve is reported and makes the exit status 1.
"$bin/resolve" -t 5000 localhost 127.0.0.1 >"$tmp/resolve.out"
grep -q "^localhost: .*127.0.0.1" "$tmp/resolve.out"
grep -q "^127.0.0.1: 127.0.0.1$" "$tmp/resolve.out"
if "$bin/resolve" -w 1 -t 5000 127.0.0.1 name.that.does.not.exist.invalid >"$tmp/resolve2.out"; then
    echo "resolve of a name that does not exist succeeded"; exit 1
fi
grep -q "^name.that.does.not.exist.invalid: " "$tmp/resolve2.out"

# Waits until server NAME has printed "listening on ADDR" to $tmp/NAME.out and prints ADDR.
listening() {
    i=0
    until grep -q "listening on" "$tmp/$1.out"; do
        i=$((i + 1))
        [ $i -lt 100 ] || { echo "$1 did not start" >&2; cat "$tmp/$1.err" >&2; exit 1; }
        sleep 0.05
    done
    sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$tmp/$1.out"
}

# echo_run BACKEND NAME: echo-server -b BACKEND, which says NAME in its start-up line, with
# echo-client against it and a clean stop. Each run has files of its own: the shell opens a
# background command's redirections only once the command has been forked, so a file shared
# with the previous run could still hold that run's "listening on" line.
echo_run() {
    out=echo-server-$1
    "$bin/echo-server" -p 0 -b "$1" >"$tmp/$out.out" 2>"$tmp/$out.err" &
    server=$!
    addr=$(listening "$out")
    grep -q "listening on .*($2, " "$tmp/$out.out" ||
        { echo "echo-server -b $1 does not say $2:"; cat "$tmp/$out.out"; exit 1; }
    "$bin/echo-client" -a "$addr" -n 3 -t 5000 hello "two words" >"$tmp/client.out"
    [ "$(grep -c . "$tmp/client.out")" -ge 6 ] || { echo "echo-client printed:"; cat "$tmp/client.out"; exit 1; }
    kill -TERM "$server"
    rc=0
    wait "$server" || rc=$?
    server=
    [ $rc -eq 0 ] || { echo "echo-server -b $1 exited with $rc"; cat "$tmp/$out.err"; exit 1; }
}

echo_run epoll epoll
backends="epoll"
if [ "$have_uring" = uring ]; then
    # A kernel may refuse io_uring (seccomp, io_uring_disabled): a server asked to run on it
    # cannot start then. EDO_LOG says why.
    if EDO_LOG=1 EDO_BACKEND=uring "$bin/hello" >/dev/null 2>"$tmp/uring.err"; then
        echo_run uring io_uring
        backends="epoll and io_uring"
    elif grep -q "io_uring asked for, but" "$tmp/uring.err"; then
        echo "examples: echo-server -b uring skipped: $(grep "io_uring asked for" "$tmp/uring.err")"
    else
        echo "hello on io_uring failed:"; cat "$tmp/uring.err"; exit 1
    fi
else
    echo "examples: echo-server -b uring skipped: this build has no io_uring (liburing not found)"
fi
# A client that is refused fails with a message, not a hang.
if "$bin/echo-client" -a 127.0.0.1:1 -t 2000 x >/dev/null 2>"$tmp/refused.err"; then
    echo "echo-client to a closed port succeeded"; exit 1
fi

# http-server with two workers: every answer is the same 126 bytes, whatever the request.
"$bin/http-server" -p 0 -w 2 >"$tmp/http-server.out" 2>"$tmp/http-server.err" &
http=$!
haddr=$(listening http-server)
port=${haddr##*:}
# The answers without their CRs and with the Date (IMF-fixdate) blanked out.
strip() {
    tr -d '\r' <"$1" |
        sed 's/^Date: [A-Z][a-z][a-z], [0-9][0-9] [A-Z][a-z][a-z] [0-9]\{4\} [0-9][0-9]:[0-9][0-9]:[0-9][0-9] GMT$/Date: D/'
}
printf 'HTTP/1.1 200 OK\nServer: e\nContent-Type: text/plain\nContent-Length: 13\nDate: D\n\nHello, World!' >"$tmp/one"
cat "$tmp/one" "$tmp/one" >"$tmp/two"
checked=
if command -v curl >/dev/null 2>&1; then
    # Two requests on one kept-alive connection, as a browser makes them.
    curl -sS -i --max-time 5 "http://$haddr/plaintext" "http://$haddr/again" >"$tmp/curl.out" ||
        { echo "curl failed"; cat "$tmp/http-server.err"; exit 1; }
    strip "$tmp/curl.out" | cmp -s - "$tmp/two" ||
        { echo "http-server answered curl with:"; cat "$tmp/curl.out"; exit 1; }
    checked="curl"
fi
if command -v nc >/dev/null 2>&1; then
    # Pipelined: two requests and the start of a third in one write get exactly two answers
    # (252 bytes, CRLFs included), and nothing for the incomplete one.
    printf 'GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\n' |
        nc -q 1 -w 5 127.0.0.1 "$port" >"$tmp/pipe.out" || true
    if [ "$(wc -c <"$tmp/pipe.out")" -ne 252 ] || ! strip "$tmp/pipe.out" | cmp -s - "$tmp/two"; then
        echo "http-server answered two pipelined requests with:"; cat "$tmp/pipe.out"; exit 1
    fi
    # A request head over 64 KiB closes that connection (no answer) and nothing else.
    { printf 'GET / HTTP/1.1\r\nX: '; head -c 70000 /dev/zero | tr '\0' a; printf '\r\n\r\n'; } |
        nc -q 1 -w 5 127.0.0.1 "$port" >"$tmp/huge.out" 2>/dev/null || true
    [ ! -s "$tmp/huge.out" ] || { echo "http-server answered a 70 KB head"; exit 1; }
    printf 'GET / HTTP/1.1\r\n\r\n' | nc -q 1 -w 5 127.0.0.1 "$port" >"$tmp/after.out" || true
    strip "$tmp/after.out" | cmp -s - "$tmp/one" ||
        { echo "http-server did not answer after a 70 KB head"; cat "$tmp/http-server.err"; exit 1; }
    checked="${checked:+$checked and }nc"
fi
[ -n "$checked" ] || echo "examples: neither curl nor nc found: http-server only started and stopped"
kill -TERM "$http"
rc=0
wait "$http" || rc=$?
http=
[ $rc -eq 0 ] || { echo "http-server exited with $rc"; cat "$tmp/http-server.err"; exit 1; }

# Waits until file $1 has a line that contains $2.
has_line() {
    i=0
    until grep -qF -- "$2" "$1"; do
        i=$((i + 1))
        [ $i -lt 100 ] || { echo "no \"$2\" in $1:"; cat "$1"; exit 1; }
        sleep 0.05
    done
}

# chat-server with two chat-clients: ben's input is a FIFO kept open until he has seen
# anna's line; anna's input is a pipe whose end makes her client half-close, print the
# server's goodbye and exit 0. Then the stop: ben is told, and his client exits 0 too.
"$bin/chat-server" -p 0 -w 2 >"$tmp/chat-server.out" 2>"$tmp/chat-server.err" &
chat=$!
caddr=$(listening chat-server)
mkfifo "$tmp/ben.in"
"$bin/chat-client" "$caddr" <"$tmp/ben.in" >"$tmp/ben.out" 2>&1 &
ben=$!
exec 3>"$tmp/ben.in"
printf 'ben\n' >&3
has_line "$tmp/ben.out" "*** You are ben;"
printf 'anna\nhello from anna\n' | "$bin/chat-client" "$caddr" >"$tmp/anna.out" ||
    { echo "chat-client (anna) failed:"; cat "$tmp/anna.out"; exit 1; }
grep -q "^\*\*\* You are anna; 2 users online" "$tmp/anna.out" && grep -q "^\*\*\* Bye$" "$tmp/anna.out" ||
    { echo "chat-client (anna) printed:"; cat "$tmp/anna.out"; exit 1; }
has_line "$tmp/ben.out" "<anna> hello from anna"
has_line "$tmp/ben.out" "*** anna has left"
kill -TERM "$chat"
rc=0
wait "$chat" || rc=$?
chat=
[ $rc -eq 0 ] || { echo "chat-server exited with $rc"; cat "$tmp/chat-server.err"; exit 1; }
rc=0
wait "$ben" || rc=$?
ben=
exec 3>&-
[ $rc -eq 0 ] || { echo "chat-client (ben) exited with $rc"; cat "$tmp/ben.out"; exit 1; }
grep -q "^\*\*\* The server is stopping. Bye!$" "$tmp/ben.out" ||
    { echo "chat-client (ben) printed:"; cat "$tmp/ben.out"; exit 1; }
# fcopy: a copy that is checked by fcopy -c and by cmp, chunks smaller than the file and
# more of them in flight than workers, on each backend that ran above; a missing source is
# exit status 1.
head -c 3000000 /dev/urandom >"$tmp/fcopy.src"
for b in epoll $([ "$backends" = epoll ] || echo uring); do
    rm -f "$tmp/fcopy.dst"
    "$bin/fcopy" -b "$b" -c -j 3 -s 64 "$tmp/fcopy.src" "$tmp/fcopy.dst" >"$tmp/fcopy.out"
    grep -q "^identical$" "$tmp/fcopy.out" || { echo "fcopy -b $b printed:"; cat "$tmp/fcopy.out"; exit 1; }
    cmp "$tmp/fcopy.src" "$tmp/fcopy.dst"
done
rc=0
"$bin/fcopy" -q "$tmp/no-such-file" "$tmp/fcopy.dst2" 2>"$tmp/fcopy.err" || rc=$?
[ $rc -eq 1 ] || { echo "fcopy of a missing file exited with $rc"; exit 1; }
echo "examples: hello, resolve, echo-server (on $backends), echo-client, http-server${checked:+ (with $checked)}, chat-server, chat-client and fcopy (on $backends) ok"
