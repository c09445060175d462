// torchvision's antialiased bilinear Resize of an RGB image, computed without ATen: the image folder
// resizes every decoded file, and through ATen (uint8 to float, _upsample_bilinear2d_aa with its
// TensorIterator, round, cast) that took more time than decoding the JPEG (0.35 ms of 0.62 ms per
// 224x224 file on the 2-core VM).
//
// Pixel parity is kept exactly, not approximately: the float32 values equal ATen's bit for bit, then
// they are rounded half to even as torch.round does. ATen 1.13's kernel computes each output as
// t0*w0 and then adds the other taps in order; as built in Debian's LibTorch (measured on this
// machine, against every output of 3,528 shapes) the taps after the first go in blocks of four that
// are added with a separate multiply and add, and the taps left over after the last full block are
// fused multiply-adds. The weights are ATen's (float32 arithmetic as it does it). Because that
// arithmetic belongs to one build of LibTorch on one kind of CPU, resize_available() compares this code
// with ATen itself, on a few random images, once per process; where they differ (another LibTorch, a
// CPU without FMA) callers use ATen.
#pragma once

#include <cstdint>

namespace birdplane::data::kernels {

/// The two ways of computing it: four rows at a time in 512-bit vectors, or one pixel's three
/// channels at a time in 128-bit vectors (AVX2 and FMA). Both are checked against ATen.
enum class Path { kAvx512, kAvx2 };

/// Whether this CPU has the instructions `path` needs.
bool cpu_has(Path path);

/// Whether resize_rgb below gives ATen's exact result on this machine: the first path (AVX-512, then
/// AVX2) whose result equals ATen's on a few random images, checked once per process.
bool resize_available();

/// Resizes an RGB image stored HWC (height x width x 3 bytes, rows packed) to out_h x out_w with
/// torchvision's Resize(antialias=True) on tensors, writing float32 CHW [3][out_h][out_w] before
/// rounding. Both sizes must be at least 1. Needs resize_available().
void resize_rgb_float(const uint8_t* src, int64_t h, int64_t w, float* dst_chw, int64_t out_h, int64_t out_w);

/// resize_rgb_float on a given path (for tests; needs cpu_has(path)).
void resize_rgb_float_on(Path path, const uint8_t* src, int64_t h, int64_t w, float* dst_chw, int64_t out_h,
                         int64_t out_w);

/// The same, rounded half to even and stored as bytes CHW [3][out_h][out_w] (torchvision's uint8
/// result).
void resize_rgb(const uint8_t* src, int64_t h, int64_t w, uint8_t* dst_chw, int64_t out_h, int64_t out_w);

}  // namespace birdplane::data::kernels
