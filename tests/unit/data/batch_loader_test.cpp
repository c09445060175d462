#include <ATen/Parallel.h>
#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <set>
#include <thread>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/data/batch_loader.h"
#include "birdplane/data/cifar10.h"
#include "birdplane/transforms/functional.h"
#include "support/fixtures.h"

using namespace birdplane;

namespace {

data::ImageSet fake_set(int64_t n) {
  auto images = torch::arange(n * 3 * 32 * 32, torch::kInt64).remainder(251).to(torch::kUInt8).view({n, 3, 32, 32});
  auto labels = torch::arange(n, torch::kInt64).remainder(10);
  return data::ImageSet(images, labels, data::default_class_names());
}

std::vector<data::Batch> one_epoch(data::BatchLoader& loader, int64_t epoch) {
  std::vector<data::Batch> out;
  loader.start_epoch(epoch);
  while (auto b = loader.next()) out.push_back(*b);
  return out;
}

}  // namespace

TEST(BatchLoader, BatchesEqualThePerImageLoopUnderTheSameSeed) {
  auto set = fake_set(150);
  const std::vector<double> mean = {0.5, 0.4, 0.3}, std = {0.2, 0.25, 0.3};
  data::BatchLoader loader(set, data::BatchLoaderOptions(64).seed(9),
                           transforms::normalize_batches(mean, std));
  auto batches = one_epoch(loader, 3);
  ASSERT_EQ(batches.size(), 3u);  // 64 + 64 + 22: the short batch is kept
  EXPECT_EQ(batches[2].images.size(0), 22);
  // The per-image reference: the same order, get(i), ToTensor and Normalize one at a time.
  auto order = data::epoch_order(150, 9, 3, true);
  int64_t k = 0;
  for (const auto& b : batches) {
    for (int64_t j = 0; j < b.images.size(0); ++j, ++k) {
      auto ex = set.get(static_cast<size_t>(order[k].item<int64_t>()));
      auto ref = transforms::functional::normalize(transforms::functional::to_tensor(ex.data), mean, std);
      ASSERT_LE((b.images[j] - ref).abs().max().item<double>(), 1e-5) << "image " << k;
      ASSERT_EQ(b.labels[j].item<int64_t>(), ex.target.item<int64_t>());
    }
  }
  // Every image appears once per epoch.
  auto all = torch::cat({batches[0].labels, batches[1].labels, batches[2].labels});
  EXPECT_EQ(all.size(0), 150);
  EXPECT_TRUE(torch::equal(std::get<0>(order.sort()), torch::arange(150)));
}

TEST(BatchLoader, SameBatchesWhateverTheThreadCountOrBackgroundThread) {
  auto set = fake_set(100);
  auto run = [&](int threads, bool background) {
    at::set_num_threads(threads);
    data::BatchLoader loader(set, data::BatchLoaderOptions(16).seed(123).background(background),
                             transforms::normalize_batches({0.5}, {0.25}));
    return one_epoch(loader, 0);
  };
  auto a = run(1, true), b = run(2, false);
  at::set_num_threads(2);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(torch::equal(a[i].images, b[i].images));
    EXPECT_TRUE(torch::equal(a[i].labels, b[i].labels));
  }
}

TEST(BatchLoader, SameBatchesWhateverTheNumberOfWorkersEvenWithRandomTransforms) {
  auto set = fake_set(203);
  // A transform that draws from its generator: each image scaled by its own random factor.
  auto noisy = [](const at::Tensor& x, at::Generator& gen) {
    auto scale = at::rand({x.size(0), 1, 1, 1}, gen);
    return x.to(torch::kFloat32) * scale;
  };
  auto run = [&](int64_t workers, bool background, int64_t prefetch) {
    data::BatchLoader loader(set, data::BatchLoaderOptions(16).seed(5).workers(workers).background(background)
                                      .prefetch(prefetch), noisy);
    auto e1 = one_epoch(loader, 1);
    auto e2 = one_epoch(loader, 2);
    e1.insert(e1.end(), e2.begin(), e2.end());
    return e1;
  };
  const auto reference = run(1, false, 2);
  ASSERT_EQ(reference.size(), 26u);  // 13 batches (12 of 16, one of 11) in each of two epochs
  EXPECT_FALSE(torch::equal(reference[0].images, reference[13].images));  // the epochs draw differently
  for (const auto& [workers, prefetch] : {std::pair<int64_t, int64_t>{1, 2}, {2, 1}, {3, 2}, {4, 8}}) {
    const auto got = run(workers, true, prefetch);
    ASSERT_EQ(got.size(), reference.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].index, reference[i].index);
      EXPECT_TRUE(torch::equal(got[i].images, reference[i].images)) << workers << " workers, batch " << i;
      EXPECT_TRUE(torch::equal(got[i].labels, reference[i].labels)) << workers << " workers, batch " << i;
    }
  }
}

TEST(BatchLoader, AFailedBatchIsReportedInItsTurnWithSeveralWorkers) {
  auto set = fake_set(100);
  // Batch 4 fails; batches 0-3 still arrive first, whichever worker made them.
  auto failing = [](const at::Tensor& x, at::Generator&) {
    if (x[0][0][0][0].item<int64_t>() == (40 * 3 * 32 * 32) % 251) fail("batch with image 40 failed on purpose");
    return x;
  };
  data::BatchLoader loader(set, data::BatchLoaderOptions(10).shuffle(false).workers(3), failing);
  for (int round = 0; round < 2; ++round) {  // and again in a second epoch
    loader.start_epoch(round);
    for (int64_t b = 0; b < 4; ++b) {
      auto got = loader.next();
      ASSERT_TRUE(got.has_value());
      EXPECT_EQ(got->index, b);
    }
    EXPECT_THROW(loader.next(), Error);
  }
}

TEST(BatchLoader, EpochsShuffleDifferentlyAndDropLastDrops) {
  auto set = fake_set(100);
  data::BatchLoader loader(set, data::BatchLoaderOptions(30).drop_last(true), nullptr);
  EXPECT_EQ(loader.batches_per_epoch(), 3);
  auto e0 = one_epoch(loader, 0), e1 = one_epoch(loader, 1), e0b = one_epoch(loader, 0);
  ASSERT_EQ(e0.size(), 3u);
  EXPECT_EQ(e0[2].images.size(0), 30);
  EXPECT_FALSE(torch::equal(e0[0].labels, e1[0].labels));
  EXPECT_TRUE(torch::equal(e0[0].images, e0b[0].images));  // an epoch is a function of (seed, epoch)
  EXPECT_EQ(e0[0].images.scalar_type(), torch::kUInt8);    // no transform: raw bytes
  data::BatchLoader ordered(set, data::BatchLoaderOptions(40).shuffle(false), nullptr);
  auto o = one_epoch(ordered, 5);
  EXPECT_TRUE(torch::equal(o[0].labels, set.labels().slice(0, 0, 40)));
}

TEST(BatchLoader, ErrorsOnTheWorkerReachTheCaller) {
  auto set = fake_set(50);
  int calls = 0;
  data::BatchLoader loader(set, data::BatchLoaderOptions(10), [&](const at::Tensor& x, at::Generator&) {
    if (++calls == 3) fail("transform failed on purpose");
    return x;
  });
  loader.start_epoch(0);
  EXPECT_TRUE(loader.next().has_value());
  EXPECT_TRUE(loader.next().has_value());
  EXPECT_THROW(while (loader.next()) {}, Error);
  // Destroying a loader in the middle of an epoch stops its thread cleanly. With batch 0 handed out, the
  // worker makes batch 1 (prefetch 1) and waits for room; the destructor must wake it and wait for it
  // (a loader that never stopped it would hang here: the destructor runs on a thread of its own, and the
  // test fails after 10 s instead), and no batch is made after that.
  std::atomic<int> made{0};
  auto other = std::make_unique<data::BatchLoader>(set, data::BatchLoaderOptions(1).prefetch(1).shuffle(false),
                                                   [&](const at::Tensor& x, at::Generator&) {
                                                     ++made;
                                                     return x;
                                                   });
  other->start_epoch(0);
  auto first = other->next();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->index, 0);
  EXPECT_TRUE(torch::equal(first->images, set.images().slice(0, 0, 1)));
  for (int i = 0; i < 200 && made.load() < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(made.load(), 2) << "batches 0 and 1 of 50: the worker stops at the prefetch window";
  std::promise<void> destroyed;
  auto done = destroyed.get_future();
  std::thread destroyer([l = std::move(other), p = std::move(destroyed)]() mutable {
    l.reset();
    p.set_value();
  });
  if (done.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    destroyer.detach();  // still blocked in the destructor: leave it, and fail instead of hanging
    FAIL() << "destroying a loader in the middle of an epoch did not return within 10 s";
  }
  destroyer.join();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(made.load(), 2) << "a batch was made after the loader was destroyed";
}

TEST(BatchLoader, OneWorkerThreadServesEveryEpochAndAnAbandonedEpochLeavesNoTrace) {
  auto set = fake_set(60);
  std::mutex m;
  std::set<std::thread::id> threads;
  auto record = [&](const at::Tensor& x, at::Generator&) {
    std::lock_guard<std::mutex> lock(m);
    threads.insert(std::this_thread::get_id());
    return x;
  };
  data::BatchLoader loader(set, data::BatchLoaderOptions(10).prefetch(1), record);
  data::BatchLoader reference(set, data::BatchLoaderOptions(10).background(false), nullptr);
  for (int64_t e = 0; e < 4; ++e) {
    loader.start_epoch(e);
    loader.next();  // leave the epoch after one batch: the next start_epoch must cancel the rest
  }
  auto full = one_epoch(loader, 7);
  EXPECT_EQ(threads.size(), 1u);
  EXPECT_EQ(threads.count(std::this_thread::get_id()), 0u);  // not the caller's thread
  auto ref = one_epoch(reference, 7);
  ASSERT_EQ(full.size(), ref.size());
  for (size_t i = 0; i < ref.size(); ++i) {
    EXPECT_EQ(full[i].index, static_cast<int64_t>(i));
    EXPECT_TRUE(torch::equal(full[i].images, ref[i].images));
  }
}

TEST(BatchLoader, RejectsBadOptions) {
  auto set = fake_set(10);
  EXPECT_THROW(data::BatchLoader(set, data::BatchLoaderOptions(0), nullptr), Error);
  EXPECT_THROW(data::BatchLoader(set, data::BatchLoaderOptions(4).workers(0), nullptr), Error);
}
