// The base of the library's typed errors about one file or folder: a front end catches the kind it
// can say more about (how to get the data, which flag continues a run) and names path() in its words.
#pragma once

#include <string>
#include <utility>

#include "birdplane/check.h"

namespace birdplane {

/// An Error about the file or folder path().
class PathError : public Error {
 public:
  PathError(const std::string& what, std::string path) : Error(what), path_(std::move(path)) {}
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace birdplane
