// birdplane export: weights as a state_dict for Python (torch.load + the book's nn.Sequential or
// torchvision's class), or the model as an ONNX file (deploy/onnx.h).
#include <iostream>

#include <fmt/format.h>

#include "birdplane/check.h"
#include "birdplane/deploy/onnx.h"
#include "birdplane/nn/mlp.h"
#include "birdplane/train/checkpoint.h"
#include "commands.h"

namespace birdplane::cli {
namespace {

struct ExportOptions {
  std::string checkpoint;
  std::string out;
  std::string format = "state_dict";
  bool with_preprocessing = false;
};

void run_export(const ExportOptions& o) {
  BIRDPLANE_CHECK(o.format == "state_dict" || o.format == "onnx", "--format {}: expected state_dict or onnx", o.format);
  BIRDPLANE_CHECK(!o.with_preprocessing || o.format == "onnx", "--with-preprocessing goes with --format onnx");
  auto ck = train::load_checkpoint(o.checkpoint);
  if (o.format == "onnx") {
    deploy::OnnxOptions options;
    options.with_preprocessing = o.with_preprocessing;
    deploy::export_onnx(o.out, ck.config, *ck.model, options);
    const auto& shape = ck.config.spec.image_shape;
    std::cout << fmt::format("wrote {}: {} as ONNX (opset {}, checked), input {} [batch, {}], output {} [batch, {}]; "
                             "classes {}\n",
                             o.out, ck.config.spec.name, deploy::kOnnxOpset,
                             o.with_preprocessing ? "\"pixels\" uint8" : "\"images\" float32", fmt::join(shape, ", "),
                             ck.model->ends_in_log_softmax() ? "\"log_probabilities\"" : "\"logits\"",
                             ck.config.spec.num_classes, fmt::join(ck.config.classes, ","));
    if (ck.config.tta != train::Tta::kNone)
      std::cout << fmt::format("note: the model's test-time augmentation ({}) is not part of the graph; eval and "
                               "predict apply it, an ONNX consumer averages the copies' outputs itself\n",
                               train::to_string(ck.config.tta));
    return;
  }
  train::export_state_dict(o.out, *ck.model);
  std::string shape;
  if (const auto* mlp = dynamic_cast<const nn::Mlp*>(ck.model.get())) shape = fmt::format(" ({})", fmt::join(mlp->options().hidden, "-"));
  std::cout << fmt::format("wrote {}: state_dict of {}{}, classes {}\n", o.out, ck.config.spec.name, shape,
                           fmt::join(ck.config.classes, ","));
  std::cout << "in Python: model.load_state_dict(torch.load(\"" << o.out << "\"))\n";
}

}  // namespace

void setup_export(CLI::App& app) {
  auto o = std::make_shared<ExportOptions>();
  auto* cmd = app.add_subcommand("export", "Write a model's weights as a state_dict that Python's torch.load "
                                           "reads (keys 0.weight, 0.bias, 2.weight, ...), or the model as ONNX "
                                           "(--format onnx) for ONNX Runtime");
  cmd->add_option("--checkpoint", o->checkpoint, "runs/<name>/model.pt or checkpoint.pt")->required();
  cmd->add_option("--out", o->out, "Output file, e.g. model_state.pt or model.onnx")->required();
  cmd->add_option("--format", o->format, "state_dict or onnx (opset 17, a dynamic batch dimension)")
      ->capture_default_str();
  cmd->add_flag("--with-preprocessing", o->with_preprocessing,
                "ONNX: the graph takes uint8 RGB pixels at the model's size and normalizes them itself");
  cmd->callback([o] { run_export(*o); });
}

}  // namespace birdplane::cli
