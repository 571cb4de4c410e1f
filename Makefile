# The two commands of the README: `make run` and `make test`.
BUILD ?= build
JOBS  ?= 2
BUILD_TYPE ?= RelWithDebInfo

.PHONY: all deps configure build run demo test clean

all: build

deps:
	@scripts/install-deps

configure: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) >/dev/null

build: configure
	@cmake --build $(BUILD) -j$(JOBS)

# The main job: the benchmark, on embedded SQLite files under ./var/bench; the JSON report and
# the SVG chart are left in ./var.
run: build
	@mkdir -p var/bench
	$(BUILD)/tools/entitydb/entitydb bench --db var/bench --json var/bench.json --svg var/bench.svg
	@echo "report: var/bench.json, chart: var/bench.svg"

# A short tour of the API on ./var/demo.db.
demo: build
	@mkdir -p var
	$(BUILD)/examples/quickstart var/demo.db

# Every test, the PostgreSQL ones against a throwaway server that scripts/with-postgres starts.
test: build
	@cd $(BUILD) && $(CURDIR)/scripts/with-postgres ctest --output-on-failure -j$(JOBS)

clean:
	rm -rf $(BUILD)
