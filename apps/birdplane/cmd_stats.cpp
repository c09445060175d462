// birdplane stats: per-channel mean and std, the book's normalization constants.
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "birdplane/data/stats.h"
#include "commands.h"
#include "flags.h"
#include "progress.h"

namespace birdplane::cli {
namespace {

struct StatsOptions {
  std::string data_dir;
  std::string split = "train";
  std::string classes;
  bool json = false;
  bool no_download = false;
  std::string image_folder;
  FolderFlags folder;
};

void run_stats(const StatsOptions& o) {
  const auto classes = data::parse_class_list(o.classes);
  data::ImageSet set = [&] {
    if (!o.image_folder.empty()) {
      auto options = folder_options(o.folder);
      options.classes = classes;
      return read_folder_with_progress(o.image_folder, options);
    }
    return load_split(o.data_dir, data::parse_split(o.split), !o.no_download, classes);
  }();
  const std::string what = o.image_folder.empty() ? o.split + " split," : o.image_folder + ":";
  const auto s = data::channel_stats(set.images());
  if (o.json) {
    nlohmann::json j;
    if (o.image_folder.empty()) {
      j["split"] = o.split;
    } else {
      j["image_folder"] = o.image_folder;
    }
    j["classes"] = set.class_names();
    j["images"] = set.images().size(0);
    j["mean"] = s.mean;
    j["std"] = s.std;
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::cout << fmt::format("{} {} images, classes: {}\n", what, set.images().size(0),
                           fmt::join(set.class_names(), ","));
  std::cout << fmt::format("mean  ({:.4f})\n", fmt::join(s.mean, ", "));
  std::cout << fmt::format("std   ({:.4f})\n", fmt::join(s.std, ", "));
}

}  // namespace

void setup_stats(CLI::App& app) {
  auto o = std::make_shared<StatsOptions>();
  auto* cmd = app.add_subcommand("stats", "Per-channel mean and std of a split after ToTensor "
                                          "(unbiased std), the constants for Normalize");
  add_data_dir(*cmd, o->data_dir);
  cmd->add_option("--split", o->split, "train or test (CIFAR-10)")->capture_default_str();
  cmd->add_option("--image-folder", o->image_folder,
                  "Statistics of an image folder (one subfolder per class) instead of CIFAR-10");
  add_folder_flags(*cmd, o->folder, /*with_size=*/true);
  cmd->add_option("--classes", o->classes, "Comma-separated class names, e.g. airplane,bird (default: all)");
  cmd->add_flag("--json", o->json, "Print JSON instead of text");
  cmd->add_flag("--no-download", o->no_download, "Fail instead of downloading CIFAR-10 when it is missing");
  cmd->callback([o] { run_stats(*o); });
}

}  // namespace birdplane::cli
