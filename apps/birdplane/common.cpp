#include "common.h"

#include <csignal>
#include <filesystem>
#include <iostream>
#include <map>

#include <unistd.h>

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

void add_folder_flags(CLI::App& cmd, FolderFlags& flags, bool with_size) {
  if (with_size) {
    cmd.add_option("--image-size", flags.image_size,
                   "With --image-folder: bring every image to H or H,W pixels (torchvision's Resize, "
                   "antialiased); default: the images' own size when all agree");
    cmd.add_option("--crop", flags.crop,
                   "With --image-size: none (stretch to the size) or center (keep the aspect ratio, cut the "
                   "centre out, as Resize + CenterCrop)")
        ->transform(choices(data::kCropModes))
        ->default_str(data::to_string(flags.crop));
  }
  cmd.add_option("--max-pixels", flags.max_pixels,
                 "Refuse images declaring more pixels than this (decompression bombs)")
      ->capture_default_str();
  cmd.add_flag("--skip-bad-images", flags.skip_bad_images,
               "Leave out image files that cannot be read (counted and listed) instead of stopping");
  cmd.add_option("--cache-dir", flags.cache_dir,
                 "Where decoded image folders are cached (default: .birdplane-cache beside the folder)");
  cmd.add_flag("--no-cache", flags.no_cache, "Decode the image folder again; read and write no cache");
}

data::ImageFolderOptions folder_options(const FolderFlags& flags) {
  data::ImageFolderOptions o;
  if (!flags.image_size.empty()) o.image_size = data::parse_image_size(flags.image_size);
  o.crop = flags.crop;
  o.max_pixels = flags.max_pixels;
  o.skip_bad_images = flags.skip_bad_images;
  o.cache_dir = flags.cache_dir;
  o.use_cache = !flags.no_cache;
  return o;
}

data::ImageSet read_folder_with_progress(const std::string& root, const data::ImageFolderOptions& options,
                                         data::ImageFolderReport* report) {
  data::ImageFolderOptions o = options;
  const bool terminal = isatty(STDERR_FILENO) != 0;
  bool line_open = false;
  if (terminal) {
    o.on_progress = [&line_open](const data::FolderProgress& p) {
      const double rate = p.seconds > 0 ? static_cast<double>(p.done) / p.seconds : 0.0;
      const double left = rate > 0 ? static_cast<double>(p.total - p.done) / rate : 0.0;
      std::cerr << fmt::format("\rdecoding images {}/{} ({:.0f}%) {:.0f} files/s, {} left   ", p.done, p.total,
                               p.total ? 100.0 * static_cast<double>(p.done) / static_cast<double>(p.total) : 100.0,
                               rate, format_duration(left))
                << std::flush;
      line_open = true;
    };
  }
  data::ImageFolderReport local;
  data::ImageFolderReport& r = report ? *report : local;
  auto set = [&] {
    try {
      return data::read_image_folder(root, o, &r);
    } catch (const data::BadImageError& e) {
      if (line_open) std::cerr << "\n";
      fail("{}\n(leave such files out with --skip-bad-images)", e.reason());
    }
  }();
  if (line_open) std::cerr << "\r" << std::string(78, ' ') << "\r";
  const auto shape = set.image_shape();
  std::string how = r.from_cache ? fmt::format("from the cache {}", r.cache_file)
                                 : fmt::format("decoded in {:.1f} s, {:.0f} files/s", r.seconds,
                                               r.seconds > 0 ? static_cast<double>(r.files) / r.seconds : 0.0);
  std::cerr << fmt::format("{}: {} images of {}x{} in {} classes ({}){}\n", root, *set.size(), shape[1], shape[2],
                           set.num_classes(), how,
                           r.skipped.empty() ? "" : fmt::format("; skipped {} bad files", r.skipped.size()));
  for (size_t i = 0; i < r.skipped.size() && i < 20; ++i) std::cerr << "  skipped: " << r.skipped[i].reason << "\n";
  if (r.skipped.size() > 20) std::cerr << fmt::format("  ... and {} more\n", r.skipped.size() - 20);
  if (!r.from_cache && !r.cache_note.empty() && o.use_cache) std::cerr << "  note: " << r.cache_note << "\n";
  return set;
}

nlohmann::json folder_record(const std::string& root, const data::ImageSet& set, const data::ImageFolderReport& r) {
  nlohmann::json skipped = nlohmann::json::array();
  for (const auto& s : r.skipped) skipped.push_back({{"file", s.file}, {"reason", s.reason}});
  return {{"folder", root},           {"files", r.files},           {"images", static_cast<int64_t>(*set.size())},
          {"skipped_count", static_cast<int64_t>(r.skipped.size())}, {"skipped", skipped},
          {"from_cache", r.from_cache}, {"cache_file", r.cache_file}, {"image_shape", set.image_shape()}};
}

namespace {

TrainingData load_folder_training_data(const train::TrainConfig& cfg, bool use_cache) {
  data::ImageFolderOptions o;
  o.classes = cfg.classes;
  o.image_size = cfg.image_size;
  o.crop = cfg.crop;
  o.max_pixels = cfg.max_pixels;
  o.skip_bad_images = cfg.skip_bad_images;
  o.cache_dir = cfg.cache_dir;
  o.use_cache = use_cache;
  data::ImageFolderReport report;
  auto all = read_folder_with_progress(cfg.image_folder, o, &report);
  BIRDPLANE_CHECK(all.num_classes() >= 2,
                  "image folder {} has one class ({}); a classifier needs at least two class folders",
                  cfg.image_folder, fmt::join(all.class_names(), ","));
  TrainingData d{all, all, {}, {}};
  d.record["train_folder"] = folder_record(cfg.image_folder, all, report);
  if (!cfg.val_folder.empty()) {
    data::ImageFolderOptions vo = o;
    const auto shape = all.image_shape();
    vo.image_size = {shape[1], shape[2]};  // validation images are brought to the training size
    // The class folders must match: with no --classes, read every class and compare the names.
    data::ImageFolderReport val_report;
    auto val = read_folder_with_progress(cfg.val_folder, vo, &val_report);
    BIRDPLANE_CHECK(val.class_names() == all.class_names(),
                    "--val-folder {} has the classes {} but --image-folder {} has {}; both need the same class "
                    "folders",
                    cfg.val_folder, fmt::join(val.class_names(), ","), cfg.image_folder,
                    fmt::join(all.class_names(), ","));
    d.record["val_folder"] = folder_record(cfg.val_folder, val, val_report);
    d.val = std::move(val);
  } else {
    auto split = data::split_stratified(all, cfg.val_fraction, cfg.seed);
    d.train = std::move(split.train);
    d.val = std::move(split.val);
  }
  d.train = d.train.first(cfg.limit_train);
  d.val = d.val.first(cfg.limit_val);
  BIRDPLANE_CHECK(*d.val.size() > 0, "no validation images: the split left none (use a larger --val-fraction)");
  d.stats = data::channel_stats(d.train.images());
  return d;
}

}  // namespace

TrainingData load_training_data(const train::TrainConfig& cfg, bool download, bool use_cache) {
  if (!cfg.image_folder.empty()) return load_folder_training_data(cfg, use_cache);
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
