// A torchvision-style transforms pipeline, parsed from a spec, applied to an image file.
//   apply_transforms IN_IMAGE OUT.png ["SPEC"] [SEED]
// e.g. apply_transforms bird.png out.png "RandomResizedCrop(64), RandomHorizontalFlip(), ColorJitter(0.4, 0.4)"
#include <iostream>

#include <ATen/CPUGeneratorImpl.h>
#include <birdplane/birdplane.h>

namespace bp = birdplane;

int main(int argc, char** argv) try {
  if (argc < 3) {
    std::cerr << "usage: apply_transforms IN_IMAGE OUT.png [SPEC] [SEED]\n";
    return 2;
  }
  const std::string spec = argc > 3 ? argv[3] : "RandomHorizontalFlip(p=1.0), ColorJitter(brightness=0.5)";
  const uint64_t seed = argc > 4 ? std::stoull(argv[4]) : 123;

  auto image = bp::data::read_image(argv[1]).image;  // uint8 [3,H,W], RGB
  auto pipeline = bp::transforms::parse_transforms(spec, "the spec");
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto out = pipeline->forward(image, gen);
  bp::data::write_png(argv[2], out);
  std::cout << pipeline->repr() << "\n" << argv[1] << " " << image.sizes() << " -> " << argv[2] << " "
            << out.sizes() << "\n";
  return 0;
} catch (const bp::Error& e) {
  std::cerr << "error: " << e.what() << "\n";
  return 2;
}
