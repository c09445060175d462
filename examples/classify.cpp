// Classify image files with a model birdplane saved: classify runs/<name>/model.pt photo.jpg ...
#include <iostream>

#include <birdplane/deploy/predictor.h>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: classify MODEL.pt IMAGE...\n";
    return 2;
  }
  try {
    const birdplane::deploy::Predictor predictor(argv[1]);  // the model and its preprocessing, loaded once
    for (int i = 2; i < argc; ++i) {
      std::cout << argv[i] << ":";
      for (const auto& [name, probability] : predictor.classify_file(argv[i], 3).top)
        std::cout << " " << name << " " << probability;
      std::cout << "\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
}
