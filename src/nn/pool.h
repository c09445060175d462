// 2x2 max pooling with stride 2 for the convnets (private): one pass over the input that writes the
// maxima and, as one byte each, where in its window each came from; the backward pass sends each
// gradient to that position. LibTorch 1.13's max_pool2d_with_indices takes about a third of a `net`
// training step on the CPU (int64 indices, a generic window loop); this is its 2x2 case.
#pragma once

#include <ATen/core/Tensor.h>

namespace birdplane::nn {

/// Equals torch::max_pool2d(x, 2) (floor mode: an odd last row or column is left out), forward and
/// backward: x float32 [B,C,H,W]; the first maximum in row-major window order wins ties, as there.
/// Differentiable through autograd.
at::Tensor max_pool2x2(const at::Tensor& x);

}  // namespace birdplane::nn
