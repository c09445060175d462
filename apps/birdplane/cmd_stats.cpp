// birdplane stats: per-channel mean and std, the book's normalization constants.
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "birdplane/data/stats.h"
#include "commands.h"
#include "common.h"

namespace birdplane::cli {
namespace {

struct StatsOptions {
  std::string data_dir;
  std::string split = "train";
  std::string classes;
  bool json = false;
  bool no_download = false;
};

void run_stats(const StatsOptions& o) {
  const auto split = data::parse_split(o.split);
  auto set = load_split(o.data_dir, split, !o.no_download, data::parse_class_list(o.classes));
  const auto s = data::channel_stats(set.images());
  if (o.json) {
    nlohmann::json j;
    j["split"] = o.split;
    j["classes"] = set.class_names();
    j["images"] = set.images().size(0);
    j["mean"] = s.mean;
    j["std"] = s.std;
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::cout << fmt::format("{} split, {} images, classes: {}\n", o.split, set.images().size(0),
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
  cmd->add_option("--split", o->split, "train or test")->capture_default_str();
  cmd->add_option("--classes", o->classes, "Comma-separated class names, e.g. airplane,bird (default: all ten)");
  cmd->add_flag("--json", o->json, "Print JSON instead of text");
  cmd->add_flag("--no-download", o->no_download, "Fail instead of downloading CIFAR-10 when it is missing");
  cmd->callback([o] { run_stats(*o); });
}

}  // namespace birdplane::cli
