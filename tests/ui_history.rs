//! The bounded history behind every chart: recent window plus decimated whole run.

use gradlab::ui::history::History;

#[test]
fn recent_window_keeps_the_newest_points_in_order() {
    let mut h = History::new(50, 16);
    for i in 0..1000 {
        h.push(i as f64, i as f64 * 2.0);
    }
    let recent = h.recent();
    assert_eq!(recent.len(), 50);
    assert_eq!(recent.first(), Some(&(950.0, 1900.0)));
    assert_eq!(recent.last(), Some(&(999.0, 1998.0)));
    assert_eq!(h.last(), Some((999.0, 1998.0)));
}

#[test]
fn full_history_stays_capped_and_spans_the_whole_run() {
    let mut h = History::new(10, 256);
    for i in 0..100_000 {
        h.push(i as f64, 1.0);
    }
    let full = h.full();
    assert!(full.len() <= 256, "{} points", full.len());
    assert!(
        full.len() >= 128,
        "halving keeps at least half the cap: {}",
        full.len()
    );
    assert!(h.stride().is_power_of_two());
    assert!(full.first().is_some_and(|p| p.0 < 1000.0));
    assert!(full.last().is_some_and(|p| p.0 > 90_000.0));
    assert!(full.windows(2).all(|w| w[0].0 < w[1].0), "steps increase");
}

#[test]
fn decimated_points_are_averages_of_their_bucket() {
    let mut h = History::new(4, 4);
    // y = x, so every averaged point must still lie on y = x.
    for i in 0..64 {
        h.push(i as f64, i as f64);
    }
    for &(x, y) in h.full() {
        assert!((x - y).abs() < 1e-9, "({x}, {y})");
    }
    // 64 points into fewer than 4: two buckets of 32, the first averaging steps 0..32.
    assert_eq!(h.stride(), 32);
    assert_eq!(h.full(), &[(15.5, 15.5), (47.5, 47.5)]);
}

#[test]
fn non_finite_values_never_enter_the_history() {
    let mut h = History::new(8, 8);
    h.push(0.0, f64::NAN);
    h.push(1.0, f64::INFINITY);
    h.push(f64::NAN, 1.0);
    assert!(h.is_empty());
    h.push(2.0, 3.0);
    assert_eq!(h.whole_run(), vec![(2.0, 3.0)]);
}

#[test]
fn whole_run_appends_the_sharp_tail_and_clear_forgets() {
    let mut h = History::new(8, 4);
    for i in 0..20 {
        h.push(i as f64, i as f64);
    }
    let run = h.whole_run();
    assert!(run.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(run.last(), Some(&(19.0, 19.0)));
    h.clear();
    assert!(h.is_empty() && h.full().is_empty() && h.stride() == 1);
}
