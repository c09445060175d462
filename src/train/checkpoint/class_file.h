// The class definitions of a LibTorch module archive (code/*.py), parsed line by line before LibTorch
// compiles them (private).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace birdplane::train {

// The class definitions LibTorch writes for a torch::serialize::OutputArchive (code/__torch__.py and
// code/__torch__/___torch_mangle_N.py), line by line:
//   class Module(Module):
//     __parameters__ = ["weight", "bias", ]
//     __buffers__ = []
//     __annotations__ = []
//     __annotations__["params/0"] = str
//     lr : float
//     model : __torch__.___torch_mangle_0.Module
// LibTorch 1.13 compiles these with its TorchScript front end, which crashes on malformed source (a
// damaged `__buffers__` line read freed memory). So nothing else reaches it: each file must be made of
// exactly these lines, its types from a short list, its class references to files in the archive.
struct ClassFile {
  std::vector<std::string> refs;  ///< the classes its attributes name, as code/ paths
};

// True when `text` is exactly such a file; the classes its attributes name go to file.refs.
bool read_class_file(std::string_view text, ClassFile& file);

// code/__torch__.py or code/__torch__/___torch_mangle_N.py: where LibTorch puts a class it names
// __torch__.Module or __torch__.___torch_mangle_N.Module.
bool class_path_is_known(const std::string& file);

}  // namespace birdplane::train
