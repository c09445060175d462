// What a training run reads, from the data part of its specification: the training and validation
// sets, the normalization statistics and a record of what was read (for config.json). CIFAR-10 is
// downloaded when missing (if the spec allows); an image folder is decoded once and cached.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "birdplane/data/cifar10.h"
#include "birdplane/data/data_spec.h"
#include "birdplane/data/download.h"
#include "birdplane/data/image_folder.h"
#include "birdplane/data/image_set.h"
#include "birdplane/data/stats.h"

namespace birdplane::data {

/// What load_training_data reports while it reads. Every method has an empty default; all are called
/// on the thread that called load_training_data.
class DataObserver {
 public:
  virtual ~DataObserver() = default;
  /// While the image folder `root` is decoded, about ten times a second.
  virtual void on_folder_progress(const std::string& root, const FolderProgress& progress) {}
  /// After the image folder `root` was read (decoded, or mapped from its cache).
  virtual void on_folder_read(const std::string& root, const ImageSet& set, const ImageFolderReport& report) {}
};

/// How load_training_data fetches what is missing and whom it tells.
struct DataLoadOptions {
  /// CIFAR-10's archive (address, checksum, progress callbacks), used when DataSpec::download is set
  /// and the training batches are missing.
  DownloadOptions download;
  DataObserver* observer = nullptr;
};

/// The data of a run: training and validation sets of spec.classes (cut to limit_train / limit_val),
/// the normalization statistics, and `record`, what was read (for config.json; image folders only).
/// For CIFAR-10 the statistics are those of the whole training split, all classes, as the book
/// computes them before taking the subset; for an image folder, those of the training images.
struct TrainingData {
  ImageSet train, val;
  ChannelStats stats;
  nlohmann::json record = nlohmann::json::object();
};

/// Reads what `spec` describes (spec.validate() first): from spec.image_folder when set (validation
/// from val_folder, or a stratified val_fraction drawn with `seed`), else CIFAR-10 from spec.data_dir.
/// Throws SettingError naming the setting, MissingDataError, BadImageError (a bad image without
/// skip_bad_images) and the readers' Errors naming the file.
TrainingData load_training_data(const DataSpec& spec, uint64_t seed, const DataLoadOptions& options = {});

/// The cifar-10-batches-bin folder of data root `root` (batches_dir), downloaded first with `options`
/// when it holds neither split and `download` is set (a MissingDataError when this build has no
/// downloader).
std::string cifar10_folder(const std::string& root, bool download, const DownloadOptions& options = {});

/// The JSON record of one image folder read: files, images, skipped files with reasons, the cache
/// file and whether the pixels came from it, the image shape.
nlohmann::json folder_record(const std::string& root, const ImageSet& set, const ImageFolderReport& report);

}  // namespace birdplane::data
