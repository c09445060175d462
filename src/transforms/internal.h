// Helpers shared by the transform sources (private: include as "transforms/internal.h" with src/ on
// the include path): the image-shape check, Python's rounding, and running an operation on the
// flagged images of a batch.
#pragma once

#include <cmath>
#include <cstdint>
#include <string_view>
#include <vector>

#include <ATen/ATen.h>

#include "birdplane/check.h"

namespace birdplane::transforms {

/// Throws Error unless `image` is one image [C,H,W] or a batch [B,C,H,W]; `who` names the caller.
inline void check_image(const at::Tensor& image, std::string_view who) {
  BIRDPLANE_CHECK(image.dim() == 3 || image.dim() == 4, "{} expects an image [C,H,W] or a batch [B,C,H,W], got {} dims",
                  who, image.dim());
}

/// How many images `input` holds: B for [B,C,H,W], 1 for [C,H,W].
inline int64_t image_count(const at::Tensor& input) { return input.dim() == 4 ? input.size(0) : 1; }

/// Runs `op(images, indices)` on the images of `input` whose flag is set and returns the batch with
/// them replaced; the others are left as they are. `images` is `input` itself when every image (or
/// the one image [C,H,W]) is flagged, otherwise the flagged images picked out in order; `indices`
/// are their positions. `op` must treat the images of a batch independently (so running it on the
/// chosen ones together equals running it image by image) and keep their shape. One flag per image;
/// `who` names the caller in errors.
template <typename Op>
at::Tensor apply_flagged(const at::Tensor& input, const std::vector<bool>& flags, std::string_view who, Op op) {
  if (input.dim() == 3) {
    BIRDPLANE_CHECK(flags.size() == 1, "{}: one image needs one flag, got {}", who, flags.size());
    return flags[0] ? op(input, std::vector<int64_t>{0}) : input;
  }
  BIRDPLANE_CHECK(static_cast<int64_t>(flags.size()) == input.size(0), "{}: {} flags for a batch of {}", who,
                  flags.size(), input.size(0));
  std::vector<int64_t> chosen;
  for (size_t i = 0; i < flags.size(); ++i)
    if (flags[i]) chosen.push_back(static_cast<int64_t>(i));
  if (chosen.empty()) return input;
  if (static_cast<int64_t>(chosen.size()) == input.size(0)) return op(input, chosen);
  const auto sel = at::tensor(chosen, at::TensorOptions().dtype(at::kLong));
  auto out = input.clone();
  out.index_copy_(0, sel, op(input.index_select(0, sel), chosen).to(out.scalar_type()));
  return out;
}

namespace functional {

/// Python's round() on a float, as torchvision's int(round(x)) uses it: halves go to the even
/// neighbour (2.5 -> 2, 3.5 -> 4, -2.5 -> -2). Independent of the floating-point rounding mode.
inline int64_t round_half_even(double v) {
  double r = std::round(v);  // halves away from zero
  if (std::fabs(v - std::trunc(v)) == 0.5) r = 2.0 * std::round(v / 2.0);
  return static_cast<int64_t>(r);
}

}  // namespace functional
}  // namespace birdplane::transforms
