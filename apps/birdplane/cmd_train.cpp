// birdplane train: maps flags to a run specification, starts or resumes the run through the library
// (train::Run), and draws its progress.
#include <unistd.h>

#include <filesystem>
#include <iostream>

#include <ATen/Parallel.h>
#include <fmt/format.h>

#include "birdplane/doctor.h"
#include "birdplane/nn/mlp.h"
#include "birdplane/nn/model.h"
#include "birdplane/train/distributed.h"
#include "birdplane/data/training_data.h"
#include "birdplane/train/run.h"
#include "birdplane/train/trainer.h"
#include "birdplane/report/run_report.h"
#include "commands.h"
#include "flags.h"
#include "launcher.h"
#include "progress.h"


namespace birdplane::cli {
namespace {

struct TrainOptions {
  train::RunSpec spec;
  std::string classes = "";
  std::string hidden;
  std::string resume;
  bool no_download = false;
  FolderFlags folder;
  bool epochs_given = false;
  bool loss_given = false;
  nn::LossKind loss = nn::LossKind::kNll;
  std::string schedule_per;  ///< --schedule-per (empty: the schedule's own unit)
  std::string milestones;    ///< --lr-milestones
  std::string lr_points;     ///< --lr-points
  std::string final_model = "last";  ///< --final-model
  std::string recipe = "book";       ///< --recipe
  CLI::App* command = nullptr;       ///< the subcommand, to tell which flags were given
  int64_t nproc = 0;         ///< --nproc: start this many local workers
  int64_t master_port = 0;   ///< --master-port with --nproc (0: a free port)
  double dist_timeout = 60;  ///< --dist-timeout, seconds
  bool no_report = false;    ///< --no-report
};

// The specification of a new run from the flags (the environment's data folder resolved here).
train::RunSpec spec_from_flags(const TrainOptions& o, bool notes = true) {
  train::RunSpec spec = o.spec;
  auto& d = spec.data;
  d.data_dir = data_root(d.data_dir);
  d.download = !o.no_download;
  d.classes = data::parse_class_list(o.classes);
  if (!o.hidden.empty()) spec.model.hidden = nn::parse_hidden(o.hidden);
  if (o.loss_given) spec.training.loss = o.loss;
  auto& schedule = spec.training.schedule;
  if (!o.schedule_per.empty()) schedule.per = train::parse_schedule_unit(o.schedule_per);
  if (!o.milestones.empty()) schedule.milestones = train::parse_milestones(o.milestones);
  if (!o.lr_points.empty()) schedule.points = train::parse_points(o.lr_points);
  spec.training.final_best = o.final_model == "best";
  train::apply_recipe(spec.training, o.recipe, [&](const std::string& setting) {
    return o.command && o.command->count(flag_for_setting(setting)) > 0;
  });
  if (!d.image_folder.empty()) {
    d.set_folder_options(folder_options(o.folder));
    if (d.val_folder.empty() && d.val_fraction == 0) {
      d.val_fraction = 0.2;
      if (notes)
        std::cerr << "note: no --val-folder or --val-fraction: holding out 20% of each class for validation\n";
    }
  }
  return spec;
}

// What --resume may change: where the data is now, downloading and the cache, and more epochs.
train::ResumeChanges changes_from_flags(const TrainOptions& o) {
  train::ResumeChanges c;
  if (!o.spec.data.data_dir.empty()) c.data_dir = o.spec.data.data_dir;
  if (!o.spec.data.image_folder.empty()) c.image_folder = o.spec.data.image_folder;
  if (!o.spec.data.val_folder.empty()) c.val_folder = o.spec.data.val_folder;
  if (!o.folder.cache_dir.empty()) c.cache_dir = o.folder.cache_dir;
  if (o.no_download) c.download = false;
  if (o.folder.no_cache) c.use_cache = false;
  if (o.epochs_given) c.epochs = o.spec.training.epochs;
  return c;
}

// train --nproc N: checks what can be checked without the data, then runs N copies of this command
// line as workers (with --name fixed, so that all agree on the folder).
void launch_workers(const TrainOptions& o) {
  BIRDPLANE_CHECK(!train::DistEnv::from_environment(),
                  "--nproc starts workers itself; inside a worker of torchrun (WORLD_SIZE is set) leave it out");
  std::vector<std::string> args = without_flags(program_arguments(), {"--nproc", "--master-port"});
  std::string run_path = o.resume;
  if (o.resume.empty()) {
    train::RunSpec spec = spec_from_flags(o, /*notes=*/false);  // the workers say them
    if (spec.name.empty()) {
      spec.name = train::default_run_name(spec.model.name);
      args.push_back("--name");
      args.push_back(spec.name);
    }
    spec.validate();  // flag errors before any worker starts; the workers' Run checks the folder
    run_path = spec.path();
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
  FolderProgressPrinter folder_progress;
  train::RunOptions options;
  options.dist = dist;
  if (main) options.data.observer = &folder_progress;
#ifdef BIRDPLANE_WITH_DOWNLOAD
  options.data.download = download_options(!main);
#endif
  auto run = o.resume.empty() ? train::Run::start(main ? spec_from_flags(o) : train::RunSpec(), options)
                              : train::Run::resume(o.resume, changes_from_flags(o), options);
  const auto& spec = run.spec();
  auto& trainer = run.trainer();
  if (main) {
    const auto& d = run.data();
    std::cout << fmt::format("{} {}: {} on {} training / {} validation images ({}), {} parameters, loss {}, "
                             "{} step in {}, {} threads{}; writing {}\n",
                             run.resumed() ? "resuming" : "training", spec.name, spec.model.name, *d.train.size(),
                             *d.val.size(), fmt::join(d.train.class_names(), ","),
                             nn::count_parameters(trainer.model()), nn::to_string(trainer.model_config().loss),
                             trainer.fused() ? "fused" : "autograd", train::to_string(spec.training.precision),
                             at::get_num_threads(),
                             dist ? fmt::format(" x {} ranks ({}, batch {} per rank)", dist->world_size(),
                                                dist->backend(), spec.training.batch_size)
                                  : "",
                             run.path())
              << std::flush;
    if (dist && !trainer.step_note().empty()) std::cerr << "note: " << trainer.step_note() << "\n";
    if (const auto& p = trainer.pretrained(); p.tensors > 0) {
      std::cout << fmt::format("weights: {} tensors from {}{}\n", p.tensors, spec.training.weights,
                               p.head_replaced ? fmt::format("; its {}-class head replaced by a new one for {} classes",
                                                             p.file_classes, spec.model.num_classes)
                                               : "");
    }
    std::cerr << blas_core_advice(inspect_environment());  // "" unless the BLAS kernels lag the CPU
  }
  ProgressPrinter progress(main && isatty(STDOUT_FILENO) != 0);
  InterruptGuard interrupt;
  try {
    run.train(main ? &progress : nullptr, interrupt.stop_token());
  } catch (const train::Interrupted& e) {
    throw train::Interrupted(fmt::format("{}. Continue with `birdplane train --resume {}`", e.what(), e.run_dir()),
                             e.run_dir(), e.epochs_done());
  } catch (const train::DistributedError& e) {
    throw train::DistributedError(
        fmt::format("{}; continue with `birdplane train --resume {}`", e.what(), run.path()), e.lost_rank());
  }
  if (main && !o.no_report) {
    // The run is saved; a report that cannot be written is a note, not a failed run.
    try {
      report::RunReportOptions r;
      r.data = &run.data();
      std::cout << "report: " << report::write_run_report(run.path(), r).path << "\n";
    } catch (const std::exception& e) {
      std::cerr << "note: report.html was not written (" << e.what() << "); `birdplane report " << run.path()
                << "` tries again\n";
    }
  }
}

// lr-find: a trainer of its own on the run's data and model, the sweep, and its files in the run folder
// (created when missing; an existing run's other files are not touched).
void run_lr_find(const TrainOptions& o, const train::LrFindOptions& f) {
  train::RunSpec spec = spec_from_flags(o);
  if (spec.name.empty()) spec.name = train::default_run_name(spec.model.name) + "-lr-find";
  spec.validate();
  FolderProgressPrinter folder_progress;
  data::DataLoadOptions load;
  load.observer = &folder_progress;
#ifdef BIRDPLANE_WITH_DOWNLOAD
  load.download = download_options(false);
#endif
  auto d = data::load_training_data(spec.data, spec.training.seed, load);
  train::Trainer trainer(spec, d.train, d.val, d.stats.mean, d.stats.std);
  std::cout << fmt::format("lr-find: {} on {} training images, {} steps from {:g} to {:g}\n", spec.model.name,
                           *d.train.size(), f.steps, f.start_lr, f.end_lr)
            << std::flush;
  ProgressPrinter progress(isatty(STDOUT_FILENO) != 0);
  const auto r = trainer.find_lr(f, &progress);
  train::write_lr_find(spec.path(), r);
  std::cout << fmt::format("{} steps{}; suggested learning rate {:.3g} (the smoothed loss falls fastest there); "
                           "curve in {}/lr_find.svg and lr_find.csv\n",
                           r.lrs.size(), r.diverged ? " (stopped: the loss diverged)" : "", r.suggestion, spec.path());
}

}  // namespace

// The flags of a run's specification (data, model, training, run folder), shared by train and lr-find.
void add_spec_flags(CLI::App* cmd, const std::shared_ptr<TrainOptions>& o) {
  o->command = cmd;
  cmd->add_option("--recipe", o->recipe,
                  "book (the book's: constant-rate SGD) or modern (Nesterov SGD, warmup then cosine, label "
                  "smoothing, mixup, a weight average, mirrored test-time augmentation; docs/recipe.md); any "
                  "of its settings given as a flag overrides it")
      ->check(CLI::IsMember({"book", "modern"}))
      ->capture_default_str();
  auto& c = o->spec;
  auto& data = c.data;
  auto& model = c.model;
  auto& t = c.training;
  add_data_dir(*cmd, data.data_dir);
  cmd->add_option("--image-folder", data.image_folder,
                  "Train on your own images: a folder with one subfolder of images per class (torchvision's "
                  "ImageFolder layout) instead of CIFAR-10");
  cmd->add_option("--val-folder", data.val_folder, "With --image-folder: validation images in the same layout");
  cmd->add_option("--val-fraction", data.val_fraction,
                  "With --image-folder: hold out this share of each class for validation, chosen by --seed "
                  "(default 0.2 when there is no --val-folder)");
  add_folder_flags(*cmd, o->folder, /*with_size=*/true);
  cmd->add_option("--classes", o->classes, "Comma-separated class names in label order, e.g. airplane,bird "
                                           "(default: all ten, or every class folder)");
  cmd->add_option("--model", model.name, "Model preset: " + fmt::format("{}", fmt::join(nn::model_names(), ", ")))
      ->check(CLI::IsMember(nn::model_names()))
      ->capture_default_str();
  cmd->add_option("--hidden", o->hidden, "Hidden layer widths, e.g. 1024,512 (overrides the preset's)");
  cmd->add_option("--channels", model.channels, "Convnets from net-width on: first-layer channels (even where halved)")
      ->capture_default_str();
  cmd->add_option("--blocks", model.blocks, "net-res-deep: residual blocks")->capture_default_str();
  cmd->add_flag_callback("--separate-blocks", [&model] { model.shared_blocks = false; },
                         "net-res-deep: a block of its own at each depth (the book's code shares one; its authors call that a mistake)");
  cmd->add_option("--dropout", model.dropout,
                  "torchvision's networks: dropout before the last layer (default: theirs, 0.2 for MobileNet and "
                  "EfficientNet)");
  cmd->add_option("--stochastic-depth", model.stochastic_depth,
                  "torchvision's networks: drop probability of the deepest residual branch (default: theirs, 0.2 "
                  "EfficientNet-B0, 0.1 ConvNeXt-Tiny)");
  cmd->add_option("--activation", model.activation, "tanh or relu")
      ->transform(choices(nn::kActivations))
      ->default_str(nn::to_string(model.activation));
  cmd->add_option("--loss", o->loss, "nll, cross-entropy or mse (default: the one that fits the model)")
                   ->transform(choices(nn::kLossKinds));
  cmd->add_option("--optimizer", t.optimizer.kind, "sgd, adam or adamw")
      ->transform(choices(train::kOptimizerKinds))
      ->default_str(train::to_string(t.optimizer.kind));
  cmd->add_option("--lr", t.optimizer.lr, "Learning rate")->capture_default_str();
  cmd->add_option("--momentum", t.optimizer.momentum, "SGD momentum")->capture_default_str();
  cmd->add_option("--weight-decay", t.optimizer.weight_decay, "L2 weight decay")->capture_default_str();
  cmd->add_flag("--nesterov", t.optimizer.nesterov, "Nesterov momentum (SGD)");
  cmd->add_flag("--no-decay-bias-norm", t.optimizer.no_decay_bias_norm,
                "No weight decay on biases and normalization parameters (every 1-D parameter)");
  cmd->add_option("--head-lr-multiplier", t.optimizer.head_lr_multiplier,
                  "The head's (the output layer's) learning rate is --lr times this")
      ->capture_default_str();
  auto& sc = t.schedule;
  cmd->add_option("--schedule", sc.kind,
                  "Learning-rate schedule: constant, step, multistep, exponential, cosine, onecycle, piecewise or "
                  "plateau (as torch.optim.lr_scheduler's)")
      ->transform(choices(train::kScheduleKinds))
      ->default_str(train::to_string(sc.kind));
  cmd->add_option("--schedule-per", o->schedule_per,
                  "epoch or step: when the rate changes, and the unit of --lr-step-size, --lr-milestones and "
                  "--warmup (default: step for onecycle and piecewise, epoch otherwise)");
  cmd->add_option("--lr-step-size", sc.step_size, "step: multiply the rate by --lr-gamma every N units")
      ->capture_default_str();
  cmd->add_option("--lr-milestones", o->milestones, "multistep: multiply the rate by --lr-gamma at these, e.g. 30,60");
  cmd->add_option("--lr-gamma", sc.gamma, "step, multistep, exponential: the factor")->capture_default_str();
  cmd->add_option("--min-lr", sc.min_lr, "cosine: the floor the rate anneals to; plateau: the lowest rate")
      ->capture_default_str();
  cmd->add_option("--warmup", sc.warmup, "Units of linear warmup before the schedule (0: none)")
      ->capture_default_str();
  cmd->add_option("--warmup-factor", sc.warmup_factor, "The warmup's first rate, as a fraction of --lr")
      ->capture_default_str();
  cmd->add_option("--pct-start", sc.pct_start, "onecycle: the rising part's share of the run")->capture_default_str();
  cmd->add_option("--div-factor", sc.div_factor, "onecycle: it starts at --lr / this")->capture_default_str();
  cmd->add_option("--final-div-factor", sc.final_div_factor, "onecycle: it ends at the start / this")
      ->capture_default_str();
  cmd->add_flag("--anneal-linear", sc.anneal_linear, "onecycle: anneal linearly instead of along a cosine");
  cmd->add_option("--lr-points", o->lr_points,
                  "piecewise: FRACTION:FACTOR points from 0 to 1 of the run, e.g. 0:0.2,0.23:1,1:0.07");
  cmd->add_option("--plateau-metric", sc.plateau_metric, "plateau: val_loss or val_accuracy")
      ->transform(choices(train::kMonitors))
      ->default_str(train::to_string(sc.plateau_metric));
  cmd->add_option("--plateau-factor", sc.plateau_factor, "plateau: multiply the rate by this on a plateau")
      ->capture_default_str();
  cmd->add_option("--plateau-patience", sc.plateau_patience,
                  "plateau: validations without improvement before the rate drops")
      ->capture_default_str();
  cmd->add_option("--plateau-threshold", sc.plateau_threshold, "plateau: the relative change that counts")
      ->capture_default_str();
  cmd->add_option("--plateau-cooldown", sc.plateau_cooldown, "plateau: validations to wait after a drop")
      ->capture_default_str();
  cmd->add_option("--label-smoothing", t.label_smoothing, "Label smoothing of the loss, in [0, 1)")
      ->capture_default_str();
  cmd->add_option("--class-weights", t.class_weights,
                  "Loss weight per class: auto (inverse to the training counts) or W1,W2,... in label order");
  cmd->add_flag("--balanced-sampler", t.balanced_sampler,
                "Draw each epoch's images so every class comes equally often (with replacement, as "
                "WeightedRandomSampler)");
  cmd->add_option("--clip-grad-norm", t.clip_grad_norm, "Clip the gradients to this total 2-norm (0: off)")
      ->capture_default_str();
  cmd->add_option("--clip-grad-value", t.clip_grad_value, "Clip each gradient element to [-V, V] (0: off)")
      ->capture_default_str();
  cmd->add_option("--monitor", t.monitor,
                  "What the best epoch is (best.pt, --early-stopping, --final-model best): val_loss or val_accuracy")
      ->transform(choices(train::kMonitors))
      ->default_str(train::to_string(t.monitor));
  cmd->add_option("--early-stopping", t.early_stopping,
                  "Stop after N validations in a row without improvement of --monitor (0: never)")
      ->capture_default_str();
  cmd->add_option("--min-delta", t.min_delta, "The least change of --monitor that counts as an improvement")
      ->capture_default_str();
  cmd->add_option("--mixup", t.mix.mixup_alpha, "Mixup with lambda ~ Beta(A, A) on training batches (0: off; 0.2 is usual)")
      ->capture_default_str();
  cmd->add_option("--cutmix", t.mix.cutmix_alpha, "Cutmix with lambda ~ Beta(A, A) (0: off; 1.0 is usual)")
      ->capture_default_str();
  cmd->add_option("--mix-prob", t.mix.mix_prob, "The chance that a batch is mixed")->capture_default_str();
  cmd->add_option("--switch-prob", t.mix.switch_prob, "With --mixup and --cutmix: the chance of cutmix for a batch")
      ->capture_default_str();
  cmd->add_option("--tta", t.tta,
                  "Test-time augmentation of validation, kept in the model for eval and predict: none, flip "
                  "(the image and its mirror) or flip-shift (also shifted a pixel both ways)")
      ->transform(choices(train::kTtas))
      ->default_str(train::to_string(t.tta));
  cmd->add_option("--ema-decay", t.ema_decay,
                  "Keep an exponential moving average of the weights with this decay (e.g. 0.999; 0: off); "
                  "validation, best.pt and model.pt use the average")
      ->capture_default_str();
  cmd->add_option("--ema-every", t.ema_every, "Update the average every N steps")->capture_default_str();
  cmd->add_option("--ema-warmup", t.ema_warmup, "Epochs at the start during which the average restarts each update")
      ->capture_default_str();
  cmd->add_option("--final-model", o->final_model, "What model.pt holds: last (the last epoch) or best (best.pt)")
      ->check(CLI::IsMember({"last", "best"}))
      ->capture_default_str();
  cmd->add_option("--epochs", t.epochs, "Epochs")->capture_default_str();
  cmd->add_option("--batch-size", t.batch_size, "Images per batch")->capture_default_str();
  cmd->add_option("--seed", t.seed, "Seed for the initial weights and the shuffles")->capture_default_str();
  cmd->add_flag("--drop-last", t.drop_last, "Drop the last short batch of each epoch");
  cmd->add_option("--eval-every", t.eval_every, "Validate every N epochs (and after the last)")
      ->capture_default_str();
  cmd->add_option("--runs-dir", c.runs_dir, "Where run folders go")->capture_default_str();
  cmd->add_option("--name", c.name, "Run folder name (default: time stamp and model)");
  cmd->add_option("--device", t.device, "auto, cpu or cuda")
      ->transform(choices(train::kDeviceKinds))
      ->default_str(train::to_string(t.device));
  cmd->add_option("--init-from", t.init_from, "Start from a state_dict (birdplane export or Python torch.save)");
  cmd->add_option("--weights", t.weights,
                  "Start from pretrained weights (torchvision's published files, e.g. resnet18-f37072fd.pth); a head "
                  "for another number of classes is replaced, and images are normalized as the weights were");
  cmd->add_option("--freeze", t.freeze,
                  "torchvision's networks: train nothing up to this stage: backbone (all but the classifier), or a "
                  "stage such as layer3 or features.6 (see `birdplane model --model NAME --summary`)");
  cmd->add_option_function<std::string>(
      "--fine-tune",
      [&t](const std::string& v) {
        // K or K:FACTOR
        const auto colon = v.find(':');
        try {
          size_t used = 0;
          const std::string k = v.substr(0, colon);
          t.fine_tune.head_epochs = std::stoll(k, &used);
          if (used != k.size()) throw std::invalid_argument(k);
          if (colon != std::string::npos) {
            const std::string f = v.substr(colon + 1);
            t.fine_tune.lr_factor = std::stod(f, &used);
            if (used != f.size()) throw std::invalid_argument(f);
          }
        } catch (const std::logic_error&) {
          // A parse error (exit 2, "error: --fine-tune: ..."), as CLI11's own checks give.
          throw CLI::ValidationError("--fine-tune", fmt::format("'{}' is not K or K:FACTOR (e.g. 2:0.1)", v));
        }
      },
      "Fine-tune in two phases: the head alone for K epochs, then everything at FACTOR times the rate "
      "(K or K:FACTOR; FACTOR default 0.1)");
  cmd->add_option("--limit-train", data.limit_train, "Use only the first N training images (0: all)");
  cmd->add_option("--limit-val", data.limit_val, "Use only the first N validation images (0: all)");
  cmd->add_option("--augment", t.augment,
                  "Augmentation of training batches, e.g. \"RandomCrop(32, padding=4), RandomHorizontalFlip()\" "
                  "or \"crop,flip\"");
  cmd->add_option("--precision", t.precision, "fp32, or bf16: matmuls in bfloat16, weights and loss in fp32")
      ->transform(choices(train::kPrecisions))
      ->default_str(train::to_string(t.precision));
  cmd->add_option("--step", t.step,
                  "auto, fused (backward written out by hand, on the CPU with nll or cross-entropy: the MLPs "
                  "with plain SGD, updated in place; net and net-width in fp32 with AVX-512, with any "
                  "optimizer, schedule, smoothing, mixing or clipping, but no class weights) or autograd "
                  "(backward() then optimizer step); auto: fused where it applies")
      ->transform(choices(train::kStepKinds))
      ->default_str(train::to_string(t.step));
  cmd->add_flag("--no-download", o->no_download, "Fail instead of downloading CIFAR-10 when it is missing");
}

void setup_train(CLI::App& app) {
  auto o = std::make_shared<TrainOptions>();
  auto* cmd = app.add_subcommand("train", "Train a classifier (default: the book's book-small on all ten "
                                          "classes; the chapter uses --classes airplane,bird)");
  add_spec_flags(cmd, o);
  cmd->add_option("--resume", o->resume, "Continue the stopped run in this folder (runs/<name>)");
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
  cmd->add_flag("--no-report", o->no_report, "Do not write report.html into the run folder at the end (see `report`)");
  auto* epochs = cmd->get_option("--epochs");
  auto* loss = cmd->get_option("--loss");
  cmd->callback([o, epochs, loss] {
    o->epochs_given = epochs->count() > 0;
    o->loss_given = loss->count() > 0;
    run_train(*o);
  });
}


void setup_lr_find(CLI::App& app) {
  auto o = std::make_shared<TrainOptions>();
  auto f = std::make_shared<train::LrFindOptions>();
  auto* cmd = app.add_subcommand("lr-find",
                                 "Find a learning rate: train a fresh model with the rate rising exponentially, "
                                 "write the loss curve (lr_find.csv, lr_find.svg) into runs/<name>/ and print the "
                                 "rate where the loss falls fastest. Takes train's flags; trains no run");
  add_spec_flags(cmd, o);
  cmd->add_option("--start-lr", f->start_lr, "The sweep's first rate")->capture_default_str();
  cmd->add_option("--end-lr", f->end_lr, "The sweep's last rate")->capture_default_str();
  cmd->add_option("--steps", f->steps, "Training steps of the sweep (it stops early when the loss diverges)")
      ->capture_default_str();
  auto* loss = cmd->get_option("--loss");
  cmd->callback([o, f, loss] {
    o->loss_given = loss->count() > 0;
    run_lr_find(*o, *f);
  });
}
}  // namespace birdplane::cli
