//! Mini-batch order over a train split.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::{derive_seed, stream};

/// Draws training mini-batches from the train split, deterministic given the seed: epochs of a
/// shuffled permutation (reshuffle each epoch), batch wraps across epoch boundary.
///
/// The order is drawn from its own stream of `seed`, so passing the experiment seed here does
/// not correlate the batch order with the data generation.
#[derive(Clone, Debug)]
pub struct BatchSampler {
    order: Vec<usize>,
    next: usize,
    rng: StdRng,
}

impl BatchSampler {
    /// A sampler over `0..train_len`. With `train_len == 0` every batch is empty, since there
    /// is nothing to draw (a [`TaskData`](super::TaskData) never has an empty train split).
    pub fn new(train_len: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(derive_seed(seed, stream::BATCHES));
        let mut order: Vec<usize> = (0..train_len).collect();
        order.shuffle(&mut rng);
        BatchSampler {
            order,
            next: 0,
            rng,
        }
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
