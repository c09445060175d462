#include "birdplane/train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <torch/torch.h>
#include <torch/version.h>

#include "birdplane/data/batch_loader.h"
#include "birdplane/train/fused_step.h"
#include "birdplane/transforms/functional.h"
#include "birdplane/transforms/spec.h"

namespace fs = std::filesystem;

namespace birdplane::train {

std::atomic<bool> g_interrupt_requested{false};

namespace {

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(std::max(0.0, seconds) + 0.5);
  return s >= 3600 ? fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
                   : fmt::format("{}:{:02}", s / 60, s % 60);
}

}  // namespace

void TrainConfig::validate() const {
  BIRDPLANE_CHECK(epochs >= 1, "--epochs: {} is not allowed; expected 1 or more", epochs);
  BIRDPLANE_CHECK(batch_size >= 1, "--batch-size: {} is not allowed; expected 1 or more", batch_size);
  BIRDPLANE_CHECK(eval_every >= 1, "--eval-every: {} is not allowed; expected 1 or more", eval_every);
  BIRDPLANE_CHECK(model == "book-small" || model == "book-large" || model == "mlp",
                  "--model: unknown model '{}'; expected book-small, book-large or mlp", model);
  BIRDPLANE_CHECK(activation == "tanh" || activation == "relu",
                  "--activation: '{}' is not supported; expected tanh or relu", activation);
  BIRDPLANE_CHECK(device == "auto" || device == "cpu" || device == "cuda",
                  "--device: '{}' is not a device; expected auto, cpu or cuda", device);
  BIRDPLANE_CHECK(limit_train >= 0 && limit_val >= 0, "--limit-train/--limit-val must be 0 or more");
  if (!loss.empty()) nn::parse_loss(loss);
  if (!augment.empty()) {
    // Parse, then run once on a tiny batch: a spec that changes the size or dtype fails here, before
    // a run folder exists, not on the loader thread.
    auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
    transforms::parse_augment(augment)(at::zeros({2, 3, 32, 32}, at::kByte), gen);
  }
  check_precision(precision);
  BIRDPLANE_CHECK(step == "auto" || step == "fused" || step == "autograd",
                  "--step: '{}' is not supported; expected auto, fused or autograd", step);
  optimizer.validate();
}

void check_precision(const std::string& precision) {
  BIRDPLANE_CHECK(precision == "fp32" || precision == "bf16",
                  "--precision: '{}' is not supported; expected fp32 or bf16", precision);
}

PrecisionScope::PrecisionScope(bool bf16) : on_(bf16) {
  if (!on_) return;
  previous_enabled_ = at::autocast::is_cpu_enabled();
  previous_dtype_ = at::autocast::get_autocast_cpu_dtype();
  at::autocast::set_cpu_enabled(true);
  at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  at::autocast::increment_nesting();
}

at::Tensor forward_in_precision(torch::nn::Sequential& model, const at::Tensor& x, const std::string& precision) {
  if (precision != "bf16") return model->forward(x);
  const size_t n = model->size();
  const bool ends_in_log_softmax =
      n > 0 && std::dynamic_pointer_cast<torch::nn::LogSoftmaxImpl>(model->ptr(n - 1)) != nullptr;
  at::Tensor h = x;
  {
    PrecisionScope scope(true);
    auto it = model->begin();
    for (size_t i = 0; i + (ends_in_log_softmax ? 1 : 0) < n; ++i, ++it) h = it->forward(h);
  }
  h = h.to(at::kFloat);
  if (ends_in_log_softmax) h = model->ptr<torch::nn::LogSoftmaxImpl>(n - 1)->forward(h);
  return h;
}

PrecisionScope::~PrecisionScope() {
  if (!on_) return;
  // Leaving the outermost region drops the cached bf16 copies of the weights (they change every step).
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_cpu_enabled(previous_enabled_);
  at::autocast::set_autocast_cpu_dtype(previous_dtype_);
}

nlohmann::json TrainConfig::to_json() const {
  return {{"data_dir", data_dir},   {"classes", classes},       {"model", model},
          {"hidden", hidden},       {"activation", activation}, {"loss", loss},
          {"optimizer", optimizer.to_json()},
          {"epochs", epochs},       {"batch_size", batch_size}, {"seed", seed},
          {"drop_last", drop_last}, {"eval_every", eval_every}, {"runs_dir", runs_dir},
          {"name", name},           {"device", device},         {"init_from", init_from},
          {"limit_train", limit_train}, {"limit_val", limit_val}, {"augment", augment},
          {"precision", precision}, {"step", step}};
}

TrainConfig TrainConfig::from_json(const nlohmann::json& j) {
  TrainConfig c;
  c.data_dir = j.at("data_dir").get<std::string>();
  c.classes = j.at("classes").get<std::vector<std::string>>();
  c.model = j.at("model").get<std::string>();
  c.hidden = j.at("hidden").get<std::vector<int64_t>>();
  c.activation = j.at("activation").get<std::string>();
  c.loss = j.at("loss").get<std::string>();
  c.optimizer = OptimizerConfig::from_json(j.at("optimizer"));
  c.epochs = j.at("epochs").get<int64_t>();
  c.batch_size = j.at("batch_size").get<int64_t>();
  c.seed = j.at("seed").get<uint64_t>();
  c.drop_last = j.at("drop_last").get<bool>();
  c.eval_every = j.at("eval_every").get<int64_t>();
  c.runs_dir = j.at("runs_dir").get<std::string>();
  c.name = j.at("name").get<std::string>();
  c.device = j.at("device").get<std::string>();
  c.init_from = j.at("init_from").get<std::string>();
  c.limit_train = j.at("limit_train").get<int64_t>();
  c.limit_val = j.at("limit_val").get<int64_t>();
  c.augment = j.value("augment", std::string());
  c.precision = j.value("precision", std::string("fp32"));  // runs written before --precision existed
  c.step = j.value("step", std::string("auto"));            // and before --step
  return c;
}

c10::Device resolve_device(const std::string& name) {
  if (name == "cpu") return c10::Device(c10::kCPU);
  if (name == "cuda") {
    BIRDPLANE_CHECK(torch::cuda::is_available(),
                    "--device cuda: this LibTorch has no CUDA device available (`birdplane doctor` "
                    "shows why); use --device cpu or auto");
    return c10::Device(c10::kCUDA);
  }
  BIRDPLANE_CHECK(name == "auto", "--device: '{}' is not a device; expected auto, cpu or cuda", name);
  return torch::cuda::is_available() ? c10::Device(c10::kCUDA) : c10::Device(c10::kCPU);
}

EvalResult evaluate(const torch::nn::Sequential& model_ref, const data::Cifar10& set, const ModelConfig& config,
                    c10::Device device, int64_t batch_size, const std::string& precision) {
  check_precision(precision);
  torch::NoGradGuard no_grad;
  torch::nn::Sequential model = model_ref;  // a holder sharing the module; forward() is not const
  const bool was_training = model->is_training();
  model->eval();
  const auto loss_kind = nn::parse_loss(config.loss);
  EvalResult r;
  r.confusion = ConfusionMatrix(config.mlp.out_features);
  MeanMeter loss;
  const int64_t n = static_cast<int64_t>(*set.size());
  for (int64_t start = 0; start < n; start += batch_size) {
    const int64_t end = std::min(n, start + batch_size);
    auto x = transforms::functional::to_normalized(set.images().slice(0, start, end), config.mean, config.std);
    auto y = set.labels().slice(0, start, end);
    x = x.view({end - start, -1}).to(device);
    y = y.to(device);
    auto out = forward_in_precision(model, x, precision);
    loss.add(nn::compute_loss(loss_kind, out, y, config.mlp.log_softmax).item<double>(), end - start);
    r.confusion.add(out.argmax(1), y);
  }
  r.loss = loss.mean();
  model->train(was_training);
  return r;
}

Trainer::Trainer(TrainConfig config, const data::Cifar10& train_set, const data::Cifar10& val_set,
                 std::vector<double> mean, std::vector<double> std, std::string run_dir, bool resume)
    : config_(std::move(config)), train_set_(train_set), val_set_(val_set),
      device_(resolve_device(config_.device)), run_dir_(std::move(run_dir)) {
  config_.validate();
  model_config_.model_name = config_.model;
  model_config_.mlp = nn::preset(config_.model, train_set.num_classes());
  if (!config_.hidden.empty()) model_config_.mlp.hidden = config_.hidden;
  model_config_.mlp.activation = config_.activation;
  model_config_.loss = config_.loss.empty() ? nn::natural_loss(model_config_.mlp) : config_.loss;
  loss_ = nn::parse_loss(model_config_.loss);
  nn::check_loss_fits(loss_, model_config_.mlp.log_softmax);
  model_config_.classes = train_set.class_names();
  model_config_.mean = std::move(mean);
  model_config_.std = std::move(std);

  torch::manual_seed(config_.seed);  // the initial weights follow the seed, as in the book
  model_ = nn::make_mlp(model_config_.mlp);
  if (!config_.init_from.empty()) import_state_dict(config_.init_from, model_);
  model_->to(device_);
  optimizer_ = make_optimizer(config_.optimizer, model_->parameters());

  const std::string ckpt = (fs::path(run_dir_) / "checkpoint.pt").string();
  if (resume) {
    auto saved = load_checkpoint(ckpt);
    BIRDPLANE_CHECK(saved.config.mlp.hidden == model_config_.mlp.hidden &&
                        saved.config.mlp.out_features == model_config_.mlp.out_features,
                    "--resume: {} was saved for a different model than config.json describes", ckpt);
    {
      torch::NoGradGuard no_grad;
      auto dst = model_->parameters();
      auto src = saved.model->parameters();
      for (size_t i = 0; i < dst.size(); ++i) dst[i].copy_(src[i]);
    }
    load_optimizer_state(ckpt, *optimizer_);
    start_epoch_ = saved.epoch;
    history_ = read_metrics((fs::path(run_dir_) / "metrics.csv").string());
    if (static_cast<int64_t>(history_.size()) > start_epoch_) history_.resize(start_epoch_);
  }
  if (config_.step != "autograd") {
    const std::string why = fused_step_unsupported(model_config_.mlp, loss_, config_.optimizer, device_);
    BIRDPLANE_CHECK(config_.step != "fused" || why.empty(),
                    "--step fused: this run cannot use the fused step: {}; use --step auto or autograd", why);
    if (why.empty())
      fused_ = std::make_unique<FusedMlpStep>(model_, model_config_.mlp, config_.optimizer.lr,
                                              config_.precision == "bf16");
  }
}

Trainer::~Trainer() = default;

void Trainer::write_metrics(const std::vector<EpochMetrics>& rows) const {
  write_atomically((fs::path(run_dir_) / "metrics.csv").string(), [&](const std::string& tmp) {
    std::ofstream out(tmp);
    out << "epoch,train_loss,train_accuracy,val_loss,val_accuracy,seconds,images_per_second\n";
    for (const auto& m : rows) {
      out << fmt::format("{},{:.6f},{:.6f},{},{},{:.4f},{:.1f}\n", m.epoch, m.train_loss, m.train_accuracy,
                         m.val_loss < 0 ? "" : fmt::format("{:.6f}", m.val_loss),
                         m.val_accuracy < 0 ? "" : fmt::format("{:.6f}", m.val_accuracy), m.seconds,
                         m.images_per_second);
    }
    if (!out) fail("cannot write {}", tmp);
  });
}

std::vector<EpochMetrics> read_metrics(const std::string& path) {
  std::vector<EpochMetrics> rows;
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) f.push_back(cell);
    while (f.size() < 7) f.push_back("");
    auto num = [](const std::string& s) { return s.empty() ? -1.0 : std::stod(s); };
    EpochMetrics m;
    m.epoch = std::stoll(f[0]);
    m.train_loss = num(f[1]);
    m.train_accuracy = num(f[2]);
    m.val_loss = num(f[3]);
    m.val_accuracy = num(f[4]);
    m.seconds = num(f[5]);
    m.images_per_second = num(f[6]);
    rows.push_back(m);
  }
  return rows;
}

bool Trainer::input_layer_kernels() const { return fused_ && fused_->own_kernels(); }

TrainResult Trainer::run(std::ostream& log, bool progress_bar) {
  const std::string ckpt = (fs::path(run_dir_) / "checkpoint.pt").string();
  // The next batch is prepared on a thread of its own only where a core is free for it. When the
  // intra-op threads already take every core, a loader thread can only run by taking a core from a
  // matrix product (which then waits at its barrier); on the training thread the same work runs
  // between steps, on all the intra-op threads. Batches are the same either way.
  const bool spare_core = std::thread::hardware_concurrency() > static_cast<unsigned>(at::get_num_threads());
  data::BatchLoader loader(train_set_,
                           data::BatchLoaderOptions(config_.batch_size)
                               .seed(config_.seed)
                               .drop_last(config_.drop_last)
                               .background(spare_core),
                           config_.augment.empty()
                               ? data::BatchLoader::normalize_transform(model_config_.mean, model_config_.std)
                               : transforms::augment_then_normalize(config_.augment, model_config_.mean,
                                                                    model_config_.std));
  const int64_t steps = loader.batches_per_epoch();
  auto params = model_->parameters();
  Timer run_timer;
  model_->train();
  for (int64_t epoch = start_epoch_; epoch < config_.epochs; ++epoch) {
    Timer timer;
    MeanMeter loss_meter;
    int64_t correct = 0, seen = 0;
    loader.start_epoch(epoch);
    while (auto batch = loader.next()) {
      if (g_interrupt_requested.load()) {
        throw Interrupted(fmt::format(
            "interrupted during epoch {}; {} holds the last finished epoch ({}). Continue with "
            "`birdplane train --resume {}`",
            epoch + 1, ckpt, epoch, run_dir_));
      }
      const int64_t b = batch->images.size(0);
      auto x = batch->images.view({b, -1}).to(device_);
      auto y = batch->labels.to(device_);
      double loss_value = 0;
      if (fused_) {
        const auto r = fused_->step(x, y);
        loss_value = r.loss;
        correct += r.correct;
      } else {
        // float32 out of any precision: log_softmax and the loss are computed in float32.
        auto out = forward_in_precision(model_, x, config_.precision);
        auto loss = nn::compute_loss(loss_, out, y, model_config_.mlp.log_softmax);
        // Gradients set to none rather than zeroed: backward then writes each one fresh instead of
        // adding into a zeroed buffer, two memory passes per parameter saved (PyTorch's
        // zero_grad(set_to_none=True); LibTorch 1.13's zero_grad() only zeroes).
        for (auto& p : params) p.mutable_grad() = at::Tensor();
        loss.backward();
        loss_value = loss.item<double>();
        if (std::isfinite(loss_value)) optimizer_->step();
        correct += out.argmax(1).eq(y).sum().item<int64_t>();
      }
      if (!std::isfinite(loss_value)) {
        throw Error(fmt::format(
            "the training loss became {} at epoch {}, batch {}; stopped without saving this epoch. "
            "{} holds the last good state (epoch {}). Try a lower --lr (now {})",
            loss_value, epoch + 1, batch->index + 1, ckpt, epoch, config_.optimizer.lr));
      }
      loss_meter.add(loss_value, b);
      seen += b;
      if (progress_bar && (batch->index % 8 == 0 || batch->index + 1 == steps)) {
        const double frac = static_cast<double>(batch->index + 1) / steps;
        const int width = 30, filled = static_cast<int>(frac * width);
        const double elapsed = run_timer.seconds();
        const double done = (epoch - start_epoch_) + frac;
        const double eta = elapsed / done * (config_.epochs - start_epoch_ - done);
        log << fmt::format("\repoch {}/{} [{}{}] {:3.0f}% loss {:.4f} ETA {}   ", epoch + 1, config_.epochs,
                           std::string(filled, '#'), std::string(width - filled, '.'), frac * 100,
                           loss_meter.mean(), format_duration(eta))
            << std::flush;
      }
    }
    EpochMetrics m;
    m.epoch = epoch + 1;
    m.train_loss = loss_meter.mean();
    m.train_accuracy = seen ? static_cast<double>(correct) / seen : 0.0;
    m.seconds = timer.seconds();
    m.images_per_second = seen / std::max(m.seconds, 1e-9);
    if ((epoch + 1) % config_.eval_every == 0 || epoch + 1 == config_.epochs) {
      auto ev = evaluate(model_, val_set_, model_config_, device_, 1000, config_.precision);
      m.val_loss = ev.loss;
      m.val_accuracy = ev.confusion.accuracy();
    }
    history_.push_back(m);
    save_checkpoint(ckpt, model_config_, model_, optimizer_.get(), epoch + 1, config_.to_json());
    write_metrics(history_);
    if (progress_bar) log << "\r";
    log << fmt::format("epoch {}/{}  loss {:.4f}  train acc {:.4f}{}  {:.2f} s  {:.0f} img/s", m.epoch,
                       config_.epochs, m.train_loss, m.train_accuracy,
                       m.val_accuracy >= 0 ? fmt::format("  val loss {:.4f}  val acc {:.4f}", m.val_loss,
                                                         m.val_accuracy)
                                           : "",
                       m.seconds, m.images_per_second)
        << (progress_bar ? "          \n" : "\n") << std::flush;
  }
  TrainResult result;
  result.history = history_;
  result.run_dir = run_dir_;
  result.total_seconds = run_timer.seconds();
  auto train_eval = evaluate(model_, train_set_, model_config_, device_, 1000, config_.precision);
  auto val_eval = evaluate(model_, val_set_, model_config_, device_, 1000, config_.precision);
  result.final_train_accuracy = train_eval.confusion.accuracy();
  result.final_val_accuracy = val_eval.confusion.accuracy();
  save_checkpoint((fs::path(run_dir_) / "model.pt").string(), model_config_, model_);
  nlohmann::json results = {{"train_accuracy", result.final_train_accuracy},
                            {"train_loss", train_eval.loss},
                            {"val_accuracy", result.final_val_accuracy},
                            {"val_loss", val_eval.loss},
                            {"epochs", config_.epochs},
                            {"seconds_this_session", result.total_seconds},
                            {"validation", val_eval.confusion.to_json(model_config_.classes)}};
  write_atomically((fs::path(run_dir_) / "results.json").string(), [&](const std::string& tmp) {
    std::ofstream(tmp) << results.dump(2) << "\n";
  });
  log << fmt::format("done: train accuracy {:.4f}, validation accuracy {:.4f} ({} epochs, {:.1f} s); model in {}\n",
                     result.final_train_accuracy, result.final_val_accuracy, config_.epochs,
                     result.total_seconds, (fs::path(run_dir_) / "model.pt").string());
  return result;
}

}  // namespace birdplane::train
