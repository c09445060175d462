// expect_error(fn, {"part", ...}): fn must throw birdplane::Error whose message holds every part.
#pragma once

#include <functional>
#include <initializer_list>
#include <string>

#include <gtest/gtest.h>

#include "birdplane/check.h"

namespace birdplane::fixtures {

template <typename F>
void expect_error(F fn, std::initializer_list<std::string> parts) {
  try {
    fn();
    ADD_FAILURE() << "expected birdplane::Error";
  } catch (const Error& e) {
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

/// The message of the birdplane::Error that fn throws, or "(no error)".
inline std::string message_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace birdplane::fixtures
