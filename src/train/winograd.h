// 3x3 convolutions (stride 1, padding 1, no bias) in Winograd's F(2x2, 3x3) form with bfloat16 products
// and float32 sums, for the speedrun network's fused step (speedrun_step.cpp), on channels-last
// activations [B,H,W,C] in bfloat16.
//
// Each 2x2 block of outputs ("tile") comes from a 4x4 block of inputs: the inputs and the filters are
// moved into a 16-point transformed space (Lavin and Gray, arXiv 1509.09308), where the convolution is 16
// independent matrix products [tiles x Cin] x [Cin x Cout], and the product is moved back. A tile costs
// 16 multiply-adds per input and output channel instead of the direct form's 36, so the arithmetic falls
// by 2.25x (less where the map's side is odd and the last tiles are half empty). The same products give
// both gradients: the input gradient is the forward form of the transposed, flipped filters, and the
// weight gradient sums the transformed inputs times the transformed output gradients over the tiles.
//
// The transforms' coefficients are 0, +-1 and +-1/2, so the transformed values lose little to bfloat16:
// tests/unit/train/winograd_test.cpp bounds the error against float64 by the direct bf16 form's.
// Products run on AVX512-BF16 dot products (vdpbf16ps), two input channels (or two tiles) a lane.
#pragma once

#include <cstdint>

namespace birdplane::train::winograd {

/// Whether this CPU runs them (AVX-512 F, BW, VL and BF16).
bool available();

/// Whether it is the faster choice here: available, and no AMX (oneDNN's AMX kernels outrun it).
bool preferred();

/// Whether conv3x3 takes Cin input and Cout output channels (Cin 24, 32, 64, 128, 256 or 512; Cout a multiple of 32).
bool forward_fits(int64_t cin, int64_t cout);
/// Whether conv3x3_weight_grad takes them (Cin a multiple of 32, Cout of 8; both at most 4096).
bool weight_grad_fits(int64_t cin, int64_t cout);

/// Number of bfloat16 values of a packed filter bank (16 * cin * cout).
int64_t packed_size(int64_t cin, int64_t cout);

/// Packs the filters w [cout, cin, 3, 3] (float32) for conv3x3. With `transpose_flip` the packed bank is
/// that of the input gradient's convolution: cin' = cout, cout' = cin, each filter turned 180 degrees.
void pack(const float* w, int64_t cout, int64_t cin, bool transpose_flip, uint16_t* packed);

/// y [B,H,W,cout] = the 3x3 convolution (padding 1) of x [B,H,W,cin] with the packed filters.
void conv3x3(const uint16_t* x, int64_t B, int64_t H, int64_t W, int64_t cin, const uint16_t* packed, int64_t cout,
             uint16_t* y);

/// pooled [B,H/2,W/2,cout] = the 2x2 max pool (floor mode) of conv3x3's y, and where [B,H/2,W/2,cout] the
/// window position of each maximum (0..3, row-major; the first wins ties): the same values as conv3x3
/// then speedrun_kernels::pool2_stats. A tile's 2x2 outputs are one window, so y is never written, and
/// the tiles of a last odd row or column, which the pool drops, are never computed. `where` may be null.
void conv3x3_pool2(const uint16_t* x, int64_t B, int64_t H, int64_t W, int64_t cin, const uint16_t* packed,
                   int64_t cout, uint16_t* pooled, uint8_t* where);

/// dw [cout, cin, 3, 3] (float32, overwritten) = the weight gradient of that convolution for its input x
/// [B,H,W,cin] and output gradient dy [B,H,W,cout]. Sums run in a fixed order: the result does not
/// depend on the number of threads. `pooled`: the caller promises that a last odd row and column of dy
/// are zeros (as the gradient through a 2x2 max pool has them), and the tiles there are skipped.
void conv3x3_weight_grad(const uint16_t* x, const uint16_t* dy, int64_t B, int64_t H, int64_t W, int64_t cin,
                         int64_t cout, float* dw, bool pooled = false);

}  // namespace birdplane::train::winograd
