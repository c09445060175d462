#include "birdplane/data/training_data.h"

#include <filesystem>

#include <fmt/format.h>

#include "birdplane/data/cifar10.h"

namespace birdplane::data {
namespace {

// read_image_folder with the observer's progress and report.
ImageSet read_folder(const std::string& root, ImageFolderOptions o, DataObserver* observer,
                     ImageFolderReport& report) {
  if (observer) {
    o.on_progress = [observer, &root](const FolderProgress& p) { observer->on_folder_progress(root, p); };
  }
  auto set = read_image_folder(root, o, &report);
  if (observer) observer->on_folder_read(root, set, report);
  return set;
}

TrainingData load_folder(const DataSpec& spec, uint64_t seed, DataObserver* observer) {
  const ImageFolderOptions o = spec.folder_options();
  ImageFolderReport report;
  auto all = read_folder(spec.image_folder, o, observer, report);
  BIRDPLANE_CHECK(all.num_classes() >= 2,
                  "image folder {} has one class ({}); a classifier needs at least two class folders",
                  spec.image_folder, fmt::join(all.class_names(), ","));
  TrainingData d{all, all, {}, nlohmann::json::object()};
  d.record["train_folder"] = folder_record(spec.image_folder, all, report);
  if (!spec.val_folder.empty()) {
    ImageFolderOptions vo = o;
    const auto shape = all.image_shape();
    vo.image_size = {shape[1], shape[2]};  // validation images are brought to the training size
    ImageFolderReport val_report;
    auto val = read_folder(spec.val_folder, vo, observer, val_report);
    // With no class list every class folder is read, so the two folders' names are compared.
    BIRDPLANE_CHECK_SETTING(val.class_names() == all.class_names(), "val_folder",
                            "{} has the classes {} but the training folder {} has {}; both need the same class "
                            "folders",
                            spec.val_folder, fmt::join(val.class_names(), ","), spec.image_folder,
                            fmt::join(all.class_names(), ","));
    d.record["val_folder"] = folder_record(spec.val_folder, val, val_report);
    d.val = std::move(val);
  } else {
    auto split = split_stratified(all, spec.val_fraction, seed);
    d.train = std::move(split.train);
    d.val = std::move(split.val);
  }
  d.train = d.train.first(spec.limit_train);
  d.val = d.val.first(spec.limit_val);
  BIRDPLANE_CHECK_SETTING(*d.val.size() > 0, "val_fraction", "the split left no validation images; use a larger share");
  d.stats = channel_stats(d.train.images());
  return d;
}

}  // namespace

TrainingData load_training_data(const DataSpec& spec, uint64_t seed, const DataLoadOptions& options) {
  spec.validate();
  if (!spec.image_folder.empty()) return load_folder(spec, seed, options.observer);
  const std::string dir = cifar10_folder(resolve_data_root(spec.data_dir), spec.download, options.download);
  // The statistics of the whole training split (all classes), as the book computes them, gathered
  // while reading; only the kept classes stay in memory.
  ChannelStats stats;
  auto train = read_cifar10(dir, Split::kTrain, spec.classes, &stats).first(spec.limit_train);
  auto val = read_cifar10(dir, Split::kTest, spec.classes).first(spec.limit_val);
  return {std::move(train), std::move(val), std::move(stats), nlohmann::json::object()};
}

std::string cifar10_folder(const std::string& root, bool download, const DownloadOptions& options) {
  std::string dir = batches_dir(root);
  std::error_code ec;
  const bool present = std::filesystem::exists(std::filesystem::path(dir) / "test_batch.bin", ec) ||
                       std::filesystem::exists(std::filesystem::path(dir) / "data_batch_1.bin", ec);
  if (present || !download) return dir;
#ifdef BIRDPLANE_WITH_DOWNLOAD
  return ensure_cifar10(root, options);
#else
  throw MissingDataError(fmt::format("CIFAR-10 is not in {} and this build has no downloader", dir), root);
#endif
}

nlohmann::json folder_record(const std::string& root, const ImageSet& set, const ImageFolderReport& r) {
  nlohmann::json skipped = nlohmann::json::array();
  for (const auto& s : r.skipped) skipped.push_back({{"file", s.file}, {"reason", s.reason}});
  return {{"folder", root},           {"files", r.files},           {"images", static_cast<int64_t>(*set.size())},
          {"skipped_count", static_cast<int64_t>(r.skipped.size())}, {"skipped", skipped},
          {"from_cache", r.from_cache}, {"cache_file", r.cache_file}, {"image_shape", set.image_shape()}};
}

}  // namespace birdplane::data
