// The fused training step for the chapter's `net` and `net-width` (float32, CPU with AVX-512):
// conv 3x3 -> 2x2 max pool -> tanh, twice, then fc1 -> tanh -> fc2, with the backward pass written out
// by hand. With plain SGD every parameter is updated in place; with anything else (momentum, Nesterov,
// weight decay, Adam, AdamW, parameter groups, gradient clipping) the step writes each parameter's
// gradient and train/step.cpp's make_step lets the optimizer apply them. The loss gradient takes class
// labels or mixed targets (mixup, cutmix), with or without label smoothing.
//
// The convolutions run on train/conv_kernels.h, fused with their pooling: only the convolution
// outputs the pooling keeps are ever stored, and their gradients skip the three quarters of the
// window that the pooling dropped. The activations live in padded NHWC buffers. The two linear
// layers and the activations run on ATen. Results agree with the autograd step to float rounding
// (tests/unit/train/fused_convnet_test.cpp).
#pragma once

#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include "birdplane/nn/convnets.h"
#include "train/fused_step.h"

namespace birdplane::train {

/// Why the fused step cannot train this convnet, or "": net and net-width only, float32, AVX-512 (and
/// BIRDPLANE_KERNELS not set to blas). The setup's own limits: fused_gradients_unsupported.
std::string fused_convnet_unsupported(const nn::ConvNet& model, bool bf16);

/// Whether ConvNet::logits can take the fused kernels' forward for `images`: no gradient recorded
/// (GradMode off, no autocast), net or net-width (net-dropout in eval mode: its dropout is then the
/// identity), CPU float32 images [B, C, H >= 4, W >= 4], and fused_convnet_unsupported says "".
bool fused_convnet_inference_applies(const nn::ConvNet& model, const at::Tensor& images);

/// The flattened features that fc1 reads ([B, C2 * H/4 * W/4] in the book's [C, H, W] order) of the two
/// conv -> max pool -> tanh layers, on the fused step's forward kernels, 256 images at a time. Equal to
/// the ATen layers to float rounding (the same sums in another order).
at::Tensor fused_convnet_features(const at::Tensor& images, const at::Tensor& conv1_w, const at::Tensor& conv1_b,
                                  const at::Tensor& conv2_w, const at::Tensor& conv2_b);

class FusedConvNetStep : public FusedStep {
 public:
  /// Trains `model`'s conv1, conv2, fc1 and fc2 parameters: updated in place by SGD at `lr`, or, with
  /// `write_gradients`, left as they are with each one's gradient set (for an optimizer to apply).
  FusedConvNetStep(nn::ConvNet& model, double lr, double label_smoothing = 0.0, bool write_gradients = false);
  Result step(const at::Tensor& x, const at::Tensor& y) override;
  bool own_kernels() const override { return true; }

 private:
  /// The first `batch` images of a buffer kept between steps (reallocated when a batch is larger than
  /// any before): fresh megabyte-sized tensors each step cost more in page faults than the kernels.
  at::Tensor buffer(size_t slot, at::IntArrayRef shape, at::ScalarType dtype, bool zeroed);

  at::Tensor conv1_w_, conv1_b_, conv2_w_, conv2_b_, fc1_w_, fc1_b_, fc2_w_, fc2_b_;
  double label_smoothing_;
  bool write_gradients_;
  std::vector<at::Tensor> buffers_;
};

}  // namespace birdplane::train
