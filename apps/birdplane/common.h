// Helpers shared by subcommands.
#pragma once

#include <string>
#include <vector>

#include "birdplane/data/cifar10.h"
#include "birdplane/data/stats.h"
#include "birdplane/train/trainer.h"

namespace birdplane::cli {

/// Loads a split from --data-dir (or $BIRDPLANE_DATA, or ./data), downloading CIFAR-10 first when
/// it is missing and `download` is true; otherwise a missing folder is an error that says how to
/// get the data. Only the named `classes` are kept (all when empty; see Cifar10::read_classes); with
/// `stats`, the channel statistics of the whole split are gathered while reading.
data::Cifar10 load_split(const std::string& data_dir_flag, data::Split split, bool download,
                         const std::vector<std::string>& classes = {}, data::ChannelStats* stats = nullptr);

/// What a training run reads: the training and validation sets of cfg.classes (cut to --limit-train /
/// --limit-val), and the normalization statistics of the whole training split (as the book computes
/// them, before taking a class subset).
struct TrainingData {
  data::Cifar10 train, val;
  data::ChannelStats stats;
};

/// Loads TrainingData for `cfg` (downloading the training split first when missing and `download`).
TrainingData load_training_data(const train::TrainConfig& cfg, bool download);

}  // namespace birdplane::cli
