# streamscore: thin wrapper over scripts/ and CMake.
#   make demo   install what is missing, build, start Kafka + Redis, score generated events
#   make test   install what is missing, build, run every suite (unit, integration)
#   make bench  throughput and latency on the real local stack
#   make build  configure and build only
BUILD ?= build
CMAKE_FLAGS ?=
export PATH := $(CURDIR)/.deps/venv/bin:$(PATH)

.PHONY: all build setup demo test unit bench stop clean reference

all: build

setup:
	@scripts/setup

build: setup
	cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS)
	cmake --build $(BUILD)

test: build
	cd $(BUILD) && ctest --output-on-failure

unit: build
	cd $(BUILD) && ctest -L unit --output-on-failure

demo: build
	scripts/demo

bench: build
	scripts/bench

stop:
	scripts/dev-stack down

reference: build
	$(BUILD)/streamscore config-reference --markdown

clean:
	rm -rf $(BUILD)
