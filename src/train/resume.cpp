// Trainer::resume_from: a run continued from its folder's checkpoint and metrics.csv; in a
// multi-process run rank 0's checkpoint reaches the other ranks through the process group.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>

#include <fmt/format.h>
#include <torch/torch.h>

#include "birdplane/data/image_decode.h"
#include "birdplane/train/distributed.h"
#include "birdplane/train/trainer.h"
#include "common/files.h"
#include "train/model_state.h"

namespace birdplane::train {

void Trainer::resume_from(const RunDir& dir) { resume_from(&dir); }

void Trainer::resume_from(const RunDir* dir) {
  const bool main = !dist_ || dist_->is_main();
  BIRDPLANE_CHECK(dir || !main, "resume_from: rank 0 needs the run folder");
  std::string ckpt;
  if (main) {
    ckpt = dir->checkpoint_path();
    dir->require_checkpoint();
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
  // What else the trainer saved (schedule, best validation, early stop, weight average): a file's values,
  // so any damage is an Error naming it.
  const auto& state = saved.trainer_state;
  try {
    BIRDPLANE_CHECK(state.is_object(), "its trainer state is {}", state.dump());
    schedule_state_ = state.value("schedule", nlohmann::json::object());
    if (state.contains("best")) {
      const auto& best = state.at("best");
      const auto& epoch = best.at("epoch");
      const auto& bad = best.at("bad_validations");
      BIRDPLANE_CHECK(epoch.is_number_integer() && epoch.get<int64_t>() >= 0 && epoch.get<int64_t>() <= saved.epoch &&
                          bad.is_number_integer() && bad.get<int64_t>() >= 0,
                      "its best-validation record is {}", best.dump());
      if (!best.at("value").is_null()) best_value_ = best.at("value").get<double>();
      best_epoch_ = epoch.get<int64_t>();
      bad_validations_ = bad.get<int64_t>();
    }
    stopped_early_ = state.value("stopped_early", false);
    if (average_) {
      BIRDPLANE_CHECK(saved.averaged != nullptr, "it holds no weight average, but the run keeps one");
      const auto& count = state.at("averaged");
      BIRDPLANE_CHECK(count.is_number_integer() && count.get<int64_t>() >= 0, "its weight average count is {}",
                      count.dump());
      load_model_tensors(*averaged_model_, model_tensors(*saved.averaged));
      average_->set_n_averaged(count.get<int64_t>());
    }
  } catch (const nlohmann::json::exception& e) {
    fail("checkpoint {} is damaged (its trainer state: {})", ckpt, e.what());
  } catch (const Error& e) {
    fail("checkpoint {} is damaged ({})", ckpt, e.what());
  }
  // model.pt from best.pt at the end: rank 0 reads back the best weights written before the stop.
  if (main && spec_.training.final_best && best_epoch_ > 0) best_state_ = state_of(*load_checkpoint(dir->best_path()).model);
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

}  // namespace birdplane::train
