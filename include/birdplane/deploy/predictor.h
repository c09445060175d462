// Classifying new images with a saved model, as a program embeds it:
//   birdplane::deploy::Predictor predictor("runs/pets/model.pt");
//   auto p = predictor.classify_file("photo.jpg", 3);   // p.top: {class, probability}, most probable first
// The model file carries its preprocessing (train::ModelConfig: the size, the crop or the pretrained
// weights' resize, mean and std, test-time augmentation), so the caller passes pixels or encoded files
// and nothing else. Safe to call from several threads at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "birdplane/data/image_decode.h"
#include "birdplane/nn/model.h"
#include "birdplane/train/checkpoint.h"

namespace birdplane::deploy {

/// One image's classification.
struct Prediction {
  std::vector<std::pair<std::string, double>> top;  ///< the k most probable classes, most probable first
  std::vector<double> probabilities;                ///< every class's probability, in label order
  std::string note;  ///< what was done to the image beyond the model's recorded steps ("grayscale converted to RGB", ...)
};

/// Limits on what a Predictor accepts.
struct PredictorOptions {
  int64_t max_pixels = data::kDefaultMaxPixels;  ///< images declaring more pixels are refused
  int64_t max_bytes = int64_t{1} << 30;          ///< files larger than this are refused
};

class Predictor {
 public:
  /// Loads a model file (runs/<name>/model.pt, or a checkpoint.pt) once. A missing or damaged file, or a
  /// model that does not take RGB images [3,H,W], is an Error naming the file.
  explicit Predictor(const std::string& model_path, PredictorOptions options = {});
  /// A model already built, with the configuration that says how images reach it.
  Predictor(train::ModelConfig config, nn::ClassifierPtr model, PredictorOptions options = {});

  /// An RGB image uint8 [3,H,W] of any size brought to the model's input: the recorded resize then
  /// centre crop (pretrained weights), or the crop mode of the training images. `note` (when given)
  /// receives what was done ("resized and centre-cropped from 300x260 to 224x224 (bilinear)").
  at::Tensor preprocess(const at::Tensor& image_u8, std::string* note = nullptr) const;

  /// Class probabilities [B, K] (float64) of preprocessed images uint8 [B,3,H,W] at the model's size.
  at::Tensor probabilities(const at::Tensor& batch_u8) const;

  /// Decodes, preprocesses and classifies an image file. Errors name the file.
  Prediction classify_file(const std::string& path, int64_t top_k = 5) const;
  /// The same for an encoded image in memory (JPEG, PNG, WebP, GIF, BMP, PPM/PGM); `name` is used in
  /// errors.
  Prediction classify_bytes(const uint8_t* data, size_t size, int64_t top_k = 5,
                            const std::string& name = "the image") const;
  /// Images uint8 [B,3,H,W] of any one size, each preprocessed, classified together.
  std::vector<Prediction> classify(const at::Tensor& images_u8, int64_t top_k = 5) const;

  const std::vector<std::string>& classes() const { return config_.classes; }
  const train::ModelConfig& config() const { return config_; }

 private:
  Prediction describe(const double* probabilities, int64_t top_k) const;
  Prediction classify_decoded(data::DecodedImage decoded, int64_t top_k) const;

  train::ModelConfig config_;
  nn::ClassifierPtr model_;
  PredictorOptions options_;
  std::unique_ptr<std::mutex> forward_mutex_;  // one forward pass at a time (LibTorch parallelizes each)
};

}  // namespace birdplane::deploy
