#!/bin/sh
# The examples as a user runs them: hello, then echo-server with echo-client against it,
# and a clean stop of the server on SIGTERM (exit status 0).
# usage: examples.sh BUILD_DIR
set -eu
bin=$1/examples
tmp=$(mktemp -d)
server=
cleanup() {
    [ -n "$server" ] && kill -KILL "$server" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

"$bin/hello" >"$tmp/hello.out"
grep -q "all done" "$tmp/hello.out"

"$bin/echo-server" -p 0 >"$tmp/server.out" 2>"$tmp/server.err" &
server=$!
i=0
until grep -q "listening on" "$tmp/server.out"; do
    i=$((i + 1))
    [ $i -lt 100 ] || { echo "echo-server did not start"; cat "$tmp/server.err"; exit 1; }
    sleep 0.05
done
addr=$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$tmp/server.out")
"$bin/echo-client" -a "$addr" -n 3 -t 5000 hello "two words" >"$tmp/client.out"
[ "$(grep -c . "$tmp/client.out")" -ge 6 ] || { echo "echo-client printed:"; cat "$tmp/client.out"; exit 1; }
# A client that is refused fails with a message, not a hang.
if "$bin/echo-client" -a 127.0.0.1:1 -t 2000 x >/dev/null 2>"$tmp/refused.err"; then
    echo "echo-client to a closed port succeeded"; exit 1
fi
kill -TERM "$server"
rc=0
wait "$server" || rc=$?
server=
[ $rc -eq 0 ] || { echo "echo-server exited with $rc"; cat "$tmp/server.err"; exit 1; }
echo "examples: hello, echo-server and echo-client ok"
