// birdplane model --summary: layers, shapes and parameter counts (the book's numel() sums).
#include <iostream>

#include "birdplane/data/cifar10.h"
#include "birdplane/nn/mlp.h"
#include "commands.h"

namespace birdplane::cli {
namespace {

struct ModelOptions {
  std::string model = "book-small";
  std::string classes = "airplane,bird";
  std::string hidden;
  std::string activation = "tanh";
  bool summary = false;
};

void run_model(const ModelOptions& o) {
  const auto classes = data::parse_class_list(o.classes);
  const int64_t k = classes.empty() ? 10 : static_cast<int64_t>(classes.size());
  data::class_label_map(classes, data::default_class_names());  // validates the names
  auto opts = nn::preset(o.model, k);
  if (!o.hidden.empty()) opts.hidden = nn::parse_hidden(o.hidden);
  opts.activation = o.activation;
  std::cout << o.model << " for " << k << " classes\n" << nn::summary(opts);
}

}  // namespace

void setup_model(CLI::App& app) {
  auto o = std::make_shared<ModelOptions>();
  auto* cmd = app.add_subcommand("model", "Describe a model: layers, output shapes, parameter counts");
  cmd->add_flag("--summary", o->summary, "Print the layer table (the default action)");
  cmd->add_option("--model", o->model, "book-small, book-large or mlp")->capture_default_str();
  cmd->add_option("--classes", o->classes, "Class names (their count sets the output width; empty: all ten)")
      ->capture_default_str();
  cmd->add_option("--hidden", o->hidden, "Hidden layer widths, e.g. 1024,512");
  cmd->add_option("--activation", o->activation, "tanh or relu")->capture_default_str();
  cmd->callback([o] { run_model(*o); });
}

}  // namespace birdplane::cli
