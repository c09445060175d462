#include "birdplane/train/run_spec.h"

#include <algorithm>
#include <filesystem>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Functions.h>
#include <fmt/format.h>

#include "birdplane/check.h"
#include "birdplane/transforms/spec.h"
#include "common/json_fields.h"

namespace birdplane::train {

void TrainingSpec::validate() const {
  BIRDPLANE_CHECK_SETTING(epochs >= 1, "epochs", "{} is not allowed; expected 1 or more", epochs);
  BIRDPLANE_CHECK_SETTING(batch_size >= 1, "batch_size", "{} is not allowed; expected 1 or more", batch_size);
  BIRDPLANE_CHECK_SETTING(eval_every >= 1, "eval_every", "{} is not allowed; expected 1 or more", eval_every);
  if (!augment.empty()) {
    // Parse, then run once on a tiny batch: a spec that changes the size or dtype fails here, before
    // a run folder exists, not on the loader thread.
    auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
    transforms::parse_augment(augment)(at::zeros({2, 3, 32, 32}, at::kByte), gen);
  }
  optimizer.validate();
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
          {"augment", augment},
          {"precision", to_string(precision)},
          {"step", to_string(step)}};
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
  t.precision = parse_precision(j.value("precision", std::string("fp32")));  // runs from before precision
  t.step = parse_step(j.value("step", std::string("auto")));                 // and before step
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
