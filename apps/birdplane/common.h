// Helpers shared by subcommands.
#pragma once

#include <string>

#include "birdplane/data/cifar10.h"

namespace birdplane::cli {

/// Loads a split from --data-dir (or $BIRDPLANE_DATA, or ./data), downloading CIFAR-10 first when
/// it is missing and `download` is true; otherwise a missing folder is an error that says how to
/// get the data.
data::Cifar10 load_split(const std::string& data_dir_flag, data::Split split, bool download);

}  // namespace birdplane::cli
