#include "birdplane/train/checkpoint.h"

#include <cmath>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <fstream>
#include <random>

#include <torch/serialize.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "common/files.h"
#include "common/json_fields.h"
#include "train/checkpoint/module_archive.h"
#include "train/checkpoint/pickle_storages.h"
#include "train/checkpoint/tensor_checks.h"
#include "train/checkpoint/zip_structure.h"

namespace fs = std::filesystem;

namespace birdplane::train {
namespace {

constexpr int64_t kFormatVersion = 1;

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// The model's parameters and buffers by name, the order the checksum covers them in.
std::vector<std::pair<std::string, at::Tensor>> named_state(const nn::Classifier& model) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : model.named_parameters()) out.emplace_back(p.key(), p.value());
  for (const auto& b : model.named_buffers()) out.emplace_back(b.key(), b.value());
  return out;
}

std::string shape(const at::Tensor& t) { return c10::str(t.sizes()); }

std::vector<char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open {} for reading", path);
  return std::vector<char>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void check_exists(const std::string& path, const char* what) {
  std::error_code ec;
  if (!fs::exists(path, ec)) fail("{} {} does not exist", what, path);
  if (fs::is_directory(path, ec)) fail("{} {} is a folder; expected a file", what, path);
}

}  // namespace

nlohmann::json ModelConfig::to_json() const {
  return {{"model", spec.name},
          {"spec", spec.to_json()},
          {"loss", nn::to_string(loss)},
          {"classes", classes},
          {"mean", mean},
          {"std", std},
          {"crop", data::to_string(crop)},
          {"tta", to_string(tta)},
          {"resize", resize},
          {"interpolation", interpolation}};
}

ModelConfig ModelConfig::from_json(const nlohmann::json& j) {
  ModelConfig c;
  // birdplane 0.1 kept the MLP's fields at the top level instead of a "spec" object.
  c.spec = nn::ModelSpec::from_json(j.contains("spec") ? j.at("spec") : j);
  c.loss = nn::parse_loss(j.at("loss").get<std::string>());
  c.classes = j.at("classes").get<std::vector<std::string>>();
  c.mean = j.at("mean").get<std::vector<double>>();
  c.std = j.at("std").get<std::vector<double>>();
  c.crop = data::parse_crop_mode(j.value("crop", std::string("none")));  // files from before image folders
  c.tta = parse_tta(j.value("tta", std::string("none")));                 // and before test-time augmentation
  json_fields::require_whole(j, {"resize"});
  c.resize = j.value("resize", int64_t{0});  // and before pretrained weights
  BIRDPLANE_CHECK_SETTING(c.resize >= 0 && c.resize <= 65'536, "resize", "{} is out of range (0 to 65536)", c.resize);
  c.interpolation = j.value("interpolation", std::string("bilinear"));
  BIRDPLANE_CHECK_SETTING(c.interpolation == "bilinear" || c.interpolation == "bicubic", "interpolation",
                          "'{}' is not supported; expected bilinear or bicubic", c.interpolation);
  // Normalization divides by std for every pixel of every image eval and predict see: one finite mean
  // and one positive, finite std per channel of the model's input.
  const size_t channels = c.spec.image_shape.empty() ? 0 : static_cast<size_t>(c.spec.image_shape[0]);
  BIRDPLANE_CHECK_SETTING(c.mean.size() == channels && c.std.size() == channels, "mean",
                          "{} means and {} stds for images of {} channels", c.mean.size(), c.std.size(), channels);
  for (size_t k = 0; k < channels; ++k) {
    BIRDPLANE_CHECK_SETTING(std::isfinite(c.mean[k]), "mean", "channel {}'s mean is {}", k, c.mean[k]);
    BIRDPLANE_CHECK_SETTING(std::isfinite(c.std[k]) && c.std[k] > 0, "std",
                            "channel {}'s std is {}; expected a positive number", k, c.std[k]);
  }
  return c;
}

void save_checkpoint(const std::string& path, const ModelConfig& config, const nn::Classifier& model,
                     const torch::optim::Optimizer* optimizer, int64_t epoch,
                     const nlohmann::json& run_config, const nlohmann::json& trainer_state,
                     const nn::Classifier* averaged) {
  torch::serialize::OutputArchive archive;
  archive.write("birdplane_format", c10::IValue(kFormatVersion));
  archive.write("model_config", c10::IValue(config.to_json().dump()));
  archive.write("run_config", c10::IValue(run_config.dump()));
  archive.write("epoch", c10::IValue(epoch));
  if (!trainer_state.empty()) archive.write("trainer_state", c10::IValue(trainer_state.dump()));
  // Checked on load: any damage to the weights that the structure checks let through.
  archive.write("weights_checksum", c10::IValue(fmt::format("{:016x}", tensors_checksum(named_state(model)))));
  torch::serialize::OutputArchive model_archive;
  model.save(model_archive);
  archive.write("model", model_archive);
  if (averaged) {
    torch::serialize::OutputArchive averaged_archive;
    averaged->save(averaged_archive);
    archive.write("averaged_model", averaged_archive);
  }
  if (optimizer) {
    torch::serialize::OutputArchive opt_archive;
    optimizer->save(opt_archive);
    archive.write("optimizer", opt_archive);
  }
  // Serialize in memory first: LibTorch's file writer throws from its destructor when the disk fills
  // up, which ends the program; a failed write of finished bytes is an ordinary error.
  std::string bytes;
  archive.save_to([&bytes](const void* data, size_t size) {
    bytes.append(static_cast<const char*>(data), size);
    return size;
  });
  write_file_atomically(path, bytes);
}

namespace {

// LibTorch trusts the sizes inside the file and compiles the class definitions in it: check the zip
// structure, the pickle and the classes before it reads a byte, and give it only the checked entries.
void load_module_archive(const std::string& path, torch::serialize::InputArchive& archive) {
  const std::vector<char> bytes = read_bytes(path);
  const auto entries = check_zip_structure(bytes, path, "checkpoint");
  check_pickled_storages(bytes, entries, path, "checkpoint", false);
  const std::string checked = module_archive(bytes, entries, path, "checkpoint");
  archive.load_from(checked.data(), checked.size());
}

// LibTorch loads an optimizer's state without comparing it with the parameters: a missing or
// misshapen tensor would fail inside the first step of a resumed run (or, given a view past its data,
// read beyond it). Each state tensor birdplane's optimizers keep must match its parameter.
void check_optimizer_state(const std::string& path, torch::optim::Optimizer& optimizer) {
  size_t index = 0;
  for (auto& group : optimizer.param_groups()) {
    const auto* adam_options = dynamic_cast<const torch::optim::AdamOptions*>(&group.options());
    for (const auto& p : group.params()) {
      auto it = optimizer.state().find(c10::guts::to_string(p.unsafeGetTensorImpl()));
      if (it != optimizer.state().end()) {
        std::vector<std::pair<const char*, at::Tensor>> tensors;
        if (const auto* adam = dynamic_cast<const torch::optim::AdamParamState*>(it->second.get())) {
          tensors = {{"exp_avg", adam->exp_avg()}, {"exp_avg_sq", adam->exp_avg_sq()}};
          if (adam_options && adam_options->amsgrad()) tensors.emplace_back("max_exp_avg_sq", adam->max_exp_avg_sq());
        } else if (const auto* sgd = dynamic_cast<const torch::optim::SGDParamState*>(it->second.get())) {
          tensors = {{"momentum_buffer", sgd->momentum_buffer()}};
        }
        for (const auto& [name, t] : tensors) {
          const std::string what = fmt::format("optimizer state {} of parameter {}", name, index);
          BIRDPLANE_CHECK(t.defined(), "checkpoint {} is damaged (the {} is missing)", path, what);
          BIRDPLANE_CHECK(t.sizes() == p.sizes() && t.scalar_type() == p.scalar_type() && t.device() == p.device(),
                          "checkpoint {} is damaged (the {} is {} {}, its parameter {} {})", path, what,
                          c10::toString(t.scalar_type()), shape(t), c10::toString(p.scalar_type()), shape(p));
          check_tensor_storage(t, "checkpoint " + path, what);
        }
      }
      ++index;
    }
  }
}

Checkpoint load_checkpoint_impl(const std::string& path) {
  check_exists(path, "checkpoint");
  torch::serialize::InputArchive archive;
  try {
    load_module_archive(path, archive);
  } catch (const c10::Error&) {
    fail("checkpoint {} is truncated or not a birdplane checkpoint (LibTorch could not read it); "
         "use a checkpoint.pt or model.pt from a runs/<name>/ folder",
         path);
  }
  c10::IValue v;
  if (!archive.try_read("birdplane_format", v)) {
    throw StateDictNotCheckpointError(
        fmt::format("{} is a LibTorch archive but not a birdplane checkpoint (no birdplane_format entry)", path),
        path);
  }
  BIRDPLANE_CHECK(v.toInt() == kFormatVersion, "checkpoint {} has format {}, this birdplane reads {}", path,
                  v.toInt(), kFormatVersion);
  Checkpoint ck;
  archive.read("model_config", v);
  try {
    ck.config = ModelConfig::from_json(nlohmann::json::parse(v.toStringRef()));
  } catch (const nlohmann::json::exception& e) {
    fail("checkpoint {}: its model description is damaged ({})", path, e.what());
  } catch (const SettingError& e) {
    // A bad value inside the file, not a setting the user gave: name the file, not the setting.
    fail("checkpoint {}: its model description is damaged ({})", path, e.what());
  }
  // eval and predict name a prediction by its class (predict reads one probability per name).
  BIRDPLANE_CHECK(static_cast<int64_t>(ck.config.classes.size()) == ck.config.spec.num_classes,
                  "checkpoint {}: its model description is damaged ({} class names for a model with {} outputs)",
                  path, ck.config.classes.size(), ck.config.spec.num_classes);
  archive.read("run_config", v);
  ck.run_config = nlohmann::json::parse(v.toStringRef());
  archive.read("epoch", v);
  ck.epoch = v.toInt();
  BIRDPLANE_CHECK(ck.epoch >= 0, "checkpoint {} is damaged (it says {} epochs were completed)", path, ck.epoch);
  if (archive.try_read("trainer_state", v)) {  // absent in files from before the learning-rate schedules
    BIRDPLANE_CHECK(v.isString(), "checkpoint {} is damaged (its trainer state is not text)", path);
    try {
      ck.trainer_state = nlohmann::json::parse(v.toStringRef());
    } catch (const nlohmann::json::exception& e) {
      fail("checkpoint {}: its trainer state is damaged ({})", path, e.what());
    }
  }
  try {
    ck.model = nn::make_model(ck.config.spec);
  } catch (const Error& e) {
    // A spec the registry refuses (an odd channel count, a too-small image): the file is at fault.
    fail("checkpoint {}: its model description is damaged ({})", path, e.what());
  }
  // Reads a model archive into `model`, then checks what Module::load does not: every tensor keeps the
  // shape and dtype the spec gives it, inside its storage.
  auto read_weights = [&](torch::serialize::InputArchive& model_archive, nn::Classifier& model) {
    struct Expected {
      std::string name;
      std::vector<int64_t> sizes;
      at::ScalarType dtype;
    };
    std::vector<Expected> expected;
    for (const auto& [name, t] : named_state(model)) expected.push_back({name, t.sizes().vec(), t.scalar_type()});
    try {
      model.load(model_archive);
    } catch (const c10::Error& e) {
      fail("checkpoint {}: the weights do not fit the model it describes ({})", path, e.what_without_backtrace());
    }
    const auto state = named_state(model);
    BIRDPLANE_CHECK(state.size() == expected.size(),
                    "checkpoint {}: the weights do not fit the model it describes", path);
    for (size_t i = 0; i < expected.size(); ++i) {
      const Expected& want = expected[i];
      const at::Tensor& t = state[i].second;
      BIRDPLANE_CHECK(t.sizes().vec() == want.sizes, "checkpoint {}: {} has shape {}, the model needs {}", path,
                      want.name, shape(t), c10::str(c10::IntArrayRef(want.sizes)));
      BIRDPLANE_CHECK(t.scalar_type() == want.dtype, "checkpoint {}: {} holds {}, the model needs {}", path,
                      want.name, c10::toString(t.scalar_type()), c10::toString(want.dtype));
    }
    for (const auto& [name, t] : state) check_tensor_storage(t, "checkpoint " + path, name);
    return state;
  };
  torch::serialize::InputArchive model_archive;
  try {
    archive.read("model", model_archive);
  } catch (const c10::Error& e) {
    fail("checkpoint {}: the weights do not fit the model it describes ({})", path, e.what_without_backtrace());
  }
  const auto state = read_weights(model_archive, *ck.model);
  torch::serialize::InputArchive averaged_archive;
  if (archive.try_read("averaged_model", averaged_archive)) {  // runs that average their weights
    ck.averaged = nn::make_model(ck.config.spec);
    read_weights(averaged_archive, *ck.averaged);
  }
  if (archive.try_read("weights_checksum", v)) {  // files from before the checksum have none
    BIRDPLANE_CHECK(v.isString() && v.toStringRef() == fmt::format("{:016x}", tensors_checksum(state)),
                    "checkpoint {} is damaged (checksum mismatch: its weights are not the ones written)", path);
  }
  return ck;
}

void load_optimizer_state_impl(const std::string& path, torch::optim::Optimizer& optimizer) {
  torch::serialize::InputArchive archive;
  load_module_archive(path, archive);
  torch::serialize::InputArchive opt_archive;
  if (!archive.try_read("optimizer", opt_archive)) {
    fail("checkpoint {} holds no optimizer state; it cannot be resumed (it is a final model file)", path);
  }
  optimizer.load(opt_archive);
  check_optimizer_state(path, optimizer);
}

}  // namespace

void export_state_dict(const std::string& path, const nn::Classifier& model) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& [key, t] : model.state_dict()) dict.insert(key, t.detach().cpu().contiguous());
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
  write_file_atomically(path, std::string_view(bytes.data(), bytes.size()));
}

namespace {

// The entries of a state_dict file (torch.save of a dict or an OrderedDict, or export_state_dict),
// after the zip and pickle checks, read by birdplane's own unpickler (pickle_storages.h).
std::map<std::string, at::Tensor> read_state_dict_file(const std::string& path) {
  check_exists(path, "state_dict file");
  const std::vector<char> bytes = read_bytes(path);
  const auto entries = check_zip_structure(bytes, path, "state_dict file");
  check_pickled_storages(bytes, entries, path, "state_dict file", true);
  std::map<std::string, at::Tensor> out;
  for (auto& [key, t] : read_state_dict_pickle(bytes, entries, path)) out[key] = t;
  return out;
}

bool is_batch_count(const std::string& key) {
  const std::string tail = "num_batches_tracked";
  return key.size() >= tail.size() && key.compare(key.size() - tail.size(), tail.size(), tail) == 0;
}

// Copies the file's tensors into the model's. `skip`: a key prefix left as the model has it (a head being
// replaced). Missing num_batches_tracked entries (files from before PyTorch 0.4.1, as some of torchvision's
// are) stay 0, as Python's BatchNorm loads them. Every other difference is collected into one error.
int64_t copy_state(const std::string& path, const std::map<std::string, at::Tensor>& dict, nn::Classifier& model,
                   const std::string& skip) {
  torch::OrderedDict<std::string, at::Tensor> params;
  for (const auto& [key, t] : model.state_dict()) params.insert(key, t);
  auto skipped = [&](const std::string& key) { return !skip.empty() && key.rfind(skip + ".", 0) == 0; };
  std::vector<std::string> problems;
  int64_t copied = 0;
  torch::NoGradGuard no_grad;
  for (const auto& p : params) {
    if (skipped(p.key())) continue;
    auto it = dict.find(p.key());
    if (it == dict.end()) {
      if (is_batch_count(p.key())) {
        p.value().zero_();
        continue;
      }
      problems.push_back(fmt::format("key '{}' is missing (the model needs shape {})", p.key(), shape(p.value())));
      continue;
    }
    const at::Tensor& t = it->second;
    if (t.sizes() != p.value().sizes()) {
      problems.push_back(fmt::format("'{}' has shape {}, the model needs {}", p.key(), shape(t), shape(p.value())));
    } else if (t.is_floating_point() != p.value().is_floating_point()) {
      problems.push_back(fmt::format("'{}' holds {}, the model needs {}", p.key(), c10::toString(t.scalar_type()),
                                     c10::toString(p.value().scalar_type())));
    } else {
      p.value().copy_(t);
      ++copied;
    }
  }
  for (const auto& entry : dict) {
    if (params.contains(entry.first) || skipped(entry.first)) continue;
    problems.push_back(fmt::format("unexpected key '{}'", entry.first));
  }
  if (problems.empty()) return copied;
  const size_t shown = std::min<size_t>(problems.size(), 12);
  std::string list;
  for (size_t i = 0; i < shown; ++i) list += "\n  " + problems[i];
  if (shown < problems.size()) list += fmt::format("\n  ... and {} more", problems.size() - shown);
  fail("{} does not fit model {} ({} entries): {} difference{}:{}", path, model.spec().name, params.size(),
       problems.size(), problems.size() == 1 ? "" : "s", list);
}

void import_state_dict_impl(const std::string& path, nn::Classifier& model) {
  copy_state(path, read_state_dict_file(path), model, "");
}

PretrainedLoad load_pretrained_impl(const std::string& path, nn::Classifier& model, const std::string& head) {
  const auto dict = read_state_dict_file(path);
  PretrainedLoad out;
  // The head is replaced when the file's differs from the model's (another number of classes).
  const std::string weight_key = head + ".weight";
  auto it = dict.find(weight_key);
  at::Tensor model_head;
  for (const auto& [key, t] : model.state_dict())
    if (key == weight_key) model_head = t;
  BIRDPLANE_CHECK(model_head.defined(), "model {} has no layer {}", model.spec().name, weight_key);
  if (it != dict.end() && it->second.dim() >= 1 && it->second.sizes() != model_head.sizes()) {
    out.head_replaced = true;
    out.file_classes = it->second.size(0);
  }
  out.tensors = copy_state(path, dict, model, out.head_replaced ? head : "");
  return out;
}

// LibTorch reports a damaged archive with several exception types (c10::Error, the TorchScript
// importer's ErrorReport, std::runtime_error): whatever gets past the checks above is a damaged file.
template <typename F>
auto as_damaged(const std::string& path, const char* what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Error&) {
    throw;
  } catch (const c10::Error& e) {
    fail("{} {} is damaged or not a birdplane file ({})", what, path, first_line(e.what_without_backtrace()));
  } catch (const std::exception& e) {
    fail("{} {} is damaged or not a birdplane file ({})", what, path, first_line(e.what()));
  }
}

}  // namespace

Checkpoint load_checkpoint(const std::string& path) {
  return as_damaged(path, "checkpoint", [&] { return load_checkpoint_impl(path); });
}

void load_optimizer_state(const std::string& path, torch::optim::Optimizer& optimizer) {
  as_damaged(path, "checkpoint", [&] { load_optimizer_state_impl(path, optimizer); });
}

void import_state_dict(const std::string& path, nn::Classifier& model) {
  as_damaged(path, "state_dict file", [&] { import_state_dict_impl(path, model); });
}

PretrainedLoad load_pretrained(const std::string& path, nn::Classifier& model, const std::string& head) {
  return as_damaged(path, "state_dict file", [&] { return load_pretrained_impl(path, model, head); });
}

}  // namespace birdplane::train
