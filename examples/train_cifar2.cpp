// The book's chapter 7 with the installed library: book-small on airplanes vs birds.
//   train_cifar2 DATA_DIR [EPOCHS] [RUN_DIR]
// DATA_DIR holds cifar-10-batches-bin/ (or is it). The run folder (default runs/example) gets
// config.json, metrics.csv, checkpoint.pt, model.pt and results.json.
#include <iostream>

#include <birdplane/birdplane.h>

namespace bp = birdplane;

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::cerr << "usage: train_cifar2 DATA_DIR [EPOCHS] [RUN_DIR]\n";
    return 2;
  }
  const std::string dir = bp::data::batches_dir(argv[1]);
  const std::vector<std::string> classes = {"airplane", "bird"};

  // Read: the two classes, and the whole training split's channel statistics for Normalize.
  bp::data::ChannelStats stats;
  auto train_set = bp::data::read_cifar10(dir, bp::data::Split::kTrain, classes, &stats);
  auto val_set = bp::data::read_cifar10(dir, bp::data::Split::kTest, classes);

  // The model and how to train it: the book's settings, SGD with lr 1e-2, batches of 64.
  bp::train::RunSpec config;
  config.model.name = "book-small";
  config.training.epochs = argc > 2 ? std::stoi(argv[2]) : 10;
  config.training.batch_size = 64;
  config.training.optimizer.lr = 1e-2;

  // Train into a run folder; the trainer loads shuffled batches and normalizes them.
  bp::train::Trainer trainer(config, train_set, val_set, stats.mean, stats.std);
  auto run_dir = bp::train::RunDir::create(argc > 3 ? argv[3] : "runs/example");
  run_dir.write_config(trainer.run_record());
  auto result = trainer.run(run_dir);

  // Evaluate the saved model, as another program would.
  auto saved = bp::train::load_checkpoint(run_dir.model_path());
  auto eval = bp::train::evaluate(*saved.model, val_set, saved.config, c10::Device(c10::kCPU));
  std::cout << "birdplane " << bp::version() << ": " << saved.config.spec.name << " after " << config.training.epochs
            << " epochs, train accuracy " << result.final_train_accuracy << ", validation accuracy "
            << eval.confusion.accuracy() << "\n" << eval.confusion.format(saved.config.classes);
  return 0;
} catch (const bp::Error& e) {
  std::cerr << "error: " << e.what() << "\n";
  return 2;
}
