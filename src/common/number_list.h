// Reading comma-separated settings (private): "30,60,90", "1,2.5", "0:0.2,0.23:1". The one splitter
// and the two number readers behind parse_milestones, parse_points and the class weights.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace birdplane {

/// `text` cut at every `separator`, each item trimmed; empty items stay (so "1,,2" has three).
std::vector<std::string> split_list(const std::string& text, char separator);

/// A whole number filling all of `text` (no sign other than '-', no spaces, no fraction).
bool parse_whole(const std::string& text, int64_t& value);

/// A finite decimal number filling all of `text`.
bool parse_finite(const std::string& text, double& value);

}  // namespace birdplane
