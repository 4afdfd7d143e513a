//! Driving networks: the one [`Driver`] that advances 1–4 runs in lock-step (the dashboard,
//! forks, the compare view, headless runs, comparisons and sweeps), the step function every
//! run goes through ([`lane`]), the live analyses, and the sinks events go to.

pub mod analyses;
pub mod driver;
pub mod headless;
pub mod lane;
pub mod sink;

pub use analyses::{
    AnalysisClock, LIVE_ANALYSIS_SHARE, LIVE_PATH_ROWS, LIVE_PATH_SAMPLES, Pacing, analyses_now,
    live_analyses,
};
pub use driver::{Driver, DriverHandle, FinishedLane, spawn_driver};
pub use headless::{run_headless, run_headless_until};
pub use lane::{LaneStart, Origin};
pub use sink::{ChannelSink, LastSnapshot, MetricsSink, VecSink};
