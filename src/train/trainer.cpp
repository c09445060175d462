#include "birdplane/train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <torch/torch.h>
#include <torch/version.h>

#include "birdplane/data/batch_loader.h"
#include "birdplane/data/image_decode.h"
#include "birdplane/doctor.h"
#include "birdplane/nn/mlp.h"
#include "birdplane/transforms/batch.h"
#include "birdplane/transforms/functional.h"
#include "birdplane/train/distributed.h"
#include "birdplane/transforms/spec.h"
#include "birdplane/version.h"
#include "common/files.h"
#include "train/fused_step.h"

namespace birdplane::train {
namespace {

// derive_seed's stream for the model's own randomness (the loader uses 1 and 2).
constexpr uint64_t kModelStream = 3;

}  // namespace

void TrainConfig::validate() const {
  BIRDPLANE_CHECK_SETTING(epochs >= 1, "epochs", "{} is not allowed; expected 1 or more", epochs);
  BIRDPLANE_CHECK_SETTING(batch_size >= 1, "batch_size", "{} is not allowed; expected 1 or more", batch_size);
  BIRDPLANE_CHECK_SETTING(eval_every >= 1, "eval_every", "{} is not allowed; expected 1 or more", eval_every);
  const auto names = nn::model_names();
  BIRDPLANE_CHECK_SETTING(std::find(names.begin(), names.end(), model) != names.end(), "model",
                          "unknown model '{}'; expected one of {}", model, fmt::join(names, ", "));
  BIRDPLANE_CHECK_SETTING(limit_train >= 0, "limit_train", "{} is not allowed; expected 0 (all) or more",
                          limit_train);
  BIRDPLANE_CHECK_SETTING(limit_val >= 0, "limit_val", "{} is not allowed; expected 0 (all) or more", limit_val);
  BIRDPLANE_CHECK_SETTING(val_fraction == 0 || (val_fraction > 0 && val_fraction < 1), "val_fraction",
                          "{} is not allowed; expected a share above 0 and below 1, e.g. 0.2", val_fraction);
  BIRDPLANE_CHECK_SETTING(val_fraction == 0 || !image_folder.empty(), "val_fraction",
                          "applies to an image folder (give --image-folder)");
  BIRDPLANE_CHECK_SETTING(val_fraction == 0 || val_folder.empty(), "val_fraction",
                          "give either a validation folder or a fraction, not both");
  BIRDPLANE_CHECK_SETTING(val_folder.empty() || !image_folder.empty(), "val_folder",
                          "applies to an image folder (give --image-folder)");
  BIRDPLANE_CHECK_SETTING(image_size.empty() || (image_size.size() == 2 && image_size[0] >= 1 && image_size[1] >= 1),
                          "image_size", "expected a height and a width of 1 or more, got {}", fmt::join(image_size, ","));
  BIRDPLANE_CHECK_SETTING(max_pixels >= 1, "max_pixels", "{} is not allowed; expected 1 or more", max_pixels);
  if (!augment.empty()) {
    // Parse, then run once on a tiny batch: a spec that changes the size or dtype fails here, before
    // a run folder exists, not on the loader thread.
    auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
    transforms::parse_augment(augment)(at::zeros({2, 3, 32, 32}, at::kByte), gen);
  }
  optimizer.validate();
}

PrecisionScope::PrecisionScope(bool bf16) : on_(bf16) {
  if (!on_) return;
  previous_enabled_ = at::autocast::is_cpu_enabled();
  previous_dtype_ = at::autocast::get_autocast_cpu_dtype();
  at::autocast::set_cpu_enabled(true);
  at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  at::autocast::increment_nesting();
}

at::Tensor forward_in_precision(nn::Classifier& model, const at::Tensor& x, Precision precision) {
  if (precision != Precision::kBf16) return model.forward(x);
  at::Tensor z;
  {
    PrecisionScope scope(true);
    z = model.logits(x);
  }
  z = z.to(at::kFloat);
  return model.ends_in_log_softmax() ? torch::log_softmax(z, 1) : z;
}

PrecisionScope::~PrecisionScope() {
  if (!on_) return;
  // Leaving the outermost region drops the cached bf16 copies of the weights (they change every step).
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_cpu_enabled(previous_enabled_);
  at::autocast::set_autocast_cpu_dtype(previous_dtype_);
}

nlohmann::json TrainConfig::to_json() const {
  return {{"data_dir", data_dir},
          {"classes", classes},
          {"model", model},
          {"hidden", hidden},
          {"activation", nn::to_string(activation)},
          {"channels", channels},
          {"blocks", blocks},
          {"loss", loss ? nn::to_string(*loss) : std::string()},
          {"optimizer", optimizer.to_json()},
          {"epochs", epochs},
          {"batch_size", batch_size},
          {"seed", seed},
          {"drop_last", drop_last},
          {"eval_every", eval_every},
          {"runs_dir", runs_dir},
          {"name", name},
          {"device", to_string(device)},
          {"init_from", init_from},
          {"limit_train", limit_train},
          {"limit_val", limit_val},
          {"augment", augment},
          {"precision", to_string(precision)},
          {"step", to_string(step)},
          {"image_folder", image_folder},
          {"val_folder", val_folder},
          {"val_fraction", val_fraction},
          {"image_size", image_size},
          {"crop", data::to_string(crop)},
          {"max_pixels", max_pixels},
          {"skip_bad_images", skip_bad_images},
          {"cache_dir", cache_dir}};
}

TrainConfig TrainConfig::from_json(const nlohmann::json& j) {
  // nlohmann's get<int64_t>() converts a floating-point value with a plain cast: 1e118 there is
  // undefined behaviour (found by fuzz/config_resume.cpp). Whole-number settings must be written as such.
  for (const char* key : {"channels", "blocks", "epochs", "batch_size", "seed", "eval_every", "limit_train",
                          "limit_val", "max_pixels", "hidden", "image_size"}) {
    if (!j.is_object() || !j.contains(key)) continue;
    const nlohmann::json& v = j.at(key);
    const bool whole = v.is_array() ? std::all_of(v.begin(), v.end(), [](const nlohmann::json& e) { return !e.is_number_float(); })
                                    : !v.is_number_float();
    if (!whole) fail_setting(key, "{} is not a whole number (or a list of them)", v.dump());
  }
  TrainConfig c;
  c.data_dir = j.at("data_dir").get<std::string>();
  c.classes = j.at("classes").get<std::vector<std::string>>();
  c.model = j.at("model").get<std::string>();
  c.hidden = j.at("hidden").get<std::vector<int64_t>>();
  c.activation = nn::parse_activation(j.at("activation").get<std::string>());
  c.channels = j.value("channels", c.channels);  // runs from before the convnets
  c.blocks = j.value("blocks", c.blocks);
  const auto loss = j.at("loss").get<std::string>();
  if (!loss.empty()) c.loss = nn::parse_loss(loss);
  c.optimizer = OptimizerConfig::from_json(j.at("optimizer"));
  c.epochs = j.at("epochs").get<int64_t>();
  c.batch_size = j.at("batch_size").get<int64_t>();
  c.seed = j.at("seed").get<uint64_t>();
  c.drop_last = j.at("drop_last").get<bool>();
  c.eval_every = j.at("eval_every").get<int64_t>();
  c.runs_dir = j.at("runs_dir").get<std::string>();
  c.name = j.at("name").get<std::string>();
  c.device = parse_device(j.at("device").get<std::string>());
  c.init_from = j.at("init_from").get<std::string>();
  c.limit_train = j.at("limit_train").get<int64_t>();
  c.limit_val = j.at("limit_val").get<int64_t>();
  c.augment = j.value("augment", std::string());
  c.precision = parse_precision(j.value("precision", std::string("fp32")));  // runs from before --precision
  c.step = parse_step(j.value("step", std::string("auto")));                 // and before --step
  // Runs from before image folders read CIFAR-10.
  c.image_folder = j.value("image_folder", std::string());
  c.val_folder = j.value("val_folder", std::string());
  c.val_fraction = j.value("val_fraction", 0.0);
  c.image_size = j.value("image_size", std::vector<int64_t>());
  c.crop = data::parse_crop_mode(j.value("crop", std::string("none")));
  c.max_pixels = j.value("max_pixels", data::kDefaultMaxPixels);
  c.skip_bad_images = j.value("skip_bad_images", false);
  c.cache_dir = j.value("cache_dir", std::string());
  return c;
}

c10::Device resolve_device(DeviceKind device) {
  if (device == DeviceKind::kCpu) return c10::Device(c10::kCPU);
  if (device == DeviceKind::kCuda) {
    BIRDPLANE_CHECK_SETTING(torch::cuda::is_available(), "device",
                            "cuda: this LibTorch has no CUDA device available (`birdplane doctor` shows why); "
                            "use cpu or auto");
    return c10::Device(c10::kCUDA);
  }
  return torch::cuda::is_available() ? c10::Device(c10::kCUDA) : c10::Device(c10::kCPU);
}

EvalResult evaluate(nn::Classifier& model, const data::ImageSet& set, const ModelConfig& config, c10::Device device,
                    int64_t batch_size, Precision precision) {
  BIRDPLANE_CHECK(batch_size >= 1, "evaluate: the batch size must be at least 1, got {}", batch_size);
  BIRDPLANE_CHECK(set.image_shape() == model.spec().image_shape,
                  "the images of {} are {}x{}x{}; the model takes [{}]", set.source().empty() ? "the data" : set.source(),
                  set.images().size(1), set.images().size(2), set.images().size(3),
                  fmt::join(model.spec().image_shape, "x"));
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  EvalResult r;
  r.confusion = ConfusionMatrix(model.spec().num_classes);
  MeanMeter loss;
  const int64_t n = static_cast<int64_t>(*set.size());
  for (int64_t start = 0; start < n; start += batch_size) {
    const int64_t end = std::min(n, start + batch_size);
    auto x = transforms::functional::to_normalized(set.images().slice(0, start, end), config.mean, config.std);
    auto y = set.labels().slice(0, start, end);
    x = x.to(device);
    y = y.to(device);
    auto out = forward_in_precision(model, x, precision);
    loss.add(nn::compute_loss(config.loss, out, y, model.ends_in_log_softmax()).item<double>(), end - start);
    r.confusion.add(out.argmax(1), y);
  }
  r.loss = loss.mean();
  model.train(was_training);
  return r;
}

Trainer::Trainer(TrainConfig config, const data::ImageSet& train_set, const data::ImageSet& val_set,
                 std::vector<double> mean, std::vector<double> std, nn::ClassifierPtr model, Distributed* dist)
    : config_(std::move(config)), train_set_(train_set), val_set_(val_set),
      device_(resolve_device(config_.device)), dist_(dist) {
  config_.validate();
  BIRDPLANE_CHECK(train_set.class_names() == val_set.class_names(),
                  "the training and validation sets have different classes ({} and {})",
                  fmt::join(train_set.class_names(), ","), fmt::join(val_set.class_names(), ","));
  BIRDPLANE_CHECK(train_set.image_shape() == val_set.image_shape(),
                  "the training and validation images differ in shape");
  const auto channels = train_set.image_shape()[0];
  BIRDPLANE_CHECK(static_cast<int64_t>(mean.size()) == channels && static_cast<int64_t>(std.size()) == channels,
                  "normalization needs one mean and one std per channel ({}), got {} and {}", channels, mean.size(),
                  std.size());

  torch::manual_seed(config_.seed);  // the initial weights follow the seed, as in the book
  if (model) {
    model_ = std::move(model);
    BIRDPLANE_CHECK(model_->spec().num_classes == train_set.num_classes(),
                    "the model has {} outputs for {} classes", model_->spec().num_classes, train_set.num_classes());
  } else {
    nn::ModelSpec spec;
    spec.name = config_.model;
    spec.num_classes = train_set.num_classes();
    spec.image_shape = train_set.image_shape();
    spec.hidden = config_.hidden;
    spec.activation = config_.activation;
    spec.channels = config_.channels;
    spec.blocks = config_.blocks;
    model_ = nn::make_model(spec);
  }
  model_config_.spec = model_->spec();
  model_config_.loss = config_.loss ? *config_.loss : nn::natural_loss(*model_);
  nn::check_loss_fits(model_config_.loss, model_->ends_in_log_softmax());
  model_config_.classes = train_set.class_names();
  model_config_.mean = std::move(mean);
  model_config_.std = std::move(std);
  model_config_.crop = config_.crop;

  if (!config_.init_from.empty()) import_state_dict(config_.init_from, *model_);
  model_->to(device_);
  optimizer_ = make_optimizer(config_.optimizer, model_->parameters());

  if (config_.step != StepKind::kAutograd) {
    const bool bf16 = config_.precision == Precision::kBf16;
    std::string why = fused_step_unsupported(*model_, model_config_.loss, config_.optimizer, device_, bf16);
    if (why.empty() && dist_) {
      why = "a distributed run averages each gradient across the ranks before the update, and the fused step "
            "updates each weight where its gradient is computed";
      step_note_ = "the fused step stepped aside: " + why;
    }
    BIRDPLANE_CHECK_SETTING(config_.step != StepKind::kFused || why.empty(), "step",
                            "fused: this run cannot use the fused step: {}; use auto or autograd", why);
    if (why.empty())
      fused_ = make_fused_step(*model_, config_.optimizer.lr, bf16);
  }
  if (dist_) {
    // Every rank starts from rank 0's weights (and buffers), as DistributedDataParallel's constructor does.
    torch::NoGradGuard no_grad;
    std::vector<at::Tensor> state;
    for (const auto& p : model_->parameters()) state.push_back(p);
    for (const auto& b : model_->buffers()) state.push_back(b);
    dist_->broadcast(state);
    reducer_ = dist_->make_reducer(model_->parameters());
  }
}

void Trainer::resume_from(const RunDir& dir) { resume_from(&dir); }

void Trainer::resume_from(const RunDir* dir) {
  const bool main = !dist_ || dist_->is_main();
  BIRDPLANE_CHECK(dir || !main, "resume_from: rank 0 needs the run folder");
  std::string ckpt;
  if (main) {
    ckpt = dir->checkpoint_path();
    BIRDPLANE_CHECK(dir->has_checkpoint(),
                    "{} has no checkpoint.pt yet (the run stopped before its first epoch ended); start it again "
                    "instead",
                    dir->path());
  }
  // The other ranks get rank 0's checkpoint through the process group and read it from a private copy.
  std::string copy;
  if (dist_ && dist_->world_size() > 1) {
    std::string bytes;
    if (main) {
      const auto raw = data::read_file_bytes(ckpt, int64_t{1} << 40);
      bytes.assign(raw.begin(), raw.end());
    }
    bytes = dist_->broadcast_text(bytes);
    if (!main) {
      const std::string tmp = std::filesystem::temp_directory_path().string();
      std::string name = tmp + "/birdplane-resume-XXXXXX";
      const int fd = mkstemp(name.data());
      BIRDPLANE_CHECK(fd >= 0, "could not create a temporary file for rank 0's checkpoint in {}", tmp);
      close(fd);
      copy = name;
      write_file_atomically(copy, bytes);
      ckpt = copy;
    }
  }
  struct Remove {
    std::string path;
    ~Remove() {
      if (!path.empty()) std::remove(path.c_str());
    }
  } remove_copy{copy};
  auto saved = load_checkpoint(ckpt);
  BIRDPLANE_CHECK(saved.config.spec.to_json() == model_config_.spec.to_json(),
                  "{} was saved for a different model ({}) than config.json describes ({})", ckpt,
                  saved.config.spec.to_json().dump(), model_config_.spec.to_json().dump());
  {
    torch::NoGradGuard no_grad;
    auto dst = model_->named_parameters();
    for (const auto& b : model_->named_buffers()) dst.insert(b.key(), b.value());
    auto src = saved.model->named_parameters();
    for (const auto& b : saved.model->named_buffers()) src.insert(b.key(), b.value());
    for (const auto& p : dst) p.value().copy_(src[p.key()]);
  }
  load_optimizer_state(ckpt, *optimizer_);
  start_epoch_ = saved.epoch;
  if (!main) return;  // only rank 0 keeps the history
  history_ = read_metrics(dir->metrics_path());
  if (static_cast<int64_t>(history_.size()) > start_epoch_) history_.resize(start_epoch_);
  // A checkpoint ahead of metrics.csv (a run killed between the two writes, before metrics went
  // first): the missing epochs get rows without figures, so the rows stay numbered 1, 2, ...
  while (static_cast<int64_t>(history_.size()) < start_epoch_) {
    EpochMetrics m;
    m.epoch = static_cast<int64_t>(history_.size()) + 1;
    m.train_loss = m.train_accuracy = std::numeric_limits<double>::quiet_NaN();
    history_.push_back(m);
  }
}

nlohmann::json Trainer::run_record() const {
  const auto environment = inspect_environment();
  return {{"train", config_.to_json()},
          {"model", model_config_.to_json()},
          {"parameters", nn::count_parameters(*model_)},
          {"train_images", static_cast<int64_t>(*train_set_.size())},
          {"val_images", static_cast<int64_t>(*val_set_.size())},
          {"train_source", train_set_.source()},
          {"versions", {{"birdplane", version()}, {"libtorch", TORCH_VERSION}}},
          {"threads", at::get_num_threads()},
          {"step_used", fused() ? "fused" : "autograd"},
          {"step_note", step_note_},
          {"world_size", dist_ ? dist_->world_size() : 1},
          {"distributed", dist_ ? nlohmann::json{{"backend", dist_->backend()},
                                                 {"world_size", dist_->world_size()},
                                                 {"gradient_buckets_bytes", reducer_->bucket_bytes()},
                                                 {"timeout_seconds", dist_->options().timeout.count() / 1000.0}}
                                : nlohmann::json()},
          // the fused fp32 step's input layer (an MLP's first product, a convnet's convolutions): birdplane's
          // AVX-512 kernels, or ATen and the BLAS
          {"input_layer_kernels", input_layer_kernels() ? "birdplane-avx512" : "aten"},
          {"blas", {{"path", environment.blas_path}, {"core", environment.blas_core}}}};
}

Trainer::~Trainer() = default;

void Trainer::write_metrics(const std::string& path) const {
  std::string out = "epoch,train_loss,train_accuracy,val_loss,val_accuracy,seconds,images_per_second\n";
  for (const auto& m : history_) {
    out += fmt::format("{},{:.6f},{:.6f},{},{},{:.4f},{:.1f}\n", m.epoch, m.train_loss, m.train_accuracy,
                       m.val_loss < 0 ? "" : fmt::format("{:.6f}", m.val_loss),
                       m.val_accuracy < 0 ? "" : fmt::format("{:.6f}", m.val_accuracy), m.seconds,
                       m.images_per_second);
  }
  write_file_atomically(path, out);
}

std::vector<EpochMetrics> read_metrics(const std::string& path) {
  std::vector<EpochMetrics> rows;
  std::ifstream in(path);
  if (!in) return rows;  // a run resumed before its first metrics row
  std::string line;
  std::getline(in, line);  // header
  int64_t line_number = 1;
  while (std::getline(in, line)) {
    ++line_number;
    if (line.empty()) continue;
    std::vector<std::string> f;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) f.push_back(cell);
    while (f.size() < 7) f.push_back("");
    auto num = [&](const std::string& text) {
      if (text.empty()) return -1.0;
      size_t used = 0;
      double v = 0;
      try {
        v = std::stod(text, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      BIRDPLANE_CHECK(used == text.size() && used > 0, "{} line {}: '{}' is not a number; the file is damaged",
                      path, line_number, text);
      return v;
    };
    EpochMetrics m;
    // Compared as a double before any conversion: casting a value beyond int64 (1e30) or NaN to an
    // integer is undefined behaviour (found by fuzz/config_resume.cpp).
    const double epoch = num(f[0]);
    BIRDPLANE_CHECK(epoch == static_cast<double>(rows.size() + 1),
                    "{} line {}: epoch {} where {} was expected; the file is damaged", path, line_number, f[0],
                    rows.size() + 1);
    m.epoch = static_cast<int64_t>(rows.size()) + 1;
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

EvalResult Trainer::evaluate_everywhere(const data::ImageSet& set) {
  if (!dist_ || dist_->world_size() == 1) return evaluate(*model_, set, model_config_, device_, 1000, config_.precision);
  // Rank r takes images [n*r/W, n*(r+1)/W); loss sums, counts and confusion counts are then summed.
  const int64_t n = static_cast<int64_t>(*set.size()), w = dist_->world_size(), r = dist_->rank();
  const int64_t begin = n * r / w, end = n * (r + 1) / w;
  const int64_t k = model_->spec().num_classes;
  EvalResult mine;
  mine.confusion = ConfusionMatrix(k);
  if (end > begin) {
    data::ImageSet part(set.images().slice(0, begin, end), set.labels().slice(0, begin, end), set.class_names(),
                        set.source());
    mine = evaluate(*model_, part, model_config_, device_, 1000, config_.precision);
  }
  auto sums = torch::zeros({2 + k * k}, torch::kDouble);
  auto* p = sums.data_ptr<double>();
  p[0] = mine.loss * static_cast<double>(end - begin);
  p[1] = static_cast<double>(end - begin);
  for (int64_t i = 0; i < k * k; ++i) p[2 + i] = static_cast<double>(mine.confusion.counts()[i]);
  std::vector<at::Tensor> t{sums};
  dist_->all_reduce_sum(t);
  EvalResult all;
  all.loss = p[1] > 0 ? p[0] / p[1] : 0.0;
  all.confusion = ConfusionMatrix(k);
  std::vector<int64_t> counts(static_cast<size_t>(k * k));
  for (int64_t i = 0; i < k * k; ++i) counts[i] = std::llround(p[2 + i]);
  all.confusion.add_counts(counts);
  return all;
}

std::string Trainer::last_checkpoint_text(int64_t epochs_done) const {
  if (epochs_done == 0) return "no checkpoint yet (no epoch finished)";
  return fmt::format("the last checkpoint is {} (epoch {})",
                     (std::filesystem::path(config_.runs_dir) / config_.name / "checkpoint.pt").string(), epochs_done);
}

TrainResult Trainer::run(const RunDir& dir, TrainObserver* observer, StopToken stop) {
  return run(&dir, observer, stop);
}

TrainResult Trainer::run(const RunDir* dir, TrainObserver* observer, StopToken stop) {
  const bool main = !dist_ || dist_->is_main();
  BIRDPLANE_CHECK(dir || !main, "Trainer::run: {} needs the run folder", dist_ ? "rank 0" : "a run");
  TrainObserver quiet;
  TrainObserver& obs = observer ? *observer : quiet;
  const std::string ckpt = dir ? dir->checkpoint_path() : "";
  const std::string run_path = dir ? dir->path() : (std::filesystem::path(config_.runs_dir) / config_.name).string();
  // The next batch is prepared on a thread of its own only where a core is free for it. When the
  // intra-op threads already take every core, a loader thread can only run by taking a core from a
  // matrix product (which then waits at its barrier); on the training thread the same work runs
  // between steps, on all the intra-op threads. Batches are the same either way.
  const int64_t local_processes = dist_ ? std::max<int64_t>(1, dist_->local_world_size()) : 1;
  const bool spare_core =
      std::thread::hardware_concurrency() > static_cast<unsigned>(at::get_num_threads() * local_processes);
  data::BatchLoader loader(train_set_,
                           data::BatchLoaderOptions(config_.batch_size)
                               .seed(config_.seed)
                               .drop_last(config_.drop_last)
                               .background(spare_core)
                               .shard(dist_ ? dist_->rank() : 0, dist_ ? dist_->world_size() : 1),
                           config_.augment.empty()
                               ? transforms::normalize_batches(model_config_.mean, model_config_.std)
                               : transforms::augment_then_normalize(config_.augment, model_config_.mean,
                                                                    model_config_.std));
  const int64_t steps = loader.batches_per_epoch();
  auto params = model_->parameters();
  Timer run_timer;
  model_->train();
  int64_t epoch = start_epoch_;
  try {
    for (; epoch < config_.epochs; ++epoch) {
      Timer timer;
      MeanMeter loss_meter;
      int64_t correct = 0, seen = 0;
      loader.start_epoch(epoch);
      // The model's own random draws (dropout) come from LibTorch's default generator, seeded per epoch
      // so that a resumed run draws what an uninterrupted one would (and per rank in distributed runs).
      torch::manual_seed(data::derive_seed(config_.seed + static_cast<uint64_t>(dist_ ? dist_->rank() : 0), epoch,
                                           kModelStream));
      while (auto batch = loader.next()) {
        const bool stop_here = stop.stop_requested();
        if (stop_here && !reducer_) {
          throw Interrupted(fmt::format("interrupted during epoch {}; {} holds the last finished epoch ({})",
                                        epoch + 1, ckpt, epoch),
                            run_path, epoch);
        }
        int64_t b = batch->images.size(0);
        auto x = batch->images.to(device_);
        auto y = batch->labels.to(device_);
        double loss_value = 0;
        if (fused_) {
          const auto r = fused_->step(x, y);
          loss_value = r.loss;
          correct += r.correct;
        } else {
          // float32 out of any precision: log_softmax and the loss are computed in float32.
          auto out = forward_in_precision(*model_, x, config_.precision);
          auto loss = nn::compute_loss(model_config_.loss, out, y, model_->ends_in_log_softmax());
          // Gradients set to none rather than zeroed: backward then writes each one fresh instead of
          // adding into a zeroed buffer, two memory passes per parameter saved (PyTorch's
          // zero_grad(set_to_none=True); LibTorch 1.13's zero_grad() only zeroes).
          for (auto& p : params) p.mutable_grad() = at::Tensor();
          loss_value = loss.item<double>();
          int64_t step_correct = out.argmax(1).eq(y).sum().item<int64_t>();
          if (reducer_) {
            // The step's loss, hits, images and any rank's stop request are summed with the gradients.
            reducer_->begin_step({loss_value * static_cast<double>(b), static_cast<double>(step_correct),
                                  static_cast<double>(b), stop_here ? 1.0 : 0.0});
            loss.backward();
            const auto sums = reducer_->finish_step();
            if (sums[3] > 0) {
              throw Interrupted(fmt::format("interrupted during epoch {}; {}", epoch + 1, last_checkpoint_text(epoch)),
                                run_path, epoch);
            }
            b = static_cast<int64_t>(std::llround(sums[2]));
            loss_value = sums[0] / std::max(sums[2], 1.0);
            step_correct = static_cast<int64_t>(std::llround(sums[1]));
          } else {
            loss.backward();
          }
          if (std::isfinite(loss_value)) optimizer_->step();
          correct += step_correct;
        }
        if (!std::isfinite(loss_value)) {
          fail_setting("lr",
                       "the training loss became {} at epoch {}, batch {}; stopped without saving this epoch. {} "
                       "holds the last good state (epoch {}). Try a lower learning rate (now {})",
                       loss_value, epoch + 1, batch->index + 1, ckpt.empty() ? "The run folder's checkpoint.pt" : ckpt,
                       epoch, config_.optimizer.lr);
        }
        loss_meter.add(loss_value, b);
        seen += b;
        StepProgress progress;
        progress.epoch = epoch;
        progress.epochs = config_.epochs;
        progress.start_epoch = start_epoch_;
        progress.step = batch->index;
        progress.steps = steps;
        progress.mean_loss = loss_meter.mean();
        progress.images = seen;
        progress.epoch_seconds = timer.seconds();
        progress.seconds = run_timer.seconds();
        obs.on_step(progress);
      }
      EpochMetrics m;
      m.epoch = epoch + 1;
      m.train_loss = loss_meter.mean();
      m.train_accuracy = seen ? static_cast<double>(correct) / seen : 0.0;
      m.seconds = timer.seconds();
      m.images_per_second = seen / std::max(m.seconds, 1e-9);
      if ((epoch + 1) % config_.eval_every == 0 || epoch + 1 == config_.epochs) {
        auto ev = evaluate_everywhere(val_set_);
        m.val_loss = ev.loss;
        m.val_accuracy = ev.confusion.accuracy();
      }
      history_.push_back(m);
      if (main) {
        // Metrics first: a kill between the two writes leaves a row the checkpoint does not reach yet,
        // which resume_from drops. The other order left the checkpoint one epoch ahead of metrics.csv, and
        // the resumed run then wrote its next row after a gap (found by the kill -9 test).
        write_metrics(dir->metrics_path());
        save_checkpoint(ckpt, model_config_, *model_, optimizer_.get(), epoch + 1, config_.to_json());
      }
      obs.on_epoch(m, config_.epochs);
    }
  } catch (const DistributedError& e) {
    throw DistributedError(fmt::format("{}; {}", e.what(), last_checkpoint_text(epoch)), e.lost_rank());
  }
  TrainResult result;
  result.history = history_;
  result.run_dir = run_path;
  result.total_seconds = run_timer.seconds();
  auto train_eval = evaluate_everywhere(train_set_);
  auto val_eval = evaluate_everywhere(val_set_);
  result.final_train_accuracy = train_eval.confusion.accuracy();
  result.final_val_accuracy = val_eval.confusion.accuracy();
  result.final_train_loss = train_eval.loss;
  result.final_val_loss = val_eval.loss;
  if (main) {
    save_checkpoint(dir->model_path(), model_config_, *model_);
    dir->write_json("results.json", {{"train_accuracy", result.final_train_accuracy},
                                     {"train_loss", train_eval.loss},
                                     {"val_accuracy", result.final_val_accuracy},
                                     {"val_loss", val_eval.loss},
                                     {"epochs", config_.epochs},
                                     {"seconds_this_session", result.total_seconds},
                                     {"world_size", dist_ ? dist_->world_size() : 1},
                                     // rank 0's time waiting for gradient all-reduces after backward
                                     // (the communication the overlap did not hide), this session
                                     {"gradient_wait_seconds", reducer_ ? reducer_->wait_seconds() : 0.0},
                                     {"validation", val_eval.confusion.to_json(model_config_.classes)}});
  }
  // Every rank ends when rank 0's files are on disk (or learns that writing them failed).
  if (dist_) dist_->barrier();
  obs.on_end(result);
  return result;
}

}  // namespace birdplane::train
