// Transforms as pure functions on one image [C,H,W] or a batch [B,C,H,W] (torchvision's
// transforms/functional.py). The classes in transforms.h wrap these.
#pragma once

#include <vector>

#include <ATen/core/Tensor.h>

namespace birdplane::transforms::functional {

/// Memory layout of the input to to_tensor.
enum class Layout {
  kAuto,  ///< CHW unless the last dim is 1, 3 or 4 and the first is not (then HWC).
  kCHW,   ///< [C,H,W] or [B,C,H,W]
  kHWC,   ///< [H,W,C] or [B,H,W,C] (what PIL and numpy images are)
};

/// torchvision's ToTensor: uint8 images to float32 CHW in [0,1] (divides by 255). A float input is
/// returned as float32 unchanged in value (torchvision scales only byte images). Accepts [C,H,W],
/// [H,W,C], [H,W] (one channel) and the batched forms [B,...].
at::Tensor to_tensor(const at::Tensor& image, Layout layout = Layout::kAuto);

/// torchvision's Normalize: (x - mean[c]) / std[c] on a float image [C,H,W] or batch [B,C,H,W].
/// mean and std hold one value per channel, or one value for all. A std of 0 is rejected.
/// With inplace the input is overwritten and returned.
at::Tensor normalize(const at::Tensor& image, const std::vector<double>& mean,
                     const std::vector<double>& std, bool inplace = false);

/// Throws an Error when a standard deviation is 0 or not finite (Normalize divides by it).
void check_std(const std::vector<double>& std);

/// to_tensor then normalize in one pass over a uint8 batch: x / 255 - mean) / std, computed as
/// x * (1 / (255 std)) - mean / std. Equal to the two-step version within float rounding (1e-6).
at::Tensor to_normalized(const at::Tensor& image_u8, const std::vector<double>& mean,
                         const std::vector<double>& std);

}  // namespace birdplane::transforms::functional
