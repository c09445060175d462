// Precompiled header: the LibTorch front end is the bulk of every translation unit's compile time.
#pragma once
#include <torch/torch.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>
