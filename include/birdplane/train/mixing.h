// Mixup and cutmix on training batches, as torchvision's classification reference defines them
// (RandomMixup, RandomCutmix): each batch is mixed with itself rolled by one image, with one lambda per
// batch drawn from Beta(alpha, alpha); cutmix pastes a box of the rolled batch and takes lambda from
// the box's area. The targets become soft ([B, K] probabilities) and the loss their cross-entropy.
#pragma once

#include <cstdint>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

namespace birdplane::train {

/// Field names are the setting names in errors and config.json.
struct MixSpec {
  double mixup_alpha = 0.0;   ///< > 0: mixup with lambda ~ Beta(alpha, alpha)
  double cutmix_alpha = 0.0;  ///< > 0: cutmix with lambda ~ Beta(alpha, alpha)
  double mix_prob = 1.0;      ///< the chance that a batch is mixed at all
  double switch_prob = 0.5;   ///< with both on: the chance of cutmix rather than mixup for a batch

  bool enabled() const { return mixup_alpha > 0 || cutmix_alpha > 0; }
  void validate() const;
  nlohmann::json to_json() const;
  static MixSpec from_json(const nlohmann::json& j);  ///< missing keys: off
};

/// One-hot float32 targets [B, K] from int64 labels [B].
at::Tensor one_hot_targets(const at::Tensor& labels, int64_t num_classes);

/// RandomMixup with a given lambda: images and targets become lambda * x + (1 - lambda) * x.roll(1, 0).
void mixup_(at::Tensor& images, at::Tensor& targets, double lambda);

/// RandomCutmix with a given lambda and box centre (cx, cy): the box of half-size
/// (int(r * W), int(r * H)), r = sqrt(1 - lambda) / 2, clipped to the image, comes from the rolled batch;
/// the targets mix by the share of the image outside the box, which is returned.
double cutmix_(at::Tensor& images, at::Tensor& targets, double lambda, int64_t cx, int64_t cy);

/// What mix_batch did.
struct MixResult {
  at::Tensor targets;  ///< float32 [B, K]
  bool mixed = false;
  bool cutmix = false;
  double lambda = 1.0;  ///< the targets' weight of the batch's own labels
};

/// Mixes `images` ([B, C, H, W] float, in place) per `spec`, drawing from `gen`: whether to mix
/// (mix_prob), which (switch_prob), lambda (Beta from two Gamma draws), cutmix's box centre (uniform).
MixResult mix_batch(at::Tensor& images, const at::Tensor& labels, int64_t num_classes, const MixSpec& spec,
                    at::Generator& gen);

}  // namespace birdplane::train
