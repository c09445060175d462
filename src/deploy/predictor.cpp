#include "birdplane/deploy/predictor.h"

#include <algorithm>
#include <numeric>

#include <fmt/format.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/data/image_io.h"
#include "birdplane/nn/losses.h"
#include "birdplane/train/evaluate.h"
#include "birdplane/transforms/functional.h"
#include "birdplane/transforms/geometry.h"
#include "birdplane/transforms/interpolation.h"

namespace birdplane::deploy {

Predictor::Predictor(const std::string& model_path, PredictorOptions options)
    : options_(options), forward_mutex_(std::make_unique<std::mutex>()) {
  auto ck = train::load_checkpoint(model_path);
  config_ = std::move(ck.config);
  model_ = std::move(ck.model);
  const auto& shape = config_.spec.image_shape;
  BIRDPLANE_CHECK(shape.size() == 3 && shape[0] == 3, "{}: the model takes inputs of shape [{}], not RGB images [3,H,W]",
                  model_path, fmt::join(shape, ","));
  model_->eval();
}

Predictor::Predictor(train::ModelConfig config, nn::ClassifierPtr model, PredictorOptions options)
    : config_(std::move(config)), model_(std::move(model)), options_(options),
      forward_mutex_(std::make_unique<std::mutex>()) {
  BIRDPLANE_CHECK(model_, "Predictor: no model given");
  const auto& shape = config_.spec.image_shape;
  BIRDPLANE_CHECK(shape.size() == 3 && shape[0] == 3, "Predictor: the model takes inputs of shape [{}], not RGB images",
                  fmt::join(shape, ","));
  BIRDPLANE_CHECK(config_.classes.size() == static_cast<size_t>(config_.spec.num_classes),
                  "Predictor: {} class names for a model of {} outputs", config_.classes.size(), config_.spec.num_classes);
  model_->eval();
}

at::Tensor Predictor::preprocess(const at::Tensor& image, std::string* note) const {
  BIRDPLANE_CHECK(image.dim() == 3 && image.size(0) == 3 && image.scalar_type() == at::kByte,
                  "Predictor: expected an RGB image uint8 [3,H,W], got {} {}", c10::toString(image.scalar_type()),
                  c10::str(image.sizes()));
  const int64_t height = config_.spec.image_shape[1], width = config_.spec.image_shape[2];
  const int64_t h = image.size(1), w = image.size(2);
  if (config_.resize > 0) {
    // Pretrained weights' preprocessing (torchvision's ImageClassification on a tensor): the shorter side
    // to `resize`, then the centre crop.
    namespace F = transforms::functional;
    const auto mode = F::interpolation_from_string(config_.interpolation);
    if (note)
      *note = fmt::format("resized (shorter side {}, {}) and centre-cropped from {}x{} to {}x{}", config_.resize,
                          config_.interpolation, w, h, width, height);
    return F::center_crop(F::resize(image, {config_.resize}, mode), {height, width}).contiguous();
  }
  if (h == height && w == width) return image;
  if (note)
    *note = fmt::format("resized{} from {}x{} to {}x{} (bilinear)",
                        config_.crop == data::CropMode::kCenter ? " and center-cropped" : "", w, h, width, height);
  return data::fit_image(image, height, width, config_.crop);
}

at::Tensor Predictor::probabilities(const at::Tensor& batch) const {
  const auto& shape = config_.spec.image_shape;
  BIRDPLANE_CHECK(batch.dim() == 4 && batch.scalar_type() == at::kByte && batch.size(1) == shape[0] &&
                      batch.size(2) == shape[1] && batch.size(3) == shape[2],
                  "Predictor: expected images uint8 [B,{},{},{}], got {} {}", shape[0], shape[1], shape[2],
                  c10::toString(batch.scalar_type()), c10::str(batch.sizes()));
  auto x = transforms::functional::to_normalized(batch, config_.mean, config_.std);
  torch::NoGradGuard no_grad;
  at::Tensor out;
  {
    std::lock_guard<std::mutex> lock(*forward_mutex_);
    out = train::forward_with_tta(*model_, x, train::Precision::kFp32, config_.tta);
  }
  return nn::probabilities(out, model_->ends_in_log_softmax()).to(at::kDouble).contiguous();
}

Prediction Predictor::describe(const double* pr, int64_t top_k) const {
  BIRDPLANE_CHECK(top_k >= 1, "Predictor: top_k must be 1 or more, got {}", top_k);
  const auto& classes = config_.classes;
  Prediction p;
  p.probabilities.assign(pr, pr + classes.size());
  std::vector<size_t> order(classes.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return pr[a] > pr[b]; });
  const auto k = std::min(static_cast<size_t>(top_k), classes.size());
  for (size_t i = 0; i < k; ++i) p.top.emplace_back(classes[order[i]], pr[order[i]]);
  return p;
}

Prediction Predictor::classify_decoded(data::DecodedImage decoded, int64_t top_k) const {
  const auto image = at::from_blob(decoded.pixels.data(), {decoded.height, decoded.width, 3}, at::kByte)
                         .permute({2, 0, 1})
                         .contiguous();
  std::string note;
  const int ch = decoded.channels_in_file;
  if (ch == 1 || ch == 2) note = "grayscale converted to RGB";
  if (ch == 2 || ch == 4) note += std::string(note.empty() ? "" : "; ") + "alpha channel dropped";
  std::string resized;
  const auto x = preprocess(image, &resized);
  if (!resized.empty()) note += std::string(note.empty() ? "" : "; ") + resized;
  const auto probs = probabilities(x.unsqueeze(0));
  Prediction p = describe(probs.data_ptr<double>(), top_k);
  p.note = std::move(note);
  return p;
}

Prediction Predictor::classify_file(const std::string& path, int64_t top_k) const {
  const auto bytes = data::read_file_bytes(path, options_.max_bytes);
  return classify_decoded(data::decode_image(bytes.data(), bytes.size(), path, options_.max_pixels), top_k);
}

Prediction Predictor::classify_bytes(const uint8_t* data, size_t size, int64_t top_k, const std::string& name) const {
  BIRDPLANE_CHECK(static_cast<int64_t>(size) <= options_.max_bytes, "{} holds {} bytes; at most {} are accepted", name,
                  size, options_.max_bytes);
  return classify_decoded(data::decode_image(data, size, name, options_.max_pixels), top_k);
}

std::vector<Prediction> Predictor::classify(const at::Tensor& images, int64_t top_k) const {
  BIRDPLANE_CHECK(images.dim() == 4 && images.size(1) == 3 && images.scalar_type() == at::kByte,
                  "Predictor: expected RGB images uint8 [B,3,H,W], got {} {}", c10::toString(images.scalar_type()),
                  c10::str(images.sizes()));
  std::vector<at::Tensor> prepared;
  for (int64_t i = 0; i < images.size(0); ++i) prepared.push_back(preprocess(images[i]));
  std::vector<Prediction> out;
  if (prepared.empty()) return out;
  const auto probs = probabilities(torch::stack(prepared));
  for (int64_t i = 0; i < probs.size(0); ++i) out.push_back(describe(probs[i].data_ptr<double>(), top_k));
  return out;
}

}  // namespace birdplane::deploy
