// Typed training settings shared by training, evaluation and prediction. Each has to_string (the
// name written to config.json) and a parse_ function for reading it back; the command line maps its
// own flags onto these values.
#pragma once

#include <string>

namespace birdplane::train {

/// The arithmetic of the matrix products: float32, or bfloat16 products with float32 weights and loss.
enum class Precision { kFp32, kBf16 };
inline constexpr Precision kPrecisions[] = {Precision::kFp32, Precision::kBf16};
std::string to_string(Precision precision);
/// "fp32" or "bf16" (a SettingError for "precision" otherwise).
Precision parse_precision(const std::string& text);

/// Where a model runs: CUDA when LibTorch has a device (kAuto), or the named one.
enum class DeviceKind { kAuto, kCpu, kCuda };
inline constexpr DeviceKind kDeviceKinds[] = {DeviceKind::kAuto, DeviceKind::kCpu, DeviceKind::kCuda};
std::string to_string(DeviceKind device);
/// "auto", "cpu" or "cuda" (a SettingError for "device" otherwise).
DeviceKind parse_device(const std::string& text);

/// How a training step computes its gradients: kFused (the MLP step written out by hand, the SGD update
/// inside the weight-gradient product), kAutograd (backward() then the optimizer), or kAuto: fused
/// where it applies (an MLP on the CPU, plain SGD, nll or cross-entropy), autograd elsewhere.
enum class StepKind { kAuto, kFused, kAutograd };
inline constexpr StepKind kStepKinds[] = {StepKind::kAuto, StepKind::kFused, StepKind::kAutograd};
std::string to_string(StepKind step);
/// "auto", "fused" or "autograd" (a SettingError for "step" otherwise).
StepKind parse_step(const std::string& text);

/// How the speedrun's fused step and evaluation compute the 3x3 convolutions after the first group's
/// first: oneDNN's direct form (kDirect), birdplane's Winograd F(2x2,3x3) form in bf16 (kWinograd: 2.25x
/// fewer products; bf16 precision and AVX512-BF16 needed), or kAuto: Winograd in bf16 on a CPU with
/// AVX512-BF16 and without AMX (where oneDNN's AMX kernels are the faster choice), direct elsewhere.
enum class ConvAlgorithm { kAuto, kDirect, kWinograd };
inline constexpr ConvAlgorithm kConvAlgorithms[] = {ConvAlgorithm::kAuto, ConvAlgorithm::kDirect,
                                                    ConvAlgorithm::kWinograd};
std::string to_string(ConvAlgorithm conv);
/// "auto", "direct" or "winograd" (a SettingError for "conv" otherwise).
ConvAlgorithm parse_conv(const std::string& text);

/// Test-time augmentation: the model's output for an image is the mean of its logits over views of it.
/// kFlip: the image and its mirror; kFlipShift: those (weighing half) and the image shifted a pixel
/// up-left and down-right (reflect-padded, a quarter each), each with its mirror (six views).
enum class Tta { kNone, kFlip, kFlipShift };
inline constexpr Tta kTtas[] = {Tta::kNone, Tta::kFlip, Tta::kFlipShift};
std::string to_string(Tta tta);
/// "none", "flip" or "flip-shift" (a SettingError for "tta" otherwise).
Tta parse_tta(const std::string& text);

}  // namespace birdplane::train
