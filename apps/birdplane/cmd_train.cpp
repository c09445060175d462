// birdplane train: the chapter's training run (and any registered model), writing runs/<name>/.
#include <unistd.h>

#include <ctime>
#include <filesystem>
#include <iostream>
#include <optional>

#include <ATen/Parallel.h>
#include <fmt/format.h>

#include "birdplane/doctor.h"
#include "birdplane/nn/mlp.h"
#include "birdplane/nn/model.h"
#include "birdplane/train/distributed.h"
#include "birdplane/train/run_dir.h"
#include "birdplane/train/trainer.h"
#include "commands.h"
#include "common.h"
#include "common/text.h"
#include "launcher.h"

namespace fs = std::filesystem;

namespace birdplane::cli {
namespace {

struct TrainOptions {
  train::TrainConfig config;
  std::string classes = "";
  std::string hidden;
  std::string resume;
  bool no_download = false;
  FolderFlags folder;
  bool epochs_given = false;
  bool loss_given = false;
  nn::LossKind loss = nn::LossKind::kNll;
  int64_t nproc = 0;         ///< --nproc: start this many local workers
  int64_t master_port = 0;   ///< --master-port with --nproc (0: a free port)
  double dist_timeout = 60;  ///< --dist-timeout, seconds
};

std::string default_run_name(const std::string& model) {
  std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", std::localtime(&now));
  return std::string(buf) + "-" + model;
}

// The run's settings from the flags, or from the run folder's config.json with --resume (then
// `run_dir` holds the opened, locked folder). Nothing is created on disk.
train::TrainConfig resolve_config(const TrainOptions& o, std::optional<train::RunDir>& run_dir) {
  train::TrainConfig cfg = o.config;
  const bool resume = !o.resume.empty();
  if (resume) {
    run_dir = train::RunDir::open(o.resume);
    try {
      cfg = train::TrainConfig::from_json(run_dir->read_config().at("train"));
    } catch (const nlohmann::json::exception& e) {
      fail("--resume: {} is not a valid birdplane config ({})", run_dir->config_path(), e.what());
    } catch (const SettingError& e) {  // a bad value in the file, not a flag the user gave
      fail("--resume: {} is not a valid birdplane config ({})", run_dir->config_path(), e.what());
    }
    if (!o.config.data_dir.empty()) cfg.data_dir = o.config.data_dir;  // the data may have moved
    if (!o.config.image_folder.empty()) cfg.image_folder = o.config.image_folder;
    if (!o.config.val_folder.empty()) cfg.val_folder = o.config.val_folder;
    if (!o.folder.cache_dir.empty()) cfg.cache_dir = o.folder.cache_dir;
    if (o.epochs_given) cfg.epochs = o.config.epochs;                  // extend a finished run
    BIRDPLANE_CHECK(run_dir->has_checkpoint(),
                    "--resume: {} has no checkpoint.pt yet (the run stopped before its first epoch ended); "
                    "start it again instead",
                    o.resume);
  } else {
    cfg.classes = data::parse_class_list(o.classes);
    if (!o.hidden.empty()) cfg.hidden = nn::parse_hidden(o.hidden);
    if (o.loss_given) cfg.loss = o.loss;
    if (!cfg.image_folder.empty()) {
      const auto f = folder_options(o.folder);
      cfg.image_size = f.image_size;
      cfg.crop = f.crop;
      cfg.max_pixels = f.max_pixels;
      cfg.skip_bad_images = f.skip_bad_images;
      cfg.cache_dir = f.cache_dir;
      if (cfg.val_folder.empty() && cfg.val_fraction == 0) {
        cfg.val_fraction = 0.2;
        std::cerr << "note: no --val-folder or --val-fraction: holding out 20% of each class for validation\n";
      }
    }
    if (cfg.name.empty()) cfg.name = default_run_name(cfg.model);
    const std::string path = (fs::path(cfg.runs_dir) / cfg.name).string();
    BIRDPLANE_CHECK(!fs::exists(path), "run folder {} already exists; pick another --name, or continue it with --resume {}",
                    path, path);
  }
  cfg.validate();
  return cfg;
}

// train --nproc N: checks what can be checked without the data, then runs N copies of this command
// line as workers (with --name fixed, so that all agree on the folder).
void launch_workers(const TrainOptions& o) {
  BIRDPLANE_CHECK(!train::DistEnv::from_environment(),
                  "--nproc starts workers itself; inside a worker of torchrun (WORLD_SIZE is set) leave it out");
  std::vector<std::string> args = without_flags(program_arguments(), {"--nproc", "--master-port"});
  std::string run_path;
  if (o.resume.empty()) {
    TrainOptions checked = o;
    if (checked.config.name.empty()) {
      checked.config.name = default_run_name(o.config.model);
      args.push_back("--name");
      args.push_back(checked.config.name);
    }
    checked.config.image_folder.clear();  // folder settings are checked by the workers, once read
    checked.config.val_fraction = 0;
    checked.config.val_folder.clear();
    checked.config.validate();
    run_path = (fs::path(checked.config.runs_dir) / checked.config.name).string();
    BIRDPLANE_CHECK(!fs::exists(run_path),
                    "run folder {} already exists; pick another --name, or continue it with --resume {}", run_path,
                    run_path);
  } else {
    run_path = o.resume;
    BIRDPLANE_CHECK(fs::exists(fs::path(o.resume) / "checkpoint.pt"),
                    "--resume: {} has no checkpoint.pt yet (the run stopped before its first epoch ended); start "
                    "it again instead",
                    o.resume);
  }
  LaunchOptions launch;
  launch.nproc = o.nproc;
  launch.master_port = o.master_port;
  launch.timeout = std::chrono::milliseconds(static_cast<int64_t>(o.dist_timeout * 1000));
  launch.run_path = run_path;
  const int code = launch_local_workers(launch, args);
  if (code != 0) throw ExitStatus{code};
}

void run_rank(const TrainOptions& o, train::Distributed* dist);

void run_train(TrainOptions o) {
  BIRDPLANE_CHECK(o.dist_timeout > 0 && o.dist_timeout <= 86400,
                  "--dist-timeout {} is not allowed; expected seconds above 0 (at most a day)", o.dist_timeout);
  BIRDPLANE_CHECK(o.nproc >= 0, "--nproc {} is not allowed; expected 1 or more workers", o.nproc);
  if (o.nproc > 0) return launch_workers(o);
  const auto env = train::DistEnv::from_environment();
  std::unique_ptr<train::Distributed> dist;
  if (env) {
    train::DistOptions options;
    options.timeout = std::chrono::milliseconds(static_cast<int64_t>(o.dist_timeout * 1000));
    dist = train::Distributed::join(*env, options);
  }
  try {
    run_rank(o, dist.get());
  } catch (const std::exception& e) {
    if (dist) dist->report_failure(e.what());
    throw;
  }
}

void run_rank(const TrainOptions& o, train::Distributed* dist) {
  const bool main = !dist || dist->is_main();
  const bool resume = !o.resume.empty();
  std::optional<train::RunDir> run_dir;
  train::TrainConfig cfg;
  if (main) cfg = resolve_config(o, run_dir);
  if (dist) {
    // Every rank trains with rank 0's settings (its clock named the run; --resume read them from its disk).
    cfg = train::TrainConfig::from_json(nlohmann::json::parse(dist->broadcast_text(main ? cfg.to_json().dump() : "")));
  }

  // Load the data before creating anything on disk, so a data error leaves no empty run folder. Rank 0
  // reads first (a download or an image cache is then there for the others on this machine).
  if (dist && !main) dist->wait_for_main("reading the data");
  auto d = load_training_data(cfg, !o.no_download, !o.folder.no_cache);
  if (dist && main) dist->main_finished("reading the data");
  // The trainer checks the model, loss and optimizer settings before anything is written.
  train::Trainer trainer(cfg, d.train, d.val, d.stats.mean, d.stats.std, nullptr, dist);
  if (resume) {
    trainer.resume_from(main ? &*run_dir : nullptr);
  } else if (main) {
    run_dir = train::RunDir::create((fs::path(cfg.runs_dir) / cfg.name).string());
    auto record = trainer.run_record();
    if (!d.record.empty()) record["data"] = d.record;
    run_dir->write_config(record);
  }
  if (main) {
    std::cout << fmt::format("{} {}: {} on {} training / {} validation images ({}), {} parameters, loss {}, "
                             "{} step in {}, {} threads{}; writing {}\n",
                             resume ? "resuming" : "training", cfg.name, cfg.model, *d.train.size(), *d.val.size(),
                             fmt::join(d.train.class_names(), ","), nn::count_parameters(trainer.model()),
                             nn::to_string(trainer.model_config().loss), trainer.fused() ? "fused" : "autograd",
                             train::to_string(cfg.precision), at::get_num_threads(),
                             dist ? fmt::format(" x {} ranks ({}, batch {} per rank)", dist->world_size(),
                                                dist->backend(), cfg.batch_size)
                                  : "",
                             run_dir->path())
              << std::flush;
    if (dist && !trainer.step_note().empty()) std::cerr << "note: " << trainer.step_note() << "\n";
    std::cerr << blas_core_advice(inspect_environment());  // "" unless the BLAS kernels lag the CPU
  }
  ProgressPrinter progress(main && isatty(STDOUT_FILENO) != 0);
  InterruptGuard interrupt;
  try {
    trainer.run(main ? &*run_dir : nullptr, main ? &progress : nullptr, interrupt.stop_token());
  } catch (const train::Interrupted& e) {
    throw train::Interrupted(fmt::format("{}. Continue with `birdplane train --resume {}`", e.what(), e.run_dir()),
                             e.run_dir(), e.epochs_done());
  } catch (const train::DistributedError& e) {
    throw train::DistributedError(fmt::format("{}; continue with `birdplane train --resume {}`", e.what(),
                                              (fs::path(cfg.runs_dir) / cfg.name).string()),
                                  e.lost_rank());
  }
}

}  // namespace

void setup_train(CLI::App& app) {
  auto o = std::make_shared<TrainOptions>();
  auto& c = o->config;
  auto* cmd = app.add_subcommand("train", "Train a classifier (default: the book's book-small on all ten "
                                          "classes; the chapter uses --classes airplane,bird)");
  add_data_dir(*cmd, c.data_dir);
  cmd->add_option("--image-folder", c.image_folder,
                  "Train on your own images: a folder with one subfolder of images per class (torchvision's "
                  "ImageFolder layout) instead of CIFAR-10");
  cmd->add_option("--val-folder", c.val_folder, "With --image-folder: validation images in the same layout");
  cmd->add_option("--val-fraction", c.val_fraction,
                  "With --image-folder: hold out this share of each class for validation, chosen by --seed "
                  "(default 0.2 when there is no --val-folder)");
  add_folder_flags(*cmd, o->folder, /*with_size=*/true);
  cmd->add_option("--classes", o->classes, "Comma-separated class names in label order, e.g. airplane,bird "
                                           "(default: all ten, or every class folder)");
  cmd->add_option("--model", c.model, "Model preset: " + join(nn::model_names(), ", "))
      ->check(CLI::IsMember(nn::model_names()))
      ->capture_default_str();
  cmd->add_option("--hidden", o->hidden, "Hidden layer widths, e.g. 1024,512 (overrides the preset's)");
  cmd->add_option("--channels", c.channels, "Convnets from net-width on: first-layer channels (even where halved)")
      ->capture_default_str();
  cmd->add_option("--blocks", c.blocks, "net-res-deep: residual blocks")->capture_default_str();
  cmd->add_option("--activation", c.activation, "tanh or relu")
      ->transform(choices(nn::kActivations))
      ->default_str(nn::to_string(c.activation));
  auto* loss = cmd->add_option("--loss", o->loss, "nll, cross-entropy or mse (default: the one that fits the model)")
                   ->transform(choices(nn::kLossKinds));
  cmd->add_option("--optimizer", c.optimizer.kind, "sgd or adam")
      ->transform(choices(train::kOptimizerKinds))
      ->default_str(train::to_string(c.optimizer.kind));
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
  cmd->add_option("--device", c.device, "auto, cpu or cuda")
      ->transform(choices(train::kDeviceKinds))
      ->default_str(train::to_string(c.device));
  cmd->add_option("--init-from", c.init_from, "Start from a state_dict (birdplane export or Python torch.save)");
  cmd->add_option("--resume", o->resume, "Continue the stopped run in this folder (runs/<name>)");
  cmd->add_option("--limit-train", c.limit_train, "Use only the first N training images (0: all)");
  cmd->add_option("--limit-val", c.limit_val, "Use only the first N validation images (0: all)");
  cmd->add_option("--augment", c.augment,
                  "Augmentation of training batches, e.g. \"RandomCrop(32, padding=4), RandomHorizontalFlip()\" "
                  "or \"crop,flip\"");
  cmd->add_option("--precision", c.precision, "fp32, or bf16: matmuls in bfloat16, weights and loss in fp32")
      ->transform(choices(train::kPrecisions))
      ->default_str(train::to_string(c.precision));
  cmd->add_option("--step", c.step,
                  "auto, fused (backward written out, SGD update in place; MLPs, and net or net-width in "
                  "fp32 with AVX-512; CPU, plain SGD, nll or cross-entropy) or autograd (backward() then "
                  "optimizer step); auto: fused where it applies")
      ->transform(choices(train::kStepKinds))
      ->default_str(train::to_string(c.step));
  cmd->add_flag("--no-download", o->no_download, "Fail instead of downloading CIFAR-10 when it is missing");
  cmd->add_option("--nproc", o->nproc,
                  "Train data-parallel in N processes on this machine (c10d, Gloo), started by birdplane with "
                  "torchrun's environment; --batch-size is per process, as in DistributedDataParallel. Under "
                  "torchrun (WORLD_SIZE set) leave it out: each worker joins by itself");
  cmd->add_option("--master-port", o->master_port, "With --nproc: the rendezvous port on 127.0.0.1 (0: a free one)")
      ->capture_default_str();
  cmd->add_option("--dist-timeout", o->dist_timeout,
                  "Multi-process runs: seconds a collective or the rendezvous may wait before the run stops "
                  "naming the lost rank")
      ->capture_default_str();
  auto* epochs = cmd->get_option("--epochs");
  cmd->callback([o, epochs, loss] {
    o->epochs_given = epochs->count() > 0;
    o->loss_given = loss->count() > 0;
    run_train(*o);
  });
}

}  // namespace birdplane::cli
