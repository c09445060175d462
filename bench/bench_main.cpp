// birdplane_bench MODE [args]: timings for bench/run.py, one JSON line on stdout.
//   load DATA_DIR            read the training split from disk and build the normalized cifar2 set
//   epoch DATA_DIR MODEL N [SPEC]  N epochs of MODEL on cifar2 (batch 64, SGD lr 1e-2), with the
//                            --augment SPEC when given; seconds per epoch
//   augment DATA_DIR SPEC N [normalize]  N passes of the batch loader over cifar2 with SPEC on uint8
//                            batches (then ToTensor + Normalize with "normalize", what training
//                            consumes): images per second per pass
//   transform DATA_DIR SPEC N  the transform alone on in-memory uint8 batches of 64: images/s
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "birdplane/data/cifar10.h"
#include "birdplane/data/stats.h"
#include "birdplane/train/metrics.h"
#include "birdplane/train/trainer.h"
#include "birdplane/data/batch_loader.h"
#include "birdplane/transforms/functional.h"
#include "birdplane/transforms/spec.h"

using namespace birdplane;

namespace {

nlohmann::json bench_load(const std::string& dir) {
  train::Timer t;
  data::Cifar10 train_set(dir, data::Split::kTrain);
  const double read_s = t.seconds();
  // The book normalizes with constants it computed before; use the same fixed constants.
  const std::vector<double> mean = {0.4915, 0.4823, 0.4468}, std = {0.2470, 0.2435, 0.2616};
  auto cifar2 = train_set.subset({"airplane", "bird"});
  auto x = transforms::functional::to_normalized(cifar2.images(), mean, std);
  const double total = t.seconds();
  return {{"mode", "load"}, {"read_seconds", read_s}, {"seconds", total}, {"images", x.size(0)},
          {"checksum", x.sum().item<double>()}};
}

nlohmann::json bench_augment(const std::string& dir, const std::string& spec, int64_t passes, bool normalize) {
  data::Cifar10 train_full(dir, data::Split::kTrain);
  auto stats = data::channel_stats(train_full.images());
  auto train_set = train_full.subset({"airplane", "bird"});
  data::BatchLoader loader(train_set, data::BatchLoaderOptions(64),
                           normalize ? transforms::augment_then_normalize(spec, stats.mean, stats.std)
                                     : transforms::parse_augment(spec));
  std::vector<double> rates;
  double checksum = 0;
  for (int64_t e = 0; e < passes; ++e) {
    train::Timer t;
    int64_t images = 0;
    loader.start_epoch(e);
    while (auto b = loader.next()) {
      images += b->images.size(0);
      checksum += b->images[0][0][0][0].item<double>();  // touch the batch, as a consumer would
    }
    rates.push_back(static_cast<double>(images) / t.seconds());
  }
  return {{"mode", "augment"}, {"spec", spec}, {"normalize", normalize}, {"images_per_second", rates},
          {"checksum", checksum}};
}

// The transform alone on contiguous uint8 batches of 64 already in memory: images per second.
nlohmann::json bench_transform(const std::string& dir, const std::string& spec, int64_t passes) {
  auto set = data::Cifar10(dir, data::Split::kTrain).subset({"airplane", "bird"});
  auto images = set.images().contiguous();
  auto t = transforms::parse_augment(spec);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  data::use_one_intraop_thread_here();  // as on the loader's thread
  std::vector<double> rates;
  double checksum = 0;
  for (int64_t p = 0; p < passes; ++p) {
    train::Timer timer;
    for (int64_t start = 0; start + 64 <= images.size(0); start += 64)
      checksum += t(images.slice(0, start, start + 64), gen)[0][0][0][0].item<double>();
    rates.push_back(static_cast<double>(images.size(0) / 64 * 64) / timer.seconds());
  }
  return {{"mode", "transform"}, {"spec", spec}, {"images_per_second", rates}, {"checksum", checksum}};
}

nlohmann::json bench_epoch(const std::string& dir, const std::string& model, int64_t epochs,
                           const std::string& augment) {
  data::Cifar10 train_full(dir, data::Split::kTrain);
  auto stats = data::channel_stats(train_full.images());
  auto train_set = train_full.subset({"airplane", "bird"});
  auto val_set = data::Cifar10(dir, data::Split::kTest).subset({"airplane", "bird"});
  train::TrainConfig c;
  c.model = model;
  c.epochs = epochs;
  c.eval_every = 1 << 30;  // validate only after the last epoch; the Python loop does not validate
  c.device = "cpu";
  c.augment = augment;
  auto tmp = std::filesystem::temp_directory_path() / ("birdplane-bench-" + std::to_string(::getpid()));
  std::filesystem::create_directories(tmp);
  train::Trainer trainer(c, train_set, val_set, stats.mean, stats.std, tmp.string(), false);
  std::ostringstream log;
  auto r = trainer.run(log, false);
  std::filesystem::remove_all(tmp);
  std::vector<double> secs;
  for (const auto& m : r.history) secs.push_back(m.seconds);
  return {{"mode", "epoch"}, {"model", model}, {"augment", augment}, {"epoch_seconds", secs},
          {"final_train_loss", r.history.back().train_loss}};
}

}  // namespace

int main(int argc, char** argv) {
  try {
    at::set_num_threads(static_cast<int>(std::thread::hardware_concurrency()));
    const std::string mode = argc > 1 ? argv[1] : "";
    nlohmann::json j;
    if (mode == "load" && argc == 3) {
      j = bench_load(argv[2]);
    } else if (mode == "epoch" && (argc == 5 || argc == 6)) {
      j = bench_epoch(argv[2], argv[3], std::stoll(argv[4]), argc == 6 ? argv[5] : "");
    } else if (mode == "augment" && (argc == 5 || argc == 6)) {
      j = bench_augment(argv[2], argv[3], std::stoll(argv[4]), argc == 6 && std::string(argv[5]) == "normalize");
    } else if (mode == "transform" && argc == 5) {
      j = bench_transform(argv[2], argv[3], std::stoll(argv[4]));
    } else {
      std::cerr << "usage: birdplane_bench load DATA_DIR | epoch DATA_DIR MODEL EPOCHS [SPEC] | augment DATA_DIR SPEC N [normalize] | transform DATA_DIR SPEC N\n";
      return 2;
    }
    j["threads"] = at::get_num_threads();
    std::cout << j.dump() << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
