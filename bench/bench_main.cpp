// birdplane_bench MODE [args]: timings for bench/run.py, one JSON line on stdout.
//   load DATA_DIR            read the training split from disk and build the normalized cifar2 set
//   epoch DATA_DIR MODEL N [SPEC] [--all-classes]  N epochs of MODEL on cifar2 (batch 64, SGD
//                            lr 1e-2), with the --augment SPEC when given, or on all ten classes
//                            with --all-classes; seconds per epoch. --step and --precision as in
//                            `birdplane train` (defaults auto and fp32); --recipe modern (the settings
//                            of `train --recipe modern`) and --clip-grad-norm X as in `birdplane train`
//   --kernels blas (any mode): the fused fp32 step without birdplane's own kernels (BIRDPLANE_KERNELS=blas)
//   step MODEL N [--step S] [--precision P]  the training step alone on one fixed batch of 64 (any
//                            preset; the fused step applies to MLPs, net and net-width): seconds
//                            per step (median of 5 rounds of N)
//   eval DATA_DIR MODEL N [--all-classes]  train::evaluate of an untrained MODEL (seed 123) over the
//                            validation set N times and the training set max(3, N/4) times: images/s
//   matmul DIMS [BATCH] [REPS]  GFLOP/s of the matrix products one training step of the MLP with
//                            layer widths DIMS (e.g. 3072,512,2) makes, in fp32 and bf16
//   peak                     GFLOP/s of AVX-512 fp32 FMAs and bf16 dot products alone (no memory), all threads
//   augment DATA_DIR SPEC N [normalize]  N passes of the batch loader over cifar2 with SPEC on uint8
//                            batches (then ToTensor + Normalize with "normalize", what training
//                            consumes): images per second per pass
//   transform DATA_DIR SPEC N  the transform alone on in-memory uint8 batches of 64: images/s
//   allreduce MODEL REPS     run as every rank of a multi-process group (torchrun's variables): the
//                            all-reduce of MODEL's gradient buckets (2 classes), REPS times; seconds
//                            per step (median) and bytes
//   decode TREE SIZE N       one thread, the first N files of an image folder already in memory: microseconds
//                            per file to decode, to bring to SIZE x SIZE with birdplane's resize kernel
//                            (data::fit_rgb) and with ATen's ops (fit_image with the kernel off), medians
//                            of 3 passes (SIZE 0: decode only)
//   folder TREE SIZE REPS [--keep-cache DIR]  an image folder (SIZE 0: the images' own size, else
//                            SIZE x SIZE) read with read_image_folder, then one epoch of shuffled,
//                            normalized batches of 64: first with no cache (decoding every file), then
//                            from the cache in the same, warm process; medians. --keep-cache: the
//                            cache goes to DIR and stays there for folder-cached
//   conv3x3 [BATCH]          the speedrun network's 3x3 convolutions (bf16, channels-last, batch 1024),
//                            forward, input gradient and weight gradient, each in oneDNN's direct form
//                            (LibTorch's) and in birdplane's Winograd form (src/train/winograd.h) where
//                            it fits: seconds (best of 5), GFLOP/s of the direct form's arithmetic;
//                            for each group's first convolution also the forward pass with the 2x2
//                            max pool and its statistics (direct then speedrun_kernels::pool2_stats,
//                            against Winograd's form pooled as computed, then channel_stats) and the
//                            weight gradient behind the pool (Winograd, the dropped row's tiles skipped)
//   folder-cached TREE SIZE DIR  the epoch from the cache in DIR (written by folder --keep-cache) in
//                            this fresh process, as a user's second run does it: listing, cache
//                            check and mapping, loader threads started, one epoch
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <algorithm>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include "birdplane/data/cifar10.h"
#include "birdplane/data/image_folder.h"
#include "data/image_fit.h"
#include "data/resize_kernels.h"
#include "birdplane/data/stats.h"
#include "birdplane/doctor.h"
#include "birdplane/threads.h"
#include "birdplane/nn/mlp.h"
#include "birdplane/train/checkpoint.h"
#include "birdplane/train/distributed.h"
#include "birdplane/train/metrics.h"
#include "common/reused_memory.h"
#include "train/fused_step.h"
#include "train/speedrun_kernels.h"
#include "train/winograd.h"
#include "birdplane/train/trainer.h"
#include "birdplane/train/speedrun.h"
#include "birdplane/data/batch_loader.h"
#include "birdplane/deploy/onnx.h"
#include "birdplane/deploy/predictor.h"
#include "birdplane/transforms/functional.h"
#include "birdplane/transforms/spec.h"

using namespace birdplane;

namespace {

nlohmann::json bench_load(const std::string& dir) {
  train::Timer t;
  // Only airplanes and birds are kept while reading (the book reads all ten classes, then filters).
  auto cifar2 = data::read_cifar10(dir, data::Split::kTrain, {"airplane", "bird"});
  const double read_s = t.seconds();
  // The book normalizes with constants it computed before; use the same fixed constants.
  const std::vector<double> mean = {0.4915, 0.4823, 0.4468}, std = {0.2470, 0.2435, 0.2616};
  auto x = transforms::functional::to_normalized(cifar2.images(), mean, std);
  const double total = t.seconds();
  return {{"mode", "load"}, {"read_seconds", read_s}, {"seconds", total}, {"images", x.size(0)},
          {"checksum", x.sum().item<double>()}};
}

// cifar2 (the book's two classes) or, with all_classes, the whole of CIFAR-10.
std::vector<std::string> bench_classes(bool all_classes) {
  return all_classes ? std::vector<std::string>{} : std::vector<std::string>{"airplane", "bird"};
}

// The training and validation sets a workload runs on, and the normalization statistics of the
// whole training split (as the trainer's callers compute them).
struct BenchSets {
  data::ImageSet train, val;
  data::ChannelStats stats;
};

BenchSets load_sets(const std::string& dir, bool all_classes) {
  data::ChannelStats stats;
  auto train = data::read_cifar10(dir, data::Split::kTrain, bench_classes(all_classes), &stats);
  return {std::move(train), data::read_cifar10(dir, data::Split::kTest, bench_classes(all_classes)),
          std::move(stats)};
}

nlohmann::json bench_augment(const std::string& dir, const std::string& spec, int64_t passes, bool normalize) {
  auto sets = load_sets(dir, false);
  const auto& train_set = sets.train;
  const auto& stats = sets.stats;
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
  auto set = data::read_cifar10(dir, data::Split::kTrain).subset({"airplane", "bird"});
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

// Options that may follow any mode's positional arguments.
struct Flags {
  bool all_classes = false;
  train::StepKind step = train::StepKind::kAuto;
  train::Precision precision = train::Precision::kFp32;
  std::string recipe = "book";  ///< epoch: --recipe modern (train::apply_recipe)
  double clip_grad_norm = 0.0;   ///< epoch: --clip-grad-norm X
  std::string keep_cache;        ///< folder: --keep-cache DIR (the cache stays there for folder-cached)
};

nlohmann::json bench_epoch(const std::string& dir, const std::string& model, int64_t epochs,
                           const std::string& augment, const Flags& flags) {
  const bool all_classes = flags.all_classes;
  auto sets = load_sets(dir, all_classes);
  const auto& [train_set, val_set, stats] = sets;
  train::RunSpec c;
  c.model.name = model;
  c.training.epochs = epochs;
  c.training.eval_every = 1 << 30;  // validate only after the last epoch; the Python loop does not validate
  c.training.device = train::DeviceKind::kCpu;
  c.training.augment = augment;
  c.training.step = flags.step;
  c.training.precision = flags.precision;
  train::apply_recipe(c.training, flags.recipe, [](const std::string&) { return false; });
  c.training.clip_grad_norm = flags.clip_grad_norm;
  auto tmp = std::filesystem::temp_directory_path() / ("birdplane-bench-" + std::to_string(::getpid()));
  train::Trainer trainer(c, train_set, val_set, stats.mean, stats.std);
  const bool fused = trainer.fused(), own_kernels = trainer.input_layer_kernels();
  train::TrainResult r;
  {
    auto run_dir = train::RunDir::create(tmp.string());
    r = trainer.run(run_dir);
  }
  std::filesystem::remove_all(tmp);
  std::vector<double> secs;
  for (const auto& m : r.history) secs.push_back(m.seconds);
  return {{"mode", "epoch"}, {"model", model}, {"augment", augment}, {"classes", train_set.num_classes()},
          {"step", fused ? "fused" : "autograd"}, {"recipe", flags.recipe},
          {"clip_grad_norm", flags.clip_grad_norm}, {"precision", train::to_string(flags.precision)}, {"own_kernels", own_kernels},
          {"images", train_set.images().size(0)}, {"epoch_seconds", secs},
          {"final_train_loss", r.history.back().train_loss}};
}

// Evaluation throughput: train::evaluate (normalize each batch of 1000 from uint8, forward, loss,
// confusion matrix) of an untrained model; its speed does not depend on the weights.
nlohmann::json bench_eval(const std::string& dir, const std::string& model, int64_t repeats, bool all_classes) {
  auto sets = load_sets(dir, all_classes);
  const auto& [train_set, val_set, stats] = sets;
  train::ModelConfig mc;
  mc.spec.name = model;
  mc.spec.num_classes = train_set.num_classes();
  torch::manual_seed(123);
  auto net = nn::make_model(mc.spec);
  mc.loss = nn::natural_loss(*net);
  mc.classes = train_set.class_names();
  mc.mean = stats.mean;
  mc.std = stats.std;
  const c10::Device cpu(c10::kCPU);
  double checksum = 0;
  auto passes = [&](const data::ImageSet& set, int64_t n) {
    std::vector<double> rates;
    for (int64_t i = 0; i < n; ++i) {
      train::Timer t;
      auto ev = train::evaluate(*net, set, mc, cpu);
      rates.push_back(static_cast<double>(set.images().size(0)) / t.seconds());
      checksum += ev.loss;
    }
    return rates;
  };
  auto val_rates = passes(val_set, repeats);
  auto train_rates = passes(train_set, std::max<int64_t>(3, repeats / 4));
  return {{"mode", "eval"}, {"model", model}, {"val_images", val_set.images().size(0)},
          {"train_images", train_set.images().size(0)}, {"val_images_per_second", val_rates},
          {"train_images_per_second", train_rates}, {"checksum", checksum}};
}

// The training step alone, without the loader: `steps` fused (or autograd + SGD) steps on one fixed
// random batch of 64, seconds per step (median of 5 rounds). What an epoch spends beyond
// batches x this is the loader and the epoch's own bookkeeping.
nlohmann::json bench_step(const std::string& model, int64_t steps, const Flags& flags) {
  nn::ModelSpec spec;
  spec.name = model;
  spec.num_classes = 2;
  spec.image_shape = {3, 32, 32};
  torch::manual_seed(123);
  auto net = nn::make_model(spec);
  auto x = torch::randn({64, 3, 32, 32}), y = torch::randint(0, 2, {64}, torch::kInt64);
  train::OptimizerConfig sgd;
  const bool bf16 = flags.precision == train::Precision::kBf16;
  std::function<void()> step;
  std::unique_ptr<train::FusedStep> fused;
  auto optimizer = train::make_optimizer(sgd, net->parameters());
  const auto loss_kind = nn::natural_loss(*net);
  if (flags.step != train::StepKind::kAutograd &&
      train::fused_step_unsupported(*net, loss_kind, sgd, c10::Device(c10::kCPU), bf16).empty()) {
    fused = train::make_fused_step(*net, sgd.lr, bf16);
    step = [&] { fused->step(x, y); };
  } else {
    net->train();
    step = [&] {
      auto out = train::forward_in_precision(*net, x, flags.precision);
      auto loss = nn::compute_loss(loss_kind, out, y, net->ends_in_log_softmax());
      for (auto& p : net->parameters()) p.mutable_grad() = at::Tensor();
      loss.backward();
      loss.item<double>();
      optimizer->step();
    };
  }
  for (int i = 0; i < 5; ++i) step();
  if (const char* trace = std::getenv("BIRDPLANE_BENCH_TRACE")) {  // a Chrome trace of 20 steps' ops
    torch::autograd::profiler::RecordProfile guard(trace);
    for (int i = 0; i < 20; ++i) step();
  }
  std::vector<double> per_step;
  for (int r = 0; r < 5; ++r) {
    train::Timer t;
    for (int64_t i = 0; i < steps; ++i) step();
    per_step.push_back(t.seconds() / static_cast<double>(steps));
  }
  std::sort(per_step.begin(), per_step.end());
  return {{"mode", "step"}, {"model", model}, {"step", fused ? "fused" : "autograd"},
          {"precision", train::to_string(flags.precision)}, {"own_kernels", fused && fused->own_kernels()},
          {"seconds_per_step", per_step[2]}, {"all", per_step}};
}

// Seconds per call of f: enough calls per repetition to fill about 50 ms, then the median of `reps`
// repetitions.
double seconds_per_call(const std::function<at::Tensor()>& f, int64_t reps) {
  f();  // warm-up: first-call allocations, oneDNN primitive creation
  train::Timer once;
  f();
  const int64_t calls = std::max<int64_t>(3, static_cast<int64_t>(0.05 / std::max(once.seconds(), 1e-7)));
  std::vector<double> per_call;
  for (int64_t r = 0; r < reps; ++r) {
    train::Timer t;
    for (int64_t c = 0; c < calls; ++c) f();
    per_call.push_back(t.seconds() / static_cast<double>(calls));
  }
  std::sort(per_call.begin(), per_call.end());
  return per_call[per_call.size() / 2];
}

// The matrix products of one training step of an MLP with widths dims[0] -> ... -> dims[L] at
// batch B, with the memory layouts autograd uses for nn::Linear (y = addmm(b, x, W.t())):
//   forward   [B,in] x [in,out]   (W [out,in] read transposed)
//   weight    [out,B] x [B,in]    (grad_out read transposed; gives grad_W [out,in])
//   input     [B,out] x [out,in]  (grad_out times W; not made for the first layer, whose input
//                                  needs no gradient)
// Each is 2*B*in*out FLOP. The step's rate is its total FLOP over the sum of the per-call times.
nlohmann::json bench_matmul(const std::vector<int64_t>& dims, int64_t batch, int64_t reps) {
  BIRDPLANE_CHECK(dims.size() >= 2, "matmul: expected at least two widths, e.g. 3072,512,2");
  torch::manual_seed(1);
  nlohmann::json out = nlohmann::json::object();
  for (const auto dtype : {at::kFloat, at::kBFloat16}) {
    const std::string dname = dtype == at::kFloat ? "fp32" : "bf16";
    nlohmann::json shapes = nlohmann::json::array();
    double step_flop = 0, step_seconds = 0;
    for (size_t l = 1; l < dims.size(); ++l) {
      const int64_t in = dims[l - 1], outw = dims[l];
      auto x = at::randn({batch, in}).to(dtype), w = at::randn({outw, in}).to(dtype);
      auto b = at::randn({outw}).to(dtype), g = at::randn({batch, outw}).to(dtype);
      const double flop = 2.0 * static_cast<double>(batch * in * outw);
      std::vector<std::pair<std::string, std::function<at::Tensor()>>> ops = {
          {"forward", [&] { return at::addmm(b, x, w.t()); }},
          {"weight_grad", [&] { return at::mm(g.t(), x); }}};
      if (l > 1) ops.push_back({"input_grad", [&] { return at::mm(g, w); }});
      for (const auto& [op, f] : ops) {
        const double s = seconds_per_call(f, reps);
        step_flop += flop;
        step_seconds += s;
        shapes.push_back({{"layer", l}, {"op", op}, {"in", in}, {"out", outw}, {"flop", flop},
                          {"seconds", s}, {"gflops", flop / s / 1e9}});
      }
    }
    out[dname] = {{"shapes", shapes}, {"step_flop", step_flop}, {"step_seconds", step_seconds},
                  {"gflops", step_flop / step_seconds / 1e9}};
  }
  return {{"mode", "matmul"}, {"dims", dims}, {"batch", batch}, {"reps", reps}, {"mkldnn", at::hasMKLDNN()},
          {"results", out}};
}

#if defined(__x86_64__)
// The CPU's own ceiling, without memory: 12 independent chains of 512-bit FMAs (fp32) or of
// bf16 dot-product FMAs (vdpbf16ps: 32 products a lane group), per thread.
constexpr int kChains = 12;

__attribute__((target("avx512f"), always_inline)) inline void start_chains(__m512 (&a)[kChains]) {
  for (int i = 0; i < kChains; ++i) a[i] = _mm512_set1_ps(1.0f + static_cast<float>(i) * 1e-3f);
}

// Their sum, so that the compiler keeps every chain.
__attribute__((target("avx512f"), always_inline)) inline float sum_chains(const __m512 (&a)[kChains]) {
  __m512 s = a[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, a[i]);
  // Summed through memory: GCC 12's inline _mm512_reduce_add_ps draws a false "uninitialized" warning.
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, s);
  float total = 0.0f;
  for (float v : lanes) total += v;
  return total;
}

__attribute__((target("avx512f"))) float fma_chains(int64_t iterations) {
  __m512 a[kChains];
  start_chains(a);
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) a[i] = _mm512_fmadd_ps(a[i], m, c);
  }
  return sum_chains(a);
}

__attribute__((target("avx512f,avx512bf16"))) float bf16_dot_chains(int64_t iterations) {
  __m512 a[kChains];
  start_chains(a);
  const __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80), y = (__m512bh)_mm512_set1_epi16(0x3380);
  for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) a[i] = _mm512_dpbf16_ps(a[i], x, y);
  }
  return sum_chains(a);
}
#endif

// GFLOP/s of the CPU's arithmetic alone on the bench's threads (one std::thread each): fp32 FMA and,
// where the CPU has avx512_bf16, bf16 dot products. The ceiling no product of real data reaches.
nlohmann::json bench_peak() {
  nlohmann::json out = {{"mode", "peak"}};
#if defined(__x86_64__)
  const int threads = at::get_num_threads();
  const int64_t iterations = 50'000'000;
  auto rate = [&](auto kernel, double flop_per_fma_lane) {
    std::vector<double> rates;
    for (int rep = 0; rep < 5; ++rep) {
      train::Timer t;
      std::vector<std::thread> pool;
      std::vector<float> sink(static_cast<size_t>(threads));
      for (int i = 0; i < threads; ++i) pool.emplace_back([&, i] { sink[static_cast<size_t>(i)] = kernel(iterations); });
      for (auto& th : pool) th.join();
      rates.push_back(static_cast<double>(iterations) * kChains * 16 * flop_per_fma_lane * threads / t.seconds() / 1e9);
    }
    return *std::max_element(rates.begin(), rates.end());  // a ceiling: the best of 5
  };
  if (__builtin_cpu_supports("avx512f")) out["fp32_fma_gflops"] = rate(fma_chains, 2.0);
  if (__builtin_cpu_supports("avx512bf16")) out["bf16_dot_gflops"] = rate(bf16_dot_chains, 4.0);
#endif
  return out;
}

// One epoch over a set as training consumes it: shuffled batches of 64, ToTensor + Normalize. Each
// batch is computed whole (ATen is eager); one value of each is read, as the Python side does. The
// loader has one worker per thread and two batches in flight per worker, as the Python side's
// DataLoader has 2 worker processes with its default prefetch_factor of 2.
double folder_epoch(const data::ImageSet& set) {
  const std::vector<double> mean = {0.4915, 0.4823, 0.4468}, std = {0.2470, 0.2435, 0.2616};
  const int64_t workers = at::get_num_threads();
  data::BatchLoader loader(set, data::BatchLoaderOptions(64).workers(workers).prefetch(2 * workers),
                           transforms::normalize_batches(mean, std));
  loader.start_epoch(0);
  double sum = 0;
  int64_t images = 0;
  while (auto b = loader.next()) {
    sum += b->images.data_ptr<float>()[0];
    images += b->images.size(0);
  }
  BIRDPLANE_CHECK(images == static_cast<int64_t>(*set.size()), "an epoch gave {} images of {}", images, *set.size());
  return sum;
}

// Per-file costs of the first epoch's work on one thread, without the disk: decoding, then the resize
// through birdplane's kernel and through ATen (the same pixels; checked here).
nlohmann::json bench_decode(const std::string& tree, int64_t size, int64_t n) {
  const auto listing = data::list_image_folder(tree);
  std::vector<std::vector<uint8_t>> files;
  for (size_t i = 0; i < listing.files.size() && static_cast<int64_t>(files.size()) < n; ++i)
    files.push_back(data::read_file_bytes(listing.files[i]));
  std::vector<data::DecodedImage> decoded(files.size());
  auto median_us = [&](const std::function<void()>& pass) {
    std::vector<double> v;
    for (int r = 0; r < 3; ++r) {
      train::Timer t;
      pass();
      v.push_back(t.seconds() / static_cast<double>(files.size()) * 1e6);
    }
    std::sort(v.begin(), v.end());
    return v[1];
  };
  nlohmann::json out = {{"mode", "decode"}, {"tree", tree}, {"files", files.size()}, {"image_size", size}};
  out["decode_us"] = median_us([&] {
    for (size_t i = 0; i < files.size(); ++i) decoded[i] = data::decode_image(files[i].data(), files[i].size(), "f");
  });
  if (size > 0) {
    at::Tensor mine = at::empty({3, size, size}, at::kByte);
    out["resize_kernel_available"] = data::kernels::resize_available();
    out["resize_kernel_us"] = median_us([&] {
      for (const auto& d : decoded)
        data::fit_rgb(d.pixels.data(), d.height, d.width, size, size, data::CropMode::kNone, mine.data_ptr<uint8_t>());
    });
    std::vector<at::Tensor> chw;
    for (const auto& d : decoded)
      chw.push_back(at::from_blob(const_cast<uint8_t*>(d.pixels.data()), {d.height, d.width, 3}, at::kByte)
                        .permute({2, 0, 1}).contiguous());
    out["resize_aten_us"] = median_us([&] {
      for (const auto& c : chw) data::resize_bilinear(c, static_cast<int>(size), static_cast<int>(size));
    });
    for (size_t i = 0; i < decoded.size(); ++i) {
      data::fit_rgb(decoded[i].pixels.data(), decoded[i].height, decoded[i].width, size, size, data::CropMode::kNone,
                    mine.data_ptr<uint8_t>());
      BIRDPLANE_CHECK(torch::equal(mine, data::resize_bilinear(chw[i], static_cast<int>(size), static_cast<int>(size))),
                      "file {}: the resize kernel and ATen disagree", i);
    }
  }
  return out;
}

nlohmann::json bench_folder(const std::string& tree, int64_t size, int64_t reps, const std::string& keep_cache) {
  namespace fs = std::filesystem;
  const fs::path cache = keep_cache.empty()
                             ? fs::temp_directory_path() / ("birdplane-bench-cache-" + std::to_string(::getpid()))
                             : fs::path(keep_cache);
  data::ImageFolderOptions options;
  options.cache_dir = cache.string();
  if (size > 0) options.image_size = {size, size};
  std::vector<double> first, decode, cached, mapped;
  int64_t files = 0;
  double checksum = 0;
  for (int64_t r = 0; r < reps; ++r) {
    fs::remove_all(cache);
    data::ImageFolderReport a, b;
    train::Timer t;
    auto set = data::read_image_folder(tree, options, &a);
    decode.push_back(t.seconds());
    checksum = folder_epoch(set);
    first.push_back(t.seconds());
    train::Timer u;
    auto again = data::read_image_folder(tree, options, &b);
    mapped.push_back(u.seconds());
    BIRDPLANE_CHECK(b.from_cache, "the second read of {} did not come from the cache ({})", tree, b.cache_note);
    const double second = folder_epoch(again);
    cached.push_back(u.seconds());
    BIRDPLANE_CHECK(second == checksum && torch::equal(set.images(), again.images()),
                    "the cached set differs from the decoded one");
    files = a.files;
  }
  if (keep_cache.empty()) fs::remove_all(cache);
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const double threads = at::get_num_threads();
  return {{"mode", "folder"},
          {"tree", tree},
          {"files", files},
          {"image_size", size},
          {"first_epoch_seconds", median(first)},
          {"decode_seconds", median(decode)},
          // The cached epoch right after the first one in this process: its threads, buffers and
          // LibTorch's set-up are warm (folder-cached times it in a fresh process).
          {"cached_epoch_seconds", median(cached)},
          {"cache_read_seconds", median(mapped)},
          {"first_epochs", first},
          {"cached_epochs", cached},
          {"files_per_second", static_cast<double>(files) / median(first)},
          {"decode_files_per_second_per_core", static_cast<double>(files) / median(decode) / threads},
          {"checksum", checksum}};
}

// The epoch from an existing cache, timed from the start of this process's work: what a user's
// second run over the folder waits for (process start-up and loading LibTorch excluded, as the
// Python side's imports are).
nlohmann::json bench_folder_cached(const std::string& tree, int64_t size, const std::string& cache_dir) {
  data::ImageFolderOptions options;
  options.cache_dir = cache_dir;
  if (size > 0) options.image_size = {size, size};
  data::ImageFolderReport report;
  train::Timer t;
  auto set = data::read_image_folder(tree, options, &report);
  const double mapped = t.seconds();
  BIRDPLANE_CHECK(report.from_cache, "{} was not read from the cache in {}{}; run `birdplane_bench folder {} {} 1 "
                  "--keep-cache {}` first", tree, cache_dir, report.cache_note.empty() ? "" : " (" + report.cache_note + ")",
                  tree, size, cache_dir);
  const double checksum = folder_epoch(set);
  const double total = t.seconds();
  return {{"mode", "folder_cached"}, {"tree", tree},          {"files", report.files},
          {"image_size", size},      {"cached_epoch_seconds", total}, {"cache_read_seconds", mapped},
          {"checksum", checksum}};
}

}  // namespace

nlohmann::json bench_allreduce(const std::string& model_name, int64_t reps) {
  const auto env = train::DistEnv::from_environment();
  if (!env) throw std::runtime_error("allreduce runs as a rank: set RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT");
  auto dist = train::Distributed::join(*env, train::DistOptions());
  nn::ModelSpec spec;
  spec.name = model_name;
  spec.num_classes = 2;
  spec.image_shape = {3, 32, 32};
  auto model = nn::make_model(spec);
  auto reducer = dist->make_reducer(model->parameters());
  std::vector<at::Tensor> buckets;
  int64_t bytes = 0;
  for (const auto b : reducer->bucket_bytes()) {
    buckets.push_back(torch::ones({b / 4}, torch::kFloat));
    bytes += b;
  }
  std::vector<double> seconds;
  for (int64_t r = 0; r < reps + 1; ++r) {  // the first is a warm-up
    dist->barrier();
    train::Timer t;
    dist->all_reduce_sum(buckets);
    if (r > 0) seconds.push_back(t.seconds());
  }
  std::sort(seconds.begin(), seconds.end());
  return {{"mode", "allreduce"}, {"model", model_name}, {"world_size", dist->world_size()},
          {"rank", dist->rank()}, {"gradient_bytes", bytes}, {"buckets_bytes", reducer->bucket_bytes()},
          {"median_seconds", seconds[seconds.size() / 2]}, {"reps", reps}};
}

// (p) Serving: a seeded preset for CIFAR-10's ten classes at 32x32 saved in DIR as model.pt (for the
// Predictor), state.pt (for PyTorch eager) and pixels.onnx (uint8 in, for ONNX Runtime), once; then
// the Predictor's seconds per call on one image and on a batch of 64 uint8 images (preprocess,
// forward, probabilities, top 5), medians over `calls` calls after a warm-up.
nlohmann::json bench_predict(const std::string& model, const std::string& dir, int64_t calls) {
  namespace fs = std::filesystem;
  train::ModelConfig config;
  config.spec.name = model;
  config.spec.num_classes = 10;
  config.spec.image_shape = {3, 32, 32};
  config.classes = {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
  config.mean = {0.4915, 0.4823, 0.4468};
  config.std = {0.2470, 0.2435, 0.2616};
  const std::string path = dir + "/model.pt";
  if (!fs::exists(path)) {
    fs::create_directories(dir);
    torch::manual_seed(123);
    auto net = nn::make_model(config.spec);
    net->eval();
    config.loss = nn::natural_loss(*net);
    train::export_state_dict(dir + "/state.pt", *net);
    deploy::OnnxOptions pixels;
    pixels.with_preprocessing = true;
    deploy::export_onnx(dir + "/pixels.onnx", config, *net, pixels);
    train::save_checkpoint(path, config, *net);
  }
  const deploy::Predictor predictor(path);
  torch::manual_seed(5);
  auto time = [&](int64_t batch, int64_t n) {
    const auto images = torch::randint(0, 256, {batch, 3, 32, 32}, torch::kUInt8);
    for (int64_t i = 0; i < 10; ++i) predictor.classify(images, 5);
    std::vector<double> seconds;
    double checksum = 0;
    for (int64_t i = 0; i < n; ++i) {
      train::Timer t;
      const auto p = predictor.classify(images, 5);
      seconds.push_back(t.seconds());
      checksum += p.front().probabilities.front();
    }
    std::sort(seconds.begin(), seconds.end());
    return std::make_pair(seconds[seconds.size() / 2], checksum);
  };
  const auto [single, c1] = time(1, calls);
  const auto [batch, c64] = time(64, std::max<int64_t>(10, calls / 10));
  return {{"mode", "predict"}, {"model", model}, {"single_seconds", single}, {"batch64_seconds", batch},
          {"checksum", c1 + c64}};
}

// conv3x3: see the header comment. Large blocks are reused (as in run_speedrun), so neither side pays
// page faults for its outputs.
nlohmann::json bench_conv3x3(int64_t batch) {
  ReusedCpuMemory reuse;
  constexpr auto kCl = at::MemoryFormat::ChannelsLast;
  struct Layer {
    const char* name;
    int64_t cin, cout, side;
    bool pooled;  // a group's first convolution: the 2x2 max pool follows
  };
  const Layer layers[] = {{"group1.conv1", 24, 64, 31, true},   {"group1.conv2", 64, 64, 15, false},
                          {"group2.conv1", 64, 256, 15, true},  {"group2.conv2", 256, 256, 7, false},
                          {"group3.conv1", 256, 256, 7, true},  {"group3.conv2", 256, 256, 3, false}};
  auto best = [](const std::function<void()>& f) {
    double b = 1e30;
    for (int r = 0; r < 5; ++r) {
      train::Timer t;
      f();
      b = std::min(b, t.seconds());
    }
    return b;
  };
  const bool wino = train::winograd::available();
  nlohmann::json out = {{"mode", "conv3x3"}, {"batch", batch}, {"winograd_available", wino}};
  for (const auto& l : layers) {
    torch::manual_seed(0);
    const auto x = torch::randn({batch, l.cin, l.side, l.side}).to(at::kBFloat16).contiguous(kCl);
    const auto w = (torch::randn({l.cout, l.cin, 3, 3}) / std::sqrt(9.0 * l.cin)).contiguous();
    const auto wb = w.to(at::kBFloat16).contiguous(kCl);
    const auto dy = torch::randn({batch, l.cout, l.side, l.side}).to(at::kBFloat16).contiguous(kCl);
    const double gflop = 2.0 * batch * l.side * l.side * l.cin * l.cout * 9 / 1e9;  // each direction
    auto bwd = [&](bool input) {
      return at::convolution_backward(dy, x, wb, c10::nullopt, {1, 1}, {1, 1}, {1, 1}, false, {0, 0}, 1,
                                      {input, !input, false});
    };
    nlohmann::json j = {{"layer", l.name}, {"cin", l.cin}, {"cout", l.cout}, {"side", l.side}, {"gflop", gflop}};
    j["direct_forward_s"] = best([&] { at::convolution(x, wb, {}, {1, 1}, {1, 1}, {1, 1}, false, {0, 0}, 1); });
    j["direct_input_grad_s"] = best([&] { bwd(true); });
    j["direct_weight_grad_s"] = best([&] { bwd(false); });
    auto bits = [](const at::Tensor& t) { return reinterpret_cast<uint16_t*>(t.data_ptr()); };
    if (wino && train::winograd::forward_fits(l.cin, l.cout)) {
      auto packed = at::empty({train::winograd::packed_size(l.cin, l.cout)}, at::kBFloat16);
      auto y = at::empty_like(dy);
      j["winograd_forward_s"] = best([&] {
        train::winograd::pack(w.data_ptr<float>(), l.cout, l.cin, false, bits(packed));
        train::winograd::conv3x3(bits(x), batch, l.side, l.side, l.cin, bits(packed), l.cout, bits(y));
      });
    }
    if (wino && train::winograd::forward_fits(l.cout, l.cin)) {
      auto packed = at::empty({train::winograd::packed_size(l.cout, l.cin)}, at::kBFloat16);
      auto dx = at::empty_like(x);
      j["winograd_input_grad_s"] = best([&] {
        train::winograd::pack(w.data_ptr<float>(), l.cout, l.cin, true, bits(packed));
        train::winograd::conv3x3(bits(dy), batch, l.side, l.side, l.cout, bits(packed), l.cin, bits(dx));
      });
    }
    if (wino && train::winograd::weight_grad_fits(l.cin, l.cout)) {
      auto dw = at::empty({l.cout, l.cin, 3, 3});
      j["winograd_weight_grad_s"] = best([&] {
        train::winograd::conv3x3_weight_grad(bits(x), bits(dy), batch, l.side, l.side, l.cin, l.cout,
                                             dw.data_ptr<float>());
      });
      if (l.pooled)
        j["winograd_weight_grad_pooled_s"] = best([&] {
          train::winograd::conv3x3_weight_grad(bits(x), bits(dy), batch, l.side, l.side, l.cin, l.cout,
                                               dw.data_ptr<float>(), true);
        });
    }
    if (l.pooled && train::speedrun_kernels::available()) {
      auto pooled = at::empty({batch, l.cout, l.side / 2, l.side / 2}, x.options().memory_format(kCl));
      auto where = at::empty({pooled.numel()}, at::kByte);
      std::vector<double> mean(l.cout), var(l.cout);
      j["direct_forward_pool_s"] = best([&] {
        const auto y = at::convolution(x, wb, {}, {1, 1}, {1, 1}, {1, 1}, false, {0, 0}, 1);
        train::speedrun_kernels::pool2_stats(y.data_ptr(), true, batch, l.side, l.side, l.cout, pooled.data_ptr(),
                                             where.data_ptr<uint8_t>(), mean.data(), var.data());
      });
      if (wino && train::winograd::forward_fits(l.cin, l.cout)) {
        auto packed = at::empty({train::winograd::packed_size(l.cin, l.cout)}, at::kBFloat16);
        j["winograd_forward_pooled_s"] = best([&] {
          train::winograd::pack(w.data_ptr<float>(), l.cout, l.cin, false, bits(packed));
          train::winograd::conv3x3_pool2(bits(x), batch, l.side, l.side, l.cin, bits(packed), l.cout, bits(pooled),
                                         where.data_ptr<uint8_t>());
          train::speedrun_kernels::channel_stats(pooled.data_ptr(), true, pooled.numel() / l.cout, l.cout,
                                                 mean.data(), var.data());
        });
      }
    }
    out["layers"].push_back(j);
  }
  return out;
}

// speedrun DATA_DIR EPOCHS: the speedrun recipe for EPOCHS whole epochs (no validation, one plain
// evaluation at the end), each epoch's training seconds; --step and --precision as given (default fused,
// bf16 where the CPU has it). With --full: the whole recipe (9.9 epochs, TTA) and its accuracy.
nlohmann::json bench_speedrun(const std::string& dir, double epochs, bool full, const Flags& flags) {
  const auto train_set = data::read_cifar10(dir, data::Split::kTrain);
  const auto test_set = data::read_cifar10(dir, data::Split::kTest);
  train::SpeedrunOptions o;
  o.step = flags.step;
  o.precision = flags.precision;
  if (!full) {
    o.epochs = epochs;
    o.validate_each_epoch = false;
    o.tta = train::Tta::kNone;
  }
  const auto r = train::run_speedrun(o, train_set, test_set, train::speedrun_mean(), train::speedrun_std());
  nlohmann::json j = {{"workload", "speedrun"}, {"step", r.step}, {"precision", train::to_string(o.precision)},
                      {"accuracy", r.accuracy}, {"init_seconds", r.init_seconds}, {"train_seconds", r.train_seconds},
                      {"eval_seconds", r.eval_seconds}, {"total_seconds", r.total_seconds}};
  for (const auto& e : r.epochs) {
    j["epoch_seconds"].push_back(e.seconds);
    j["val_accuracy"].push_back(e.val_accuracy);
  }
  return j;
}

int main(int argc, char** argv) {
  try {
    // All cores, or BIRDPLANE_BENCH_THREADS (bench/run passes its --threads, as it does to Python).
    const char* threads_env = std::getenv("BIRDPLANE_BENCH_THREADS");
    set_threads(threads_env && *threads_env ? std::stoi(threads_env)
                                            : static_cast<int>(std::thread::hardware_concurrency()));
    const std::string mode = argc > 1 ? argv[1] : "";
    // --all-classes may come anywhere after the mode; the rest are positional.
    std::vector<std::string> pos;
    Flags flags;
    for (int i = 2; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--all-classes") flags.all_classes = true;
      else if (a == "--step" && i + 1 < argc) flags.step = train::parse_step(argv[++i]);
      else if (a == "--precision" && i + 1 < argc) flags.precision = train::parse_precision(argv[++i]);
      else if (a == "--recipe" && i + 1 < argc) flags.recipe = argv[++i];
      else if (a == "--clip-grad-norm" && i + 1 < argc) flags.clip_grad_norm = std::stod(argv[++i]);
      else if (a == "--keep-cache" && i + 1 < argc) flags.keep_cache = argv[++i];
      else if (a == "--kernels" && i + 1 < argc) setenv("BIRDPLANE_KERNELS", argv[++i], 1);  // blas: no own kernels
      else pos.emplace_back(a);
    }
    const bool all_classes = flags.all_classes;
    nlohmann::json j;
    if (mode == "load" && argc == 3) {
      j = bench_load(argv[2]);
    } else if (mode == "epoch" && (pos.size() == 3 || pos.size() == 4)) {
      j = bench_epoch(pos[0], pos[1], std::stoll(pos[2]), pos.size() == 4 ? pos[3] : "", flags);
    } else if (mode == "step" && pos.size() == 2) {
      j = bench_step(pos[0], std::stoll(pos[1]), flags);
    } else if (mode == "eval" && (pos.size() == 2 || pos.size() == 3)) {
      j = bench_eval(pos[0], pos[1], pos.size() == 3 ? std::stoll(pos[2]) : 20, all_classes);
    } else if (mode == "matmul" && !pos.empty() && pos.size() <= 3) {
      j = bench_matmul(nn::parse_hidden(pos[0]), pos.size() > 1 ? std::stoll(pos[1]) : 64,
                       pos.size() > 2 ? std::stoll(pos[2]) : 7);
    } else if (mode == "peak" && pos.empty()) {
      j = bench_peak();
    } else if (mode == "augment" && (argc == 5 || argc == 6)) {
      j = bench_augment(argv[2], argv[3], std::stoll(argv[4]), argc == 6 && std::string(argv[5]) == "normalize");
    } else if (mode == "transform" && argc == 5) {
      j = bench_transform(argv[2], argv[3], std::stoll(argv[4]));
    } else if (mode == "allreduce" && pos.size() == 2) {
      j = bench_allreduce(pos[0], std::stoll(pos[1]));
    } else if (mode == "decode" && pos.size() == 3) {
      j = bench_decode(pos[0], std::stoll(pos[1]), std::stoll(pos[2]));
    } else if (mode == "folder" && pos.size() == 3) {
      j = bench_folder(pos[0], std::stoll(pos[1]), std::stoll(pos[2]), flags.keep_cache);
    } else if (mode == "folder-cached" && pos.size() == 3) {
      j = bench_folder_cached(pos[0], std::stoll(pos[1]), pos[2]);
    } else if (mode == "speedrun" && (pos.size() == 2 || (pos.size() == 3 && pos[2] == "full"))) {
      j = bench_speedrun(pos[0], std::stod(pos[1]), pos.size() == 3, flags);
    } else if (mode == "conv3x3" && pos.size() <= 1) {
      j = bench_conv3x3(pos.empty() ? 1024 : std::stoll(pos[0]));
    } else if (mode == "predict" && pos.size() == 3) {
      j = bench_predict(pos[0], pos[1], std::stoll(pos[2]));
    } else {
      std::cerr << "usage: birdplane_bench load DATA_DIR | epoch DATA_DIR MODEL EPOCHS [SPEC] [--all-classes]"
                   " [--step auto|fused|autograd] [--precision fp32|bf16] [--recipe book|modern] [--clip-grad-norm X] | step MODEL N [--step ...] [--precision ...]"
                   " | eval DATA_DIR MODEL [N] [--all-classes] | matmul DIMS [BATCH] [REPS]"
                   " | peak | augment DATA_DIR SPEC N [normalize] | transform DATA_DIR SPEC N [--kernels blas]"
                   " | decode TREE SIZE N | folder TREE SIZE REPS [--keep-cache DIR] | folder-cached TREE SIZE DIR"
                   " | allreduce MODEL REPS (as a rank)"
                   " | predict MODEL DIR CALLS | speedrun DATA_DIR EPOCHS [full] [--step ...] [--precision ...]"
                   " | conv3x3 [BATCH]\n";
      return 2;
    }
    j["threads"] = at::get_num_threads();
    j["blas_core"] = inspect_environment().blas_core;  // OpenBLAS's kernels (OPENBLAS_CORETYPE decides)
    std::cout << j.dump() << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
