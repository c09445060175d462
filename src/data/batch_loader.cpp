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

at::Tensor weighted_epoch_order(const at::Tensor& weights, uint64_t seed, int64_t epoch) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(derive_seed(seed, epoch, kShuffleStream));
  return at::multinomial(weights, weights.numel(), /*replacement=*/true, gen);
}

at::Tensor class_balanced_weights(const at::Tensor& labels, int64_t num_classes) {
  const auto counts = at::bincount(labels.to(at::kLong), {}, num_classes).to(at::kDouble);
  BIRDPLANE_CHECK_SETTING(counts.min().item<double>() > 0, "balanced_sampler",
                          "a class has no training images, so no weight balances it");
  return (1.0 / counts).index_select(0, labels.to(at::kLong));
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
  BIRDPLANE_CHECK(options_.workers_ >= 1 && options_.workers_ <= 256, "workers must be 1 to 256, got {}",
                  options_.workers_);
  BIRDPLANE_CHECK(size_ > 0, "the dataset is empty: nothing to load");
  if (options_.sample_weights_.defined()) {
    const auto& w = options_.sample_weights_;
    BIRDPLANE_CHECK(w.dim() == 1 && w.numel() == static_cast<int64_t>(*dataset.size()),
                    "sample weights: {} for {} images; expected one per image", w.numel(), *dataset.size());
    options_.sample_weights_ = w.to(at::kDouble).contiguous();
    BIRDPLANE_CHECK(options_.sample_weights_.isfinite().all().item<bool>() &&
                        options_.sample_weights_.min().item<double>() >= 0 &&
                        options_.sample_weights_.sum().item<double>() > 0,
                    "sample weights must be finite, 0 or more, and not all 0");
  }
}

BatchLoader::~BatchLoader() {
  {
    std::unique_lock<std::mutex> lock(mutex_);
    shutdown_ = true;
  }
  work_cv_.notify_all();
  for (auto& w : workers_) w->join();
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
  if (transform_) {
    // Each batch draws from its own generator, so a batch is the same whichever worker made it.
    auto gen = at::make_generator<at::CPUGeneratorImpl>(derive_seed(transform_seed_, b, kTransformStream));
    batch.images = transform_(ex.data, gen);
  } else {
    batch.images = ex.data;
  }
  batch.labels = ex.target;
  batch.index = b;
  return batch;
}

void BatchLoader::worker_loop() {
  // The loader's threads work on small tensors beside a training thread that owns the cores: parallel
  // regions here would only make them fight over OpenMP's workers (spinning at barriers).
  use_one_intraop_thread_here();
  const int64_t window = std::max(options_.prefetch_, options_.workers_);
  int64_t served = 0;
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    work_cv_.wait(lock, [&] { return shutdown_ || generation_ != served; });
    if (shutdown_) return;
    served = generation_;
    ++busy_;
    const int64_t total = batches_per_epoch();
    for (;;) {
      // At most `window` batches are taken ahead of the one the caller waits for.
      work_cv_.wait(lock, [&] {
        return shutdown_ || cancel_ || error_ || next_to_make_ >= total || next_to_make_ < next_to_hand_ + window;
      });
      if (shutdown_ || cancel_ || error_ || next_to_make_ >= total) break;
      const int64_t b = next_to_make_++;
      lock.unlock();
      Batch batch;
      std::exception_ptr error;
      try {
        batch = make_batch(b);
      } catch (...) {
        error = std::current_exception();
      }
      lock.lock();
      if (error) {
        if (!error_ || b < error_at_) {
          error_ = error;
          error_at_ = b;
        }
      } else {
        ready_.emplace(b, std::move(batch));
      }
      // Only the batch the caller waits for (or a failure) is worth waking it for.
      if (error || b == next_to_hand_) ready_cv_.notify_all();
      if (error) work_cv_.notify_all();  // the other workers stop taking batches
    }
    --busy_;
    ready_cv_.notify_all();  // start_epoch may be waiting for the workers to leave
  }
}

void BatchLoader::cancel_and_wait_idle(std::unique_lock<std::mutex>& lock) {
  cancel_ = true;
  work_cv_.notify_all();
  ready_cv_.wait(lock, [&] { return busy_ == 0; });
  cancel_ = false;
}

void BatchLoader::start_epoch(int64_t epoch) {
  std::unique_lock<std::mutex> lock(mutex_);
  cancel_and_wait_idle(lock);  // no worker reads order_ now
  epoch_ = epoch;
  order_ = shard_order(options_.sample_weights_.defined()
                           ? weighted_epoch_order(options_.sample_weights_, options_.seed_, epoch)
                           : epoch_order(static_cast<int64_t>(*dataset_.size()), options_.seed_, epoch, options_.shuffle_),
                       options_.rank_, options_.world_);
  // Each rank draws its own augmentation parameters (rank 0's are a single process's).
  transform_seed_ = derive_seed(options_.seed_, epoch, kTransformStream + 16 * static_cast<uint64_t>(options_.rank_));
  next_to_hand_ = 0;
  next_to_make_ = 0;
  ready_.clear();
  error_ = nullptr;
  if (!options_.background_) return;
  ++generation_;
  while (static_cast<int64_t>(workers_.size()) < options_.workers_)
    workers_.push_back(std::make_unique<ReusedThread>([this] { worker_loop(); }));
  lock.unlock();
  work_cv_.notify_all();
}

std::optional<Batch> BatchLoader::next() {
  BIRDPLANE_CHECK(epoch_ >= 0, "BatchLoader::next() called before start_epoch()");
  if (next_to_hand_ >= batches_per_epoch()) return std::nullopt;
  if (!options_.background_) return make_batch(next_to_hand_++);
  std::unique_lock<std::mutex> lock(mutex_);
  ready_cv_.wait(lock, [&] { return ready_.count(next_to_hand_) > 0 || (error_ && error_at_ <= next_to_hand_); });
  auto it = ready_.find(next_to_hand_);
  if (it == ready_.end()) std::rethrow_exception(error_);
  Batch batch = std::move(it->second);
  ready_.erase(it);
  ++next_to_hand_;
  lock.unlock();
  work_cv_.notify_one();  // room for one more batch
  return batch;
}

}  // namespace birdplane::data
