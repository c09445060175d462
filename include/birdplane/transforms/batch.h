// What the batch loader applies to each batch: a function of a whole uint8 batch and a generator.
// Lives with the transforms (which build such functions from specs) so that data/ depends on
// transforms/ and never the other way round.
#pragma once

#include <functional>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

namespace birdplane::transforms {

/// A function applied to each whole uint8 batch [B,C,H,W]; it may draw random numbers from the
/// generator it is given (the loader seeds one per batch from the seed, the epoch and the batch's
/// index, so a run is reproducible with any number of loader workers).
using BatchTransform = std::function<at::Tensor(const at::Tensor& images_u8, at::Generator& gen)>;

/// ToTensor then Normalize(mean, std) in one pass (functional::to_normalized): uint8 [B,C,H,W] to
/// float32, one mean and std per channel. The loader's default transform.
BatchTransform normalize_batches(std::vector<double> mean, std::vector<double> std);

}  // namespace birdplane::transforms
