// Lighter repetitions for the AddressSanitizer build (scripts/test --sanitize, run by CI after the
// Release suite). Under the sanitizer every process start and every step costs about three times what
// it costs in Release; the tests that repeat one scenario many times (random kills, long lists of bad
// flags that each start the program) repeat it fewer times there. Every code path still runs under the
// sanitizer, and the Release suite still runs every repetition.
#pragma once

#include <cstddef>

namespace birdplane::fixtures {

#if defined(__SANITIZE_ADDRESS__)  // GCC; clang says __has_feature(address_sanitizer)
inline constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
#else
inline constexpr bool kSanitized = false;
#endif

// `release` repetitions in the Release suite, `sanitized` under the sanitizer.
constexpr int repeats(int release, int sanitized) { return kSanitized ? sanitized : release; }

// For a list of cases that each start the program: every case in Release; under the sanitizer every
// second one (the even indices).
constexpr bool run_case(std::size_t index) { return !kSanitized || index % 2 == 0; }

}  // namespace birdplane::fixtures
