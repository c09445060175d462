// Train a convnet on your own pictures with the installed library, then classify one of them.
//   train_folder FOLDER [EPOCHS] [RUN_DIR]
// FOLDER has one subfolder of images per class (any format birdplane reads, any size); every image is
// brought to 32x32, and a fifth of each class is held out for validation.
#include <filesystem>
#include <iostream>

#include <birdplane/birdplane.h>

namespace bp = birdplane;

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::cerr << "usage: train_folder FOLDER [EPOCHS] [RUN_DIR]\n";
    return 2;
  }
  // The run: which images, which network, how long.
  bp::train::RunSpec spec;
  spec.data.image_folder = argv[1];
  spec.data.image_size = {32, 32};
  spec.data.crop = bp::data::CropMode::kCenter;
  spec.data.val_fraction = 0.2;
  spec.model.name = "net";
  spec.training.epochs = argc > 2 ? std::stoi(argv[2]) : 10;
  const std::filesystem::path run_path = argc > 3 ? argv[3] : "runs/folder-example";
  spec.runs_dir = run_path.parent_path().string();
  spec.name = run_path.filename().string();

  // Reads and caches the folder, creates the run folder, trains, writes model.pt.
  auto run = bp::train::Run::start(spec);
  auto result = run.train();
  std::cout << "validation accuracy " << result.final_val_accuracy << " after " << result.history.size()
            << " epochs, in " << run.path() << "\n";

  // Classify the first image of the folder with the saved model, as another program would.
  auto saved = bp::train::load_checkpoint(run.path() + "/model.pt");
  const auto first = bp::data::list_image_folder(argv[1]).files.front();
  auto image = bp::data::fit_image(bp::data::read_image(first).image, 32, 32, saved.config.crop);
  auto x = bp::transforms::functional::to_normalized(image, saved.config.mean, saved.config.std).unsqueeze(0);
  saved.model->eval();
  const auto probabilities = torch::softmax(saved.model->logits(x), 1)[0];
  const auto best = probabilities.argmax().item<int64_t>();
  std::cout << first << ": " << saved.config.classes[best] << " (" << probabilities[best].item<double>() << ")\n";
  return 0;
} catch (const bp::Error& e) {
  std::cerr << "error: " << e.what() << "\n";
  return 2;
}
