//! Numbers normalised per second on a mixed corpus of what people type.
#![allow(missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use wa_pairing_phone::{PhoneParser, Region};

const CORPUS: &[&str] = &[
    "081234567890",
    "81234567890",
    "+6281234567890",
    "6281234567890",
    "62 812-3456-7890",
    "(0812) 3456 7890",
    "+62 (0)812 3456 7890",
    "tel:+62-812-3456-7890",
    "021 5794 8888",
    "+44 7911 123456",
    "+1 (201) 555-0123",
    "+60 12-345 6789",
    "0812-ABCD-7890",
    "0812",
    "+999 1234 5678",
    "0812 3456 7890 ext. 12",
    "008 44 7911 123456",
    "0044 7911 123456",
    "++62 812 3456 7890",
    "62812345678",
];

fn bench(c: &mut Criterion) {
    let parser = PhoneParser::new(Region::INDONESIA);
    let mut group = c.benchmark_group("phone");
    group.throughput(Throughput::Elements(CORPUS.len() as u64));
    group.bench_function("normalise_mixed_corpus", |b| {
        b.iter(|| {
            for input in CORPUS {
                let _ = black_box(parser.parse(black_box(input)));
            }
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
