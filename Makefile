# Thin wrapper over the CMake presets (CMakePresets.json).
JOBS ?= $(shell nproc)

.PHONY: all setup build test test-default test-asan run bench fuzz fuzz-smoke format clean

all: build

setup:
	@scripts/setup.sh

build: setup
	@cmake --preset default >/dev/null
	@cmake --build --preset default -j $(JOBS)

# The whole suite: the RelWithDebInfo build, then the ASan + UBSan build.
test: setup test-default test-asan

test-default:
	@cmake --preset default >/dev/null
	@cmake --build --preset default -j $(JOBS)
	@ctest --preset default -j $(JOBS)

test-asan:
	@cmake --preset asan >/dev/null
	@cmake --build --preset asan -j $(JOBS)
	@ctest --preset asan -j $(JOBS)

# The broker on ./data (port 4150, shard ports 4151.., admin port 8222) and
# the gateway with the live dashboard on http://127.0.0.1:8080/.
run: build
	@scripts/run.sh

# Micro-benchmarks, then the storage figures against fio, the publish
# figures against the storage-only append, and the subscription figures
# (consume beside the publish rate of the same run; e2e latency at a fixed
# rate; fanout to 100 subscribers, on the broker and through the gateway), each printed as a markdown table (copied into docs/benchmarks.md
# with the run's date).
bench: setup
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS) --target nagare_micro_bench nagare-bench nagared
	@build/release/bench/nagare_micro_bench --benchmark_filter='Encode|Decode|Copy|Match|Validate|Dedup|Batch256|Mesh|TimerWheel'
	@scripts/storage_bench.sh
	@scripts/publish_bench.sh
	@scripts/consume_bench.sh
	@scripts/e2e_bench.sh
	@scripts/fanout_bench.sh
	@scripts/peers_bench.sh

# AFL++ on the frame decoder and the subject parser; FUZZ_SECONDS each.
FUZZ_SECONDS ?= 300
fuzz: setup
	@scripts/fuzz.sh $(FUZZ_SECONDS)

format:
	@git ls-files '*.h' '*.cc' | xargs clang-format -i

clean:
	@rm -rf build
