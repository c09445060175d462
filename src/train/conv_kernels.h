// AVX-512 kernels for the fused convnet step (train/fused_convnet.h): a 3x3 convolution (padding 1,
// stride 1) followed by 2x2 max pooling (floor mode), forward and backward, on images laid out
// NHWC with a one-pixel zero border ("padded NHWC": [B, H+2, W+2, C], channels contiguous).
//
// The forward kernel computes only the convolution outputs the pooling reads and keeps, per pooled
// output, the maximum and where in its 2x2 window it came from (0..3, row-major; the first maximum
// wins ties, a NaN wins over any number, as in max_pool2d). The full-size convolution output is
// never stored. The backward kernels use those positions directly: each pooled gradient reaches
// the one convolution output it came from, so the gradients cost a quarter of a dense convolution's.
//
// Every kernel is deterministic whatever the thread count: the images are split into fixed chunks,
// and partial sums are added in chunk order.
#pragma once

#include <cstdint>

namespace birdplane::train::kernels {

/// One layer's shapes: `batch` images of in_h x in_w x in_c (before the border), out_c outputs.
/// Pooled outputs are (in_h / 2) x (in_w / 2).
struct ConvPoolShape {
  int64_t batch = 0, in_h = 0, in_w = 0, in_c = 0, out_c = 0;
  int64_t pooled_h() const { return in_h / 2; }
  int64_t pooled_w() const { return in_w / 2; }
  /// out_c rounded up to whole 16-float vectors (the forward weight's last dimension).
  int64_t out_c_padded() const { return (out_c + 15) / 16 * 16; }
  /// Floats per row and per image of the padded NHWC input [B, in_h+2, in_w+2, in_c].
  int64_t padded_row() const { return (in_w + 2) * in_c; }
  int64_t padded_image() const { return (in_h + 2) * padded_row(); }
};

/// Where the forward kernel writes pooled pixel (b, y, x): out + b * image + y * row + x * pixel,
/// its out_c channels contiguous.
struct PooledLayout {
  float* out = nullptr;
  int64_t image = 0, row = 0, pixel = 0;
};

/// The gradient of a layer's pooled outputs, pixel (b, y, x) at grad + b * image + y * row + x * pixel
/// (out_c channels contiguous). With `act` set (laid out the same way), `grad` is the gradient of
/// tanh(pooled) and `act` holds tanh(pooled): the kernel multiplies by 1 - act^2 as it reads.
struct PooledGrad {
  const float* grad = nullptr;
  const float* act = nullptr;
  int64_t image = 0, row = 0, pixel = 0;
};

/// Forward: `in` padded NHWC; `w_packed` [3][3][in_c][out_c_padded] (zero beyond out_c), `bias`
/// [out_c]. Writes max over each 2x2 window of (convolution + bias), or its tanh with `tanh` set,
/// through `out`, and the window position of each maximum to `where` [B, pooled_h, pooled_w, out_c].
void conv3x3_pool_forward(const float* in, const ConvPoolShape& s, const float* w_packed, const float* bias,
                          const PooledLayout& out, uint8_t* where, bool tanh);

/// Weight and bias gradients from the gradient `g` of the pooled outputs: dw [out_c][3][3 * in_c]
/// (o, ky, kx * in_c + c) and db [out_c], overwritten.
void conv3x3_pool_weight_grad(const float* in, const ConvPoolShape& s, const PooledGrad& g, const uint8_t* where,
                              float* dw, float* db);

/// Input gradient: adds into `din` (padded NHWC like the input; the caller zeroes it) the gradient
/// through the weight w_back [out_c][3][3 * in_c] (the layout dw has).
void conv3x3_pool_input_grad(const float* g, const uint8_t* where, const ConvPoolShape& s, const float* w_back,
                             float* din);

/// x [B, C, H, W] contiguous into the interior of `out`, padded NHWC [B, H+2, W+2, C] (its border is
/// left as it is).
void nchw_to_padded_nhwc(const float* x, int64_t batch, int64_t c, int64_t h, int64_t w, float* out);

/// tanh of n floats in place, vectorized (AVX-512): within 2 units in the last place of std::tanh.
void tanh_inplace(float* x, int64_t n);

}  // namespace birdplane::train::kernels
