#include "birdplane/train/settings.h"

#include "common/parse_named.h"

namespace birdplane::train {

std::string to_string(Precision precision) { return precision == Precision::kBf16 ? "bf16" : "fp32"; }

Precision parse_precision(const std::string& text) { return parse_named(kPrecisions, text, "precision"); }

std::string to_string(DeviceKind device) {
  switch (device) {
    case DeviceKind::kCpu: return "cpu";
    case DeviceKind::kCuda: return "cuda";
    case DeviceKind::kAuto: break;
  }
  return "auto";
}

DeviceKind parse_device(const std::string& text) { return parse_named(kDeviceKinds, text, "device"); }

std::string to_string(StepKind step) {
  switch (step) {
    case StepKind::kFused: return "fused";
    case StepKind::kAutograd: return "autograd";
    case StepKind::kAuto: break;
  }
  return "auto";
}

StepKind parse_step(const std::string& text) { return parse_named(kStepKinds, text, "step"); }

std::string to_string(ConvAlgorithm conv) {
  switch (conv) {
    case ConvAlgorithm::kDirect: return "direct";
    case ConvAlgorithm::kWinograd: return "winograd";
    case ConvAlgorithm::kAuto: break;
  }
  return "auto";
}

ConvAlgorithm parse_conv(const std::string& text) { return parse_named(kConvAlgorithms, text, "conv"); }

std::string to_string(Tta tta) {
  switch (tta) {
    case Tta::kFlip: return "flip";
    case Tta::kFlipShift: return "flip-shift";
    case Tta::kNone: break;
  }
  return "none";
}

Tta parse_tta(const std::string& text) { return parse_named(kTtas, text, "tta"); }

}  // namespace birdplane::train
