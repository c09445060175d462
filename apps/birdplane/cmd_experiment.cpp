// birdplane experiment NAME: the chapter's arguments measured (softmax, losses, translation).
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <iostream>

#include <fmt/format.h>

#include "birdplane/experiments/chapter.h"
#include "birdplane/nn/model.h"
#include "commands.h"
#include "birdplane/data/training_data.h"
#include "flags.h"
#include "progress.h"

namespace fs = std::filesystem;

namespace birdplane::cli {
namespace {

struct ExperimentOptions {
  std::string name;
  std::string out;
  std::string runs_dir = "runs";
  std::string classes = "airplane,bird";
  bool no_download = false;
  std::string models;  // translation: models side by side; models: the family to compare
  experiments::TranslationOptions translation;
};

// The chapter-8 family the `models` experiment compares by default (the book's chart).
const char* const kDefaultFamily = "net,net-width,net-dropout,net-batchnorm,net-depth,net-res,net-res-deep";

std::vector<std::string> parse_models(const std::string& text) {
  auto models = data::parse_class_list(text);  // the same comma-separated list rules
  const auto known = nn::model_names();
  for (const auto& m : models)
    BIRDPLANE_CHECK_SETTING(std::find(known.begin(), known.end(), m) != known.end(), "models",
                            "unknown model '{}'; expected some of {}", m, fmt::join(known, ", "));
  return models;
}

void run_experiment(ExperimentOptions o) {
  const std::string dir = o.out.empty() ? (fs::path(o.runs_dir) / ("experiment-" + o.name)).string() : o.out;
  experiments::Output out;
  if (o.name == "softmax") {
    out = experiments::softmax_experiment(o.translation.train.training.seed);
  } else if (o.name == "losses") {
    out = experiments::losses_experiment();
  } else if (o.name == "translation" || o.name == "models") {
    BIRDPLANE_CHECK(o.translation.resume || !fs::exists(dir),
                    "{} already exists; pass --out with a new folder, remove it, or continue it with --resume", dir);
    auto& cfg = o.translation.train;
    cfg.data.classes = data::parse_class_list(o.classes);
    cfg.data.data_dir = data_root(cfg.data.data_dir);
    cfg.data.download = !o.no_download;
    const auto models = parse_models(o.models.empty() && o.name == "models" ? kDefaultFamily : o.models);
    if (o.name == "translation") cfg.training.augment = o.translation.augment;  // checked here; set per run later
    for (const auto& m : models.empty() ? std::vector<std::string>{cfg.model.name} : models) {
      auto check = cfg;  // every model's settings, before any training
      check.model.name = m;
      check.validate();
    }
    // Data first, so a data error leaves nothing on disk.
    data::DataLoadOptions load;
#ifdef BIRDPLANE_WITH_DOWNLOAD
    load.download = download_options();
#endif
    auto d = data::load_training_data(cfg.data, cfg.training.seed, load);
    ProgressPrinter progress(isatty(STDOUT_FILENO) != 0);
    InterruptGuard interrupt;
    try {
      if (o.name == "translation") {
        o.translation.models = models;
        out = experiments::translation_experiment(o.translation, d.train, d.val, d.stats.mean, d.stats.std, dir,
                                                  &progress, interrupt.stop_token());
      } else {
        experiments::ModelsOptions mo;
        mo.train = cfg;
        mo.models = models;
        mo.resume = o.translation.resume;
        out = experiments::models_experiment(mo, d.train, d.val, d.stats.mean, d.stats.std, dir, &progress,
                                             interrupt.stop_token());
      }
    } catch (const train::Interrupted& e) {
      throw train::Interrupted(fmt::format("{}. Continue with `birdplane experiment {} --out {} --resume` and the same "
                                           "flags",
                                           e.what(), o.name, dir),
                               e.run_dir(), e.epochs_done());
    }
  } else {
    fail("experiment: unknown name '{}'; choose softmax, losses, translation or models", o.name);
  }
  experiments::write_outputs(out, dir);
  for (const auto& t : out.tables) std::cout << t.to_markdown() << "\n";
  std::cout << fmt::format("wrote {}/index.html, table.md, table.json", dir);
  for (const auto& p : out.plots) std::cout << ", " << p.first;
  for (const auto& p : out.bar_charts) std::cout << ", " << p.first;
  std::cout << "\n";
}

}  // namespace

void setup_experiment(CLI::App& app) {
  auto o = std::make_shared<ExperimentOptions>();
  auto& t = o->translation;
  auto* cmd = app.add_subcommand("experiment",
                                 "Run one of the chapter's experiments and write a table (Markdown, JSON) and "
                                 "plots (SVG) into runs/experiment-NAME/");
  cmd->add_option("name", o->name,
                  "softmax (its properties; LogSoftmax+NLL = CrossEntropy), losses (cross-entropy vs MSE), "
                  "translation (plain vs augmented training, accuracy on shifted images), or models (the "
                  "chapter-8 family side by side: accuracy, parameters, time; a bar chart)")
      ->required();
  cmd->add_option("--out", o->out, "Output folder (default: <runs-dir>/experiment-NAME)");
  cmd->add_option("--runs-dir", o->runs_dir, "Where the default output folder goes")->capture_default_str();
  cmd->add_option("--seed", t.train.training.seed, "Seed (random logits; weights and shuffles)")->capture_default_str();
  add_data_dir(*cmd, t.train.data.data_dir);
  cmd->add_option("--classes", o->classes, "translation: classes to train on")->capture_default_str();
  cmd->add_option("--model", t.train.model.name, "translation: the model preset (" + fmt::format("{}", fmt::join(nn::model_names(), ", ")) + ")")
      ->check(CLI::IsMember(nn::model_names()))
      ->capture_default_str();
  cmd->add_option("--epochs", t.train.training.epochs, "translation, models: epochs of each training run")->capture_default_str();
  cmd->add_option("--models", o->models,
                  std::string("translation: models side by side, e.g. book-small,net (default: --model); models: the "
                              "presets to compare (default: ") +
                      kDefaultFamily + ")");
  cmd->add_option("--channels", t.train.model.channels, "Convnets from net-width on: first-layer channels")
      ->capture_default_str();
  cmd->add_option("--blocks", t.train.model.blocks, "net-res-deep: residual blocks")->capture_default_str();
  cmd->add_option("--augment", t.augment, "translation: the augmentation of run (b)")->capture_default_str();
  cmd->add_option("--max-shift", t.max_shift, "translation: shift validation images by 0..N pixels")
      ->capture_default_str();
  cmd->add_option("--limit-train", t.train.data.limit_train, "translation: use only the first N training images");
  cmd->add_option("--limit-val", t.train.data.limit_val, "translation: use only the first N validation images");
  cmd->add_flag("--resume", t.resume,
                "translation: continue a stopped experiment in its --out folder (each run from its checkpoint)");
  cmd->add_flag("--no-download", o->no_download, "Fail instead of downloading CIFAR-10 when it is missing");
  cmd->callback([o] { run_experiment(*o); });
}

}  // namespace birdplane::cli
