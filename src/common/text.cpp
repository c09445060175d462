#include "common/text.h"

#include <cctype>
#include <cmath>
#include <cstdint>

#include <fmt/format.h>

namespace birdplane {

char to_lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

std::string to_lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = to_lower(c);
  return out;
}

std::string trim(std::string_view s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return "";
  const size_t e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

std::string join(const std::vector<std::string>& items, std::string_view separator) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += separator;
    out += items[i];
  }
  return out;
}

std::string python_repr(double v) {
  if (std::isnan(v)) return "nan";  // fmt writes "-nan" for a negative NaN; Python never does
  // fmt's "{}" is the shortest round-trip text and switches to exponent form where Python's repr does
  // (below 1e-4, from 1e16 up); it only leaves out Python's ".0" on whole numbers.
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s;
}

std::string python_number(double v) {
  // Whole values from 1e16 up keep python_repr's exponent form, as the copies this replaced did.
  if (v == std::floor(v) && std::fabs(v) < 1e16) return fmt::format("{}", static_cast<int64_t>(v));
  return python_repr(v);
}

}  // namespace birdplane
