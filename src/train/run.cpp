#include "birdplane/train/run.h"

#include <ctime>
#include <filesystem>

#include <fmt/format.h>

#include "birdplane/train/distributed.h"

namespace fs = std::filesystem;

namespace birdplane::train {

struct Run::State {
  RunSpec spec;
  std::string path;
  bool resumed = false;
  Distributed* dist = nullptr;
  std::optional<RunDir> dir;  ///< rank 0 only
  std::unique_ptr<data::TrainingData> data;
  std::unique_ptr<Trainer> trainer;

  bool main() const { return !dist || dist->is_main(); }
};

namespace {

// Every rank takes rank 0's specification (its clock named the run; a resume read it from its disk).
RunSpec agree(const RunSpec& spec, Distributed* dist) {
  if (!dist) return spec;
  return RunSpec::from_json(nlohmann::json::parse(dist->broadcast_text(dist->is_main() ? spec.to_json().dump() : "")));
}

// Reads the data, rank 0 before the others.
std::unique_ptr<data::TrainingData> read_data(const RunSpec& spec, const RunOptions& options) {
  Distributed* dist = options.dist;
  const bool main = !dist || dist->is_main();
  if (dist && !main) dist->wait_for_main("reading the data");
  auto d = std::make_unique<data::TrainingData>(data::load_training_data(spec.data, spec.training.seed, options.data));
  if (dist && main) dist->main_finished("reading the data");
  return d;
}

}  // namespace

std::string default_run_name(const std::string& model) {
  std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", std::localtime(&now));
  return std::string(buf) + "-" + model;
}

Run::Run(std::unique_ptr<State> state) : s_(std::move(state)) {}
Run::Run(Run&&) noexcept = default;
Run& Run::operator=(Run&&) noexcept = default;
Run::~Run() = default;

Run Run::start(RunSpec spec, RunOptions options) {
  auto s = std::make_unique<State>();
  s->dist = options.dist;
  if (s->main()) {
    spec.validate();
    if (spec.name.empty()) spec.name = default_run_name(spec.model.name);
    if (fs::exists(spec.path())) {
      throw RunExistsError(fmt::format("run folder {} already exists; pick another name, or resume it", spec.path()),
                           spec.path());
    }
  }
  s->spec = agree(spec, s->dist);
  s->path = s->spec.path();
  // The data first: a data error leaves no empty run folder behind. The trainer then checks the model,
  // loss and optimizer settings before anything is written.
  s->data = read_data(s->spec, options);
  s->trainer = std::make_unique<Trainer>(s->spec, s->data->train, s->data->val, s->data->stats.mean,
                                         s->data->stats.std, std::move(options.model), s->dist);
  s->spec = s->trainer->spec();
  if (s->main()) {
    s->dir = RunDir::create(s->path);
    auto record = s->trainer->run_record();
    if (!s->data->record.empty()) record["data"] = s->data->record;
    s->dir->write_config(record);
  }
  return Run(std::move(s));
}

Run Run::resume(const std::string& path, const ResumeChanges& changes, RunOptions options) {
  auto s = std::make_unique<State>();
  s->dist = options.dist;
  s->path = path;
  s->resumed = true;
  RunSpec spec;
  if (s->main()) {
    s->dir = RunDir::open(path);
    try {
      spec = RunSpec::from_config(s->dir->read_config());
    } catch (const nlohmann::json::exception& e) {
      fail("{} is not a valid birdplane config ({})", s->dir->config_path(), e.what());
    } catch (const SettingError& e) {  // a bad value in the file, not a setting the caller gave
      fail("{} is not a valid birdplane config ({}: {})", s->dir->config_path(), e.setting(), e.problem());
    }
    if (changes.data_dir) spec.data.data_dir = *changes.data_dir;  // the data may have moved
    if (changes.image_folder) spec.data.image_folder = *changes.image_folder;
    if (changes.val_folder) spec.data.val_folder = *changes.val_folder;
    if (changes.cache_dir) spec.data.cache_dir = *changes.cache_dir;
    if (changes.download) spec.data.download = *changes.download;
    if (changes.use_cache) spec.data.use_cache = *changes.use_cache;
    if (changes.epochs) spec.training.epochs = *changes.epochs;  // extend a finished run
    s->dir->require_checkpoint();
    spec.validate();
  }
  s->spec = agree(spec, s->dist);
  s->data = read_data(s->spec, options);
  s->trainer = std::make_unique<Trainer>(s->spec, s->data->train, s->data->val, s->data->stats.mean,
                                         s->data->stats.std, nullptr, s->dist, /*resuming=*/true);
  s->spec = s->trainer->spec();
  s->trainer->resume_from(s->main() ? &*s->dir : nullptr);
  return Run(std::move(s));
}

TrainResult Run::train(TrainObserver* observer, StopToken stop) {
  return s_->trainer->run(s_->main() ? &*s_->dir : nullptr, observer, stop);
}

const RunSpec& Run::spec() const { return s_->spec; }
const std::string& Run::path() const { return s_->path; }
bool Run::resumed() const { return s_->resumed; }
bool Run::writes() const { return s_->main(); }
Trainer& Run::trainer() { return *s_->trainer; }
const data::TrainingData& Run::data() const { return *s_->data; }

}  // namespace birdplane::train
