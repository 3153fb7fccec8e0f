#!/bin/sh
# Installs the build into a scratch prefix and builds a program the way the README says a
# user would: with pkg-config, against the shared library and against the static one.
# usage: install.sh BUILD_DIR SOURCE_DIR
set -eu
build=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
# Move the whole prefix: the .pc file must find it relative to itself.
mv "$tmp/prefix" "$tmp/moved"
export PKG_CONFIG_PATH=$(dirname "$(find "$tmp/moved" -name edo.pc)")
cc -o "$tmp/hello" "$src/examples/hello.c" $(pkg-config --cflags --libs edo)
LD_LIBRARY_PATH=$(pkg-config --variable=libdir edo) "$tmp/hello" >"$tmp/out"
grep -q "all done" "$tmp/out"
# The static library needs what the .pc file's private part names (liburing, -pthread).
cc -o "$tmp/hello-static" "$src/examples/hello.c" $(pkg-config --cflags edo) \
    "$(pkg-config --variable=libdir edo)/libedo.a" \
    $(pkg-config --static --libs edo | sed 's/-L[^ ]*//; s/-ledo\b//')
"$tmp/hello-static" >"$tmp/out"
grep -q "all done" "$tmp/out"
echo "install: pkg-config build and run ok (shared and static)"
