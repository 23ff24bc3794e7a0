# tiercache: a thin wrapper over CMake.
#   make run    build and run the demonstration (no server needed)
#   make test   build and run every test, then again under ASan+UBSan, the stress tests under TSan,
#               and every fuzz target for FUZZ_SECONDS (libFuzzer, clang)
# Both install missing build dependencies (Debian packages) first.

BUILD      ?= build
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=
# DEB_BUILD holds the test libraries too (cmocka; jansson, with which the tests parse JSON):
# the default configuration builds the tests, so configuring needs them.
DEB_BUILD  := cmake make gcc pkg-config libhiredis-dev libssl-dev libcmocka-dev libjansson-dev libxxhash-dev
DEB_TEST   := redis-server redis-tools openssl python3 python3-prometheus-client clang libclang-rt-dev
FUZZ_SECONDS ?= 10

.PHONY: all deps deps-test build run test test-plain test-asan test-tsan test-fuzz bench install clean

all: build

deps:
	@./tools/install-deps.sh $(DEB_BUILD)

deps-test:
	@./tools/install-deps.sh $(DEB_BUILD) $(DEB_TEST)

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_ARGS) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

# run builds only the demo, quietly: the build's output goes to a log, shown when it fails.
run: deps
	@mkdir -p $(BUILD)
	@{ cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_ARGS) && \
	   cmake --build $(BUILD) --target tiercache-demo -j $(JOBS); } >$(BUILD)/make-run.log 2>&1 || \
	   { tail -n 40 $(BUILD)/make-run.log; echo "make run: the build failed (log: $(BUILD)/make-run.log)" >&2; exit 1; }
	@./$(BUILD)/tiercache-demo

test: deps-test test-plain test-asan test-tsan test-fuzz
	@echo "all test suites passed"

test-plain: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: deps-test
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTC_SANITIZE=address,undefined >/dev/null
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		ctest --output-on-failure -j $(JOBS)

test-tsan: deps-test
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTC_SANITIZE=thread >/dev/null
	cmake --build build-tsan -j $(JOBS)
	cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
		ctest --output-on-failure -L stress -j $(JOBS)

# libFuzzer targets (tests/fuzz), coverage-guided, with ASan+UBSan, each run FUZZ_SECONDS from its
# seed corpus. A longer run: make test-fuzz FUZZ_SECONDS=3600 (docs/REDIS.md).
test-fuzz: deps-test
	cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTC_FUZZ=ON \
		-DTC_FUZZ_SECONDS=$(FUZZ_SECONDS) >/dev/null
	cmake --build build-fuzz -j $(JOBS) --target fuzzers
	cd build-fuzz && ctest --output-on-failure -L fuzz -j $(JOBS)

install: build
	cmake --install $(BUILD)

clean:
	rm -rf build build-asan build-tsan build-fuzz
