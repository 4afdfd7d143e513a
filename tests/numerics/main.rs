//! The numerical checks, linked as one test binary: gradients against finite differences and
//! against dfdx's own ops, path and source decompositions, lesions, mean-field decay, and the
//! live analyses' cadence. One module per former `tests/<name>.rs`; filter by module, e.g.
//! `cargo test --release --test numerics paths::`.

#[path = "../common/mod.rs"]
mod common;

mod bptt_gradcheck;
mod chrono;
mod engine;
mod fused;
mod gradcheck;
mod lesion;
mod live_paths;
mod mean_field_decay;
mod norm;
mod paths;
mod rnn;
mod rnn_fused;
mod shards;
mod small_gemm;
mod sources;
mod spectrum;
mod theory_arch;
