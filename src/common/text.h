// Small text helpers shared across the library and the command line (private).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace birdplane {

/// `s` without leading and trailing spaces, tabs and line ends.
std::string trim(std::string_view s);

/// The items joined with `separator` between them ("a, b, c").
std::string join(const std::vector<std::string>& items, std::string_view separator = ", ");

}  // namespace birdplane
