// birdplane predict: the class and softmax probabilities of image files under a saved model.
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "birdplane/data/image_io.h"
#include "birdplane/nn/losses.h"
#include "birdplane/train/checkpoint.h"
#include "birdplane/transforms/functional.h"
#include "commands.h"

namespace birdplane::cli {
namespace {

struct PredictOptions {
  std::string checkpoint;
  std::vector<std::string> images;
  bool json = false;
};

void run_predict(const PredictOptions& o) {
  auto ck = train::load_checkpoint(o.checkpoint);
  // Read every file first, so a bad one stops the command before anything is printed.
  std::vector<at::Tensor> batch;
  std::vector<std::string> notes;
  for (const auto& path : o.images) {
    auto img = data::read_image(path);
    std::string note;
    if (img.original_channels == 1 || img.original_channels == 2) note = "grayscale converted to RGB";
    if (img.original_channels == 4 || img.original_channels == 2)
      note += std::string(note.empty() ? "" : "; ") + "alpha channel dropped";
    at::Tensor x = img.image;
    const auto& shape = ck.config.spec.image_shape;  // {C, H, W} the model takes
    const int64_t height = shape.size() == 3 ? shape[1] : 32, width = shape.size() == 3 ? shape[2] : 32;
    if (img.original_width != width || img.original_height != height) {
      x = data::resize_bilinear(x, height, width);
      note += std::string(note.empty() ? "" : "; ") + fmt::format("resized from {}x{} to {}x{} (bilinear)",
                                                                 img.original_width, img.original_height, width, height);
    }
    batch.push_back(x);
    notes.push_back(note);
  }
  torch::NoGradGuard no_grad;
  ck.model->eval();
  auto x = transforms::functional::to_normalized(torch::stack(batch), ck.config.mean, ck.config.std);
  auto out = ck.model->forward(x);
  auto probs = nn::probabilities(out, ck.model->ends_in_log_softmax());
  nlohmann::json all = nlohmann::json::array();
  for (size_t i = 0; i < o.images.size(); ++i) {
    const int64_t best = probs[i].argmax().item<int64_t>();
    if (o.json) {
      nlohmann::json j = {{"file", o.images[i]}, {"class", ck.config.classes[best]}, {"note", notes[i]}};
      for (size_t c = 0; c < ck.config.classes.size(); ++c)
        j["probabilities"][ck.config.classes[c]] = probs[i][c].item<double>();
      all.push_back(j);
      continue;
    }
    std::string line = fmt::format("{}: {}", o.images[i], ck.config.classes[best]);
    for (size_t c = 0; c < ck.config.classes.size(); ++c)
      line += fmt::format("{}{} {:.4f}", c ? ", " : "  (", ck.config.classes[c], probs[i][c].item<double>());
    std::cout << line << ")" << (notes[i].empty() ? "" : "  [" + notes[i] + "]") << "\n";
  }
  if (o.json) std::cout << all.dump(2) << "\n";
}

}  // namespace

void setup_predict(CLI::App& app) {
  auto o = std::make_shared<PredictOptions>();
  auto* cmd = app.add_subcommand("predict", "Classify image files (PNG, JPEG, BMP) with a saved model: the class "
                                            "and the softmax probabilities");
  cmd->add_option("--checkpoint", o->checkpoint, "runs/<name>/model.pt or checkpoint.pt")->required();
  cmd->add_option("images", o->images, "Image files")->required();
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->callback([o] { run_predict(*o); });
}

}  // namespace birdplane::cli
