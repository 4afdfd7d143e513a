//! Choosing one value of an axis per cell, as papers choose the learning rate.
//!
//! A cell is one combination of the axes other than `seed` and the selected axis. Within a
//! cell, each value of the selected axis is scored by the training loss of its runs averaged
//! over seeds, and the lowest wins: the choice never looks at the test set, and every seed of
//! a cell uses the same value. A value with a run that is missing, diverged or non-finite
//! cannot win, since its average over the seeds is unknown.

use serde::Deserialize;

/// What a sweep picks per cell after the runs.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub enum Select {
    /// Per cell, the value of this axis (a `--set` path in the grid, e.g. `optimizer.lr`)
    /// whose runs reach the lowest training loss averaged over seeds.
    BestOver(String),
}

impl Select {
    /// The `--set` path of the axis selected over.
    pub fn path(&self) -> &str {
        match self {
            Select::BestOver(path) => path,
        }
    }
}

/// One candidate value of the selected axis in a cell, with its mean training loss.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// The value as written in the sweep file.
    pub value: String,
    /// Training loss averaged over the value's runs; None when a run is missing, diverged or
    /// non-finite.
    pub mean_train_loss: Option<f64>,
}

/// One row of the sweep's table: a combination of the non-seed, non-selected axes.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    /// The values of the axes other than seed and the selected one, in axis order.
    pub key: Vec<String>,
    /// Indices of the runs the row reports: every seed of the chosen value (all the cell's
    /// runs when nothing is selected, or when no value could be scored).
    pub members: Vec<usize>,
    /// The chosen value of the selected axis (None without a selection or when no value has
    /// every run finished and finite).
    pub chosen: Option<String>,
    /// Every value of the selected axis in file order, with its score (empty without one).
    pub candidates: Vec<Candidate>,
}

/// Groups runs into cells and, with `select` (an axis index), picks per cell the value with
/// the lowest mean training loss. `values[i]` are run i's axis values in axis order and
/// `train_loss[i]` its training loss (None when missing or diverged). Cells and candidates
/// keep file order; a tie goes to the value written first.
pub fn cells(
    values: &[Vec<String>],
    train_loss: &[Option<f64>],
    seed: Option<usize>,
    select: Option<usize>,
) -> Vec<Cell> {
    let mut cells: Vec<(Cell, Vec<usize>)> = Vec::new();
    for (run, row) in values.iter().enumerate() {
        let key: Vec<String> = row
            .iter()
            .enumerate()
            .filter(|(axis, _)| Some(*axis) != seed && Some(*axis) != select)
            .map(|(_, v)| v.clone())
            .collect();
        match cells.iter_mut().find(|(cell, _)| cell.key == key) {
            Some((_, runs)) => runs.push(run),
            None => cells.push((
                Cell {
                    key,
                    members: Vec::new(),
                    chosen: None,
                    candidates: Vec::new(),
                },
                vec![run],
            )),
        }
    }
    cells
        .into_iter()
        .map(|(mut cell, runs)| {
            let Some(axis) = select else {
                cell.members = runs;
                return cell;
            };
            let mut order: Vec<String> = Vec::new();
            for &run in &runs {
                if !order.contains(&values[run][axis]) {
                    order.push(values[run][axis].clone());
                }
            }
            let of = |value: &str| -> Vec<usize> {
                runs.iter()
                    .copied()
                    .filter(|&r| values[r][axis] == value)
                    .collect()
            };
            cell.candidates = order
                .iter()
                .map(|value| {
                    let losses: Option<Vec<f64>> = of(value)
                        .into_iter()
                        .map(|r| train_loss[r].filter(|l| l.is_finite()))
                        .collect();
                    Candidate {
                        value: value.clone(),
                        mean_train_loss: losses.map(|l| l.iter().sum::<f64>() / l.len() as f64),
                    }
                })
                .collect();
            let best = cell
                .candidates
                .iter()
                .filter_map(|c| c.mean_train_loss.map(|l| (l, &c.value)))
                .fold(None::<(f64, &String)>, |best, (loss, value)| match best {
                    Some((b, _)) if b <= loss => best,
                    _ => Some((loss, value)),
                })
                .map(|(_, value)| value.clone());
            cell.members = match &best {
                Some(value) => of(value),
                None => runs,
            };
            cell.chosen = best;
            cell
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn each_cell_gets_the_value_with_the_lowest_mean_training_loss() {
        // Axes: depth, lr, seed. Depth 4 is best at lr 0.01 on average even though seed 2
        // alone does better at 0.001; depth 16 is best at 0.001. A loss that fits the test set
        // better plays no part: only training losses are passed in.
        let runs = [
            (["4", "0.001", "1"], Some(0.50)),
            (["4", "0.001", "2"], Some(0.10)),
            (["4", "0.01", "1"], Some(0.20)),
            (["4", "0.01", "2"], Some(0.20)),
            (["16", "0.001", "1"], Some(0.25)),
            (["16", "0.001", "2"], Some(0.375)),
            (["16", "0.01", "1"], Some(0.875)),
            (["16", "0.01", "2"], Some(0.0625)),
        ];
        let values: Vec<Vec<String>> = runs.iter().map(|(v, _)| row(v)).collect();
        let losses: Vec<Option<f64>> = runs.iter().map(|(_, l)| *l).collect();
        let cells = cells(&values, &losses, Some(2), Some(1));
        assert_eq!(cells.len(), 2);
        assert_eq!(cells[0].key, ["4"]);
        assert_eq!(cells[0].chosen.as_deref(), Some("0.01"));
        assert_eq!(cells[0].members, [2, 3]);
        assert_eq!(cells[1].key, ["16"]);
        assert_eq!(cells[1].chosen.as_deref(), Some("0.001"));
        assert_eq!(cells[1].members, [4, 5]);
        let means: Vec<Option<f64>> = cells[1]
            .candidates
            .iter()
            .map(|c| c.mean_train_loss)
            .collect();
        // Binary fractions, so the means are exact.
        assert_eq!(means, [Some(0.3125), Some(0.46875)]);
    }

    #[test]
    fn a_value_with_a_missing_or_diverged_run_cannot_win() {
        let values = vec![
            row(&["0.1", "1"]),
            row(&["0.1", "2"]),
            row(&["0.01", "1"]),
            row(&["0.01", "2"]),
        ];
        // lr 0.1 has the lowest loss on seed 1 but diverged (NaN) on seed 2.
        let losses = [Some(0.01), Some(f64::NAN), Some(0.4), Some(0.5)];
        let cells = cells(&values, &losses, Some(1), Some(0));
        assert_eq!(cells[0].chosen.as_deref(), Some("0.01"));
        assert_eq!(cells[0].candidates[0].mean_train_loss, None);
        // Nothing scorable: no choice, and the row reports every run.
        let none = super::cells(&values, &[None; 4], Some(1), Some(0));
        assert_eq!(none[0].chosen, None);
        assert_eq!(none[0].members, [0, 1, 2, 3]);
    }

    #[test]
    fn ties_go_to_the_first_value_and_no_selection_groups_over_seeds() {
        let values = vec![row(&["a", "1"]), row(&["b", "1"])];
        let tie = cells(&values, &[Some(0.2), Some(0.2)], None, Some(0));
        assert_eq!(tie[0].chosen.as_deref(), Some("a"));
        let plain = cells(&values, &[Some(0.2), Some(0.1)], Some(1), None);
        assert_eq!(plain.len(), 2);
        assert_eq!(
            (plain[0].members.as_slice(), plain[0].chosen.as_ref()),
            ([0].as_slice(), None)
        );
        assert!(plain[1].candidates.is_empty());
    }
}
