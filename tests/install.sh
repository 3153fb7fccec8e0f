#!/bin/sh
# Installs the build into a scratch prefix, moves the prefix (nothing installed may depend on
# where it was put), then builds and runs a program the ways README.md tells a user to:
#   - CMake: find_package(edo MAJOR.MINOR REQUIRED), linked with edo::edo (shared) and with
#     edo::edo_static; a version the package does not satisfy is refused;
#   - pkg-config, shared: once with an rpath, once without, run with LD_LIBRARY_PATH;
#   - pkg-config --static: a fully static program.
# The program is examples/hello.c (three tasks that sleep, joined by a fourth). The static
# programs run after the shared library is deleted from the prefix, to show they do without
# it. A last program checks that edo/version.h, edo.pc and the CMake package all give the
# version of the build.
# usage: install.sh BUILD_DIR SOURCE_DIR VERSION
# Environment: CMAKE, CC and PKG_CONFIG name the tools (default: cmake, cc, pkg-config).
# shellcheck disable=SC2046 # pkg-config's output is split into words on purpose
set -eu
build=$1
src=$2
version=$3
cmake=${CMAKE:-cmake}
cc=${CC:-cc}
pkgconfig=${PKG_CONFIG:-pkg-config}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 129' HUP INT TERM

# Runs a command quietly; on failure shows what it printed.
quiet() {
    "$@" >"$tmp/log" 2>&1 || { cat "$tmp/log" >&2; echo "install: failed: $*" >&2; exit 1; }
}
# Runs a built hello and checks that it finished its work.
hello() {
    "$@" >"$tmp/out" 2>&1 || { cat "$tmp/out" >&2; echo "install: failed: $*" >&2; exit 1; }
    grep -q "all done" "$tmp/out" || { cat "$tmp/out" >&2; echo "install: $*: no 'all done'" >&2; exit 1; }
}

quiet "$cmake" --install "$build" --prefix "$tmp/prefix"
mv "$tmp/prefix" "$tmp/moved"
prefix=$tmp/moved
pcdir=$(dirname "$(find "$prefix" -name edo.pc)")

major=${version%%.*}
minor=${version#*.}
minor=${minor%%.*}
want=$major.$minor
# The first release the package must refuse when asked for $want: while the major version
# is 0 a minor release may break the API, so that is the next minor one.
if [ "$major" -eq 0 ]; then
    refused=0.$((minor + 1))
else
    refused=$((major + 1)).0
fi

cat >"$tmp/version.c" <<'EOF'
#include <edo.h>

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    char joined[64];

    snprintf(joined, sizeof joined, "%d.%d.%d", EDO_VERSION_MAJOR, EDO_VERSION_MINOR,
             EDO_VERSION_PATCH);
    if (argc != 2 || strcmp(joined, EDO_VERSION_STRING) != 0 ||
        strcmp(EDO_VERSION_STRING, argv[1]) != 0) {
        fprintf(stderr, "edo/version.h: %s (%s), expected %s\n", EDO_VERSION_STRING, joined,
                argc == 2 ? argv[1] : "?");
        return 1;
    }
    return 0;
}
EOF

# --- CMake ------------------------------------------------------------------------------
mkdir "$tmp/consumer"
cat >"$tmp/consumer/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.16)
project(consumer LANGUAGES C)

find_package(edo $refused QUIET)
if(edo_FOUND)
  message(FATAL_ERROR "find_package(edo $refused) accepted edo \${edo_VERSION}")
endif()

find_package(edo $want REQUIRED)
if(NOT edo_VERSION STREQUAL "$version")
  message(FATAL_ERROR "find_package(edo) found \${edo_VERSION}, expected $version")
endif()
string(FIND "\${edo_DIR}" "\${EDO_PREFIX}/" at)
if(NOT at EQUAL 0)
  message(FATAL_ERROR "find_package(edo) found \${edo_DIR}, not the scratch prefix")
endif()

add_executable(hello "\${EDO_SOURCE_DIR}/examples/hello.c")
target_link_libraries(hello PRIVATE edo::edo)
add_executable(hello_static "\${EDO_SOURCE_DIR}/examples/hello.c")
target_link_libraries(hello_static PRIVATE edo::edo_static)
add_executable(version "$tmp/version.c")
target_link_libraries(version PRIVATE edo::edo)
EOF
quiet "$cmake" -S "$tmp/consumer" -B "$tmp/consumer/build" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$prefix" -DEDO_PREFIX="$prefix" \
    -DEDO_SOURCE_DIR="$src"
quiet "$cmake" --build "$tmp/consumer/build"
hello "$tmp/consumer/build/hello"
quiet "$tmp/consumer/build/version" "$version"

# --- pkg-config, shared -------------------------------------------------------------------
export PKG_CONFIG_PATH="$pcdir"
pcversion=$("$pkgconfig" --modversion edo)
[ "$pcversion" = "$version" ] || { echo "install: edo.pc says $pcversion, expected $version" >&2; exit 1; }
libdir=$("$pkgconfig" --variable=libdir edo)
quiet "$cc" -o "$tmp/hello-rpath" "$src/examples/hello.c" $("$pkgconfig" --cflags --libs edo) \
    -Wl,-rpath,"$libdir"
hello "$tmp/hello-rpath"
quiet "$cc" -o "$tmp/hello-shared" "$src/examples/hello.c" $("$pkgconfig" --cflags --libs edo)
hello env LD_LIBRARY_PATH="$libdir" "$tmp/hello-shared"

# --- static ---------------------------------------------------------------------------------
# A fully static link needs the C library's archives too, which not every system installs.
echo 'int main(void) { return 0; }' >"$tmp/empty.c"
static=yes
"$cc" -static -pthread -o "$tmp/empty" "$tmp/empty.c" >/dev/null 2>&1 || static=no
if [ $static = yes ]; then
    quiet "$cc" -static -o "$tmp/hello-static" "$src/examples/hello.c" \
        $("$pkgconfig" --cflags --libs --static edo)
fi
rm -f "$libdir"/libedo.so*
hello "$tmp/consumer/build/hello_static"
if [ $static = yes ]; then
    hello "$tmp/hello-static"
    echo "install: find_package (shared, static), pkg-config (shared, static) ok, version $version"
else
    echo "install: find_package (shared, static), pkg-config (shared) ok, version $version;" \
        "no static C library here: pkg-config --static skipped"
fi
