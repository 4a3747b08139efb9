//! A full translation (stage 1, Gateway API → IR + statuses, and stage 2, IR → xDS) on synthetic
//! snapshots of 100, 1,000 and 5,000 HTTPRoutes; see `support/mod.rs` for their shape.
//!
//! `cargo bench -p legate-translator --bench translate`. The input is built once per size,
//! outside the measurement; dropping the output is not measured either. Allocation goes through
//! mimalloc, as in the `legate` binary (glibc's malloc, free and consolidation were about 30 % of
//! a full translation).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use legate_translator::{Engine, Options, translate};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "support/mod.rs"]
mod support;

const SIZES: [usize; 3] = [100, 1_000, 5_000];

fn bench_translate(c: &mut Criterion) {
    let opts = Options::default();
    let mut group = c.benchmark_group("translate");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    for n in SIZES {
        let res = support::resources(n);
        support::check(&translate(&res, &opts), n);
        group.throughput(Throughput::Elements(n as u64));
        // What a cold start does: a new engine translates the whole world once and is kept
        // (so its caches are dropped outside the measurement, with the output).
        group.bench_with_input(BenchmarkId::new("http_routes", n), &res, |b, res| {
            b.iter_batched(
                || Engine::new(opts.clone()),
                |mut engine| {
                    let out = engine.translate(black_box(res));
                    (engine, out)
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

/// One-route changes through an [`Engine`] that translated the whole world before: route `k`
/// of the world is replaced by a new object (another path), alternately, so every iteration is
/// a real change.
fn bench_incremental(c: &mut Criterion) {
    let mut group = c.benchmark_group("one_route_change");
    group.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    for n in SIZES {
        let mut res = support::resources(n);
        let mut engine = Engine::new(Options::default());
        support::check(&engine.translate(&res), n);
        let variants = [support::route(n / 2, "/changed-a"), support::route(n / 2, "/changed-b")];
        let mut i = 0;
        group.bench_function(BenchmarkId::new("http_routes", n), |b| {
            b.iter_with_large_drop(|| {
                i += 1;
                res.apply(variants[i % 2].clone().into());
                engine.translate(black_box(&res))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_translate, bench_incremental);
criterion_main!(benches);
