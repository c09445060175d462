// A saved model as an ONNX file, for ONNX Runtime and the other ONNX consumers: the official schema
// (Debian's libonnx), opset 17, checked by ONNX's checker before it is written.
//   auto ck = birdplane::train::load_checkpoint("runs/pets/model.pt");
//   birdplane::deploy::export_onnx("pets.onnx", ck.config, *ck.model);
#pragma once

#include <cstdint>
#include <string>

#include "birdplane/nn/model.h"
#include "birdplane/train/checkpoint.h"

namespace birdplane::deploy {

/// The opset every file is written with.
inline constexpr int64_t kOnnxOpset = 17;

/// How the graph takes its input.
struct OnnxOptions {
  /// false: input "images", float32 [batch, 3, H, W], normalized with the model's mean and std (what the
  /// model itself takes). true: input "pixels", uint8 [batch, 3, H, W] RGB at the model's size; the graph
  /// scales to [0, 1] and normalizes inside, so a deployer feeds pixels.
  bool with_preprocessing = false;
};

/// Writes `model` (eval mode: dropout off, batch norms on their running statistics) as an ONNX file at
/// `path`, atomically: a dynamic batch dimension, input "images" (or "pixels"), output "logits" (or
/// "log_probabilities" for a model ending in LogSoftmax), and in the metadata (JSON strings) "classes",
/// "image_size", "mean", "std", "model", for pretrained weights' preprocessing "resize" and
/// "interpolation", and the whole model config as "birdplane_config". Every preset is covered (MLPs, the chapter-8 convnets,
/// torchvision's networks); a model of the caller's is an Error naming it. The file passes ONNX's
/// checker. Test-time augmentation is not part of the graph.
void export_onnx(const std::string& path, const train::ModelConfig& config, const nn::Classifier& model,
                 const OnnxOptions& options = {});

}  // namespace birdplane::deploy
