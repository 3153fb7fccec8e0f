# Thin wrapper over CMake for the README's commands.
#   make          build the library, examples, tests and benchmarks into build/
#   make run      build, then start the echo server on 127.0.0.1:7000 (Ctrl-C stops it),
#                 with its console endpoint open for build/tools/edo-console
#   make test     the whole suite in three builds (release, ASan+UBSan, TSan) on each backend:
#                 each case with 1, 2 and 4 workers (sanitizers: 1 and 4), or once per
#                 backend where the case makes its own runtimes
#   make check    the release build and its tests: the quick loop while editing
#   make test-valgrind  the suite's programs under Valgrind's memcheck (slow; not in make test)
#   make clean    remove every build tree
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
TEST_JOBS ?= $(shell echo $$(( $(JOBS) * 3 )))
PORT ?= 7000
CMAKE_FLAGS ?=

all: build

build:
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEDO_WERROR=ON $(CMAKE_FLAGS)
	cmake --build build -j $(JOBS)

build-asan:
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DEDO_WERROR=ON -DEDO_SANITIZE=address \
	      -DEDO_BUILD_BENCH=OFF $(CMAKE_FLAGS)
	cmake --build build-asan -j $(JOBS)

build-tsan:
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEDO_WERROR=ON -DEDO_SANITIZE=thread \
	      -DEDO_BUILD_BENCH=OFF -DEDO_BUILD_EXAMPLES=ON $(CMAKE_FLAGS)
	cmake --build build-tsan -j $(JOBS)

# The demo opens its console endpoint (docs/guide.md, "Observing a program"): attach
# with build/tools/edo-console from another terminal.
CONSOLE ?= $${XDG_RUNTIME_DIR:-/tmp}/edo-echo-$$(id -u).sock
run: build
	@c="$(CONSOLE)"; echo "echo server on 127.0.0.1:$(PORT); to look inside, from another terminal:"; \
	echo "    ./build/tools/edo-console $$c"; \
	EDO_CONSOLE="$$c" exec ./build/examples/echo-server -p $(PORT)

test-release: build
	cd build && ctest --output-on-failure -j $(TEST_JOBS)

test-asan: build-asan
	cd build-asan && ctest --output-on-failure -j $(TEST_JOBS)

test-tsan: build-tsan
	cd build-tsan && ctest --output-on-failure -j $(TEST_JOBS)

# All three builds' tests as one run, so that the slow sanitizer cases overlap the many
# short ones; three tests at once per core, since many of them wait on timers and peers.
test: build build-asan build-tsan
	mkdir -p build-all
	printf 'subdirs("$(CURDIR)/build-tsan" "$(CURDIR)/build-asan" "$(CURDIR)/build")\n' \
	    > build-all/CTestTestfile.cmake
	cd build-all && ctest --output-on-failure -j $(TEST_JOBS)

check: test-release

# The blocking-task watch is off, as in CTest's runs (tests/CMakeLists.txt says why); the
# suppressions are for libunwind's way of checking memory, should a backtrace be taken.
VALGRIND = EDO_BLOCKING_MS=off valgrind -q --leak-check=full --error-exitcode=9 \
	--suppressions=tests/valgrind.supp

# Left out: test_wake, whose threads spin waiting for each other (Valgrind runs one thread
# at a time; TSan covers it), and test_fault's EMFILE case (Valgrind keeps descriptors of
# its own near the limit).
test-valgrind: build
	for t in test_task test_timer test_tcp test_overflow; do \
	    $(VALGRIND) build/tests/$$t || exit 1; done
	$(VALGRIND) build/tests/test_fault reset half silent garbage slow flood

clean:
	rm -rf build build-asan build-tsan build-all

.PHONY: all build build-asan build-tsan run test check test-release test-asan test-tsan test-valgrind \
	clean
