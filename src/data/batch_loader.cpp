#include "birdplane/data/batch_loader.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/transforms/functional.h"
#include "common/reused_thread.h"

// From libgomp, which LibTorch's CPU library is linked against (its intra-op threads are OpenMP's).
// Declared here rather than through <omp.h> so the library needs no -fopenmp (which would change the
// precompiled header's flags for every target).
extern "C" void omp_set_num_threads(int);

namespace birdplane::data {

void use_one_intraop_thread_here() {
  at::get_num_threads();    // let LibTorch do its once-per-thread setup first (it would undo ours)
  omp_set_num_threads(1);   // this thread's OpenMP setting only; at::set_num_threads would be global
}
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

constexpr uint64_t kShuffleStream = 1;
constexpr uint64_t kTransformStream = 2;

}  // namespace

uint64_t derive_seed(uint64_t seed, int64_t epoch, uint64_t stream) {
  return splitmix64(splitmix64(splitmix64(seed) ^ static_cast<uint64_t>(epoch)) ^ stream);
}

at::Tensor epoch_order(int64_t size, uint64_t seed, int64_t epoch, bool shuffle) {
  if (!shuffle) return torch::arange(size, torch::kInt64);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(derive_seed(seed, epoch, kShuffleStream));
  return torch::randperm(size, gen, torch::kInt64);
}

at::Tensor shard_order(const at::Tensor& order, int64_t rank, int64_t world) {
  BIRDPLANE_CHECK(world >= 1 && rank >= 0 && rank < world, "shard_order: rank {} of {} is out of range", rank, world);
  const int64_t n = order.numel();
  BIRDPLANE_CHECK(n > 0, "shard_order: an empty order has no shares");
  if (world == 1) return order;
  const int64_t per_rank = (n + world - 1) / world;
  // Pad by repeating from the start (more than once when world > n, as DistributedSampler does).
  const int64_t total = per_rank * world;
  auto padded = order;
  if (total > n) padded = order.repeat({(total + n - 1) / n}).slice(0, 0, total);
  return padded.slice(0, rank, total, world).contiguous();
}

BatchLoader::BatchLoader(const ImageSet& dataset, BatchLoaderOptions options, BatchTransform transform)
    : dataset_(dataset), options_(options), transform_(std::move(transform)),
      size_(static_cast<int64_t>(*dataset.size())) {
  BIRDPLANE_CHECK_SETTING(options_.batch_size_ >= 1, "batch_size", "{} is not allowed; expected 1 or more",
                          options_.batch_size_);
  BIRDPLANE_CHECK(options_.world_ >= 1 && options_.rank_ >= 0 && options_.rank_ < options_.world_,
                  "rank {} of {} is out of range", options_.rank_, options_.world_);
  if (size_ > 0) size_ = (size_ + options_.world_ - 1) / options_.world_;
  BIRDPLANE_CHECK(options_.prefetch_ >= 1, "prefetch must be at least 1, got {}", options_.prefetch_);
  BIRDPLANE_CHECK(size_ > 0, "the dataset is empty: nothing to load");
}

BatchLoader::~BatchLoader() {
  {
    std::unique_lock<std::mutex> lock(mutex_);
    shutdown_ = true;
  }
  cv_.notify_all();
  if (worker_) worker_->join();
}

int64_t BatchLoader::batches_per_epoch() const {
  const int64_t b = options_.batch_size_;
  return options_.drop_last_ ? size_ / b : (size_ + b - 1) / b;
}

Batch BatchLoader::make_batch(int64_t b) {
  const int64_t start = b * options_.batch_size_;
  const int64_t end = std::min(size_, start + options_.batch_size_);
  auto idx = order_.slice(0, start, end);
  auto ex = dataset_.batch(idx);
  Batch batch;
  batch.images = transform_ ? transform_(ex.data, *gen_) : ex.data;
  batch.labels = ex.target;
  batch.index = b;
  return batch;
}

void BatchLoader::produce_epoch() {
  const int64_t total = batches_per_epoch();
  try {
    for (int64_t b = 0; b < total; ++b) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] {
          return shutdown_ || cancel_ || static_cast<int64_t>(queue_.size()) < options_.prefetch_;
        });
        if (shutdown_ || cancel_) return;
      }
      Batch batch = make_batch(b);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        queue_.push_back(std::move(batch));
      }
      cv_.notify_all();
    }
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    error_ = std::current_exception();
  }
}

void BatchLoader::worker_loop() {
  // The loader thread works on small tensors beside a training thread that owns the cores: parallel
  // regions here would only make the two fight over OpenMP's workers (spinning at barriers).
  use_one_intraop_thread_here();
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return shutdown_ || has_work_; });
      if (shutdown_) return;
      has_work_ = false;
      busy_ = true;
    }
    produce_epoch();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      busy_ = false;
    }
    cv_.notify_all();
  }
}

void BatchLoader::cancel_and_wait_idle(std::unique_lock<std::mutex>& lock) {
  cancel_ = true;
  cv_.notify_all();
  cv_.wait(lock, [&] { return !busy_; });
  cancel_ = false;
}

void BatchLoader::start_epoch(int64_t epoch) {
  std::unique_lock<std::mutex> lock(mutex_);
  cancel_and_wait_idle(lock);  // the worker no longer reads order_ or gen_
  epoch_ = epoch;
  order_ = shard_order(epoch_order(static_cast<int64_t>(*dataset_.size()), options_.seed_, epoch, options_.shuffle_),
                       options_.rank_, options_.world_);
  // Each rank draws its own augmentation parameters (rank 0's are a single process's).
  gen_ = at::make_generator<at::CPUGeneratorImpl>(
      derive_seed(options_.seed_, epoch, kTransformStream + 16 * static_cast<uint64_t>(options_.rank_)));
  next_to_hand_ = 0;
  queue_.clear();
  error_ = nullptr;
  if (!options_.background_) return;
  has_work_ = true;
  if (!worker_) worker_ = std::make_unique<ReusedThread>([this] { worker_loop(); });
  lock.unlock();
  cv_.notify_all();
}

std::optional<Batch> BatchLoader::next() {
  BIRDPLANE_CHECK(epoch_ >= 0, "BatchLoader::next() called before start_epoch()");
  if (next_to_hand_ >= batches_per_epoch()) return std::nullopt;
  if (!options_.background_) return make_batch(next_to_hand_++);
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait(lock, [&] { return !queue_.empty() || error_; });
  if (queue_.empty() && error_) std::rethrow_exception(error_);
  Batch batch = std::move(queue_.front());
  queue_.pop_front();
  ++next_to_hand_;
  lock.unlock();
  cv_.notify_all();
  return batch;
}

}  // namespace birdplane::data
