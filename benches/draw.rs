//! Drawing cost of the playground: 6 panes at 120×40 with answers of 1 KB, 100 KB and 1 MB.
//! With the row cache, a frame draws only the visible rows, so the 1 MB case should cost
//! about what the 1 KB case does. `stream` appends a chunk before each frame (the streaming
//! tail is re-wrapped).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use promptloom::bench_api::DrawBench;

fn draw(c: &mut Criterion) {
    let mut g = c.benchmark_group("draw_6_panes_120x40");
    for (label, bytes) in [("1KB", 1_000), ("100KB", 100_000), ("1MB", 1_000_000)] {
        let mut b = DrawBench::new(6, bytes, 120, 40);
        b.draw(); // warm the caches
        g.bench_function(BenchmarkId::new("frame", label), |bench| {
            bench.iter(|| b.draw())
        });
        let mut s = DrawBench::new(6, bytes, 120, 40);
        s.draw();
        let mut n = 0u64;
        g.bench_function(BenchmarkId::new("stream", label), |bench| {
            bench.iter(|| {
                n += 1;
                s.append(if n.is_multiple_of(12) {
                    "word\n"
                } else {
                    "word "
                });
                s.draw()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, draw);
criterion_main!(benches);
