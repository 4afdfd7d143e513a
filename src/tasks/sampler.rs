//! Mini-batch order over a train split.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha12Rng;
use serde::{Deserialize, Serialize};

use super::{derive_seed, stream};

/// Draws training mini-batches from the train split, deterministic given the seed: epochs of a
/// shuffled permutation (reshuffle each epoch), batch wraps across epoch boundary.
///
/// The order is drawn from its own stream of `seed`, so passing the experiment seed here does
/// not correlate the batch order with the data generation.
///
/// The generator is ChaCha12 seeded as rand 0.8's `StdRng` seeds it (the same stream, so
/// runs are what they were with `StdRng`), used by name because its position can be read
/// and set: a checkpoint stores [`SamplerPosition`] instead of replaying the draws.
#[derive(Clone, Debug)]
pub struct BatchSampler {
    order: Vec<usize>,
    next: usize,
    rng: ChaCha12Rng,
}

/// Where a sampler stands in its stream: the epoch's order, the next index in it, and the
/// generator's position (in 32-bit words), which with the seed fixes every later epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamplerPosition {
    /// The current epoch's permutation of the train rows.
    pub order: Vec<usize>,
    /// How much of `order` has been handed out.
    pub next: usize,
    /// The generator's word position, in decimal (JSON numbers stop at 2^53).
    pub word_pos: String,
}

impl BatchSampler {
    /// A sampler over `0..train_len`. With `train_len == 0` every batch is empty, since there
    /// is nothing to draw (a [`TaskData`](super::TaskData) never has an empty train split).
    pub fn new(train_len: usize, seed: u64) -> Self {
        let mut rng = ChaCha12Rng::seed_from_u64(derive_seed(seed, stream::BATCHES));
        let mut order: Vec<usize> = (0..train_len).collect();
        order.shuffle(&mut rng);
        BatchSampler {
            order,
            next: 0,
            rng,
        }
    }

    /// Where the sampler stands (for checkpoints).
    pub fn position(&self) -> SamplerPosition {
        SamplerPosition {
            order: self.order.clone(),
            next: self.next,
            word_pos: self.rng.get_word_pos().to_string(),
        }
    }

    /// Moves a sampler built with the same split and seed to `position`; refuses a position
    /// that cannot belong to this split (another task, or a damaged file).
    pub fn set_position(&mut self, position: &SamplerPosition) -> Result<(), String> {
        let n = self.order.len();
        let mut seen = vec![false; n];
        let permutation = position.order.len() == n
            && position
                .order
                .iter()
                .all(|&i| i < n && !std::mem::replace(&mut seen[i], true));
        if !permutation {
            return Err(format!(
                "the batch order is not a permutation of the {n} training rows"
            ));
        }
        if position.next > n {
            return Err(format!(
                "the batch position {} is past the {n} training rows",
                position.next
            ));
        }
        let word_pos: u128 = position
            .word_pos
            .parse()
            .map_err(|_| format!("`{}` is not a generator position", position.word_pos))?;
        self.order.clone_from(&position.order);
        self.next = position.next;
        self.rng.set_word_pos(word_pos);
        Ok(())
    }

    /// Fills `indices` with the next `batch` example indices.
    ///
    /// A batch larger than the split simply spans several epochs, so every index still appears
    /// exactly once per epoch.
    pub fn next_indices(&mut self, batch: usize, indices: &mut Vec<usize>) {
        indices.clear();
        if self.order.is_empty() {
            return;
        }
        indices.reserve(batch);
        while indices.len() < batch {
            if self.next == self.order.len() {
                self.order.shuffle(&mut self.rng);
                self.next = 0;
            }
            let take = (batch - indices.len()).min(self.order.len() - self.next);
            indices.extend_from_slice(&self.order[self.next..self.next + take]);
            self.next += take;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampler_covers_every_index_once_per_epoch_and_is_deterministic() {
        let n = 23;
        let mut sampler = BatchSampler::new(n, 42);
        let mut stream = Vec::new();
        let mut batch = Vec::new();
        // 7 does not divide 23, so batches straddle epoch boundaries.
        for _ in 0..(n * 5).div_ceil(7) {
            sampler.next_indices(7, &mut batch);
            assert_eq!(batch.len(), 7);
            stream.extend_from_slice(&batch);
        }
        let epochs: Vec<&[usize]> = stream.chunks_exact(n).collect();
        assert_eq!(epochs.len(), 5);
        for epoch in &epochs {
            let mut sorted = epoch.to_vec();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..n).collect::<Vec<_>>());
        }
        assert_ne!(epochs[0], epochs[1], "each epoch is reshuffled");

        let mut again = BatchSampler::new(n, 42);
        let mut replay = Vec::new();
        while replay.len() < stream.len() {
            again.next_indices(7, &mut batch);
            replay.extend_from_slice(&batch);
        }
        assert_eq!(replay, stream);

        let mut other = BatchSampler::new(n, 43);
        other.next_indices(n, &mut batch);
        assert_ne!(batch, epochs[0]);
    }

    #[test]
    fn chacha12_seeded_from_u64_is_the_stream_std_rng_gives() {
        use rand::RngCore;
        use rand::rngs::StdRng;
        for seed in [0, 1, 42, u64::MAX] {
            let mut std = StdRng::seed_from_u64(seed);
            let mut chacha = ChaCha12Rng::seed_from_u64(seed);
            for _ in 0..1000 {
                assert_eq!(std.next_u64(), chacha.next_u64());
                assert_eq!(std.next_u32(), chacha.next_u32());
            }
        }
    }

    #[test]
    fn a_sampler_moved_to_a_position_continues_as_the_original() {
        let mut original = BatchSampler::new(23, 9);
        let mut batch = Vec::new();
        // 17 batches of 7 cross several reshuffles and stop mid-epoch.
        for _ in 0..17 {
            original.next_indices(7, &mut batch);
        }
        let mut resumed = BatchSampler::new(23, 9);
        resumed
            .set_position(&original.position())
            .expect("a position of the same split");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..40 {
            original.next_indices(7, &mut a);
            resumed.next_indices(7, &mut b);
            assert_eq!(a, b);
        }
        let mut other = BatchSampler::new(22, 9);
        let error = other.set_position(&original.position()).unwrap_err();
        assert!(error.contains("not a permutation of the 22"), "{error}");
    }

    #[test]
    fn sampler_batch_larger_than_split_spans_epochs() {
        let mut sampler = BatchSampler::new(3, 0);
        let mut batch = Vec::new();
        sampler.next_indices(7, &mut batch);
        assert_eq!(batch.len(), 7);
        let mut first: Vec<usize> = batch[..3].to_vec();
        first.sort_unstable();
        assert_eq!(first, [0, 1, 2]);

        let mut empty = BatchSampler::new(0, 0);
        empty.next_indices(4, &mut batch);
        assert!(batch.is_empty());
    }
}
