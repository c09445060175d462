// The user's own images: a folder with one subfolder per class, the layout of torchvision's
// datasets.ImageFolder. Files are decoded once, on all cores, brought to one size, and kept in a cache
// file that later runs map into memory instead of decoding again.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "birdplane/check.h"
#include "birdplane/data/image_decode.h"
#include "birdplane/data/image_io.h"
#include "birdplane/data/image_set.h"

namespace birdplane::data {

/// torchvision's IMG_EXTENSIONS, the files ImageFolder lists (compared case-insensitively):
/// .jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp. (.gif is not among them, as in torchvision;
/// .tif/.tiff files are listed but birdplane cannot decode them: they are bad images.)
const std::vector<std::string>& image_folder_extensions();

/// Whether `name` ends in one of `extensions` (".png", ...; compared case-insensitively), with something
/// before it.
bool has_extension(const std::string& name, const std::vector<std::string>& extensions);

/// What a file was when it was listed: size, modification time and inode (-1 where it could not be
/// read). A folder's cache is keyed by these, so a changed or replaced file is decoded again.
struct FileStamp {
  int64_t size = -1;
  int64_t mtime_seconds = -1;
  int64_t mtime_nanoseconds = -1;
  int64_t inode = -1;
};

/// The files of an image folder in ImageFolder's order: classes are the subfolders of `root` sorted
/// by name and numbered from 0; each class's files are found recursively (following symbolic links),
/// folders visited in sorted path order and files sorted within each folder.
struct FolderListing {
  std::string root;
  std::vector<std::string> class_names;
  std::vector<std::string> files;  ///< paths as root/class/...
  std::vector<int64_t> labels;     ///< the class of each file
  std::vector<FileStamp> stamps;   ///< each file's stamp, taken as it was listed
};

/// Lists `root`. Throws birdplane::Error naming the folder when it is missing, not a folder, has no
/// class subfolders, when a class folder holds no image file (or cannot be read), or when a symbolic
/// link leads back into a folder it is inside (a loop).
FolderListing list_image_folder(const std::string& root);

/// Progress of decoding a folder, reported from the calling thread.
struct FolderProgress {
  int64_t done = 0;
  int64_t total = 0;
  double seconds = 0;
};

/// How read_image_folder decodes and where it caches.
struct ImageFolderOptions {
  /// Only these classes, labelled in this order (as ImageSet::subset); empty: every class folder.
  std::vector<std::string> classes;
  /// {height, width} of every image; empty: the images' own size when all agree (else an Error asking
  /// for a size).
  std::vector<int64_t> image_size;
  /// How images of another size or aspect ratio reach image_size (see fit_image).
  CropMode crop = CropMode::kNone;
  /// Refuse images declaring more pixels than this (decompression bombs).
  int64_t max_pixels = kDefaultMaxPixels;
  /// Leave out files that cannot be decoded (listed in the report) instead of stopping at the first.
  bool skip_bad_images = false;
  /// Read and write the cache file.
  bool use_cache = true;
  /// Where cache files go; empty: a folder .birdplane-cache beside `root` (in root's parent folder).
  std::string cache_dir;
  /// Called from the calling thread about ten times a second while decoding.
  std::function<void(const FolderProgress&)> on_progress;
};

/// The error for an image file that cannot be read while skip_bad_images is off: what() is the decoder's
/// message (naming the file); file() and reason() let a front end add how to go past it.
class BadImageError : public Error {
 public:
  BadImageError(std::string file, const std::string& reason)
      : Error(reason + " (skip_bad_images leaves such files out)"), file_(std::move(file)), reason_(reason) {}
  const std::string& file() const { return file_; }
  const std::string& reason() const { return reason_; }

 private:
  std::string file_;
  std::string reason_;
};

/// A file read_image_folder left out, and why.
struct SkippedImage {
  std::string file;
  std::string reason;
};

/// What read_image_folder did.
struct ImageFolderReport {
  int64_t files = 0;                  ///< image files listed (of the kept classes)
  std::vector<SkippedImage> skipped;  ///< with skip_bad_images
  bool from_cache = false;            ///< the pixels came from the cache file
  std::string cache_file;             ///< the cache file read or written ("" when none)
  std::string cache_note;             ///< why no cache was read or written, when that happened
  double seconds = 0;                 ///< listing, decoding and caching
};

/// The images of an image folder as an ImageSet (uint8 [N,3,H,W], labels, class names), decoded on
/// LibTorch's threads (at::get_num_threads()). With
/// use_cache, a cache file whose key matches (the file list, each file's size and modification time,
/// the classes and the preprocessing) is mapped into memory instead of decoding; otherwise the files
/// are decoded on all cores and the cache is written atomically (a half-written cache is never read).
/// Throws BadImageError for a bad image (unless skip_bad_images), a SettingError for "image_size" when
/// no size was given and the images differ in size, and what list_image_folder throws.
ImageSet read_image_folder(const std::string& root, const ImageFolderOptions& options = {},
                           ImageFolderReport* report = nullptr);

/// A training and a validation part of one set.
struct TrainValSplit {
  ImageSet train, val;
};

/// Splits `set` per class: of each class's n images, round(n * val_fraction) go to validation (at least
/// one when n >= 2 and val_fraction > 0; at most n - 1), chosen by a shuffle seeded with `seed`; both
/// parts keep the original order. val_fraction must be in (0, 1) (a SettingError for "val_fraction").
TrainValSplit split_stratified(const ImageSet& set, double val_fraction, uint64_t seed);

/// Parses "H" or "H,W" (or "HxW") into {H, W}; a SettingError for "image_size" otherwise.
std::vector<int64_t> parse_image_size(const std::string& text);

}  // namespace birdplane::data
