// Augmentation specs for `birdplane train --augment`: a readable list such as
// "RandomCrop(32, padding=4), RandomHorizontalFlip()" or the short aliases "crop" (RandomCrop(32,
// padding=4)) and "flip" (RandomHorizontalFlip(0.5)), parsed into a batch transform.
#pragma once

#include <string>

#include "birdplane/data/batch_loader.h"

namespace birdplane::transforms {

/// Parses `spec` into a transform on whole uint8 batches [B,3,32,32] that draws each image's
/// parameters from the generator it is given. An empty spec gives the identity. Errors name
/// --augment, the column and what is allowed.
data::BatchTransform parse_augment(const std::string& spec);

/// parse_augment(spec) followed by ToTensor + Normalize(mean, std): what the trainer applies.
data::BatchTransform augment_then_normalize(const std::string& spec, std::vector<double> mean,
                                            std::vector<double> std);

}  // namespace birdplane::transforms
