# The two commands of the README: `make run` and `make test`; `make sanitize` and `make fuzz`
# test harder (`make analyze`, part of `make sanitize`, checks the lock rules).
BUILD ?= build
JOBS  ?= 2
BUILD_TYPE ?= RelWithDebInfo
FUZZ_SECONDS ?= 60
# ccache, when there is one, makes rebuilding the sanitizer trees cheap.
LAUNCHER := $(if $(shell command -v ccache),-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)

.PHONY: all deps configure build run demo test sanitize asan tsan analyze fuzz clean

all: build

deps:
	@scripts/install-deps

configure: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(LAUNCHER) >/dev/null

build: configure
	@cmake --build $(BUILD) -j$(JOBS)

# The main job: the benchmark, on embedded SQLite files under ./var/bench; the JSON report and
# the SVG chart are left in ./var. Builds only the tool it runs (and the libraries under it),
# not the tests.
run: configure
	@cmake --build $(BUILD) -j$(JOBS) --target entitydb
	@mkdir -p var/bench
	$(BUILD)/tools/entitydb/entitydb bench --db var/bench --json var/bench.json --svg var/bench.svg
	@echo "report: var/bench.json, chart: var/bench.svg"

# A short tour of the API on ./var/demo.db (builds only that example).
demo: configure
	@cmake --build $(BUILD) -j$(JOBS) --target quickstart
	@mkdir -p var
	$(BUILD)/examples/quickstart var/demo.db

# Every test, the PostgreSQL ones against a throwaway server that scripts/with-postgres starts.
test: build
	@cd $(BUILD) && $(CURDIR)/scripts/with-postgres ctest --output-on-failure -j$(JOBS)

# Every test under AddressSanitizer + UndefinedBehaviorSanitizer, then the concurrency tests
# (ctest label `concurrency`: the tests defined with ENTITY_CONCURRENT_TEST*, see
# tests/support/concurrency.hpp) under ThreadSanitizer, then the lock rules checked by clang
# (analyze). Any report fails the run: UBSan is built not to recover, TSan exits non-zero after
# a report, a broken lock rule is a compile error.
sanitize: asan tsan analyze

ASAN_ENV = ASAN_OPTIONS=detect_leaks=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
TSAN_ENV = TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp"

asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(LAUNCHER) \
	  -DENTITY_SANITIZE=address,undefined -DENTITY_PYTHON=OFF >/dev/null
	@cmake --build build-asan -j$(JOBS)
	@cd build-asan && $(ASAN_ENV) $(CURDIR)/scripts/with-postgres \
	  ctest --output-on-failure -j$(JOBS)

tsan: deps
	@cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(LAUNCHER) \
	  -DENTITY_SANITIZE=thread -DENTITY_PYTHON=OFF >/dev/null
	@cmake --build build-tsan -j$(JOBS) --target entity_tests entity_reliability_tests
	@cd build-tsan && $(TSAN_ENV) $(CURDIR)/scripts/with-postgres \
	  ctest --output-on-failure -j$(JOBS) -L concurrency

# The libraries and the entitydb tool built with clang, whose thread safety analysis
# (-Wthread-safety, an error in this project's code) checks the lock rules that
# src/common/thread_safety.hpp's annotations state: a member read without its mutex, a
# function called without the lock it requires. Compiles only; runs nothing.
analyze: deps
	@cmake -S . -B build-analyze -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(LAUNCHER) \
	  -DCMAKE_CXX_COMPILER=clang++ -DENTITY_BUILD_TESTS=OFF -DENTITY_PYTHON=OFF >/dev/null
	@cmake --build build-analyze -j$(JOBS) --target entity_core entity_postgres entity_db entitydb

# Every fuzz target of tests/fuzz for FUZZ_SECONDS seconds each with libFuzzer (clang, ASan,
# UBSan), starting from its seed corpus. Fails on the first crash or broken property; the
# input is left in build-fuzz/artifacts/ (add it to tests/fuzz/corpus/<target>/).
FUZZ_TARGETS = classify placeholders vector_codec json_lines memory_write json_filter
fuzz: deps
	@cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(LAUNCHER) \
	  -DCMAKE_CXX_COMPILER=clang++ -DENTITY_FUZZ=ON -DENTITY_BUILD_TESTS=OFF \
	  -DENTITY_SANITIZE=address,undefined -DENTITY_PYTHON=OFF >/dev/null
	@cmake --build build-fuzz -j$(JOBS) --target fuzzers
	@mkdir -p build-fuzz/artifacts
	@set -e; for t in $(FUZZ_TARGETS); do \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  mkdir -p build-fuzz/corpus/$$t; \
	  build-fuzz/tests/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	    -print_final_stats=1 -artifact_prefix=build-fuzz/artifacts/$$t- \
	    build-fuzz/corpus/$$t tests/fuzz/corpus/$$t 2>build-fuzz/$$t.log \
	    || { tail -n 60 build-fuzz/$$t.log; exit 1; }; \
	  grep -E '^stat::number_of_executed_units|^Done' build-fuzz/$$t.log || true; \
	done

clean:
	rm -rf $(BUILD)
