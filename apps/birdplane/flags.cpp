#include "flags.h"

#include <cstdlib>
#include <filesystem>
#include <map>

#include <fmt/format.h>

#include "birdplane/check.h"
#include "birdplane/data/training_data.h"
#include "download_progress.h"

namespace birdplane::cli {

std::string lowercase(std::string text) {
  for (char& ch : text)
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
  return text;
}

std::string data_root(const std::string& data_dir_flag) {
  const char* env = std::getenv("BIRDPLANE_DATA");
  return data::resolve_data_root(data_dir_flag, env ? env : "");
}

#ifdef BIRDPLANE_WITH_DOWNLOAD
data::DownloadOptions download_options(bool quiet) {
  data::DownloadOptions options;
  if (const char* url = std::getenv("BIRDPLANE_CIFAR10_URL"); url && *url) options.url = url;
  if (const char* md5 = std::getenv("BIRDPLANE_CIFAR10_MD5"); md5 && *md5) options.md5 = md5;
  if (const char* small = std::getenv("BIRDPLANE_CIFAR10_ALLOW_SMALL"); small && std::string(small) == "1") {
    options.require_full_size = false;
  }
  attach_download_progress(options, quiet);
  return options;
}
#endif

data::ImageSet load_split(const std::string& data_dir_flag, data::Split split, bool download,
                          const std::vector<std::string>& classes, data::ChannelStats* stats) {
  const std::string root = data_root(data_dir_flag);
#ifdef BIRDPLANE_WITH_DOWNLOAD
  const std::string dir = data::cifar10_folder(root, download, download ? download_options() : data::DownloadOptions());
#else
  const std::string dir = data::cifar10_folder(root, download);
#endif
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

std::string flag_for_setting(const std::string& setting) {
  // Settings whose flag is not simply the name with dashes.
  static const std::map<std::string, std::string> kRenamed = {
      {"init_from", "--init-from"},       {"step_size", "--lr-step-size"}, {"milestones", "--lr-milestones"},
      {"gamma", "--lr-gamma"},            {"anneal", "--anneal-linear"},   {"final_best", "--final-model"},
      {"mixup_alpha", "--mixup"},         {"cutmix_alpha", "--cutmix"}};
  if (auto it = kRenamed.find(setting); it != kRenamed.end()) return it->second;
  std::string flag = "--" + setting;
  for (char& c : flag)
    if (c == '_') c = '-';
  return flag;
}

}  // namespace birdplane::cli
