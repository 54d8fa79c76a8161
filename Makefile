# streamscore: thin wrapper over scripts/ and CMake.
#   make demo       install what is missing, build, start Kafka + Redis, score generated events
#   make test       install what is missing, then every suite, one stage after the other:
#                   1. build/       unit, integration, fault, chart and style tests (layout,
#                                   function and file sizes: tests/style) (= make test-fast)
#                   2. build-asan/  the same tests, worker and tests built with ASan + UBSan
#                   3. build-tsan/  ThreadSanitizer: the unit tests, and the integration tests
#                                   that drive the daemon's threads (two worker threads: the
#                                   run loop, model reloads, schema-registry fetches, exactly-
#                                   once, metrics, drift, shadow, feature cache, restarts, dead
#                                   letters); about 4 minutes
#                   4. build-fuzz/  libFuzzer targets (clang): seed corpora + 30 s of fuzzing each
#   make test-fast  stage 1 only
#   make test-asan  stage 2 only;  make test-tsan  stage 3 only
#   make test-fuzz  stage 4 only (docs/fuzzing.md)
#   make bench      throughput, latency, CPU and memory on a local stack of its own, beside the
#                   Kafka ceiling (C pass-through) and a Python peer on the same records, plus
#                   component timings; build/bench/results.json, docs/performance.md
#                   (BENCH_SOAK_SECONDS=600 make bench adds the 10-minute memory soak)
#   make reliability  the integration and fault-injection tests (three-node cluster),
#                   rewriting docs/reliability.md from what they measured (the faults, and
#                   the bad inputs the tests fed the worker)
#   make build      configure and build only
# The integration suite starts Kafka and Redis on fixed ports: its runs (stages 1, 2 and 3)
# must never overlap, so the stages run in sequence even under make -j. Within stages 1 and
# 2, ctest runs two tests at a time: the integration suite's stack (ports 22xxx) beside the
# fault tests' three-node cluster (29xxx), the models' suites' stack (21xxx: every objective,
# explanations, categorical features) and the image test's stack (25xxx; stage 1).
BUILD ?= build
BUILD_ASAN ?= build-asan
BUILD_TSAN ?= build-tsan
BUILD_FUZZ ?= build-fuzz
CMAKE_FLAGS ?=
FUZZ_CC ?= clang
FUZZ_TARGETS = fuzz_decode fuzz_config fuzz_registry fuzz_tools_json fuzz_resp fuzz_score_file
export PATH := $(CURDIR)/.deps/venv/bin:$(PATH)

# Stage 2: every sanitizer report fails the run. The first one halts the process; leaks are
# checked at every exit (no suppressions: librdkafka, avro-c, hiredis and jansson show none
# in these tests). ASan/LSan reports go to files, since a worker's stderr is parsed by the
# integration tests and some of its exits are expected to be non-zero: any file there after
# ctest fails the stage, whatever the tests said. (gcc's UBSan runtime ignores log_path when
# linked with ASan: its reports stay on stderr, and the process exits 1.)
SAN_REPORTS = $(CURDIR)/$(BUILD_ASAN)/sanitizer-reports
SAN_ENV = ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:log_path=$(SAN_REPORTS)/asan \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:log_path=$(SAN_REPORTS)/ubsan

# Stage 3: every ThreadSanitizer report fails the run. The integration tests run are the
# subset `tsan` of tests/integration/conftest.py, every worker with two worker threads; the
# reports go to files, as in stage 2, and leave the exit codes alone (exitcode=0): the tests
# judge the behaviour, the files the races. tests/tsan.supp holds the reports that come from
# inside uninstrumented libraries (libxgboost's OpenMP threads, librdkafka's reference
# counts); scripts/setup builds librdkafka on POSIX threads (--disable-c11threads), whose
# thread starts and locks ThreadSanitizer intercepts (it does not intercept glibc's C11 ones).
TSAN_REPORTS = $(CURDIR)/$(BUILD_TSAN)/sanitizer-reports
TSAN_ENV = TSAN_OPTIONS=log_path=$(TSAN_REPORTS)/tsan:exitcode=0:print_suppressions=0:second_deadlock_stack=1:suppressions=$(CURDIR)/tests/tsan.supp \
	SS_IT_SUBSET=tsan SS_IT_WORKER_THREADS=2 SS_IT_TEST_TIMEOUT=300

# After a sanitizer stage's ctest (its exit status in $$rc): print every report file of
# $(1) and fail if there is any, else exit with ctest's status. $(2) names the stage.
define san_verdict
if [ -n "$$(ls -A $(1))" ]; then \
		for f in $(1)/*; do echo "==== $$f"; cat "$$f"; done; \
		echo "$(2): sanitizer reports above (files in $(1))"; exit 1; \
	fi; exit $$rc
endef

.PHONY: all build setup demo test test-fast test-asan test-tsan test-fuzz fuzz-build unit bench \
	stop clean reference reliability

all: build

setup:
	@scripts/setup

build: setup
	cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS)
	cmake --build $(BUILD)

test:
	@for stage in test-fast test-asan test-tsan test-fuzz; do \
		start=$$(date +%s); \
		$(MAKE) --no-print-directory $$stage || exit 1; \
		echo "make test: $$stage passed in $$(($$(date +%s) - start)) s"; \
	done

test-fast: build
	cd $(BUILD) && SS_IMAGE_TEST=1 ctest -j2 --output-on-failure

test-asan: setup
	cmake -S . -B $(BUILD_ASAN) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSS_SANITIZE=address,undefined \
		$(CMAKE_FLAGS)
	cmake --build $(BUILD_ASAN)
	rm -rf $(SAN_REPORTS) && mkdir -p $(SAN_REPORTS)
	cd $(BUILD_ASAN) && rc=0 && $(SAN_ENV) ctest -j2 --output-on-failure || rc=$$?; \
	$(call san_verdict,$(SAN_REPORTS),test-asan)

test-tsan: setup
	cmake -S . -B $(BUILD_TSAN) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSS_SANITIZE=thread \
		$(CMAKE_FLAGS)
	cmake --build $(BUILD_TSAN)
	rm -rf $(TSAN_REPORTS) && mkdir -p $(TSAN_REPORTS)
	cd $(BUILD_TSAN) && rc=0 && $(TSAN_ENV) ctest -R '^(unit\..*|integration|integration\.models)$$' \
		--output-on-failure || rc=$$?; \
	$(call san_verdict,$(TSAN_REPORTS),test-tsan)

fuzz-build: setup
	cmake -S . -B $(BUILD_FUZZ) -G Ninja -DCMAKE_C_COMPILER=$(FUZZ_CC) -DSS_FUZZ=ON $(CMAKE_FLAGS)
	cmake --build $(BUILD_FUZZ) --target $(FUZZ_TARGETS)

test-fuzz: fuzz-build
	cd $(BUILD_FUZZ) && ctest -L fuzz -j2 --output-on-failure

unit: build
	cd $(BUILD) && ctest -L unit --output-on-failure

demo: build
	scripts/demo

bench: build
	bench/run

reliability: build
	cd $(BUILD) && SS_RELIABILITY_DOC=$(CURDIR)/docs/reliability.md \
		ctest -R '^integration(\.faults)?$$' --output-on-failure

stop:
	scripts/dev-stack down

reference: build
	$(BUILD)/streamscore config-reference --markdown

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_TSAN) $(BUILD_FUZZ)
