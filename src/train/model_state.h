// A model's state as one list (private): its parameters, then its buffers, in registration order, as the
// weight average, best.pt's copy in memory and the broadcasts of the trainer handle it.
#pragma once

#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/GradMode.h>

#include "birdplane/nn/model.h"

namespace birdplane::train {

/// The model's parameters, then its buffers (the tensors themselves, not copies).
inline std::vector<at::Tensor> model_tensors(const nn::Classifier& model) {
  std::vector<at::Tensor> out;
  for (const auto& p : model.parameters()) out.push_back(p);
  for (const auto& b : model.buffers()) out.push_back(b);
  return out;
}

/// Copies `from` (ordered as model_tensors) into the model's parameters and buffers.
inline void load_model_tensors(nn::Classifier& model, const std::vector<at::Tensor>& from) {
  c10::NoGradGuard no_grad;
  const auto to = model_tensors(model);
  BIRDPLANE_CHECK(to.size() == from.size(), "{} tensors for a model of {}", from.size(), to.size());
  for (size_t i = 0; i < to.size(); ++i) to[i].copy_(from[i]);
}

}  // namespace birdplane::train
