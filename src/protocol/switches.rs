//! The live switches: what is in effect, how a key moves it, and how the header names it.
//!
//! A new live switch is a [`Command`] variant plus an arm in each match here (the compiler
//! lists them), its effect in the trainer (the `Learner` impls), and its key in the keymap.

use super::{Command, Setting};
use crate::config::{BranchScale, CellKind, Experiment, ModelKind, NormKind, NormPlace, SkipMode};

/// Learning rates the keys stay within.
pub const LR_RANGE: (f32, f32) = (1e-6, 10.0);

/// A live switch, as keys, the header and "not here" notes name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Switch {
    /// The skip connections between hidden layers.
    Skip,
    /// Auxiliary losses on intermediate layers.
    Aux,
    /// The optimiser's learning rate.
    LearningRate,
    /// The recurrent cell.
    Cell,
    /// Normalisation of the hidden layers (none, layer norm, batch norm).
    Norm,
    /// Where the norm sits: inside the block (pre) or after the addition (post).
    NormPlace,
    /// The factor on each residual branch.
    BranchScale,
}

impl Switch {
    /// What the header calls it.
    pub fn name(self) -> &'static str {
        match self {
            Switch::Skip => "skip",
            Switch::Aux => "aux",
            Switch::LearningRate => "lr",
            Switch::Cell => "cell",
            Switch::Norm => "norm",
            Switch::NormPlace => "norm at",
            Switch::BranchScale => "branch",
        }
    }

    /// Whether the switch exists on this kind of network.
    pub fn applies_to(self, kind: ModelKind) -> bool {
        match self {
            Switch::Skip | Switch::Aux | Switch::Norm | Switch::NormPlace | Switch::BranchScale => {
                kind == ModelKind::Mlp
            }
            Switch::Cell => kind == ModelKind::Rnn,
            Switch::LearningRate => true,
        }
    }

    /// Every switch, in header order.
    pub const ALL: [Switch; 7] = [
        Switch::Skip,
        Switch::Aux,
        Switch::Norm,
        Switch::NormPlace,
        Switch::BranchScale,
        Switch::Cell,
        Switch::LearningRate,
    ];
}

/// How a key (or a fork) moves a switch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Move {
    /// Set the skip mode.
    SkipTo(SkipMode),
    /// Auxiliary losses the other way.
    ToggleAux,
    /// Multiply the learning rate, within [`LR_RANGE`].
    ScaleLr(f32),
    /// The next recurrent cell.
    NextCell,
    /// The next normalisation: none → layer norm → batch norm → none.
    NextNorm,
    /// The norm's placement the other way (pre ↔ post).
    ToggleNormPlace,
    /// The next residual-branch factor: 1 → 1/√depth → ReZero → 1.
    NextBranchScale,
}

impl Move {
    /// The switch it moves.
    pub fn switch(self) -> Switch {
        match self {
            Move::SkipTo(_) => Switch::Skip,
            Move::ToggleAux => Switch::Aux,
            Move::ScaleLr(_) => Switch::LearningRate,
            Move::NextCell => Switch::Cell,
            Move::NextNorm => Switch::Norm,
            Move::ToggleNormPlace => Switch::NormPlace,
            Move::NextBranchScale => Switch::BranchScale,
        }
    }
}

/// The switches in effect on one run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Switches {
    /// Skip mode.
    pub skip: SkipMode,
    /// Auxiliary losses on.
    pub aux: bool,
    /// Learning rate.
    pub lr: f32,
    /// Recurrent cell (recurrent nets only).
    pub cell: CellKind,
    /// Normalisation (MLPs only).
    pub norm: NormKind,
    /// Where the norm sits (MLPs only).
    pub norm_place: NormPlace,
    /// Residual-branch factor (MLPs only).
    pub branch_scale: BranchScale,
}

impl Default for Switches {
    fn default() -> Self {
        Self {
            skip: SkipMode::Plain,
            aux: false,
            lr: 0.0,
            cell: CellKind::Vanilla,
            norm: NormKind::None,
            norm_place: NormPlace::Pre,
            branch_scale: BranchScale::One,
        }
    }
}

impl Switches {
    /// The switches an experiment starts with.
    pub fn of(experiment: &Experiment) -> Self {
        Self {
            skip: experiment.model.skip,
            aux: experiment.model.aux.enabled,
            lr: experiment.optimizer.learning_rate(),
            cell: experiment.model.cell,
            norm: experiment.model.norm,
            norm_place: experiment.model.norm_place,
            branch_scale: experiment.model.branch_scale,
        }
    }

    /// Takes in a command that took effect; false for commands that are not switches.
    pub fn apply(&mut self, command: &Command) -> bool {
        match command.setting() {
            Some(Setting::Skip(skip)) => self.skip = skip,
            Some(Setting::Aux(on)) => self.aux = on,
            Some(Setting::LearningRate(lr)) => self.lr = lr,
            Some(Setting::Cell(cell)) => self.cell = cell,
            Some(Setting::Norm(norm)) => self.norm = norm,
            Some(Setting::NormPlace(place)) => self.norm_place = place,
            Some(Setting::BranchScale(scale)) => self.branch_scale = scale,
            None => return false,
        }
        true
    }

    /// The command that makes `mv` from here, or why it cannot (a limit reached).
    pub fn command_for(&self, mv: Move) -> Result<Command, String> {
        Ok(match mv {
            Move::SkipTo(skip) => Command::SetSkip(skip),
            Move::ToggleAux => Command::SetAux(!self.aux),
            Move::ScaleLr(factor) => {
                let lr = (self.lr * factor).clamp(LR_RANGE.0, LR_RANGE.1);
                if lr == self.lr {
                    let edge = if factor > 1.0 { "highest" } else { "lowest" };
                    return Err(format!("lr is already {lr:.0e}, the {edge} the keys allow"));
                }
                Command::SetLearningRate(lr)
            }
            Move::NextCell => Command::SetCell(self.cell.next()),
            Move::NextNorm => Command::SetNorm(next_of(&NormKind::ALL, self.norm)),
            Move::ToggleNormPlace => Command::SetNormPlace(match self.norm_place {
                NormPlace::Pre => NormPlace::Post,
                NormPlace::Post => NormPlace::Pre,
            }),
            Move::NextBranchScale => {
                Command::SetBranchScale(next_of(&BranchScale::ALL, self.branch_scale))
            }
        })
    }

    /// Whether the header shows `switch`: the norm only when one is on, its placement only
    /// then, the branch factor only on residual blocks and when it is not 1 (at their defaults
    /// the net is the one without these switches, and the header keeps its room for the
    /// mean-field line; the status bar still names the keys).
    pub fn in_effect(&self, switch: Switch) -> bool {
        match switch {
            Switch::Norm | Switch::NormPlace => self.norm != NormKind::None,
            Switch::BranchScale => {
                matches!(self.skip, SkipMode::Residual { .. })
                    && self.branch_scale != BranchScale::One
            }
            _ => true,
        }
    }

    /// The value of `switch` in words, for the header and fork labels.
    pub fn value(&self, switch: Switch) -> String {
        match switch {
            Switch::Skip => self.skip.label(),
            Switch::Aux => if self.aux { "on" } else { "off" }.into(),
            Switch::LearningRate => format!("{:.2e}", self.lr),
            Switch::Cell => self.cell.label().into(),
            // "norm no norm" would read oddly after the switch's name.
            Switch::Norm => match self.norm {
                NormKind::None => "none".into(),
                norm => norm.label().into(),
            },
            Switch::NormPlace => self.norm_place.label().into(),
            Switch::BranchScale => self.branch_scale.label().into(),
        }
    }
}

/// The choice after `current` in `cycle`, wrapping round.
fn next_of<T: Copy + PartialEq>(cycle: &[T], current: T) -> T {
    let at = cycle.iter().position(|c| *c == current).unwrap_or(0);
    cycle[(at + 1) % cycle.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_switch_command_round_trips_through_apply() {
        let mut s = Switches {
            lr: 1e-3,
            ..Switches::default()
        };
        for mv in [
            Move::SkipTo(SkipMode::Highway),
            Move::ToggleAux,
            Move::ScaleLr(2.0),
            Move::NextCell,
            Move::NextNorm,
            Move::ToggleNormPlace,
            Move::NextBranchScale,
        ] {
            let command = s.command_for(mv).expect("within limits");
            assert!(s.apply(&command), "{command:?} is a switch");
        }
        assert_eq!(s.skip, SkipMode::Highway);
        assert!(s.aux);
        assert_eq!(s.lr, 2e-3);
        assert_eq!(s.cell, CellKind::Gru);
        assert_eq!(s.norm, NormKind::LayerNorm);
        assert_eq!(s.norm_place, NormPlace::Post);
        assert_eq!(s.branch_scale, BranchScale::InvSqrtDepth);
    }

    #[test]
    fn the_norm_and_branch_keys_cycle_back_to_the_start() {
        let mut s = Switches::default();
        let mut norms = Vec::new();
        let mut scales = Vec::new();
        for _ in 0..3 {
            for mv in [Move::NextNorm, Move::NextBranchScale] {
                let command = s.command_for(mv).expect("no limit");
                s.apply(&command);
            }
            norms.push(s.norm);
            scales.push(s.branch_scale);
        }
        assert_eq!(
            norms,
            [NormKind::LayerNorm, NormKind::BatchNorm, NormKind::None]
        );
        assert_eq!(
            scales,
            [
                BranchScale::InvSqrtDepth,
                BranchScale::ReZero,
                BranchScale::One
            ]
        );
    }

    #[test]
    fn the_learning_rate_limit_says_so() {
        let s = Switches {
            lr: LR_RANGE.1,
            ..Switches::default()
        };
        let why = s.command_for(Move::ScaleLr(2.0)).expect_err("at the top");
        assert!(why.contains("highest"), "{why}");
    }
}
