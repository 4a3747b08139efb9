# The `legate` image: one static-ish binary on distroless, running as non-root.
#   docker build -t legate:0.1.0 .
# Build stage. Dependencies are compiled in their own layer, from the manifests and stub sources,
# so that a change to Legate's code rebuilds only Legate's crates.
FROM rust:1.95-bookworm AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY api/Cargo.toml api/
COPY descriptors/Cargo.toml descriptors/build.rs descriptors/
COPY translator/Cargo.toml translator/
COPY xds-server/Cargo.toml xds-server/
COPY controller/Cargo.toml controller/
COPY e2e/Cargo.toml e2e/
COPY schema/Cargo.toml schema/
# Stubs: an empty lib for each member, the binary's main, and every [[bench]] a manifest names.
RUN set -eu; \
    for toml in */Cargo.toml; do \
        dir=$(dirname "$toml"); \
        mkdir -p "$dir/src" && touch "$dir/src/lib.rs"; \
        sed -n '/^\[\[bench\]\]/,/^name/s/^name *= *"\(.*\)"/\1/p' "$toml" | while read -r bench; do \
            mkdir -p "$dir/benches" && echo 'fn main() {}' > "$dir/benches/$bench.rs"; \
        done; \
    done; \
    echo 'fn main() {}' > controller/src/main.rs; \
    cargo build --release --locked -p legate; \
    rm -rf ./*/src ./*/benches
COPY . .
# COPY keeps the sources' mtimes, which may be older than the stubs' build: make cargo see them.
RUN find api descriptors translator xds-server controller e2e schema -name '*.rs' -exec touch {} + \
    && cargo build --release --locked -p legate \
    && cp target/release/legate /legate

# Runtime stage: glibc + libgcc only, no shell, uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /legate /legate
USER 65532:65532
# xDS (ADS) for the Envoy fleet; Legate's admin server (/healthz, /readyz, /metrics).
EXPOSE 18000 19900
ENTRYPOINT ["/legate"]
CMD ["controller"]
