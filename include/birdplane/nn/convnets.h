// The chapter-8 convolutional networks of "Deep Learning with PyTorch", as presets of the model
// registry: net, net-width, net-dropout, net-batchnorm, net-depth, net-res, net-res-deep. Each
// registers its layers under the book's attribute names (conv1, conv1_batchnorm, fc2,
// resblocks.0.conv, ...), so state_dicts move between birdplane and the book's Python classes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>

#include "birdplane/nn/model.h"

namespace birdplane::nn {

/// Which of the chapter's networks.
enum class ConvNetKind { kNet, kWidth, kDropout, kBatchNorm, kDepth, kRes, kResDeep };

/// The preset names, in the chapter's order.
const std::vector<std::string>& convnet_names();

/// The kind a preset name stands for; a SettingError for "model" when it names no convnet.
ConvNetKind convnet_kind(const std::string& name);

/// One network of the chapter. Images [B,C,H,W] with H and W divisible by 4 (8 for net-depth and
/// net-res); the book's are [B,3,32,32].
class ConvNet : public Classifier {
 public:
  /// A SettingError for "channels" (below 2, odd, over 4096) or "blocks" (below 1, over 1000), and
  /// for "model" when the image size does not fit the network's poolings.
  explicit ConvNet(ModelSpec spec);

  at::Tensor logits(const at::Tensor& images) override;
  std::vector<LayerRow> layer_rows() const override;
  /// The fused step (train/step.h): plain SGD on the CPU; net and net-width, float32, AVX-512.
  std::string fused_step_unsupported(const train::StepSetup& setup) const override;
  std::unique_ptr<train::FusedStep> make_fused_step(const train::StepSetup& setup) override;
  /// net-res-deep with shared blocks lists its one block under every index (resblocks.0 ...
  /// resblocks.N-1), as the book's Python class does.
  std::vector<std::pair<std::string, at::Tensor>> state_dict() const override;

  ConvNetKind kind() const { return kind_; }

 private:
  ConvNetKind kind_;
  int64_t channels_;      ///< first convolution's output channels
  int64_t flat_;          ///< inputs of fc1
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr}, conv3_{nullptr};
  torch::nn::BatchNorm2d conv1_bn_{nullptr}, conv2_bn_{nullptr};
  torch::nn::Dropout2d conv1_dropout_{nullptr}, conv2_dropout_{nullptr};
  std::vector<torch::nn::Conv2d> res_convs_;    ///< net-res-deep: each block's convolution (one if shared)
  std::vector<torch::nn::BatchNorm2d> res_bns_;  ///< and its batch norm
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr};
};

}  // namespace birdplane::nn
