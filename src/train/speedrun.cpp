#include "birdplane/train/speedrun.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/nn/losses.h"
#include "birdplane/nn/speedrun_net.h"
#include "birdplane/train/checkpoint.h"
#include "birdplane/train/evaluate.h"
#include "common/files.h"
#include "common/reused_memory.h"
#include "birdplane/transforms/functional.h"
#include "train/speedrun_step.h"
#include "train/winograd.h"

namespace birdplane::train {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The images of one batch: image indices[i] of `padded` ([N,3,32+2t,32+2t] float, reflect-padded)
// cropped at its own offset (shifts[i] in 0..2t for y and x), mirrored when `mirror`, written in
// channels-last order (the layout the convolutions run in).
at::Tensor gather_batch(const at::Tensor& padded, const int64_t* indices, const int64_t* shifts, int64_t count,
                        bool mirror) {
  const int64_t c = padded.size(1), ph = padded.size(2), pw = padded.size(3);
  auto out = torch::empty({count, c, 32, 32}, torch::TensorOptions().memory_format(at::MemoryFormat::ChannelsLast));
  const float* src = padded.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  at::parallel_for(0, count, 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t n = indices[i], sy = shifts[2 * n], sx = shifts[2 * n + 1];
      const float* image = src + n * c * ph * pw;
      float* o = dst + i * 32 * 32 * c;
      for (int64_t y = 0; y < 32; ++y)
        for (int64_t x = 0; x < 32; ++x) {
          const int64_t xs = sx + (mirror ? 31 - x : x);
          for (int64_t ch = 0; ch < c; ++ch) o[(y * 32 + x) * c + ch] = image[(ch * ph + sy + y) * pw + xs];
        }
    }
  });
  return out;
}

// Lookahead: every few steps the average moves toward the weights (and batch-norm statistics) by
// 1 - decay, and the network is set back to the average.
class Lookahead {
 public:
  explicit Lookahead(nn::Classifier& model) {
    torch::NoGradGuard no_grad;
    for (auto& t : tensors(model)) {
      live_.push_back(t);
      average_.push_back(t.detach().clone());
    }
  }
  void update(double decay) {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < live_.size(); ++i) {
      average_[i].lerp_(live_[i], 1.0 - decay);
      live_[i].copy_(average_[i]);
    }
  }

 private:
  static std::vector<at::Tensor> tensors(nn::Classifier& model) {
    std::vector<at::Tensor> out;
    for (const auto& [key, t] : model.state_dict())
      if (t.is_floating_point()) out.push_back(t);
    return out;
  }
  std::vector<at::Tensor> live_, average_;
};

double accuracy(nn::Classifier& model, const at::Tensor& images, const at::Tensor& labels, Precision precision,
                Tta tta) {
  torch::NoGradGuard no_grad;
  model.eval();
  int64_t correct = 0;
  for (int64_t start = 0; start < images.size(0); start += 2000) {
    const int64_t end = std::min(images.size(0), start + 2000);
    auto x = images.slice(0, start, end).contiguous(at::MemoryFormat::ChannelsLast);
    auto out = forward_with_tta(model, x, precision, tta);
    correct += out.argmax(1).eq(labels.slice(0, start, end)).sum().item<int64_t>();
  }
  model.train();
  return static_cast<double>(correct) / static_cast<double>(images.size(0));
}

}  // namespace

const std::vector<double>& speedrun_mean() {
  static const std::vector<double> m = {0.4914, 0.4822, 0.4465};
  return m;
}
const std::vector<double>& speedrun_std() {
  static const std::vector<double> s = {0.2470, 0.2435, 0.2616};
  return s;
}

void SpeedrunOptions::validate() const {
  BIRDPLANE_CHECK_SETTING(epochs > 0 && epochs <= 1000, "epochs", "{} is out of range; expected (0, 1000]", epochs);
  BIRDPLANE_CHECK_SETTING(batch_size >= 1, "batch_size", "{} is out of range; expected at least 1", batch_size);
  BIRDPLANE_CHECK_SETTING(lr > 0, "lr", "{} is out of range; expected above 0", lr);
  BIRDPLANE_CHECK_SETTING(momentum > 0 && momentum < 1, "momentum", "{} is out of range; expected (0, 1)", momentum);
  BIRDPLANE_CHECK_SETTING(weight_decay >= 0, "weight_decay", "{} is out of range; expected at least 0", weight_decay);
  BIRDPLANE_CHECK_SETTING(bias_scaler > 0, "bias_scaler", "{} is out of range; expected above 0", bias_scaler);
  BIRDPLANE_CHECK_SETTING(label_smoothing >= 0 && label_smoothing < 1, "label_smoothing",
                          "{} is out of range; expected [0, 1)", label_smoothing);
  BIRDPLANE_CHECK_SETTING(whiten_bias_epochs >= 0, "whiten_bias_epochs", "{} is out of range; expected at least 0",
                          whiten_bias_epochs);
  BIRDPLANE_CHECK_SETTING(whiten_images >= 1, "whiten_images", "{} is out of range; expected at least 1",
                          whiten_images);
  BIRDPLANE_CHECK_SETTING(translate >= 0 && translate <= 8, "translate", "{} is out of range; expected 0 to 8",
                          translate);
  BIRDPLANE_CHECK_SETTING(average_every >= 0, "average_every", "{} is out of range; expected at least 0",
                          average_every);
  BIRDPLANE_CHECK_SETTING(conv != ConvAlgorithm::kWinograd || precision == Precision::kBf16, "conv",
                          "winograd runs in bf16 only; set precision to bf16, or conv to auto or direct");
  BIRDPLANE_CHECK_SETTING(conv != ConvAlgorithm::kWinograd || step != StepKind::kAutograd, "conv",
                          "winograd runs in the fused step only; set step to auto or fused, or conv to auto or direct");
  BIRDPLANE_CHECK_SETTING(conv != ConvAlgorithm::kWinograd || winograd::available(), "conv",
                          "winograd needs a CPU with AVX-512 and AVX512-BF16, which this one lacks; set conv to auto "
                          "or direct");
}

nlohmann::json SpeedrunOptions::to_json() const {
  return {{"seed", seed},
          {"epochs", epochs},
          {"batch_size", batch_size},
          {"lr", lr},
          {"momentum", momentum},
          {"weight_decay", weight_decay},
          {"bias_scaler", bias_scaler},
          {"label_smoothing", label_smoothing},
          {"whiten_bias_epochs", whiten_bias_epochs},
          {"whiten_images", whiten_images},
          {"translate", translate},
          {"alternating_flip", alternating_flip},
          {"average_every", average_every},
          {"tta", to_string(tta)},
          {"precision", to_string(precision)},
          {"step", to_string(step)},
          {"conv", to_string(conv)}};
}

void save_speedrun(const SpeedrunResult& r, const SpeedrunOptions& o, const std::vector<std::string>& classes,
                   const std::string& folder) {
  BIRDPLANE_CHECK(r.model, "save_speedrun: the result holds no model");
  std::error_code ec;
  std::filesystem::create_directories(folder, ec);
  BIRDPLANE_CHECK(!ec, "cannot create {}: {}", folder, ec.message());
  ModelConfig mc;
  mc.spec = r.model->spec();
  mc.loss = nn::LossKind::kCrossEntropy;
  mc.classes = classes;
  mc.mean = speedrun_mean();
  mc.std = speedrun_std();
  mc.tta = o.tta;
  save_checkpoint((std::filesystem::path(folder) / "model.pt").string(), mc, *r.model);
  nlohmann::json record = {{"options", o.to_json()},         {"accuracy", r.accuracy},
                           {"init_seconds", r.init_seconds}, {"train_seconds", r.train_seconds},
                           {"eval_seconds", r.eval_seconds}, {"total_seconds", r.total_seconds},
                           {"step", r.step},                 {"epochs", nlohmann::json::array()}};
  for (const auto& e : r.epochs)
    record["epochs"].push_back({{"epoch", e.epoch}, {"steps", e.steps}, {"train_loss", e.train_loss},
                                {"train_accuracy", e.train_accuracy}, {"val_accuracy", e.val_accuracy},
                                {"seconds", e.seconds}});
  write_file_atomically((std::filesystem::path(folder) / "speedrun.json").string(), record.dump(2) + "\n");
}

std::unique_ptr<torch::optim::SGD> make_speedrun_optimizer(nn::SpeedrunNet& net, const SpeedrunOptions& o,
                                                           double base_lr[2]) {
  // Decoupled hyperparameters (airbench94): the rate is per 1024 images with Nesterov's gain
  // 1 + 1/(1 - momentum) divided out; the decay is per 1024 images and does not grow with the rate.
  const double kilostep = 1024.0 * (1.0 + 1.0 / (1.0 - o.momentum));
  const double lr = o.lr / kilostep, wd = o.weight_decay * static_cast<double>(o.batch_size) / kilostep;
  const double lr_shift = lr * o.bias_scaler;
  std::vector<at::Tensor> shifts, others;
  for (const auto& [key, p] : net.trainable()) (key.find("norm") != std::string::npos ? shifts : others).push_back(p);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(shifts, std::make_unique<torch::optim::SGDOptions>(torch::optim::SGDOptions(lr_shift)
                                                                             .momentum(o.momentum)
                                                                             .nesterov(true)
                                                                             .weight_decay(wd / lr_shift)));
  groups.emplace_back(others, std::make_unique<torch::optim::SGDOptions>(
                                  torch::optim::SGDOptions(lr).momentum(o.momentum).nesterov(true).weight_decay(wd / lr)));
  base_lr[0] = lr_shift;
  base_lr[1] = lr;
  return std::make_unique<torch::optim::SGD>(std::move(groups), torch::optim::SGDOptions(lr));
}

void set_speedrun_lr(torch::optim::Optimizer& optimizer, const double base_lr[2], double factor) {
  for (size_t g = 0; g < 2; ++g)
    static_cast<torch::optim::SGDOptions&>(optimizer.param_groups()[g].options()).lr(base_lr[g] * factor);
}

double speedrun_schedule(int64_t step, int64_t total) {
  const int64_t up = static_cast<int64_t>(static_cast<double>(total) * 0.23);
  if (step < up) return 0.2 + 0.8 * static_cast<double>(step) / static_cast<double>(up);
  return 1.0 - 0.93 * static_cast<double>(step - up) / static_cast<double>(total - up);
}

SpeedrunResult run_speedrun(const SpeedrunOptions& o, const data::ImageSet& train, const data::ImageSet& val,
                            const std::vector<double>& mean, const std::vector<double>& std,
                            SpeedrunObserver* observer, StopToken stop) {
  o.validate();
  BIRDPLANE_CHECK(train.image_shape() == std::vector<int64_t>({3, 32, 32}) &&
                      val.image_shape() == std::vector<int64_t>({3, 32, 32}),
                  "the speedrun takes 3x32x32 images (CIFAR-10's)");
  const int64_t n = train.images().size(0);
  const int64_t steps_per_epoch = n / o.batch_size;
  BIRDPLANE_CHECK_SETTING(steps_per_epoch >= 1, "batch_size", "{} is larger than the {} training images",
                          o.batch_size, n);
  const int64_t total = static_cast<int64_t>(std::ceil(static_cast<double>(steps_per_epoch) * o.epochs));
  const bool bf16 = o.precision == Precision::kBf16;
  ReusedCpuMemory reuse;  // the same large activations every step: no page faults after the first

  torch::manual_seed(o.seed);
  auto generator = at::detail::createCPUGenerator(o.seed);
  nn::ModelSpec spec;
  spec.name = "speedrun";
  spec.num_classes = train.num_classes();
  spec.image_shape = {3, 32, 32};
  auto model = nn::make_model(spec);
  auto& net = dynamic_cast<nn::SpeedrunNet&>(*model);
  model->train();

  const auto images = transforms::functional::to_normalized(train.images(), mean, std);
  const auto val_images = transforms::functional::to_normalized(val.images(), mean, std);
  const auto labels = train.labels().contiguous();

  SpeedrunResult r;
  auto t0 = Clock::now();
  net.init_whitening(images.slice(0, 0, std::min(n, o.whiten_images)));
  r.init_seconds = since(t0);

  double base_lr[2];
  auto optimizer_ptr = make_speedrun_optimizer(net, o, base_lr);
  auto& optimizer = *optimizer_ptr;

  SpeedrunStep step(net, o.step, bf16, o.label_smoothing, o.conv);
  SpeedrunEvalConv eval_conv(o.conv);  // the run's accuracies with its own convolutions
  r.step = step.description();
  Lookahead lookahead(*model);

  // Epoch 1 mirrors a random half of the images (kept for the whole run); every other epoch after it
  // mirrors them all, so each image is seen both ways in consecutive epochs (alternating flip).
  at::Tensor padded;
  {
    auto mirror = at::rand({n}, generator).lt(0.5).view({n, 1, 1, 1});
    auto flipped = o.alternating_flip ? at::where(mirror, images.flip({3}), images) : images;
    const int64_t t = o.translate;
    padded = t > 0 ? at::reflection_pad2d(flipped, {t, t, t, t}).contiguous() : flipped.contiguous();
  }

  int64_t done = 0;
  for (int64_t epoch = 0; done < total; ++epoch) {
    const bool train_bias = epoch < o.whiten_bias_epochs;
    if (net.whiten_bias().requires_grad() != train_bias) {
      net.whiten_bias().set_requires_grad(train_bias);
      net.whiten_bias().mutable_grad() = at::Tensor();  // no decay or momentum once frozen
    }
    const auto te = Clock::now();
    auto order = at::randperm(n, generator);
    auto offsets = at::randint(0, 2 * o.translate + 1, {n, 2}, generator);
    const bool mirror_all = o.alternating_flip && epoch % 2 == 1;
    SpeedrunEpoch e;
    e.epoch = epoch + 1;
    for (int64_t b = 0; b < steps_per_epoch && done < total; ++b) {
      if (stop.stop_requested())
        throw Interrupted(fmt::format("stopped in epoch {} after {} of {} steps", epoch + 1, done, total), "", epoch);
      const int64_t* idx = order.data_ptr<int64_t>() + b * o.batch_size;
      auto x = gather_batch(padded, idx, offsets.data_ptr<int64_t>(), o.batch_size, mirror_all);
      auto y = labels.index_select(0, order.slice(0, b * o.batch_size, (b + 1) * o.batch_size));
      const double factor = speedrun_schedule(done, total);
      set_speedrun_lr(optimizer, base_lr, factor);
      const auto s = step.run(x, y, optimizer);
      ++done;
      ++e.steps;
      if (o.average_every > 0 && done % o.average_every == 0)
        lookahead.update(std::pow(0.95, 5) * std::pow(static_cast<double>(done) / static_cast<double>(total), 3));
      if (done >= total && o.average_every > 0) lookahead.update(1.0);
      e.train_loss = s.loss_sum / static_cast<double>(o.batch_size);
      e.train_accuracy = static_cast<double>(s.correct) / static_cast<double>(o.batch_size);
      if (observer) observer->on_step(done, total, r.train_seconds + since(te));
    }
    e.seconds = since(te);
    r.train_seconds += e.seconds;
    if (o.validate_each_epoch) e.val_accuracy = accuracy(*model, val_images, val.labels(), o.precision, Tta::kNone);
    r.epochs.push_back(e);
    if (observer) observer->on_epoch(e);
  }
  t0 = Clock::now();
  r.accuracy = accuracy(*model, val_images, val.labels(), o.precision, o.tta);
  r.eval_seconds = since(t0);
  r.total_seconds = r.init_seconds + r.train_seconds + r.eval_seconds;
  model->eval();
  r.model = model;
  return r;
}

}  // namespace birdplane::train
