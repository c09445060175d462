// birdplane train: the chapter's training run (and any MLP), writing runs/<name>/.
#include <unistd.h>

#include <csignal>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <torch/version.h>

#include "birdplane/data/stats.h"
#include "birdplane/doctor.h"
#include "birdplane/nn/mlp.h"
#include "birdplane/train/trainer.h"
#include "commands.h"
#include "common.h"

namespace fs = std::filesystem;

namespace birdplane::cli {
namespace {

struct TrainOptions {
  train::TrainConfig config;
  std::string classes = "";
  std::string hidden;
  std::string resume;
  bool no_download = false;
  bool epochs_given = false;
};

extern "C" void on_sigint(int) {
  train::g_interrupt_requested.store(true);
  std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C ends the program at once
}

std::string default_run_name(const std::string& model) {
  std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", std::localtime(&now));
  return std::string(buf) + "-" + model;
}

void run_train(TrainOptions o) {
  train::TrainConfig cfg = o.config;
  std::string run_dir;
  const bool resume = !o.resume.empty();
  if (resume) {
    run_dir = o.resume;
    const auto config_path = fs::path(run_dir) / "config.json";
    std::ifstream in(config_path);
    if (!in) fail("--resume: {} has no config.json; expected a folder written by `birdplane train`", run_dir);
    nlohmann::json j;
    try {
      in >> j;
      cfg = train::TrainConfig::from_json(j.at("train"));
    } catch (const nlohmann::json::exception& e) {
      fail("--resume: {} is not a valid birdplane config ({})", config_path.string(), e.what());
    }
    if (!o.config.data_dir.empty()) cfg.data_dir = o.config.data_dir;  // the data may have moved
    if (o.epochs_given) cfg.epochs = o.config.epochs;                  // extend a finished run
    BIRDPLANE_CHECK(fs::exists(fs::path(run_dir) / "checkpoint.pt"),
                    "--resume: {} has no checkpoint.pt yet (the run stopped before its first epoch ended); "
                    "start it again instead",
                    run_dir);
  } else {
    cfg.classes = data::parse_class_list(o.classes);
    if (!o.hidden.empty()) cfg.hidden = nn::parse_hidden(o.hidden);
    if (cfg.name.empty()) cfg.name = default_run_name(cfg.model);
    cfg.validate();
    run_dir = (fs::path(cfg.runs_dir) / cfg.name).string();
    BIRDPLANE_CHECK(!fs::exists(run_dir),
                    "run folder {} already exists; pick another --name, or continue it with --resume {}",
                    run_dir, run_dir);
  }
  cfg.validate();

  // Load the data before creating anything on disk, so a data error leaves no empty run folder.
  auto d = load_training_data(cfg, !o.no_download);
  const auto& train_subset = d.train;
  const auto& val_subset = d.val;

  // The trainer checks the model, loss and optimizer settings before anything is written.
  train::Trainer trainer(cfg, train_subset, val_subset, d.stats.mean, d.stats.std, run_dir, resume);
  if (!resume) {
    std::error_code ec;
    fs::create_directories(run_dir, ec);
    if (ec) fail("cannot create run folder {}: {}", run_dir, ec.message());
  }
  const auto environment = inspect_environment();
  if (!resume) {
    nlohmann::json config = {
        {"train", cfg.to_json()},
        {"model", trainer.model_config().to_json()},
        {"parameters", nn::count_parameters(trainer.model())},
        {"train_images", static_cast<int64_t>(*train_subset.size())},
        {"val_images", static_cast<int64_t>(*val_subset.size())},
        {"versions", {{"birdplane", BIRDPLANE_VERSION}, {"libtorch", TORCH_VERSION}}},
        {"threads", at::get_num_threads()},
        {"step_used", trainer.fused() ? "fused" : "autograd"},
        // the fused fp32 step's input layer: birdplane's AVX-512 kernels, or ATen and the BLAS
        {"input_layer_kernels", trainer.input_layer_kernels() ? "birdplane-avx512" : "aten"},
        {"blas", {{"path", environment.blas_path}, {"core", environment.blas_core}}}};
    train::write_atomically((fs::path(run_dir) / "config.json").string(),
                            [&](const std::string& tmp) { std::ofstream(tmp) << config.dump(2) << "\n"; });
  }
  std::cout << fmt::format("{} {}: {} on {} training / {} validation images ({}), {} parameters, loss {}, "
                           "{} step in {}, {} threads; writing {}\n",
                           resume ? "resuming" : "training", cfg.name, cfg.model, *train_subset.size(),
                           *val_subset.size(), fmt::join(train_subset.class_names(), ","),
                           nn::count_parameters(trainer.model()), trainer.model_config().loss,
                           trainer.fused() ? "fused" : "autograd", cfg.precision, at::get_num_threads(), run_dir)
            << std::flush;
  std::cerr << blas_core_advice(environment);  // "" unless the BLAS kernels lag the CPU
  std::signal(SIGINT, on_sigint);
  trainer.run(std::cout, isatty(STDOUT_FILENO) != 0);
  std::signal(SIGINT, SIG_DFL);
}

}  // namespace

void setup_train(CLI::App& app) {
  auto o = std::make_shared<TrainOptions>();
  auto& c = o->config;
  auto* cmd = app.add_subcommand("train", "Train a classifier (default: the book's book-small on all ten "
                                          "classes; the chapter uses --classes airplane,bird)");
  add_data_dir(*cmd, c.data_dir);
  cmd->add_option("--classes", o->classes, "Comma-separated class names in label order, e.g. airplane,bird "
                                           "(default: all ten)");
  cmd->add_option("--model", c.model, "book-small, book-large or mlp")->capture_default_str();
  cmd->add_option("--hidden", o->hidden, "Hidden layer widths, e.g. 1024,512 (overrides the preset's)");
  cmd->add_option("--activation", c.activation, "tanh or relu")->capture_default_str();
  cmd->add_option("--loss", c.loss, "nll, cross-entropy or mse (default: the one that fits the model)");
  cmd->add_option("--optimizer", c.optimizer.name, "sgd or adam")->capture_default_str();
  cmd->add_option("--lr", c.optimizer.lr, "Learning rate")->capture_default_str();
  cmd->add_option("--momentum", c.optimizer.momentum, "SGD momentum")->capture_default_str();
  cmd->add_option("--weight-decay", c.optimizer.weight_decay, "L2 weight decay")->capture_default_str();
  cmd->add_flag("--nesterov", c.optimizer.nesterov, "Nesterov momentum (SGD)");
  cmd->add_option("--epochs", c.epochs, "Epochs")->capture_default_str();
  cmd->add_option("--batch-size", c.batch_size, "Images per batch")->capture_default_str();
  cmd->add_option("--seed", c.seed, "Seed for the initial weights and the shuffles")->capture_default_str();
  cmd->add_flag("--drop-last", c.drop_last, "Drop the last short batch of each epoch");
  cmd->add_option("--eval-every", c.eval_every, "Validate every N epochs (and after the last)")
      ->capture_default_str();
  cmd->add_option("--runs-dir", c.runs_dir, "Where run folders go")->capture_default_str();
  cmd->add_option("--name", c.name, "Run folder name (default: time stamp and model)");
  cmd->add_option("--device", c.device, "auto, cpu or cuda")->capture_default_str();
  cmd->add_option("--init-from", c.init_from, "Start from a state_dict (birdplane export or Python torch.save)");
  cmd->add_option("--resume", o->resume, "Continue the stopped run in this folder (runs/<name>)");
  cmd->add_option("--limit-train", c.limit_train, "Use only the first N training images (0: all)");
  cmd->add_option("--limit-val", c.limit_val, "Use only the first N validation images (0: all)");
  cmd->add_option("--augment", c.augment,
                  "Augmentation of training batches, e.g. \"RandomCrop(32, padding=4), RandomHorizontalFlip()\" "
                  "or \"crop,flip\"");
  cmd->add_option("--precision", c.precision, "fp32, or bf16: matmuls in bfloat16, weights and loss in fp32")
      ->capture_default_str();
  cmd->add_option("--step", c.step,
                  "auto, fused (backward written out, SGD update inside the gradient product; CPU, plain "
                  "SGD, nll or cross-entropy) or autograd (backward() then optimizer step); auto: fused "
                  "where it applies")
      ->capture_default_str();
  cmd->add_flag("--no-download", o->no_download, "Fail instead of downloading CIFAR-10 when it is missing");
  auto* epochs = cmd->get_option("--epochs");
  cmd->callback([o, epochs] {
    o->epochs_given = epochs->count() > 0;
    run_train(*o);
  });
}

}  // namespace birdplane::cli
