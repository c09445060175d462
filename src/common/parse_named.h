// Reading an enum back from its name (private): the one loop behind parse_precision, parse_device,
// parse_step, parse_optimizer and parse_activation.
#pragma once

#include <cstddef>
#include <string>

#include "birdplane/check.h"

namespace birdplane {

/// The value among `values` whose to_string() is `text`; otherwise a SettingError for `setting`
/// that lists the names ("'fp16' is not supported; expected fp32 or bf16").
template <typename E, size_t N>
E parse_named(const E (&values)[N], const std::string& text, const char* setting) {
  std::string expected;
  for (size_t i = 0; i < N; ++i) {
    if (to_string(values[i]) == text) return values[i];
    expected += (i == 0 ? "" : i + 1 == N ? " or " : ", ") + to_string(values[i]);
  }
  fail_setting(setting, "'{}' is not supported; expected {}", text, expected);
}

}  // namespace birdplane
