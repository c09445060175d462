// Transform pipelines written as text, the way they read in Python:
// "RandomCrop(32, padding=4), RandomHorizontalFlip()" or the short aliases "crop" (RandomCrop(32,
// padding=4)) and "flip" (RandomHorizontalFlip(0.5)). Arguments are numbers, quoted or bare words
// (padding_mode=reflect), lists in [] or (), and nested transforms (RandomApply([Grayscale(3)],
// p=0.2)). Names and keywords follow torchvision's.
#pragma once

#include <string>
#include <vector>

#include "birdplane/transforms/batch.h"
#include "birdplane/transforms/transforms.h"

namespace birdplane::transforms {

/// Parses `spec` into a Compose of the transforms it lists (an empty spec gives an empty Compose).
/// Errors name `origin` (a flag or file), the column and what is allowed.
TransformPtr parse_transforms(const std::string& spec, const std::string& origin = "transform spec");

/// The transform names parse_transforms knows, with a one-line usage each ("RandomCrop(size,
/// padding=0, ...)").
std::vector<std::string> known_transforms();

/// parse_transforms(spec, "--augment") as a transform on whole uint8 batches [B,3,H,W] that draws
/// each image's parameters from the generator it is given. The result must stay a uint8 batch of the
/// input's shape (the trainer normalizes it); anything else is an error naming --augment.
BatchTransform parse_augment(const std::string& spec);

/// parse_augment(spec) followed by ToTensor + Normalize(mean, std): what the trainer applies.
BatchTransform augment_then_normalize(const std::string& spec, std::vector<double> mean,
                                            std::vector<double> std);

}  // namespace birdplane::transforms
