#include "birdplane/train/average.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "birdplane/check.h"

namespace birdplane::train {

WeightAverage::WeightAverage(std::vector<at::Tensor> averaged, double decay)
    : averaged_(std::move(averaged)), decay_(decay) {
  BIRDPLANE_CHECK_SETTING(decay >= 0 && decay < 1, "ema_decay", "{} is not allowed; expected 0 <= decay < 1", decay);
}

void WeightAverage::update(const std::vector<at::Tensor>& current) {
  BIRDPLANE_CHECK(current.size() == averaged_.size(), "weight average: {} tensors for {}", current.size(),
                  averaged_.size());
  c10::NoGradGuard no_grad;
  for (size_t i = 0; i < averaged_.size(); ++i) {
    const at::Tensor p = current[i].detach().to(averaged_[i].device());
    if (n_averaged_ == 0) {
      averaged_[i].copy_(p);
    } else {
      // decay * avg + (1 - decay) * p, in this order of operations (the result for an integer buffer
      // is float, then truncated by copy_)
      averaged_[i].copy_(at::add(at::mul(averaged_[i], decay_), at::mul(p, 1.0 - decay_)));
    }
  }
  ++n_averaged_;
}

}  // namespace birdplane::train
