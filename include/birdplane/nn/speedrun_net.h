// The network of the CIFAR-10 speedrun (airbench94, arXiv 2404.00498; preset `speedrun`): a fixed 2x2
// whitening convolution (24 filters from the training patches' covariance) with GELU, then three groups
// of [3x3 convolution, 2x2 max pool, batch norm, GELU, 3x3 convolution, batch norm, GELU] of widths
// 64, 256, 256, a 3x3 max pool and a linear head without bias scaled by 1/9. The batch norms keep their
// scale at 1 (only the shift is trained), eps 1e-12, momentum 0.4; convolutions have no bias and start
// as the identity on their first input-channel-many filters. Its state_dict keys are those of the Python
// twin in bench/python/speedrun.py (whiten.weight, group1.conv1.weight, group1.norm1.bias, head.weight).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "birdplane/nn/model.h"

namespace birdplane::nn {

/// The learnable and running tensors of one convolution group.
struct SpeedrunGroup {
  at::Tensor conv1, conv2;  ///< [out, in, 3, 3] and [out, out, 3, 3]
  at::Tensor scale1, shift1, mean1, var1, count1;  ///< norm1: weight (fixed 1), bias, running stats, batches
  at::Tensor scale2, shift2, mean2, var2, count2;  ///< norm2
};

class SpeedrunNet : public Classifier {
 public:
  static constexpr double kNormEps = 1e-12;
  static constexpr double kNormMomentum = 0.4;  ///< PyTorch's convention: the new batch's share
  static constexpr double kHeadScale = 1.0 / 9.0;
  static constexpr int64_t kWhitenFilters = 24;

  /// Images must be 3x32x32 (a SettingError for "model" otherwise); the widths are fixed (64/256/256).
  explicit SpeedrunNet(ModelSpec spec);

  at::Tensor logits(const at::Tensor& images) override;
  std::vector<LayerRow> layer_rows() const override;

  /// Sets the whitening filters from `images` (normalized float [N,3,H,W]): the eigenvectors of the 2x2
  /// patches' covariance (largest eigenvalue first), each divided by sqrt(eigenvalue + eps), then the same
  /// 12 negated. The whitening bias is left as it is.
  void init_whitening(const at::Tensor& images, double eps = 5e-4);

  at::Tensor& whiten_weight() { return whiten_weight_; }
  at::Tensor& whiten_bias() { return whiten_bias_; }
  SpeedrunGroup& group(int index) { return groups_[index]; }
  at::Tensor& head() { return head_; }
  /// The parameters the recipe trains, by state_dict key: the batch-norm shifts (`norm` in the key), the
  /// convolutions, the whitening bias and the head.
  std::vector<std::pair<std::string, at::Tensor>> trainable() const;

 private:
  at::Tensor whiten_weight_, whiten_bias_, head_;
  SpeedrunGroup groups_[3];
};

}  // namespace birdplane::nn
