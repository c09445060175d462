// Small text helpers shared by the library and the command-line program (private: include as
// "common/text.h" with src/ on the include path).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace birdplane {

/// `c` in lower case, as std::tolower does in the current locale ("C" unless changed): ASCII
/// letters only, other bytes unchanged.
char to_lower(char c);

/// `text` with every byte put through to_lower(char).
std::string to_lower(std::string_view text);

/// `s` without leading and trailing spaces, tabs and line ends.
std::string trim(std::string_view s);

/// The items joined with `separator` between them ("a, b, c").
std::string join(const std::vector<std::string>& items, std::string_view separator = ", ");

/// Python's repr() of a float: the shortest text that reads back as the same double, with ".0" on
/// whole numbers ("10.0", "0.1", "1e-05", "1e+16", "-0.0", "inf", "nan"). Used where a transform
/// prints itself like torchvision and the value is a float there.
std::string python_repr(double v);

/// A number as a Python user most likely wrote it: a whole value below 1e16 prints as an int ("2",
/// "128"), anything else as python_repr. For options torchvision takes as int or float whose
/// defaults and usual values are ints (RandomErasing's value=0, RandomSolarize's threshold=128).
std::string python_number(double v);

}  // namespace birdplane
