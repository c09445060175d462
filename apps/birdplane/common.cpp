#include "common.h"

#include <filesystem>

#include "birdplane/check.h"
#ifdef BIRDPLANE_WITH_DOWNLOAD
#include "birdplane/data/download.h"
#endif

namespace birdplane::cli {

data::Cifar10 load_split(const std::string& data_dir_flag, data::Split split, bool download,
                         const std::vector<std::string>& classes, data::ChannelStats* stats) {
  const std::string root = data::resolve_data_root(data_dir_flag);
  std::string dir = data::batches_dir(root);
  std::error_code ec;
  const bool present = std::filesystem::exists(std::filesystem::path(dir) / "test_batch.bin", ec) ||
                       std::filesystem::exists(std::filesystem::path(dir) / "data_batch_1.bin", ec);
  if (!present && download) {
#ifdef BIRDPLANE_WITH_DOWNLOAD
    dir = data::ensure_cifar10(root, data::default_download_options());
#else
    fail("CIFAR-10 is not in {} and this build has no downloader; copy the files there", dir);
#endif
  }
  return data::Cifar10::read_classes(dir, split, classes, stats);
}

TrainingData load_training_data(const train::TrainConfig& cfg, bool download) {
  // The statistics of the whole training split (all classes), as the book computes them, gathered
  // while reading; only the kept classes stay in memory.
  data::ChannelStats stats;
  auto train_set = load_split(cfg.data_dir, data::Split::kTrain, download, cfg.classes, &stats).first(cfg.limit_train);
  auto val_set = load_split(cfg.data_dir, data::Split::kTest, false, cfg.classes).first(cfg.limit_val);
  return {std::move(train_set), std::move(val_set), std::move(stats)};
}

}  // namespace birdplane::cli
