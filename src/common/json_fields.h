// Checks on JSON read back from files (config.json), shared by the spec readers.
#pragma once

#include <algorithm>
#include <initializer_list>

#include <nlohmann/json.hpp>

#include "birdplane/check.h"

namespace birdplane::json_fields {

/// A SettingError when one of `keys` in object `j` holds a floating-point number (or a list with one):
/// nlohmann's get<int64_t>() converts those with a plain cast, and 1e118 there is undefined behaviour
/// (found by fuzz/config_resume.cpp). Whole-number settings must be written as such.
inline void require_whole(const nlohmann::json& j, std::initializer_list<const char*> keys) {
  if (!j.is_object()) return;
  for (const char* key : keys) {
    if (!j.contains(key)) continue;
    const nlohmann::json& v = j.at(key);
    const bool whole = v.is_array() ? std::all_of(v.begin(), v.end(),
                                                  [](const nlohmann::json& e) { return !e.is_number_float(); })
                                    : !v.is_number_float();
    if (!whole) fail_setting(key, "{} is not a whole number (or a list of them)", v.dump());
  }
}

}  // namespace birdplane::json_fields
