// birdplane experiment NAME: the chapter's arguments measured (softmax, losses, translation).
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <iostream>

#include <fmt/format.h>

#include "birdplane/doctor.h"
#include "birdplane/experiments/chapter.h"
#include "birdplane/nn/model.h"
#include "birdplane/train/speedrun.h"
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
  double epochs = -1;  // --epochs when given (speedrun: fractional)
  experiments::TranslationOptions translation;
  // speedrun
  int64_t runs = 1;
  int64_t batch_size = 1024;
  std::string precision = "auto";
  std::string step = "auto";
  std::string conv = "auto";
};

// Prints each epoch of a speedrun as a line, and on a terminal the step count in between.
class SpeedrunPrinter : public train::SpeedrunObserver {
 public:
  SpeedrunPrinter(bool terminal, uint64_t seed) : terminal_(terminal), seed_(seed) {}
  void on_step(int64_t step, int64_t total, double seconds) override {
    if (!terminal_) return;
    std::cout << fmt::format("\rseed {}  step {}/{}  {}", seed_, step, total, format_duration(seconds)) << std::flush;
  }
  void on_epoch(const train::SpeedrunEpoch& e) override {
    if (terminal_) std::cout << "\r\033[K";
    std::cout << fmt::format("seed {}  epoch {:2d}  loss {:.4f}  train acc {:.4f}  val acc {}  {:.1f} s\n", seed_,
                             e.epoch, e.train_loss, e.train_accuracy,
                             e.val_accuracy < 0 ? std::string("-") : fmt::format("{:.4f}", e.val_accuracy),
                             e.seconds)
              << std::flush;
  }

 private:
  bool terminal_;
  uint64_t seed_;
};

// speedrun: the recipe `runs` times (seeds seed, seed+1, ...) on all ten classes; each run's model.pt and
// speedrun.json under dir/seed-S, a table of accuracy and time to it.
experiments::Output speedrun_experiment(const ExperimentOptions& o, const std::string& dir) {
  BIRDPLANE_CHECK_SETTING(o.runs >= 1 && o.runs <= 1000, "runs", "{} is out of range; expected 1 to 1000", o.runs);
  train::SpeedrunOptions so;
  so.seed = o.translation.train.training.seed;
  if (o.epochs > 0) so.epochs = o.epochs;
  BIRDPLANE_CHECK_SETTING(o.epochs == -1 || o.epochs > 0, "epochs", "{} is out of range; expected above 0", o.epochs);
  so.batch_size = o.batch_size;
  const auto env = inspect_environment();
  so.precision = o.precision == "auto" ? (env.avx512_bf16 || env.amx_bf16 ? train::Precision::kBf16
                                                                          : train::Precision::kFp32)
                                       : train::parse_precision(o.precision);
  so.step = train::parse_step(o.step);
  so.conv = train::parse_conv(o.conv);
  so.validate();
  BIRDPLANE_CHECK(!fs::exists(dir), "{} already exists; pass --out with a new folder or remove it", dir);
  auto cfg = o.translation.train.data;
  cfg.classes = {};  // all ten
  cfg.data_dir = data_root(cfg.data_dir);
  cfg.download = !o.no_download;
  data::DataLoadOptions load;
#ifdef BIRDPLANE_WITH_DOWNLOAD
  load.download = download_options();
#endif
  auto d = data::load_training_data(cfg, so.seed, load);
  InterruptGuard interrupt;
  experiments::Output out;
  out.name = "speedrun";
  report::Table runs{"Speedrun runs (accuracy with test-time augmentation; seconds to it)",
                     {"seed", "accuracy", "accuracy without TTA", "whitening s", "training s", "TTA eval s",
                      "total s", "precision", "step"}};
  report::Table epochs{"Epochs", {"seed", "epoch", "train loss", "train accuracy", "val accuracy", "seconds"}};
  double sum_accuracy = 0, sum_seconds = 0;
  for (int64_t i = 0; i < o.runs; ++i) {
    auto run = so;
    run.seed = so.seed + static_cast<uint64_t>(i);
    SpeedrunPrinter printer(isatty(STDOUT_FILENO) != 0, run.seed);
    const auto r = train::run_speedrun(run, d.train, d.val, train::speedrun_mean(), train::speedrun_std(), &printer,
                                       interrupt.stop_token());
    train::save_speedrun(r, run, d.train.class_names(), (fs::path(dir) / fmt::format("seed-{}", run.seed)).string());
    for (const auto& e : r.epochs)
      epochs.rows.push_back({run.seed, e.epoch, e.train_loss, e.train_accuracy, e.val_accuracy, e.seconds});
    const double plain = r.epochs.empty() ? -1 : r.epochs.back().val_accuracy;
    runs.rows.push_back({run.seed, r.accuracy, plain, r.init_seconds, r.train_seconds, r.eval_seconds,
                         r.total_seconds, train::to_string(run.precision), r.step});
    std::cout << fmt::format("seed {}: accuracy {:.4f} (with {} TTA) in {:.1f} s: whitening {:.2f} s, training {:.1f} s, "
                             "TTA evaluation {:.1f} s; {}, {} step\n",
                             run.seed, r.accuracy, train::to_string(run.tta), r.total_seconds, r.init_seconds,
                             r.train_seconds, r.eval_seconds, train::to_string(run.precision), r.step)
              << std::flush;
    sum_accuracy += r.accuracy;
    sum_seconds += r.total_seconds;
  }
  out.summary = {{"runs", o.runs}, {"mean_accuracy", sum_accuracy / static_cast<double>(o.runs)},
                 {"mean_seconds", sum_seconds / static_cast<double>(o.runs)}};
  out.tables = {runs, epochs};
  return out;
}

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
    if (o.epochs > 0) {
      BIRDPLANE_CHECK_SETTING(o.epochs == std::floor(o.epochs), "epochs", "{} is not a whole number of epochs",
                              o.epochs);
      o.translation.train.training.epochs = static_cast<int64_t>(o.epochs);
    }
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
  } else if (o.name == "speedrun") {
    out = speedrun_experiment(o, dir);
  } else {
    fail("experiment: unknown name '{}'; choose softmax, losses, translation, models or speedrun", o.name);
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
                  "chapter-8 family side by side: accuracy, parameters, time; a bar chart), or speedrun (the CIFAR-10 "
                  "speedrun, airbench94's network and recipe, on all ten classes: accuracy and time to it)")
      ->required();
  cmd->add_option("--out", o->out, "Output folder (default: <runs-dir>/experiment-NAME)");
  cmd->add_option("--runs-dir", o->runs_dir, "Where the default output folder goes")->capture_default_str();
  cmd->add_option("--seed", t.train.training.seed, "Seed (random logits; weights and shuffles; speedrun: the first run's)")->capture_default_str();
  add_data_dir(*cmd, t.train.data.data_dir);
  cmd->add_option("--classes", o->classes, "translation: classes to train on")->capture_default_str();
  cmd->add_option("--model", t.train.model.name, "translation: the model preset (" + fmt::format("{}", fmt::join(nn::model_names(), ", ")) + ")")
      ->check(CLI::IsMember(nn::model_names()))
      ->capture_default_str();
  cmd->add_option("--epochs", o->epochs,
                  fmt::format("translation, models: epochs of each training run (default {}); speedrun: epochs, "
                              "fractions allowed (default 9.9)",
                              t.train.training.epochs));
  cmd->add_option("--models", o->models,
                  std::string("translation: models side by side, e.g. book-small,net (default: --model); models: the "
                              "presets to compare (default: ") +
                      kDefaultFamily + ")");
  cmd->add_option("--channels", t.train.model.channels, "Convnets from net-width on: first-layer channels")
      ->capture_default_str();
  cmd->add_option("--blocks", t.train.model.blocks, "net-res-deep: residual blocks")->capture_default_str();
  cmd->add_flag_callback("--separate-blocks", [&t] { t.train.model.shared_blocks = false; },
                         "net-res-deep: a block of its own at each depth (the book's code shares one; its authors call that a mistake)");
  cmd->add_option("--augment", t.augment, "translation: the augmentation of run (b)")->capture_default_str();
  cmd->add_option("--max-shift", t.max_shift, "translation: shift validation images by 0..N pixels")
      ->capture_default_str();
  cmd->add_option("--limit-train", t.train.data.limit_train, "translation, speedrun: use only the first N training images");
  cmd->add_option("--limit-val", t.train.data.limit_val, "translation, speedrun: use only the first N validation images");
  cmd->add_flag("--resume", t.resume,
                "translation: continue a stopped experiment in its --out folder (each run from its checkpoint)");
  cmd->add_option("--runs", o->runs, "speedrun: runs, with seeds --seed, --seed+1, ...")->capture_default_str();
  cmd->add_option("--batch-size", o->batch_size, "speedrun: images a step")->capture_default_str();
  cmd->add_option("--precision", o->precision,
                  "speedrun: fp32, bf16, or auto (bf16 on CPUs with AVX512-BF16 or AMX, else fp32)")
      ->check(CLI::IsMember({"auto", "fp32", "bf16"}))
      ->capture_default_str();
  cmd->add_option("--conv", o->conv,
                  "speedrun: auto, direct (oneDNN) or winograd (birdplane's bf16 Winograd form of the 3x3 "
                  "convolutions but the first; auto: winograd in bf16 on AVX512-BF16 CPUs without AMX)")
      ->check(CLI::IsMember({"auto", "direct", "winograd"}))
      ->capture_default_str();
  cmd->add_option("--step", o->step, "speedrun: auto, fused (birdplane's backward pass) or autograd")
      ->check(CLI::IsMember({"auto", "fused", "autograd"}))
      ->capture_default_str();
  cmd->add_flag("--no-download", o->no_download, "Fail instead of downloading CIFAR-10 when it is missing");
  cmd->callback([o] { run_experiment(*o); });
}

}  // namespace birdplane::cli
