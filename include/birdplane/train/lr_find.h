// The learning-rate finder's settings and result (Trainer::find_lr runs the sweep), and its files: the
// loss against the rate as CSV and SVG, as fastai's lr_find shows it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace birdplane::train {

/// The learning-rate finder's sweep (Trainer::find_lr): an exponential ramp from start_lr to end_lr
/// over `steps` training steps, stopped early when the smoothed loss passes `diverge` times its lowest.
struct LrFindOptions {
  double start_lr = 1e-7, end_lr = 10;
  int64_t steps = 100;
  double smoothing = 0.98;  ///< of the loss's moving average (fastai's beta)
  double diverge = 4;
};

/// What the sweep saw: per step the rate, the loss and the smoothed loss; the suggested rate (where
/// the smoothed loss falls fastest against log(lr), fastai's "steep"); whether it diverged.
struct LrFindResult {
  std::vector<double> lrs, losses, smoothed;
  double suggestion = 0;
  bool diverged = false;
};

/// Writes lr_find.csv (step, lr, loss, smoothed_loss) and lr_find.svg (the smoothed loss against the
/// rate on a log scale, the suggestion marked) into `folder` (created when missing), each atomically.
/// Nothing else in the folder is touched.
void write_lr_find(const std::string& folder, const LrFindResult& result);

}  // namespace birdplane::train
