// birdplane model --summary: layers, shapes and parameter counts (the book's numel() sums).
#include <iostream>

#include "birdplane/data/cifar10.h"
#include "birdplane/nn/mlp.h"
#include "birdplane/check.h"
#include "birdplane/nn/backbones.h"
#include "birdplane/nn/model.h"
#include "commands.h"
#include "flags.h"
#include "progress.h"

namespace birdplane::cli {
namespace {

struct ModelOptions {
  std::string model = "book-small";
  std::string classes = "airplane,bird";
  std::string hidden;
  nn::Activation activation = nn::Activation::kTanh;
  int64_t channels = 32;
  int64_t blocks = 10;
  bool separate_blocks = false;
  bool summary = false;
  int64_t num_classes = 0;
  int64_t image_size = 0;
};

void run_model(const ModelOptions& o) {
  const auto classes = data::parse_class_list(o.classes);
  int64_t k = classes.empty() ? 10 : static_cast<int64_t>(classes.size());
  data::class_label_map(classes, data::default_class_names());  // validates the names
  BIRDPLANE_CHECK(o.num_classes == 0 || o.num_classes >= 2, "--num-classes {}: expected 2 or more", o.num_classes);
  BIRDPLANE_CHECK(o.image_size >= 0 && o.image_size <= 4096, "--image-size {}: expected 1 to 4096", o.image_size);
  if (o.num_classes) k = o.num_classes;
  // CIFAR-10's 32x32 by default; torchvision's networks at ImageNet's 224.
  const int64_t size = o.image_size ? o.image_size : nn::is_backbone(o.model) ? 224 : data::kImageSize;
  nn::ModelSpec spec;
  spec.name = o.model;
  spec.num_classes = k;
  spec.image_shape = {data::kChannels, size, size};
  if (!o.hidden.empty()) spec.hidden = nn::parse_hidden(o.hidden);
  spec.activation = o.activation;
  spec.channels = o.channels;
  spec.blocks = o.blocks;
  spec.shared_blocks = !o.separate_blocks;
  std::cout << o.model << " for " << k << " classes\n" << nn::summary(*nn::make_model(spec));
}

}  // namespace

void setup_model(CLI::App& app) {
  auto o = std::make_shared<ModelOptions>();
  auto* cmd = app.add_subcommand("model", "Describe a model: layers, output shapes, parameter counts");
  cmd->add_flag("--summary", o->summary, "Print the layer table (the default action)");
  cmd->add_option("--model", o->model, "Model preset: " + fmt::format("{}", fmt::join(nn::model_names(), ", ")))
      ->check(CLI::IsMember(nn::model_names()))
      ->capture_default_str();
  cmd->add_option("--classes", o->classes, "Class names (their count sets the output width; empty: all ten)")
      ->capture_default_str();
  cmd->add_option("--num-classes", o->num_classes, "Outputs (instead of --classes; 1000 gives torchvision's counts)");
  cmd->add_option("--image-size", o->image_size, "Input height and width (default 32; 224 for torchvision's networks)");
  cmd->add_option("--hidden", o->hidden, "Hidden layer widths, e.g. 1024,512");
  cmd->add_option("--channels", o->channels, "Convnets from net-width on: first-layer channels")->capture_default_str();
  cmd->add_option("--blocks", o->blocks, "net-res-deep: residual blocks")->capture_default_str();
  cmd->add_flag("--separate-blocks", o->separate_blocks, "net-res-deep: a block of its own at each depth (the book's code shares one; its authors call that a mistake)");
  cmd->add_option("--activation", o->activation, "tanh or relu")
      ->transform(choices(nn::kActivations))
      ->default_str(nn::to_string(o->activation));
  cmd->callback([o] { run_model(*o); });
}

}  // namespace birdplane::cli
