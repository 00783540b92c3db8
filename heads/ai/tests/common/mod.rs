//! What the training tests share.

use chimera_ai::train::TrainReport;

/// The learning curve without the timings.
pub fn curve(report: &TrainReport) -> Vec<(f32, f64, f32, f64)> {
    report
        .epochs
        .iter()
        .map(|e| (e.loss, e.train_accuracy, e.val_loss, e.val_accuracy))
        .collect()
}
