// The Predictor: a model file's preprocessing applied to files, encoded bytes and batches, the same
// probabilities as the model's own forward pass, top-k in order, clear errors, and eight threads at once.
#include <thread>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/data/image_decode.h"
#include "birdplane/data/image_io.h"
#include "birdplane/deploy/predictor.h"
#include "birdplane/nn/losses.h"
#include "birdplane/transforms/functional.h"
#include "support/expect_error.h"
#include "support/fixtures.h"

using namespace birdplane;

namespace {

// A net-width model for 3 classes at 32x32, saved as model.pt with its configuration (center crop).
train::ModelConfig saved_model(const std::string& path) {
  train::ModelConfig config;
  config.spec.name = "net-width";
  config.spec.channels = 8;
  config.spec.num_classes = 3;
  config.spec.image_shape = {3, 32, 32};
  config.loss = nn::LossKind::kCrossEntropy;
  config.classes = {"cat", "dog", "owl"};
  config.mean = {0.5, 0.4, 0.3};
  config.std = {0.2, 0.25, 0.3};
  config.crop = data::CropMode::kCenter;
  torch::manual_seed(4);
  auto model = nn::make_model(config.spec);
  train::save_checkpoint(path, config, *model);
  return config;
}

at::Tensor image(int64_t h, int64_t w, int seed) {
  torch::manual_seed(seed);
  return torch::randint(0, 256, {3, h, w}, torch::kByte);
}

}  // namespace

TEST(Predictor, FilesBytesAndBatchesGiveTheModelsProbabilities) {
  fixtures::TempDir t;
  const auto config = saved_model(t / "model.pt");
  deploy::Predictor predictor(t / "model.pt");
  EXPECT_EQ(predictor.classes(), config.classes);
  const auto img = image(40, 48, 1);
  data::write_png(t / "a.png", img);
  // The expected probabilities: the image brought to 32x32 as training images were, normalized, forward.
  auto ck = train::load_checkpoint(t / "model.pt");
  ck.model->eval();
  torch::NoGradGuard no_grad;
  const auto fitted = data::fit_image(img, 32, 32, data::CropMode::kCenter);
  const auto want = nn::probabilities(
      ck.model->forward(transforms::functional::to_normalized(fitted.unsqueeze(0), config.mean, config.std)), false)
                        .to(torch::kDouble)[0];
  const auto from_file = predictor.classify_file(t / "a.png", 2);
  ASSERT_EQ(from_file.probabilities.size(), 3u);
  for (int64_t c = 0; c < 3; ++c) EXPECT_NEAR(from_file.probabilities[static_cast<size_t>(c)], want[c].item<double>(), 1e-12);
  ASSERT_EQ(from_file.top.size(), 2u);
  EXPECT_EQ(from_file.top[0].first, config.classes[static_cast<size_t>(want.argmax().item<int64_t>())]);
  EXPECT_GE(from_file.top[0].second, from_file.top[1].second);
  EXPECT_NE(from_file.note.find("center-cropped from 48x40 to 32x32"), std::string::npos) << from_file.note;
  const auto bytes = fixtures::read_file(t / "a.png");
  const auto from_bytes =
      predictor.classify_bytes(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), 3, "upload");
  EXPECT_EQ(from_bytes.probabilities, from_file.probabilities);
  EXPECT_EQ(from_bytes.top.size(), 3u);
  const auto batch = predictor.classify(torch::stack({img, image(40, 48, 2)}), 1);
  ASSERT_EQ(batch.size(), 2u);
  EXPECT_EQ(batch[0].probabilities, from_file.probabilities);
  EXPECT_NE(batch[1].probabilities, from_file.probabilities);
}

TEST(Predictor, BadInputIsAnErrorNamingIt) {
  fixtures::TempDir t;
  saved_model(t / "model.pt");
  deploy::Predictor predictor(t / "model.pt");
  const std::string junk = "not an image at all";
  fixtures::expect_error(
      [&] { predictor.classify_bytes(reinterpret_cast<const uint8_t*>(junk.data()), junk.size(), 1, "upload 7"); },
      {"upload 7"});
  fixtures::expect_error([&] { predictor.classify_file(t / "missing.png"); }, {"missing.png"});
  fixtures::expect_error([&] { predictor.classify(torch::zeros({1, 3, 8, 8})); }, {"uint8"});
  fixtures::expect_error([&] { predictor.classify_file(t / "model.pt", 0); }, {"model.pt"});
  deploy::PredictorOptions small;
  small.max_pixels = 100;
  deploy::Predictor strict(t / "model.pt", small);
  data::write_png(t / "big.png", image(20, 20, 3));
  fixtures::expect_error([&] { strict.classify_file(t / "big.png"); }, {"big.png", "pixels"});
  fixtures::expect_error([&] { deploy::Predictor(t / "nothing.pt"); }, {"nothing.pt"});
}

TEST(Predictor, EightThreadsAtOnceGetWhatOneThreadGets) {
  fixtures::TempDir t;
  saved_model(t / "model.pt");
  const deploy::Predictor predictor(t / "model.pt");
  std::vector<std::string> files;
  std::vector<std::vector<double>> alone;
  for (int i = 0; i < 8; ++i) {
    files.push_back(t / ("img" + std::to_string(i) + ".png"));
    data::write_png(files.back(), image(30 + i, 50 - i, 10 + i));
    alone.push_back(predictor.classify_file(files.back()).probabilities);
  }
  std::vector<int> mismatches(8, 0), errors(8, 0);
  std::vector<std::thread> threads;
  for (int k = 0; k < 8; ++k) {
    threads.emplace_back([&, k] {
      for (int r = 0; r < 20; ++r) {
        const int i = (k + r) % 8;
        try {
          if (predictor.classify_file(files[static_cast<size_t>(i)]).probabilities != alone[static_cast<size_t>(i)])
            ++mismatches[static_cast<size_t>(k)];
        } catch (...) {
          ++errors[static_cast<size_t>(k)];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int k = 0; k < 8; ++k) {
    EXPECT_EQ(mismatches[static_cast<size_t>(k)], 0) << "thread " << k;
    EXPECT_EQ(errors[static_cast<size_t>(k)], 0) << "thread " << k;
  }
}
