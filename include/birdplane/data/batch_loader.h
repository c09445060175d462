// The batch loader: a seeded shuffle, one index_select per batch, whole-batch transforms, and the
// next batch prepared on a background thread while the model trains.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "birdplane/data/image_set.h"
#include "birdplane/transforms/batch.h"

namespace birdplane {
class ReusedThread;
}

namespace birdplane::data {

/// One batch: images as the transform left them (float32 [B,C,H,W] normalized by default),
/// labels int64 [B].
struct Batch {
  at::Tensor images;
  at::Tensor labels;
  int64_t index = 0;  ///< position of the batch within its epoch
};

/// The loader applies a transforms::BatchTransform to each whole uint8 batch.
using transforms::BatchTransform;

/// Options for BatchLoader. Defaults follow the book's DataLoader(batch_size=64, shuffle=True).
struct BatchLoaderOptions {
  explicit BatchLoaderOptions(int64_t batch_size = 64) : batch_size_(batch_size) {}
  BatchLoaderOptions& batch_size(int64_t v) { batch_size_ = v; return *this; }
  BatchLoaderOptions& shuffle(bool v) { shuffle_ = v; return *this; }
  BatchLoaderOptions& drop_last(bool v) { drop_last_ = v; return *this; }
  BatchLoaderOptions& seed(uint64_t v) { seed_ = v; return *this; }
  /// How many batches the background threads may take ahead of the one the caller asks for next,
  /// ready or in the making (at least 1; never fewer than `workers`).
  BatchLoaderOptions& prefetch(int64_t v) { prefetch_ = v; return *this; }
  /// Prepare batches on background threads (true) or on the caller's thread (false).
  BatchLoaderOptions& background(bool v) { background_ = v; return *this; }
  /// How many background threads prepare batches (at least 1). Each takes the next batch not yet
  /// taken; batches are still handed out in order, and every batch is the same for any number of
  /// workers (each batch's transform draws from its own generator). With more than one, the
  /// transform is called from several threads at once and must allow that. Training keeps 1: the
  /// training thread owns the cores.
  BatchLoaderOptions& workers(int64_t v) { workers_ = v; return *this; }
  /// Load only rank `rank`'s share of each epoch among `world` processes (see shard_order).
  BatchLoaderOptions& shard(int64_t rank, int64_t world) { rank_ = rank; world_ = world; return *this; }
  /// Draw each epoch's indices as WeightedRandomSampler does (with replacement, as many as the set has
  /// images, index i with probability weights[i] / sum): float64 [N], non-negative, not all 0. Undefined:
  /// a permutation (shuffle) or the set's order.
  BatchLoaderOptions& sample_weights(at::Tensor v) { sample_weights_ = std::move(v); return *this; }

  int64_t batch_size_;
  bool shuffle_ = true;
  bool drop_last_ = false;  ///< the book keeps the last short batch
  uint64_t seed_ = 123;
  int64_t prefetch_ = 2;
  bool background_ = true;
  int64_t workers_ = 1;
  int64_t rank_ = 0;
  int64_t world_ = 1;
  at::Tensor sample_weights_;
};

/// Makes LibTorch ops started from the calling thread run on one thread (OpenMP's setting is per
/// thread); other threads keep theirs. The loader's background thread calls it: its tensors are small,
/// and parallel regions there fight the training thread for the same cores.
void use_one_intraop_thread_here();

/// One epoch's indices drawn with replacement by `weights` (WeightedRandomSampler's multinomial), from a
/// generator seeded with derive_seed(seed, epoch, the shuffle's stream).
at::Tensor weighted_epoch_order(const at::Tensor& weights, uint64_t seed, int64_t epoch);

/// Weights that draw every class equally often: 1 / (images of the class) for each image's label.
at::Tensor class_balanced_weights(const at::Tensor& labels, int64_t num_classes);

/// The order of the indices for one epoch: a permutation drawn from a generator seeded with
/// (seed, epoch), so epoch e is the same whether the run was resumed or not, on any thread count.
at::Tensor epoch_order(int64_t size, uint64_t seed, int64_t epoch, bool shuffle);

/// Rank `rank`'s share of an epoch's `order` among `world` ranks, as PyTorch's DistributedSampler
/// (drop_last=False) takes it: the order is padded to a multiple of `world` by repeating its first
/// indices, then rank r takes positions r, r+world, r+2*world, ... Every rank gets ceil(N/world)
/// indices; batch k of every rank together holds positions k*B*world ... (k+1)*B*world-1 of the
/// padded order, so `world` ranks with batch B see what one process with batch B*world sees.
at::Tensor shard_order(const at::Tensor& order, int64_t rank, int64_t world);

/// A seed for one purpose in one epoch, derived from the run's seed (splitmix64 mixing).
uint64_t derive_seed(uint64_t seed, int64_t epoch, uint64_t stream);

/// Iterates a dataset in batches, one epoch at a time:
///   BatchLoader loader(set, opts, transform);
///   loader.start_epoch(e); while (auto b = loader.next()) { ... }
/// The dataset must outlive the loader. Errors raised while preparing a batch are rethrown from
/// next(); destroying the loader stops and joins its thread.
///
/// The same worker threads serve every epoch of a loader, and they are kept threads (ReusedThread)
/// that served earlier loaders: a thread's first LibTorch parallel op runs LibTorch's per-thread setup,
/// which (in a build with pthreadpool, like Debian's) recreates that pool and its spinning workers,
/// about 30 ms of CPU each time.
class BatchLoader {
 public:
  BatchLoader(const ImageSet& dataset, BatchLoaderOptions options, BatchTransform transform);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  /// Begins epoch `epoch` (0-based): fixes its order and starts preparing batches.
  void start_epoch(int64_t epoch);
  /// The next batch of the current epoch, or nullopt at its end.
  std::optional<Batch> next();
  /// Batches in one epoch (the last short one counts unless drop_last).
  int64_t batches_per_epoch() const;
  /// Images in one epoch: the dataset's size, or this rank's share of it when sharded.
  int64_t size() const { return size_; }

 private:
  Batch make_batch(int64_t b);
  void cancel_and_wait_idle(std::unique_lock<std::mutex>& lock);
  void worker_loop();

  const ImageSet& dataset_;
  BatchLoaderOptions options_;
  BatchTransform transform_;
  int64_t size_;
  int64_t epoch_ = -1;
  at::Tensor order_;
  uint64_t transform_seed_ = 0;  ///< this epoch's; batch b's generator is seeded from it and b
  int64_t next_to_hand_ = 0;

  std::vector<std::unique_ptr<ReusedThread>> workers_;  ///< kept threads (see src/common/reused_thread.h)
  std::mutex mutex_;
  std::condition_variable work_cv_;   ///< workers wait here: an epoch, room for a batch, or a stop
  std::condition_variable ready_cv_;  ///< the caller waits here: its batch, a failure, or idle workers
  std::map<int64_t, Batch> ready_;  ///< prepared batches by index, waiting to be handed out
  int64_t next_to_make_ = 0;        ///< the next batch index a worker takes
  int64_t generation_ = 0;          ///< counts the epochs started in the background
  int64_t busy_ = 0;                ///< workers inside an epoch (they read order_ unlocked then)
  bool shutdown_ = false;           ///< the loader is being destroyed
  bool cancel_ = false;             ///< abandon the epoch in progress
  int64_t error_at_ = 0;            ///< the batch whose preparation failed (with error_)
  std::exception_ptr error_;
};

}  // namespace birdplane::data
