// The pickle of a LibTorch archive (data.pkl), walked without LibTorch before LibTorch reads it
// (private): every tensor storage it declares is checked against the zip entry holding its bytes.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "train/checkpoint/zip_structure.h"

namespace birdplane::train {

/// Walks the archive's pickle (<prefix>/data.pkl, read from `bytes` without LibTorch) and checks every
/// tensor storage it declares against the zip entry holding its bytes: the entry exists and holds at
/// least numel * itemsize bytes (LibTorch 1.13 sizes a storage from the pickle and reads past a short
/// entry). Unknown pickle opcodes, a broken pickle and storage types other than torch's are errors.
/// With `plain_only` (state_dicts), the only callables the pickle may name are the ones a dict of
/// tensors needs (torch._utils._rebuild_tensor_v2, _rebuild_parameter, collections.OrderedDict, and
/// torch.jit._pickle.restore_type_tag, which LibTorch writes for a typed dict).
void check_pickled_storages(const std::vector<char>& bytes, const std::vector<ZipEntry>& entries,
                            const std::string& path, const std::string& what, bool plain_only);

/// Reads the pickle of a state_dict file that check_pickled_storages(..., plain_only) accepted into its
/// entries, in the file's order, without LibTorch's unpickler (which turns Python's OrderedDict into None
/// and so cannot read torch.save(model.state_dict()), torchvision's weight files among them). A dict or
/// OrderedDict of tensors (the OrderedDict's _metadata is ignored), LibTorch's typed dict
/// (restore_type_tag), parameters (_rebuild_parameter). Each tensor is a view of a storage copied from its
/// zip entry (stored, not compressed), its bounds checked. Anything else is an Error naming the file.
std::vector<std::pair<std::string, at::Tensor>> read_state_dict_pickle(const std::vector<char>& bytes,
                                                                       const std::vector<ZipEntry>& entries,
                                                                       const std::string& path);

// The deepest nesting in a graph of values (children[i]: what value i holds), or nullopt when a value
// holds itself, directly or through others (LibTorch's reference-counted values would never be freed).
// Iterative, so a deep graph cannot overflow this stack either.
// (Also the chain of classes naming classes, in module_archive.cpp.)
std::optional<size_t> deepest_nesting(const std::vector<std::vector<size_t>>& children);

}  // namespace birdplane::train
