// AVX-512 kernels for the input layer of the fused training step (train/fused_step.h): the forward
// product and the weight update W <- W + scale * g^T x, written for the shapes of a training batch
// (a few dozen images, thousands of inputs), where a general BLAS spends much of its time packing.
//
// Both read the weight in nn::Linear's own layout [out, in] and are deterministic: every output is
// summed in one fixed order whatever the thread count. The float32 sums run in a different order
// from a BLAS's, so results differ from at::addmm by float rounding.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace birdplane::train::kernels {

/// Whether this CPU (and this build) runs the kernels; where not, callers use ATen.
bool available();

/// available(), unless the environment sets BIRDPLANE_KERNELS=blas (ATen and the BLAS throughout,
/// for comparisons): whether the fused fp32 step uses the kernels.
bool enabled();

/// The layer's output transposed: out_t [O, B] with out_t[o][b] = bias[o] + sum_k w[o][k] x[b][k],
/// for x [B, K] and w [O, K] float32 contiguous, bias [O] (or undefined for none).
at::Tensor linear_forward_t(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias);

/// w [O, K] += scale * g^T x in place, for g [B, O] float32 with any strides and x [B, K] contiguous.
void linear_update_(at::Tensor& w, const at::Tensor& g, const at::Tensor& x, double scale);

}  // namespace birdplane::train::kernels
