//! The tree view with 2,000 nodes in one case, drawn at 120×40. Rows are flattened when the
//! tree changes, so a frame costs the visible rows only: `frame` (top of the tree), `frame
//! mid-tree` (after scrolling 1,000 rows down), `scroll+frame` (a `j` and a frame, what a
//! held key costs) and `rebuild` (re-flattening the whole tree, what a finished node costs).

use criterion::{criterion_group, criterion_main, Criterion};
use promptloom::bench_api::TreeBench;

fn tree(c: &mut Criterion) {
    let mut g = c.benchmark_group("tree_2000_nodes_120x40");
    let mut b = TreeBench::new(2_000, 120, 40);
    assert!(b.rows() > 1_000, "rows: {}", b.rows());
    b.draw();
    g.bench_function("frame", |bench| bench.iter(|| b.draw()));
    for _ in 0..1_000 {
        b.key('j');
    }
    g.bench_function("frame mid-tree", |bench| bench.iter(|| b.draw()));
    let mut n = 0u32;
    g.bench_function("scroll+frame", |bench| {
        bench.iter(|| {
            n += 1;
            b.key(if (n / 200).is_multiple_of(2) {
                'j'
            } else {
                'k'
            });
            b.draw()
        })
    });
    g.bench_function("rebuild", |bench| bench.iter(|| b.rebuild()));
    g.finish();
}

criterion_group!(benches, tree);
criterion_main!(benches);
