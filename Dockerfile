# syntax=docker/dockerfile:1
#
# Switchboard image: the `switchboard` binary (api | realtime | worker | all |
# migrate | seed) and the `switchboard-load` suite, on a small non-root
# Debian runtime.
#
#   docker build -t switchboard:local .
#   docker run --rm switchboard:local --help
#
# No database is needed to build: every query is a runtime `sqlx::query*`
# call (no compile-time checked `query!` macros), so there is no `.sqlx/`
# offline data to keep current. The migrations are embedded with
# `sqlx::migrate!`, which only reads `migrations/` from the build context.
# The only network the build uses is crates.io (cargo-chef and the
# dependencies) and Debian's archive (runtime packages).

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# --- toolchain + cargo-chef --------------------------------------------------
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS chef
# cargo-chef turns the workspace manifests into a recipe, so the dependency
# build below is its own layer: editing our code does not rebuild ~400 crates.
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

# --- the recipe: Cargo.toml files and Cargo.lock only -------------------------
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# --- build -------------------------------------------------------------------
FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# Dependencies only; cached until Cargo.toml or Cargo.lock change.
RUN cargo chef cook --release --recipe-path recipe.json
COPY . .
# `install -s` strips the binaries: the release profile keeps line tables
# for `perf` on a developer's machine, which the image does not need
# (`switchboard` 161 MB → 38 MB).
RUN cargo build --release --locked -p switchboard -p switchboard-load \
 && mkdir -p /out/bin /out/baselines \
 && install -s -m 0755 target/release/switchboard target/release/switchboard-load /out/bin/ \
 && if [ -d loadtests/baselines ]; then cp -R loadtests/baselines/. /out/baselines/; fi

# --- runtime -----------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# ca-certificates: outbound TLS (tenant webhooks); curl: container healthchecks.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 switchboard \
 && useradd --system --uid 10001 --gid switchboard --home-dir /app --create-home \
      --shell /usr/sbin/nologin switchboard \
 && mkdir -p /app/target/loadtest /app/loadtests/baselines \
 && chown -R switchboard:switchboard /app

COPY --from=builder /out/bin/ /usr/local/bin/
COPY --from=builder --chown=switchboard:switchboard /out/baselines/ /app/loadtests/baselines/

WORKDIR /app
USER switchboard:switchboard

# Inside a container the services must listen on every interface; the
# defaults (127.0.0.1) are for a developer's machine.
ENV SWITCHBOARD_API_ADDR=0.0.0.0:8080 \
    SWITCHBOARD_REALTIME_ADDR=0.0.0.0:8081 \
    SWITCHBOARD_WORKER_ADDR=0.0.0.0:8082 \
    SWITCHBOARD_LOG_FORMAT=json

EXPOSE 8080 8081 8082

# `switchboard` handles SIGTERM itself (graceful drain), so it can be PID 1.
ENTRYPOINT ["switchboard"]
CMD ["all"]
