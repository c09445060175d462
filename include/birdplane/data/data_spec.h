// The data part of a run specification: where a run's images come from (CIFAR-10 or an image folder)
// and how they are read, split and cut. One JSON form, written into config.json under "data".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "birdplane/data/image_folder.h"
#include "birdplane/data/image_io.h"

namespace birdplane::data {

/// Every data setting of a run. Setting names in errors are these field names ("val_fraction", ...).
struct DataSpec {
  /// CIFAR-10: the folder holding cifar-10-batches-bin (or the batches themselves); "" means "data".
  std::string data_dir;
  /// CIFAR-10: download the archive into data_dir when the training batches are missing.
  bool download = true;
  /// Training images, one subfolder per class (torchvision's ImageFolder layout); "" : CIFAR-10.
  std::string image_folder;
  /// Validation images in the same layout as image_folder ("" : none).
  std::string val_folder;
  /// Or this share of each class of image_folder, drawn with the run's seed (0: none).
  double val_fraction = 0;
  /// Image folders: {height, width} every image is brought to; empty: the images' own size.
  std::vector<int64_t> image_size;
  /// Image folders: how images of another aspect ratio reach image_size.
  CropMode crop = CropMode::kNone;
  /// Image folders: refuse images declaring more pixels than this (decompression bombs).
  int64_t max_pixels = kDefaultMaxPixels;
  /// Image folders: leave out files that cannot be decoded instead of stopping.
  bool skip_bad_images = false;
  /// Image folders: where the decoded cache goes ("" : .birdplane-cache beside the folder).
  std::string cache_dir;
  /// Image folders: read and write the cache.
  bool use_cache = true;
  /// Only these classes, labelled in this order; empty: all ten, or every class folder.
  std::vector<std::string> classes;
  /// Use only the first N training / validation images (0: all).
  int64_t limit_train = 0;
  int64_t limit_val = 0;

  /// How image_folder (and val_folder) are read: classes, image_size, crop, max_pixels,
  /// skip_bad_images, cache_dir, use_cache.
  ImageFolderOptions folder_options() const;
  /// Takes image_size, crop, max_pixels, skip_bad_images, cache_dir and use_cache from `options`.
  void set_folder_options(const ImageFolderOptions& options);

  /// Throws a SettingError naming the setting when a value is out of range or two settings conflict.
  void validate() const;
  nlohmann::json to_json() const;
  /// Reads what to_json wrote; keys that are missing keep their defaults (files from before they existed).
  static DataSpec from_json(const nlohmann::json& j);
};

}  // namespace birdplane::data
