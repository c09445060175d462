// Comparing a birdplane model file's weights with a state_dict file (birdplane export, or Python's
// torch.save of a dict), read independently of birdplane's importer.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/train/checkpoint.h"
#include "support/fixtures.h"

namespace birdplane::fixtures {

/// The largest difference between the parameters of model file `model_path` (model.pt or a
/// checkpoint) and the same-named tensors of state_dict file `state_dict_path` (read with LibTorch's
/// own unpickler: a dict of two or more tensors). A parameter the file lacks is a test failure.
inline double max_parameter_difference(const std::string& model_path, const std::string& state_dict_path) {
  const auto bytes = read_file(state_dict_path);
  const auto dict = torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end())).toGenericDict();
  const auto loaded = train::load_checkpoint(model_path);
  double worst = 0;
  for (const auto& p : loaded.model->named_parameters()) {
    if (!dict.contains(p.key())) {
      ADD_FAILURE() << state_dict_path << " has no " << p.key();
      continue;
    }
    const auto want = dict.at(p.key()).toTensor();
    if (want.sizes() != p.value().sizes()) {
      ADD_FAILURE() << p.key() << ": " << want.sizes() << " in the file, " << p.value().sizes() << " in the model";
      continue;
    }
    worst = std::max(worst, (p.value().detach() - want).abs().max().item<double>());
  }
  return worst;
}

}  // namespace birdplane::fixtures
