// Crash-safe file writes (private): a temporary file beside the target, flushed to disk, then renamed
// over it, so a reader or a crash sees the old file or the whole new one, never a torn one.
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace birdplane {

/// Writes `path` by calling `write(tmp_path)`, fsyncs the temporary file, renames it over `path` and
/// fsyncs the folder. The folder must exist. On any error the temporary file is removed, the old
/// file is left as it was, and an Error names `path`.
void write_atomically(const std::string& path, const std::function<void(const std::string& tmp)>& write);

/// write_atomically with `bytes` as the whole content; a short write (a full disk) is an Error.
void write_file_atomically(const std::string& path, std::string_view bytes);

}  // namespace birdplane
