#include "birdplane/train/run_spec.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Functions.h>
#include <fmt/format.h>

#include "birdplane/check.h"
#include "birdplane/transforms/spec.h"
#include "common/json_fields.h"
#include "common/number_list.h"

namespace birdplane::train {
namespace {

// "1,2.5": weights above 0, finite.
std::vector<double> parse_weights(const std::string& text) {
  std::vector<double> w;
  for (const auto& item : split_list(text, ',')) {
    double v = 0;
    BIRDPLANE_CHECK_SETTING(parse_finite(item, v) && v > 0, "class_weights",
                            "'{}' is not a weight above 0 (in '{}'); expected auto or W1,W2,...", item, text);
    w.push_back(v);
  }
  return w;
}

}  // namespace

void TrainingSpec::validate() const {
  BIRDPLANE_CHECK_SETTING(epochs >= 1, "epochs", "{} is not allowed; expected 1 or more", epochs);
  BIRDPLANE_CHECK_SETTING(batch_size >= 1, "batch_size", "{} is not allowed; expected 1 or more", batch_size);
  BIRDPLANE_CHECK_SETTING(eval_every >= 1, "eval_every", "{} is not allowed; expected 1 or more", eval_every);
  // Parsed here; run once on a batch of the run's images by the Trainer (a spec that changes their size
  // or dtype then fails before a run folder exists, not on the loader thread).
  if (!augment.empty()) transforms::parse_augment(augment);
  optimizer.validate();
  schedule.validate(epochs);
  BIRDPLANE_CHECK_SETTING(std::isfinite(label_smoothing) && label_smoothing >= 0 && label_smoothing < 1,
                          "label_smoothing", "{} is not allowed; expected 0 <= label_smoothing < 1", label_smoothing);
  if (!class_weights.empty() && class_weights != "auto") parse_weights(class_weights);
  BIRDPLANE_CHECK_SETTING(std::isfinite(clip_grad_norm) && clip_grad_norm >= 0, "clip_grad_norm",
                          "{} is not allowed; expected 0 (off) or a norm above 0", clip_grad_norm);
  BIRDPLANE_CHECK_SETTING(std::isfinite(clip_grad_value) && clip_grad_value >= 0, "clip_grad_value",
                          "{} is not allowed; expected 0 (off) or a value above 0", clip_grad_value);
  BIRDPLANE_CHECK_SETTING(early_stopping >= 0, "early_stopping",
                          "{} is not allowed; expected 0 (never) or a number of validations", early_stopping);
  BIRDPLANE_CHECK_SETTING(std::isfinite(min_delta) && min_delta >= 0, "min_delta",
                          "{} is not allowed; expected 0 or more", min_delta);
  BIRDPLANE_CHECK_SETTING(std::isfinite(ema_decay) && ema_decay >= 0 && ema_decay < 1, "ema_decay",
                          "{} is not allowed; expected 0 (off) or a decay below 1, such as 0.999", ema_decay);
  mix.validate();
  // Only an explicit loss can be mse: the one that fits a model (nn::natural_loss) is nll or cross-entropy.
  BIRDPLANE_CHECK_SETTING(
      !loss || *loss != nn::LossKind::kMse || (label_smoothing == 0 && class_weights.empty() && !mix.enabled()),
      "loss", "mse takes no label smoothing, class weights or mixed targets (mixup, cutmix); use cross-entropy");
  BIRDPLANE_CHECK_SETTING(ema_every >= 1, "ema_every", "{} is not allowed; expected 1 or more steps", ema_every);
  BIRDPLANE_CHECK_SETTING(init_from.empty() || weights.empty(), "weights",
                          "give either a state_dict to start from (init_from) or pretrained weights, not both");
  BIRDPLANE_CHECK_SETTING(fine_tune.head_epochs >= 0 && fine_tune.head_epochs < epochs, "fine_tune",
                          "{} head-only epochs is not allowed; expected 0 or more, fewer than the run's {}",
                          fine_tune.head_epochs, epochs);
  BIRDPLANE_CHECK_SETTING(std::isfinite(fine_tune.lr_factor) && fine_tune.lr_factor > 0 && fine_tune.lr_factor <= 1,
                          "fine_tune", "a learning-rate factor of {} is not allowed; expected above 0, at most 1",
                          fine_tune.lr_factor);
  BIRDPLANE_CHECK_SETTING(ema_warmup >= 0 && (ema_warmup < epochs || ema_decay == 0), "ema_warmup",
                          "{} is not allowed; expected 0 or more epochs, fewer than the run's {}", ema_warmup, epochs);
}

void apply_recipe(TrainingSpec& t, const std::string& recipe, const std::function<bool(const std::string&)>& given) {
  BIRDPLANE_CHECK_SETTING(recipe == "book" || recipe == "modern", "recipe",
                          "'{}' is not a recipe; expected book or modern", recipe);
  if (recipe == "book") return;
  auto set = [&](const char* setting, auto& field, auto value) {
    if (!given(setting)) field = value;
  };
  auto& o = t.optimizer;
  set("optimizer", o.kind, OptimizerKind::kSgd);
  set("lr", o.lr, 0.05);
  set("momentum", o.momentum, 0.9);
  set("nesterov", o.nesterov, true);
  set("weight_decay", o.weight_decay, 5e-4);
  set("no_decay_bias_norm", o.no_decay_bias_norm, true);
  set("schedule", t.schedule.kind, ScheduleKind::kCosine);
  set("warmup", t.schedule.warmup, t.epochs / 10);
  set("warmup_factor", t.schedule.warmup_factor, 0.1);
  set("label_smoothing", t.label_smoothing, 0.1);
  set("mixup_alpha", t.mix.mixup_alpha, 0.2);
  set("ema_decay", t.ema_decay, 0.999);
  set("tta", t.tta, Tta::kFlip);
}

std::vector<double> resolve_class_weights(const std::string& text, const std::vector<int64_t>& counts) {
  if (text.empty()) return {};
  const auto k = static_cast<int64_t>(counts.size());
  if (text == "auto") {
    int64_t n = 0;
    for (size_t c = 0; c < counts.size(); ++c) {
      BIRDPLANE_CHECK_SETTING(counts[c] > 0, "class_weights",
                              "auto: class {} has no training images, so it has no weight", c);
      n += counts[c];
    }
    std::vector<double> w;
    for (const auto count : counts) w.push_back(static_cast<double>(n) / static_cast<double>(k * count));
    return w;
  }
  auto w = parse_weights(text);
  BIRDPLANE_CHECK_SETTING(static_cast<int64_t>(w.size()) == k, "class_weights",
                          "'{}' gives {} weights for {} classes; expected one per class in label order", text,
                          w.size(), k);
  return w;
}

nlohmann::json TrainingSpec::to_json() const {
  return {{"loss", loss ? nn::to_string(*loss) : std::string()},
          {"optimizer", optimizer.to_json()},
          {"epochs", epochs},
          {"batch_size", batch_size},
          {"seed", seed},
          {"drop_last", drop_last},
          {"eval_every", eval_every},
          {"device", to_string(device)},
          {"init_from", init_from},
          {"weights", weights},
          {"freeze", freeze},
          {"fine_tune", fine_tune.to_json()},
          {"augment", augment},
          {"precision", to_string(precision)},
          {"step", to_string(step)},
          {"schedule", schedule.to_json()},
          {"label_smoothing", label_smoothing},
          {"class_weights", class_weights},
          {"balanced_sampler", balanced_sampler},
          {"clip_grad_norm", clip_grad_norm},
          {"clip_grad_value", clip_grad_value},
          {"monitor", to_string(monitor)},
          {"early_stopping", early_stopping},
          {"min_delta", min_delta},
          {"final_model", final_best ? "best" : "last"},
          {"ema_decay", ema_decay},
          {"ema_every", ema_every},
          {"ema_warmup", ema_warmup},
          {"mix", mix.to_json()},
          {"tta", to_string(tta)}};
}

TrainingSpec TrainingSpec::from_json(const nlohmann::json& j) {
  json_fields::require_whole(j, {"epochs", "batch_size", "seed", "eval_every"});
  TrainingSpec t;
  const auto loss = j.at("loss").get<std::string>();
  if (!loss.empty()) t.loss = nn::parse_loss(loss);
  t.optimizer = OptimizerConfig::from_json(j.at("optimizer"));
  t.epochs = j.at("epochs").get<int64_t>();
  t.batch_size = j.at("batch_size").get<int64_t>();
  t.seed = j.at("seed").get<uint64_t>();
  t.drop_last = j.at("drop_last").get<bool>();
  t.eval_every = j.at("eval_every").get<int64_t>();
  t.device = parse_device(j.at("device").get<std::string>());
  t.init_from = j.at("init_from").get<std::string>();
  t.augment = j.value("augment", std::string());
  t.weights = j.value("weights", std::string());  // runs from before pretrained weights: none
  t.freeze = j.value("freeze", std::string());
  if (j.contains("fine_tune")) {
    const auto& f = j.at("fine_tune");
    json_fields::require_whole(f, {"head_epochs"});
    t.fine_tune.head_epochs = f.value("head_epochs", int64_t{0});
    t.fine_tune.lr_factor = f.value("lr_factor", 0.1);
  }
  t.precision = parse_precision(j.value("precision", std::string("fp32")));  // runs from before precision
  t.step = parse_step(j.value("step", std::string("auto")));                 // and before step
  // runs from before the recipe settings: none of them
  t.schedule = ScheduleSpec::from_json(j.value("schedule", nlohmann::json()));
  t.label_smoothing = j.value("label_smoothing", 0.0);
  t.class_weights = j.value("class_weights", std::string());
  t.balanced_sampler = j.value("balanced_sampler", false);
  t.clip_grad_norm = j.value("clip_grad_norm", 0.0);
  t.clip_grad_value = j.value("clip_grad_value", 0.0);
  t.monitor = parse_monitor(j.value("monitor", std::string("val_loss")), "monitor");
  json_fields::require_whole(j, {"early_stopping"});
  t.early_stopping = j.value("early_stopping", int64_t{0});
  t.min_delta = j.value("min_delta", 0.0);
  const auto final_model = j.value("final_model", std::string("last"));
  BIRDPLANE_CHECK_SETTING(final_model == "last" || final_model == "best", "final_model",
                          "'{}' is not supported; expected last or best", final_model);
  t.final_best = final_model == "best";
  json_fields::require_whole(j, {"ema_every", "ema_warmup"});
  t.ema_decay = j.value("ema_decay", 0.0);
  t.ema_every = j.value("ema_every", int64_t{1});
  t.ema_warmup = j.value("ema_warmup", int64_t{0});
  t.mix = MixSpec::from_json(j.value("mix", nlohmann::json()));
  t.tta = parse_tta(j.value("tta", std::string("none")));
  return t;
}

std::string RunSpec::path() const { return (std::filesystem::path(runs_dir) / name).string(); }

void RunSpec::validate() const {
  const auto names = nn::model_names();
  BIRDPLANE_CHECK_SETTING(std::find(names.begin(), names.end(), model.name) != names.end(), "model",
                          "unknown model '{}'; expected one of {}", model.name, fmt::join(names, ", "));
  data.validate();
  training.validate();
}

nlohmann::json RunSpec::to_json() const {
  return {{"data", data.to_json()},
          {"model", model.to_json()},
          {"training", training.to_json()},
          {"runs_dir", runs_dir},
          {"name", name}};
}

RunSpec RunSpec::from_json(const nlohmann::json& j) {
  RunSpec s;
  if (j.contains("training")) {
    s.data = data::DataSpec::from_json(j.at("data"));
    s.model = nn::ModelSpec::from_json(j.at("model"));
    s.training = TrainingSpec::from_json(j.at("training"));
  } else {
    // config.json before the specification had parts: one flat object whose data and training keys
    // are the parts' own names, and the model's settings beside them.
    s.data = data::DataSpec::from_json(j);
    json_fields::require_whole(j, {"channels", "blocks", "hidden"});
    nlohmann::json model = {{"name", j.at("model")},
                            {"num_classes", s.model.num_classes},
                            {"image_shape", s.model.image_shape},
                            {"hidden", j.at("hidden")},
                            {"activation", j.at("activation")}};
    for (const char* key : {"channels", "blocks"})
      if (j.contains(key)) model[key] = j.at(key);
    s.model = nn::ModelSpec::from_json(model);
    s.training = TrainingSpec::from_json(j);
  }
  s.runs_dir = j.at("runs_dir").get<std::string>();
  s.name = j.at("name").get<std::string>();
  return s;
}

RunSpec RunSpec::from_config(const nlohmann::json& config) {
  return from_json(config.contains("run") ? config.at("run") : config.at("train"));
}

}  // namespace birdplane::train
