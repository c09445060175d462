// birdplane export: weights as a state_dict for Python (torch.load + the book's nn.Sequential).
#include <iostream>

#include <fmt/format.h>

#include "birdplane/nn/mlp.h"
#include "birdplane/train/checkpoint.h"
#include "commands.h"

namespace birdplane::cli {
namespace {

struct ExportOptions {
  std::string checkpoint;
  std::string out;
};

void run_export(const ExportOptions& o) {
  auto ck = train::load_checkpoint(o.checkpoint);
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
                                           "reads (keys 0.weight, 0.bias, 2.weight, ...)");
  cmd->add_option("--checkpoint", o->checkpoint, "runs/<name>/model.pt or checkpoint.pt")->required();
  cmd->add_option("--out", o->out, "Output file, e.g. model_state.pt")->required();
  cmd->callback([o] { run_export(*o); });
}

}  // namespace birdplane::cli
