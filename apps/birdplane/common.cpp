#include "common.h"

#include <csignal>
#include <filesystem>
#include <iostream>
#include <map>

#include <fmt/format.h>

#include "birdplane/check.h"
#ifdef BIRDPLANE_WITH_DOWNLOAD
#include "birdplane/data/download.h"
#endif
#include "download_progress.h"

namespace birdplane::cli {
namespace {

std::atomic<bool> g_stop_requested{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the SIGINT handler needs a lock-free flag");

extern "C" void on_sigint(int) {
  g_stop_requested.store(true);
  std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C ends the program at once
}

}  // namespace

data::ImageSet load_split(const std::string& data_dir_flag, data::Split split, bool download,
                          const std::vector<std::string>& classes, data::ChannelStats* stats) {
  const std::string root = data::resolve_data_root(data_dir_flag);
  std::string dir = data::batches_dir(root);
  std::error_code ec;
  const bool present = std::filesystem::exists(std::filesystem::path(dir) / "test_batch.bin", ec) ||
                       std::filesystem::exists(std::filesystem::path(dir) / "data_batch_1.bin", ec);
  if (!present && download) {
#ifdef BIRDPLANE_WITH_DOWNLOAD
    auto options = data::default_download_options();
    attach_download_progress(options);
    dir = data::ensure_cifar10(root, options);
#else
    fail("CIFAR-10 is not in {} and this build has no downloader; copy the files there", dir);
#endif
  }
  return data::read_cifar10(dir, split, classes, stats);
}

TrainingData load_training_data(const train::TrainConfig& cfg, bool download) {
  // The statistics of the whole training split (all classes), as the book computes them, gathered
  // while reading; only the kept classes stay in memory.
  data::ChannelStats stats;
  auto train_set = load_split(cfg.data_dir, data::Split::kTrain, download, cfg.classes, &stats).first(cfg.limit_train);
  auto val_set = load_split(cfg.data_dir, data::Split::kTest, false, cfg.classes).first(cfg.limit_val);
  return {std::move(train_set), std::move(val_set), std::move(stats)};
}

std::string flag_for_setting(const std::string& setting) {
  // Settings whose flag is not simply the name with dashes.
  static const std::map<std::string, std::string> kRenamed = {{"init_from", "--init-from"}};
  if (auto it = kRenamed.find(setting); it != kRenamed.end()) return it->second;
  std::string flag = "--" + setting;
  for (char& c : flag)
    if (c == '_') c = '-';
  return flag;
}

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(std::max(0.0, seconds) + 0.5);
  return s >= 3600 ? fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
                   : fmt::format("{}:{:02}", s / 60, s % 60);
}

void ProgressPrinter::on_step(const train::StepProgress& p) {
  if (!terminal_ || !(p.step % 8 == 0 || p.step + 1 == p.steps)) return;
  const double frac = static_cast<double>(p.step + 1) / static_cast<double>(p.steps);
  const int width = 30, filled = static_cast<int>(frac * width);
  const double done = static_cast<double>(p.epoch - p.start_epoch) + frac;
  const double eta = p.seconds / done * (static_cast<double>(p.epochs - p.start_epoch) - done);
  const double rate = p.epoch_seconds > 0 ? static_cast<double>(p.images) / p.epoch_seconds : 0.0;
  std::cout << fmt::format("\repoch {}/{} [{}{}] {:3.0f}% loss {:.4f} {:.0f} img/s ETA {}   ", p.epoch + 1, p.epochs,
                           std::string(filled, '#'), std::string(width - filled, '.'), frac * 100, p.mean_loss, rate,
                           format_duration(eta))
            << std::flush;
  line_open_ = true;
}

void ProgressPrinter::on_epoch(const train::EpochMetrics& m, int64_t epochs) {
  if (line_open_) std::cout << "\r";
  std::cout << fmt::format("epoch {}/{}  loss {:.4f}  train acc {:.4f}{}  {:.2f} s  {:.0f} img/s", m.epoch, epochs,
                           m.train_loss, m.train_accuracy,
                           m.val_accuracy >= 0
                               ? fmt::format("  val loss {:.4f}  val acc {:.4f}", m.val_loss, m.val_accuracy)
                               : "",
                           m.seconds, m.images_per_second)
            << (line_open_ ? "          \n" : "\n") << std::flush;
  line_open_ = false;
}

void ProgressPrinter::on_end(const train::TrainResult& r) {
  std::cout << fmt::format(
      "done: train accuracy {:.4f}, validation accuracy {:.4f} ({} epochs, {:.1f} s); model in {}\n",
      r.final_train_accuracy, r.final_val_accuracy, r.history.size(), r.total_seconds,
      (std::filesystem::path(r.run_dir) / "model.pt").string());
}

void ProgressPrinter::on_run_start(const std::string& arm, const train::TrainConfig& config,
                                   const std::string& run_dir) {
  std::cout << fmt::format("experiment run {}: {} for {} epochs{} into {}\n", arm, config.model,
                           config.epochs, config.augment.empty() ? "" : " with --augment \"" + config.augment + "\"",
                           run_dir)
            << std::flush;
}

InterruptGuard::InterruptGuard() {
  g_stop_requested.store(false);
  std::signal(SIGINT, on_sigint);
}

InterruptGuard::~InterruptGuard() { std::signal(SIGINT, SIG_DFL); }

train::StopToken InterruptGuard::stop_token() const { return train::StopToken(&g_stop_requested); }

}  // namespace birdplane::cli
