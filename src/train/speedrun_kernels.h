// AVX-512 kernels for the speedrun network's fused step (speedrun_step.cpp): the elementwise and
// per-channel work between its convolutions, on activations laid out as [rows, C] with the channels
// contiguous (a channels-last [B,H,W,C] tensor is rows = B*H*W). Each kernel reads and writes float32
// or bfloat16 (`bf16`: round to nearest even, as PyTorch converts) and computes in float32.
//
// One pass replaces several of LibTorch's: batch norm with the batch's statistics, its fixed scale of 1
// and shift, then GELU (exact, erf from Abramowitz and Stegun 7.1.26 as ATen's vectorized erf); and
// backward, the GELU derivative with batch norm's two reductions and the result scattered back through
// the 2x2 max pool. Sums over rows are taken in fixed chunks and added in chunk order, so results do not
// depend on the thread count.
#pragma once

#include <cstdint>

namespace birdplane::train::speedrun_kernels {

/// Whether this CPU runs them (AVX-512 F, BW and VL).
bool available();

/// Per channel mean and biased variance of x [rows, C], in double (summed as differences from the first
/// row's values, so a mean far from zero costs the variance no precision).
void channel_stats(const void* x, bool bf16, int64_t rows, int64_t C, double* mean, double* var);

/// 2x2 max pooling (floor mode) of y [B,H,W,C] into pooled [B,H/2,W/2,C] (same storage), with the
/// window position of each maximum (0..3, row-major; the first wins ties) in `where`, and the per channel
/// mean and biased variance of the pooled values.
void pool2_stats(const void* y, bool bf16, int64_t B, int64_t H, int64_t W, int64_t C, void* pooled, uint8_t* where,
                 double* mean, double* var);

/// Inference's pooled layer in one pass: out [B,H/2,W/2,C] = gelu((max of each 2x2 window of y [B,H,W,C]
/// - mean) * invstd + shift), with fixed (running) statistics; invstd must be positive (max pooling then
/// commutes with the normalization, as it does in the network, which pools first).
void pool2_norm_gelu(const void* y, bool bf16, int64_t B, int64_t H, int64_t W, int64_t C, const float* mean,
                     const float* invstd, const float* shift, void* out);

/// out = gelu((x - mean) * invstd + shift) for x, out [rows, C] (out may be x).
void norm_gelu(const void* x, bool bf16, int64_t rows, int64_t C, const float* mean, const float* invstd,
               const float* shift, void* out);

/// With dz = dout * gelu'(xhat + shift) and xhat = (x - mean) * invstd: the per channel sums of dz and of
/// dz * xhat over the rows.
void norm_gelu_backward_sums(const void* dout, const void* x, bool bf16, int64_t rows, int64_t C, const float* mean,
                             const float* invstd, const float* shift, double* sum_dz, double* sum_dz_xhat);

/// dx = invstd * (dz - sum_dz / rows - xhat * sum_dz_xhat / rows), batch norm's input gradient. Written as
/// [rows, C] when `where` is null; otherwise rows are the pooled pixels of a 2x2 pool whose input was
/// [B,H,W,C] and dx is that input's gradient: each value at its window position, zeros elsewhere
/// (including a last odd row or column).
void norm_gelu_backward_apply(const void* dout, const void* x, bool bf16, int64_t rows, int64_t C, const float* mean,
                              const float* invstd, const float* shift, const double* sum_dz,
                              const double* sum_dz_xhat, void* dx, const uint8_t* where, int64_t B, int64_t H,
                              int64_t W);

/// out = gelu(x), n elements.
void gelu(const void* x, bool bf16, int64_t n, void* out);

/// Per channel sums over the rows of dout * gelu'(z), for z, dout [rows, C].
void gelu_backward_sum(const void* dout, const void* z, bool bf16, int64_t rows, int64_t C, double* sum);

}  // namespace birdplane::train::speedrun_kernels
