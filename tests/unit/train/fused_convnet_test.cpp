#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/nn/convnets.h"
#include "birdplane/nn/losses.h"
#include "birdplane/train/optim.h"
#include "birdplane/train/step.h"
#include "train/conv_kernels.h"
#include "train/fused_convnet.h"
#include "train/linear_kernels.h"

using namespace birdplane;

namespace {

std::shared_ptr<nn::ConvNet> make_convnet(const nn::ModelSpec& spec, uint64_t seed) {
  torch::manual_seed(seed);
  auto model = nn::make_model(spec);
  return std::dynamic_pointer_cast<nn::ConvNet>(model);
}

double max_difference(nn::ConvNet& a, nn::ConvNet& b) {
  double worst = 0;
  auto pa = a.parameters(), pb = b.parameters();
  for (size_t i = 0; i < pa.size(); ++i) worst = std::max(worst, (pa[i] - pb[i]).abs().max().item<double>());
  return worst;
}

struct Case {
  std::string name;
  int64_t channels;
  std::vector<int64_t> image;  // C, H, W
  int64_t classes;

  nn::ModelSpec spec() const {
    nn::ModelSpec s;
    s.name = name;
    s.channels = channels;
    s.image_shape = image;
    s.num_classes = classes;
    return s;
  }
};

}  // namespace

TEST(FusedConvNet, MatchesAutogradAndSgdStepForStep) {
  if (!train::kernels::available()) GTEST_SKIP() << "this CPU has no AVX-512; the fused convnet step steps aside";
  // The book's net; net-width with channel counts that fill no whole vector (6: outputs 6 and 3),
  // exactly 8 vectors of the weight gradient's rows (40) and more than one segment of them (96);
  // grayscale and odd image sizes (the pooling drops the last row or column).
  const std::vector<Case> cases = {{"net", 32, {3, 32, 32}, 2},
                                   {"net-width", 6, {1, 10, 13}, 3},
                                   {"net-width", 40, {3, 8, 8}, 4},
                                   {"net-width", 96, {3, 9, 8}, 2}};
  for (const auto& c : cases) {
    const auto spec = c.spec();
    auto reference = make_convnet(spec, 11), fused_model = make_convnet(spec, 11);
    train::OptimizerConfig sgd;
    sgd.lr = 0.1;
    ASSERT_EQ(train::fused_step_unsupported(*fused_model, nn::LossKind::kCrossEntropy, sgd, c10::Device(c10::kCPU)), "");
    auto optimizer = train::make_optimizer(sgd, reference->parameters());
    train::FusedConvNetStep fused(*fused_model, sgd.lr);
    std::vector<std::pair<at::Tensor, at::Tensor>> data;
    for (int i = 0; i < 3; ++i)
      data.emplace_back(torch::randn({16, c.image[0], c.image[1], c.image[2]}),
                        torch::randint(0, c.classes, {16}, torch::kInt64));
    // Zero images: every convolution output of a window equals the bias, so each pooling window is
    // a four-way tie (the first position must win, as in max_pool2d); then a short last batch.
    data.emplace_back(torch::zeros({4, c.image[0], c.image[1], c.image[2]}), torch::zeros({4}, torch::kInt64));
    data.emplace_back(torch::randn({5, c.image[0], c.image[1], c.image[2]}),
                      torch::randint(0, c.classes, {5}, torch::kInt64));
    const std::string what = c.name + " channels " + std::to_string(c.channels);
    for (size_t i = 0; i < data.size(); ++i) {
      const auto& [x, y] = data[i];
      optimizer->zero_grad();
      auto out = reference->forward(x);
      auto loss = nn::compute_loss(nn::LossKind::kCrossEntropy, out, y, false);
      loss.backward();
      optimizer->step();
      const int64_t correct = out.argmax(1).eq(y).sum().item<int64_t>();
      const auto r = fused.step(x, y);
      EXPECT_NEAR(r.loss, loss.item<double>(), 1e-5) << what << ", step " << i;
      EXPECT_EQ(r.correct, correct) << what << ", step " << i;
      ASSERT_LT(max_difference(*reference, *fused_model), 2e-5) << what << ", step " << i;
    }
    EXPECT_GT(max_difference(*reference, *make_convnet(spec, 11)), 1e-3) << what;  // the weights did move
  }
}

// The modern recipe's step: Nesterov SGD with weight decay off the biases in its own parameter group,
// a head learning-rate multiplier, label smoothing, mixed (soft) targets and a gradient-norm clip.
// make_step gives the fused step (writing gradients, the optimizer updating) and the autograd step;
// they must agree step for step, as the plain fused step agrees with plain SGD. Then AdamW.
TEST(FusedConvNet, TheRecipesStepMatchesTheAutogradStep) {
  if (!train::kernels::available()) GTEST_SKIP() << "this CPU has no AVX-512; the fused convnet step steps aside";
  for (const auto kind : {train::OptimizerKind::kSgd, train::OptimizerKind::kAdamW}) {
    nn::ModelSpec spec;
    spec.name = "net-width";
    spec.channels = 8;
    spec.num_classes = 3;
    train::StepSetup setup;
    setup.optimizer.kind = kind;
    setup.optimizer.lr = kind == train::OptimizerKind::kSgd ? 0.05 : 0.003;
    setup.optimizer.momentum = 0.9;
    setup.optimizer.nesterov = kind == train::OptimizerKind::kSgd;
    setup.optimizer.weight_decay = kind == train::OptimizerKind::kSgd ? 5e-4 : 0.05;
    setup.optimizer.no_decay_bias_norm = true;
    setup.optimizer.head_lr_multiplier = 2.0;
    setup.loss_options.label_smoothing = 0.1;
    setup.soft_targets = true;
    setup.clip_grad_norm = 0.5;  // small enough to clip most steps
    const std::string what = kind == train::OptimizerKind::kSgd ? "nesterov sgd" : "adamw";
    auto reference = make_convnet(spec, 3), fused_model = make_convnet(spec, 3);
    auto optimizer_for = [&](nn::ConvNet& m) {
      std::vector<std::pair<std::string, at::Tensor>> named;
      for (const auto& p : m.named_parameters()) named.emplace_back(p.key(), p.value());
      const auto groups = train::parameter_groups(setup.optimizer, named);
      EXPECT_EQ(groups.size(), 4u) << what;  // body, its biases, head, its bias
      return train::make_optimizer(setup.optimizer, groups);
    };
    auto ref_optimizer = optimizer_for(*reference), fused_optimizer = optimizer_for(*fused_model);
    std::string note;
    auto ref_step = train::make_step(*reference, setup, train::StepKind::kAutograd, *ref_optimizer, nullptr, note);
    auto fused_step = train::make_step(*fused_model, setup, train::StepKind::kFused, *fused_optimizer, nullptr, note);
    ASSERT_TRUE(fused_step->fused()) << what;
    ASSERT_FALSE(ref_step->fused()) << what;
    for (int i = 0; i < 6; ++i) {
      const auto x = torch::randn({16, 3, 32, 32});
      // Soft targets as mixup makes them: lambda on the labels, 1 - lambda on the rolled labels.
      const auto hard = torch::one_hot(torch::randint(0, 3, {16}, torch::kInt64), 3).to(torch::kFloat);
      const double lambda = 0.3 + 0.1 * i;
      const auto y = hard * lambda + hard.roll(1, 0) * (1 - lambda);
      if (i == 3) {  // the schedule changes the rates of every group alike
        ref_step->set_lrs({0.02, 0.02, 0.04, 0.04});
        fused_step->set_lrs({0.02, 0.02, 0.04, 0.04});
      }
      const auto a = ref_step->run(x, y, false);
      const auto b = fused_step->run(x, y, false);
      EXPECT_NEAR(b.loss, a.loss, 1e-5) << what << ", step " << i;
      EXPECT_EQ(b.correct, a.correct) << what << ", step " << i;
      EXPECT_EQ(b.images, 16) << what;
      ASSERT_LT(max_difference(*reference, *fused_model), 2e-5) << what << ", step " << i;
    }
    EXPECT_GT(max_difference(*reference, *make_convnet(spec, 3)), 1e-3) << what;  // the weights did move
  }
}

// Evaluation without autograd takes the fused kernels' forward (fused_convnet_inference_applies); its
// logits must equal ATen's layers (the same model with autograd on) to float rounding: net, net-width
// with an odd channel count and odd image sizes, net-dropout in eval mode; more than one chunk of 256.
TEST(FusedConvNet, InferenceOnTheKernelsMatchesATen) {
  if (!train::kernels::available()) GTEST_SKIP() << "this CPU has no AVX-512";
  const std::vector<Case> cases = {{"net", 16, {3, 32, 32}, 2},
                                   {"net-width", 6, {1, 10, 13}, 3},
                                   {"net-dropout", 32, {3, 32, 32}, 10}};
  for (const auto& c : cases) {
    const auto spec = c.spec();
    auto model = make_convnet(spec, 21);
    model->eval();
    const auto x = torch::randn({300, c.image[0], c.image[1], c.image[2]});
    const auto reference = model->logits(x).detach();  // autograd on: ATen's layers
    at::Tensor fast;
    {
      torch::NoGradGuard no_grad;
      ASSERT_TRUE(train::fused_convnet_inference_applies(*model, x)) << c.name;
      fast = model->logits(x);
    }
    const double scale = reference.abs().max().item<double>();
    EXPECT_LT((fast - reference).abs().max().item<double>(), 1e-5 * std::max(1.0, scale)) << c.name;
  }
  nn::ModelSpec spec;
  spec.name = "net-dropout";
  auto dropout = make_convnet(spec, 2);  // in training mode its dropout draws: ATen's path
  torch::NoGradGuard no_grad;
  EXPECT_FALSE(train::fused_convnet_inference_applies(*dropout, torch::zeros({2, 3, 32, 32})));
  spec.name = "net-res";
  EXPECT_FALSE(train::fused_convnet_inference_applies(*make_convnet(spec, 2), torch::zeros({2, 3, 32, 32})));
}

// The loss gradient alone, against autograd through nn::compute_loss: labels and probabilities, with
// and without label smoothing.
TEST(FusedConvNet, TheLossGradientTakesLabelsOrProbabilitiesWithSmoothing) {
  torch::manual_seed(8);
  const auto z = torch::randn({7, 5}) * 3;
  const auto labels = torch::randint(0, 5, {7}, torch::kInt64);
  const auto probs = torch::softmax(torch::randn({7, 5}), 1);
  for (const double smoothing : {0.0, 0.2}) {
    for (const auto& y : {labels, probs}) {
      nn::LossOptions options;
      options.label_smoothing = smoothing;
      auto leaf = z.clone().requires_grad_(true);
      auto loss = nn::compute_loss(nn::LossKind::kCrossEntropy, leaf, y, false, options);
      loss.backward();
      train::FusedStep::Result r;
      const auto g = train::softmax_loss_grad(z.contiguous(), y, r, smoothing);
      const std::string what = (y.dim() == 1 ? "labels" : "probabilities") + std::string(", smoothing ") +
                               std::to_string(smoothing);
      EXPECT_NEAR(r.loss, loss.item<double>(), 1e-5) << what;
      EXPECT_LT((g - leaf.grad()).abs().max().item<double>(), 1e-6) << what;
      const auto truth = y.dim() == 1 ? y : y.argmax(1);
      EXPECT_EQ(r.correct, z.argmax(1).eq(truth).sum().item<int64_t>()) << what;
    }
  }
}

TEST(FusedConvNet, TiesGoToTheFirstPositionOfTheWindowAsInMaxPool2d) {
  if (!train::kernels::available()) GTEST_SKIP() << "this CPU has no AVX-512; the fused convnet step steps aside";
  // A zero first convolution: every output of a window equals the bias, a four-way tie, while the
  // inputs under the four positions differ, so a gradient sent to another position than max_pool2d's
  // (the first) changes the weight gradient.
  nn::ModelSpec spec;
  spec.name = "net";
  auto reference = make_convnet(spec, 5), fused_model = make_convnet(spec, 5);
  {
    torch::NoGradGuard no_grad;
    for (auto* m : {reference.get(), fused_model.get()})
      for (const auto& item : m->named_parameters())
        if (item.key() == "conv1.weight") item.value().zero_();
  }
  train::OptimizerConfig sgd;
  sgd.lr = 0.5;
  auto optimizer = train::make_optimizer(sgd, reference->parameters());
  train::FusedConvNetStep fused(*fused_model, sgd.lr);
  const auto x = torch::randn({8, 3, 32, 32}), y = torch::randint(0, 2, {8}, torch::kInt64);
  optimizer->zero_grad();
  nn::compute_loss(nn::LossKind::kCrossEntropy, reference->forward(x), y, false).backward();
  optimizer->step();
  fused.step(x, y);
  EXPECT_LT(max_difference(*reference, *fused_model), 1e-6);
  EXPECT_GT(reference->named_parameters()["conv1.weight"].abs().max().item<double>(), 1e-4);  // it did move
}

TEST(FusedConvNet, SaysWhichConvnetsAndSettingsItTakes) {
  train::OptimizerConfig sgd;
  const c10::Device cpu(c10::kCPU);
  nn::ModelSpec spec;
  spec.name = "net-dropout";
  auto dropout = make_convnet(spec, 1);
  EXPECT_NE(train::fused_step_unsupported(*dropout, nn::LossKind::kCrossEntropy, sgd, cpu).find("net and net-width"),
            std::string::npos);
  spec.name = "net";
  auto net = make_convnet(spec, 1);
  EXPECT_NE(train::fused_step_unsupported(*net, nn::LossKind::kCrossEntropy, sgd, cpu, true).find("float32"),
            std::string::npos);
  // Beyond plain SGD the step writes gradients for the optimizer, so momentum is no reason to step
  // aside; class weights are.
  auto momentum = sgd;
  momentum.momentum = 0.9;
  train::StepSetup weighted;
  weighted.loss_options.class_weights = torch::ones({2});
  EXPECT_NE(net->fused_step_unsupported(weighted).find("class weights"), std::string::npos);
  EXPECT_NE(train::fused_step_unsupported(*net, nn::LossKind::kMse, sgd, cpu).find("mse"), std::string::npos);
  if (train::kernels::available()) {
    EXPECT_EQ(train::fused_step_unsupported(*net, nn::LossKind::kCrossEntropy, sgd, cpu), "");
    EXPECT_EQ(train::fused_step_unsupported(*net, nn::LossKind::kCrossEntropy, momentum, cpu), "");
    setenv("BIRDPLANE_KERNELS", "blas", 1);
    EXPECT_NE(train::fused_step_unsupported(*net, nn::LossKind::kCrossEntropy, sgd, cpu).find("BIRDPLANE_KERNELS"),
              std::string::npos);
    unsetenv("BIRDPLANE_KERNELS");
  }
}

TEST(FusedConvNet, VectorTanhIsWithinTwoUlpsOfStdTanh) {
  if (!train::kernels::available()) GTEST_SKIP() << "this CPU has no AVX-512";
  // Both sides of the switch between the polynomial and the exponential form (|x| = 0.625), tiny
  // values, values where tanh rounds to +-1, and a length that leaves a partial last vector.
  std::vector<float> x;
  for (int i = -200000; i <= 200000; ++i) x.push_back(static_cast<float>(i) * 1e-4f);
  for (float v : {1e-30f, -1e-20f, 0.0f, -0.0f, 0.62499f, 0.625f, 0.62501f, 9.0f, -9.5f, 20.0f, -100.0f, 1e30f})
    x.push_back(v);
  auto y = x;
  train::kernels::tanh_inplace(y.data(), static_cast<int64_t>(y.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    const float want = std::tanh(x[i]);
    const float ulp = std::nextafter(std::fabs(want), 2.0f) - std::fabs(want);
    ASSERT_LE(std::fabs(y[i] - want), 2 * ulp) << "tanh(" << x[i] << ") = " << y[i] << ", std::tanh " << want;
  }
  float nan = std::nanf("");
  train::kernels::tanh_inplace(&nan, 1);
  EXPECT_TRUE(std::isnan(nan));
}
