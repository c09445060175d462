#include "progress.h"

#include <csignal>
#include <filesystem>
#include <iostream>

#include <unistd.h>

#include <fmt/format.h>

#include "birdplane/check.h"

namespace birdplane::cli {
namespace {

std::atomic<bool> g_stop_requested{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the SIGINT handler needs a lock-free flag");

extern "C" void on_sigint(int) {
  g_stop_requested.store(true);
  std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C ends the program at once
}

}  // namespace

FolderProgressPrinter::FolderProgressPrinter(bool use_cache)
    : terminal_(isatty(STDERR_FILENO) != 0), use_cache_(use_cache) {}

void FolderProgressPrinter::on_folder_progress(const std::string&, const data::FolderProgress& p) {
  if (!terminal_) return;
  const double rate = p.seconds > 0 ? static_cast<double>(p.done) / p.seconds : 0.0;
  const double left = rate > 0 ? static_cast<double>(p.total - p.done) / rate : 0.0;
  std::cerr << fmt::format("\rdecoding images {}/{} ({:.0f}%) {:.0f} files/s, {} left   ", p.done, p.total,
                           p.total ? 100.0 * static_cast<double>(p.done) / static_cast<double>(p.total) : 100.0,
                           rate, format_duration(left))
            << std::flush;
  line_open_ = true;
}

void FolderProgressPrinter::close_line() {
  if (line_open_) std::cerr << "\r" << std::string(78, ' ') << "\r";
  line_open_ = false;
}

void FolderProgressPrinter::on_folder_read(const std::string& root, const data::ImageSet& set,
                                           const data::ImageFolderReport& r) {
  close_line();
  const auto shape = set.image_shape();
  std::string how = r.from_cache ? fmt::format("from the cache {}", r.cache_file)
                                 : fmt::format("decoded in {:.1f} s, {:.0f} files/s", r.seconds,
                                               r.seconds > 0 ? static_cast<double>(r.files) / r.seconds : 0.0);
  std::cerr << fmt::format("{}: {} images of {}x{} in {} classes ({}){}\n", root, *set.size(), shape[1], shape[2],
                           set.num_classes(), how,
                           r.skipped.empty() ? "" : fmt::format("; skipped {} bad files", r.skipped.size()));
  for (size_t i = 0; i < r.skipped.size() && i < 20; ++i) std::cerr << "  skipped: " << r.skipped[i].reason << "\n";
  if (r.skipped.size() > 20) std::cerr << fmt::format("  ... and {} more\n", r.skipped.size() - 20);
  if (!r.from_cache && !r.cache_note.empty() && use_cache_) std::cerr << "  note: " << r.cache_note << "\n";
}

data::ImageSet read_folder_with_progress(const std::string& root, const data::ImageFolderOptions& options,
                                         data::ImageFolderReport* report) {
  FolderProgressPrinter printer(options.use_cache);
  data::ImageFolderOptions o = options;
  o.on_progress = [&printer, &root](const data::FolderProgress& p) { printer.on_folder_progress(root, p); };
  data::ImageFolderReport local;
  data::ImageFolderReport& r = report ? *report : local;
  auto set = [&] {
    try {
      return data::read_image_folder(root, o, &r);
    } catch (const data::BadImageError& e) {
      printer.close_line();
      fail("{}\n(leave such files out with --skip-bad-images)", e.reason());
    }
  }();
  printer.on_folder_read(root, set, r);
  return set;
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
  // Time left from this session's own pace (a resumed run counts from the epoch it resumed at).
  const double eta = p.seconds / done * (static_cast<double>(p.epochs - p.start_epoch) - done);
  const double epoch_eta = p.epoch_seconds / frac * (1 - frac);
  const double rate = p.epoch_seconds > 0 ? static_cast<double>(p.images) / p.epoch_seconds : 0.0;
  std::cout << fmt::format("\repoch {}/{} [{}{}] {:3.0f}% step {}/{} loss {:.4f} {:.0f} img/s left: epoch {}, run {}   ",
                           p.epoch + 1, p.epochs, std::string(filled, '#'), std::string(width - filled, '.'), frac * 100,
                           p.step + 1, p.steps, p.mean_loss, rate, format_duration(epoch_eta), format_duration(eta))
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
  if (r.stopped_early)
    std::cout << fmt::format("early stopping: no improvement in the last validations; stopped after epoch {}\n",
                             r.history.size());
  std::cout << fmt::format(
      "done: train accuracy {:.4f}, validation accuracy {:.4f} ({} epochs, {:.1f} s); model in {}{}\n",
      r.final_train_accuracy, r.final_val_accuracy, r.history.size(), r.total_seconds,
      (std::filesystem::path(r.run_dir) / "model.pt").string(),
      r.model_from_best ? fmt::format(" (the best epoch, {})", r.model_epoch) : "");
}

void ProgressPrinter::on_run_start(const std::string& arm, const train::RunSpec& config,
                                   const std::string& run_dir) {
  std::cout << fmt::format("experiment run {}: {} for {} epochs{} into {}\n", arm, config.model.name,
                           config.training.epochs,
                           config.training.augment.empty() ? "" : " with --augment \"" + config.training.augment + "\"",
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
