// birdplane predict: the class and softmax probabilities of image files (and folders of them) under a
// saved model, brought to the model's size the way its training images were.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numeric>

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/deploy/predictor.h"
#include "birdplane/train/evaluate.h"
#include "birdplane/data/image_folder.h"
#include "birdplane/data/image_io.h"
#include "birdplane/nn/backbones.h"
#include "birdplane/nn/losses.h"
#include "birdplane/train/checkpoint.h"
#include "birdplane/transforms/functional.h"
#include "birdplane/transforms/geometry.h"
#include "birdplane/transforms/interpolation.h"
#include "commands.h"

namespace fs = std::filesystem;

namespace birdplane::cli {
namespace {

struct PredictOptions {
  std::string checkpoint;
  std::string model, weights, class_names;  // pretrained weights as they are, instead of a checkpoint
  std::vector<std::string> paths;
  int64_t top_k = 5;
  bool json = false;
  bool csv = false;
  int64_t max_pixels = data::kDefaultMaxPixels;
};

// Images are decoded, classified and printed this many at a time, so any number of files fits in memory.
constexpr int64_t kChunk = 256;

// What a folder search picks: ImageFolder's extensions and the other formats birdplane decodes.
bool is_image_name(const std::string& name) {
  static const std::vector<std::string> kExtensions = [] {
    auto all = data::image_folder_extensions();
    all.insert(all.end(), {".gif", ".pbm"});
    return all;
  }();
  return data::has_extension(name, kExtensions);
}

// Files named on the command line are taken as they are; folders are searched recursively (symbolic
// links to folders are not followed, so a link loop cannot trap the search) for image file names.
std::vector<std::string> expand_paths(const std::vector<std::string>& paths) {
  std::vector<std::string> files;
  for (const auto& p : paths) {
    std::error_code ec;
    if (!fs::is_directory(p, ec)) {
      files.push_back(p);
      continue;
    }
    std::vector<std::string> found;
    fs::recursive_directory_iterator it(p, fs::directory_options::skip_permission_denied, ec);
    BIRDPLANE_CHECK(!ec, "cannot read folder {}: {}", p, ec.message());
    for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
      BIRDPLANE_CHECK(!ec, "cannot read folder {}: {}", p, ec.message());
      std::error_code type_ec;
      if (!it->is_directory(type_ec) && is_image_name(it->path().filename().string())) found.push_back(it->path().string());
    }
    BIRDPLANE_CHECK(!ec, "cannot read folder {}: {}", p, ec.message());
    BIRDPLANE_CHECK(!found.empty(), "folder {} holds no image files", p);
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

struct Prepared {
  at::Tensor image;  // uint8 [3,H,W] at the model's size; undefined when the file failed
  std::string note;
  std::string error;
};

Prepared prepare(const std::string& path, const deploy::Predictor& predictor, int64_t max_pixels) {
  Prepared p;
  try {
    auto img = data::read_image(path, max_pixels);
    const int ch = img.original_channels;
    if (ch == 1 || ch == 2) p.note = "grayscale converted to RGB";
    if (ch == 2 || ch == 4) p.note += std::string(p.note.empty() ? "" : "; ") + "alpha channel dropped";
    std::string resized;
    p.image = predictor.preprocess(img.image, &resized);
    if (!resized.empty()) p.note += std::string(p.note.empty() ? "" : "; ") + resized;
  } catch (const Error& e) {
    p.error = e.what();
  }
  return p;
}

std::string csv_cell(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// A model from pretrained weights as they are (torchvision's published files): the architecture named by
// --model, one class per line of --class-names, the weights' own preprocessing.
deploy::Predictor pretrained_model(const PredictOptions& o) {
  BIRDPLANE_CHECK(!o.model.empty() && !o.class_names.empty(),
                  "--weights {}: also give --model (the architecture) and --class-names (a file, one class per line)",
                  o.weights);
  BIRDPLANE_CHECK(nn::is_backbone(o.model), "--model {}: pretrained weights go with torchvision's networks ({})",
                  o.model, fmt::join(nn::backbone_names(), ", "));
  train::Checkpoint ck;
  std::ifstream in(o.class_names);
  BIRDPLANE_CHECK(in, "--class-names {}: cannot read the file", o.class_names);
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) ck.config.classes.push_back(line);
  }
  BIRDPLANE_CHECK(ck.config.classes.size() >= 2, "--class-names {}: expected one class name per line, at least 2",
                  o.class_names);
  const auto p = nn::weights_preprocessing(o.model, o.weights);
  ck.config.spec.name = o.model;
  ck.config.spec.num_classes = static_cast<int64_t>(ck.config.classes.size());
  ck.config.spec.image_shape = {3, p.crop, p.crop};
  ck.config.mean = p.mean;
  ck.config.std = p.std;
  ck.config.resize = p.resize;
  ck.config.interpolation = p.interpolation;
  ck.config.loss = nn::LossKind::kCrossEntropy;
  ck.model = nn::make_model(ck.config.spec);
  train::import_state_dict(o.weights, *ck.model);
  return deploy::Predictor(std::move(ck.config), std::move(ck.model));
}

void run_predict(const PredictOptions& o) {
  BIRDPLANE_CHECK(!(o.json && o.csv), "--json and --csv: choose one output format");
  BIRDPLANE_CHECK(o.top_k >= 1, "--top-k {}: expected 1 or more", o.top_k);
  BIRDPLANE_CHECK(o.max_pixels >= 1, "--max-pixels {}: expected 1 or more", o.max_pixels);
  const bool pretrained = o.checkpoint.empty();
  BIRDPLANE_CHECK(pretrained != o.weights.empty(), "{}",
                  pretrained ? "give a saved model (--checkpoint), or pretrained weights (--model, --weights and "
                               "--class-names)"
                             : "--checkpoint and --weights: give one of them");
  const deploy::Predictor predictor = pretrained ? pretrained_model(o) : deploy::Predictor(o.checkpoint);
  const auto& classes = predictor.classes();
  const int64_t k = std::min<int64_t>(o.top_k, static_cast<int64_t>(classes.size()));
  const auto files = expand_paths(o.paths);

  torch::NoGradGuard no_grad;
  nlohmann::json all = nlohmann::json::array();
  if (o.csv) {
    std::cout << "file,class,probability";
    for (const auto& c : classes) std::cout << "," << csv_cell("p_" + c);
    std::cout << ",note,error\n";
  }
  int64_t failed = 0;
  for (int64_t start = 0; start < static_cast<int64_t>(files.size()); start += kChunk) {
    const int64_t end = std::min<int64_t>(start + kChunk, static_cast<int64_t>(files.size()));
    std::vector<Prepared> prepared(static_cast<size_t>(end - start));
    at::parallel_for(start, end, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        prepared[static_cast<size_t>(i - start)] =
            prepare(files[static_cast<size_t>(i)], predictor, o.max_pixels);
    });
    std::vector<at::Tensor> batch;
    for (const auto& p : prepared)
      if (p.error.empty()) batch.push_back(p.image);
    at::Tensor probs;
    if (!batch.empty()) {
      // With the model's test-time augmentation (fp32), as eval and validation use it.
      probs = predictor.probabilities(torch::stack(batch));
    }
    int64_t row = 0;
    for (int64_t i = start; i < end; ++i) {
      const auto& p = prepared[static_cast<size_t>(i - start)];
      const std::string& file = files[static_cast<size_t>(i)];
      if (!p.error.empty()) {
        ++failed;
        std::cerr << "error: " << p.error << "\n";
        if (o.json) all.push_back({{"file", file}, {"error", p.error}});
        if (o.csv) std::cout << csv_cell(file) << ",," << std::string(classes.size(), ',') << "," << csv_cell(p.error) << "\n";
        continue;
      }
      const double* pr = probs[row++].data_ptr<double>();
      std::vector<int64_t> order(classes.size());
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return pr[a] > pr[b]; });
      const std::string& best = classes[static_cast<size_t>(order[0])];
      if (o.json) {
        nlohmann::json j = {{"file", file}, {"class", best}, {"note", p.note}};
        for (size_t c = 0; c < classes.size(); ++c) j["probabilities"][classes[c]] = pr[c];
        for (int64_t t = 0; t < k; ++t)
          j["top"].push_back({{"class", classes[static_cast<size_t>(order[t])]}, {"probability", pr[order[t]]}});
        all.push_back(j);
      } else if (o.csv) {
        std::cout << csv_cell(file) << "," << csv_cell(best) << "," << fmt::format("{:.6f}", pr[order[0]]);
        for (size_t c = 0; c < classes.size(); ++c) std::cout << fmt::format(",{:.6f}", pr[c]);
        std::cout << "," << csv_cell(p.note) << ",\n";
      } else {
        std::string line = fmt::format("{}: {}", file, best);
        for (int64_t t = 0; t < k; ++t)
          line += fmt::format("{}{} {:.4f}", t ? ", " : "  (", classes[static_cast<size_t>(order[t])], pr[order[t]]);
        std::cout << line << ")" << (p.note.empty() ? "" : "  [" + p.note + "]") << "\n";
      }
    }
    std::cout << std::flush;
  }
  if (o.json) std::cout << all.dump(2) << "\n";
  BIRDPLANE_CHECK(failed == 0, "{} of {} files could not be read (listed above); the others were classified",
                  failed, files.size());
}

}  // namespace

void setup_predict(CLI::App& app) {
  auto o = std::make_shared<PredictOptions>();
  auto* cmd = app.add_subcommand(
      "predict",
      "Classify image files (JPEG, PNG, WebP, GIF, BMP, PPM/PGM) and folders of them with a saved model, or with "
      "pretrained weights as torchvision publishes them (--model, --weights, --class-names): the "
      "class and the softmax probabilities. A file that cannot be read is reported and skipped; the exit code "
      "is then 2");
  cmd->add_option("--checkpoint", o->checkpoint, "runs/<name>/model.pt or checkpoint.pt");
  cmd->add_option("--model", o->model,
                  "With --weights: the architecture (" + fmt::format("{}", fmt::join(nn::backbone_names(), ", ")) + ")");
  cmd->add_option("--weights", o->weights,
                  "Instead of --checkpoint: pretrained weights as torchvision publishes them (e.g. "
                  "resnet50-11ad3fa6.pth), used with their own preprocessing (resize, centre crop 224, ImageNet "
                  "mean and std)");
  cmd->add_option("--class-names", o->class_names, "With --weights: a file naming the classes, one per line, in "
                                                   "the order of the weights' outputs");
  cmd->add_option("paths", o->paths, "Image files, or folders searched recursively for image files")->required();
  cmd->add_option("--top-k", o->top_k, "Show the K most probable classes per image")->capture_default_str();
  cmd->add_flag("--json", o->json, "Print JSON: every class's probability and the top K per file");
  cmd->add_flag("--csv", o->csv, "Print CSV: file, class, its probability, one column per class, note, error");
  cmd->add_option("--max-pixels", o->max_pixels, "Refuse images declaring more pixels than this")
      ->capture_default_str();
  cmd->callback([o] { run_predict(*o); });
}

}  // namespace birdplane::cli
