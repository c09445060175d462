// Weight averaging: an exponential moving average of a model's parameters and buffers, as
// torch.optim.swa_utils.AveragedModel(model, avg_fn=ema, use_buffers=True) keeps it (torchvision's
// reference ExponentialMovingAverage): the first update copies, each later one takes
// avg = decay * avg + (1 - decay) * current, integer buffers included (truncated, as copy_ does there).
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

namespace birdplane::train {

class WeightAverage {
 public:
  /// Averages into `averaged` (tensors updated in place, for example another model's parameters and
  /// buffers); `decay` in [0, 1).
  WeightAverage(std::vector<at::Tensor> averaged, double decay);

  /// Takes `current` (the same shapes, in the same order) into the average.
  void update(const std::vector<at::Tensor>& current);
  /// Starts again: the next update copies (AveragedModel's n_averaged set to 0).
  void restart() { n_averaged_ = 0; }
  /// Updates taken since the start or the last restart.
  int64_t n_averaged() const { return n_averaged_; }
  void set_n_averaged(int64_t n) { n_averaged_ = n; }
  const std::vector<at::Tensor>& averaged() const { return averaged_; }

 private:
  std::vector<at::Tensor> averaged_;
  double decay_;
  int64_t n_averaged_ = 0;
};

}  // namespace birdplane::train
