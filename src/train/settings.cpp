#include "birdplane/train/settings.h"

#include "birdplane/check.h"

namespace birdplane::train {

std::string to_string(Precision precision) { return precision == Precision::kBf16 ? "bf16" : "fp32"; }

Precision parse_precision(const std::string& text) {
  for (auto p : kPrecisions)
    if (to_string(p) == text) return p;
  fail_setting("precision", "'{}' is not supported; expected fp32 or bf16", text);
}

std::string to_string(DeviceKind device) {
  switch (device) {
    case DeviceKind::kCpu: return "cpu";
    case DeviceKind::kCuda: return "cuda";
    case DeviceKind::kAuto: break;
  }
  return "auto";
}

DeviceKind parse_device(const std::string& text) {
  for (auto d : kDeviceKinds)
    if (to_string(d) == text) return d;
  fail_setting("device", "'{}' is not a device; expected auto, cpu or cuda", text);
}

std::string to_string(StepKind step) {
  switch (step) {
    case StepKind::kFused: return "fused";
    case StepKind::kAutograd: return "autograd";
    case StepKind::kAuto: break;
  }
  return "auto";
}

StepKind parse_step(const std::string& text) {
  for (auto s : kStepKinds)
    if (to_string(s) == text) return s;
  fail_setting("step", "'{}' is not supported; expected auto, fused or autograd", text);
}

}  // namespace birdplane::train
