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
  schedule_state_ = saved.trainer_state.value("schedule", nlohmann::json::object());
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
