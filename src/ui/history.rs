//! Bounded-memory time series: a recent window at full resolution plus a decimated full history.
//!
//! A run can last for hours, so no panel may keep every point. The recent window is a
//! contiguous slice compacted when it reaches twice its capacity (amortised O(1) per point);
//! the full history averages points into buckets whose width in steps doubles whenever it
//! would exceed its cap, so it always spans the whole run in at most `full_cap` points.

/// One series of (step, value) points kept in bounded memory. Only finite values are stored:
/// charts must never see NaN/Inf, and the caller shows non-finite values as text instead.
#[derive(Clone, Debug)]
pub struct History {
    recent: Vec<(f64, f64)>,
    recent_cap: usize,
    full: Vec<(f64, f64)>,
    full_cap: usize,
    /// How many raw points one full-history point averages.
    stride: usize,
    pending_sum: (f64, f64),
    pending_count: usize,
}

impl History {
    /// A history keeping `recent_cap` recent points and fewer than `full_cap` decimated points
    /// (`full_cap` is rounded up to an even number of at least 2 so halving is exact).
    pub fn new(recent_cap: usize, full_cap: usize) -> Self {
        let full_cap = full_cap.max(2).next_multiple_of(2);
        Self {
            recent: Vec::with_capacity(2 * recent_cap.max(1)),
            recent_cap: recent_cap.max(1),
            full: Vec::with_capacity(full_cap + 1),
            full_cap,
            stride: 1,
            pending_sum: (0.0, 0.0),
            pending_count: 0,
        }
    }

    /// Adds a point; non-finite steps or values are dropped.
    pub fn push(&mut self, step: f64, value: f64) {
        if !step.is_finite() || !value.is_finite() {
            return;
        }
        self.recent.push((step, value));
        if self.recent.len() >= 2 * self.recent_cap {
            let excess = self.recent.len() - self.recent_cap;
            self.recent.drain(..excess);
        }
        self.pending_sum.0 += step;
        self.pending_sum.1 += value;
        self.pending_count += 1;
        if self.pending_count == self.stride {
            let n = self.pending_count as f64;
            self.full
                .push((self.pending_sum.0 / n, self.pending_sum.1 / n));
            self.pending_sum = (0.0, 0.0);
            self.pending_count = 0;
            // Halving exactly at an even cap keeps every bucket the same number of raw points.
            if self.full.len() == self.full_cap {
                self.halve();
            }
        }
    }

    /// Merges neighbouring full-history points pairwise and doubles the stride.
    fn halve(&mut self) {
        let merged: Vec<(f64, f64)> = self
            .full
            .chunks(2)
            .map(|pair| {
                let n = pair.len() as f64;
                let (sx, sy) = pair
                    .iter()
                    .fold((0.0, 0.0), |(ax, ay), (x, y)| (ax + x, ay + y));
                (sx / n, sy / n)
            })
            .collect();
        self.full = merged;
        self.stride *= 2;
    }

    /// The last `recent_cap` points (or fewer), oldest first, at full resolution.
    pub fn recent(&self) -> &[(f64, f64)] {
        let start = self.recent.len().saturating_sub(self.recent_cap);
        &self.recent[start..]
    }

    /// The decimated history of the whole run, oldest first.
    pub fn full(&self) -> &[(f64, f64)] {
        &self.full
    }

    /// Raw points one full-history point currently averages.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// The whole run for charting: the decimated history, then the recent points newer than
    /// its last point so the tail of the chart is sharp.
    pub fn whole_run(&self) -> Vec<(f64, f64)> {
        let last_full = self.full.last().map_or(f64::NEG_INFINITY, |p| p.0);
        let mut points = self.full.clone();
        points.extend(self.recent().iter().filter(|p| p.0 > last_full));
        points
    }

    /// The newest stored point.
    pub fn last(&self) -> Option<(f64, f64)> {
        self.recent.last().copied()
    }

    /// Whether no point has been stored.
    pub fn is_empty(&self) -> bool {
        self.recent.is_empty()
    }

    /// Forgets every point (a new run started).
    pub fn clear(&mut self) {
        self.recent.clear();
        self.full.clear();
        self.stride = 1;
        self.pending_sum = (0.0, 0.0);
        self.pending_count = 0;
    }
}
