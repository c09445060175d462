// c10d behind birdplane's own interface (train/distributed.h): TCPStore, ProcessGroupGloo, a heartbeat
// per rank in the store, and the bucketed gradient all-reduce started from autograd hooks.
#include "birdplane/train/distributed.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <cstdlib>
#include <deque>
#include <future>
#include <mutex>
#include <thread>
#include <type_traits>

#include <fmt/format.h>
#include <torch/torch.h>

// Debian's LibTorch is built with Gloo; the header describes it only when told so.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "birdplane/check.h"

namespace birdplane::train {
namespace {

using Clock = std::chrono::steady_clock;

int64_t parse_variable(const char* name, const char* text, int64_t lowest) {
  const std::string s = text;
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  BIRDPLANE_CHECK(!s.empty() && used == s.size() && v >= lowest,
                  "environment variable {}='{}' is not a whole number of {} or more (torchrun sets it, as does a "
                  "launcher of local workers)",
                  name, s, lowest);
  return v;
}

std::string seconds_text(std::chrono::milliseconds t) { return fmt::format("{:g} s", t.count() / 1000.0); }

bool is_loopback(const std::string& addr) {
  return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1";
}

// The first line of a c10d or Gloo message (they carry C++ backtraces).
std::string first_line(const std::string& s) {
  const auto pos = s.find('\n');
  return pos == std::string::npos ? s : s.substr(0, pos);
}

std::string store_text(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

// A connection to the store at host:port, or (server) the store itself, served from this process.
c10::intrusive_ptr<c10d::TCPStore> tcp_store(const std::string& host, int64_t port, bool server,
                                             std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions o;
  o.port = static_cast<uint16_t>(port);
  o.isServer = server;
  o.waitWorkers = false;
  o.timeout = timeout;
  return c10::make_intrusive<c10d::TCPStore>(host, o);
}

// The store did not answer a request within the timeout.
class StoreSilent : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// c10d's TCPStore server (LibTorch 1.13) serves one request at a time and reads each one whole before
// it looks at another client: a client stopped half-way through a request (SIGSTOP, a frozen machine)
// leaves every other client waiting for its answer forever, and the client side has no timeout on
// answers. So the requests a rank makes while the run goes on are made by this line's own thread, and
// the caller stops waiting after `patience`. Once a request has gone unanswered the line is silent:
// later requests fail at once, and its thread is left behind (it holds the connection) rather than
// joined.
class StoreLine {
 public:
  StoreLine(c10::intrusive_ptr<c10d::Store> store, std::chrono::milliseconds patience, std::string where)
      : shared_(std::make_shared<Shared>()), patience_(patience), where_(std::move(where)) {
    shared_->store = std::move(store);
    thread_ = std::thread([shared = shared_] {
      std::unique_lock<std::mutex> lock(shared->mutex);
      while (true) {
        shared->cv.wait(lock, [&] { return shared->stop || !shared->jobs.empty(); });
        if (shared->jobs.empty()) return;
        auto job = std::move(shared->jobs.front());
        shared->jobs.pop_front();
        lock.unlock();
        job(*shared->store);
        lock.lock();
      }
    });
  }
  ~StoreLine() {
    {
      std::lock_guard<std::mutex> lock(shared_->mutex);
      shared_->stop = true;
    }
    shared_->cv.notify_all();
    if (silent_) thread_.detach();
    else thread_.join();
  }
  StoreLine(const StoreLine&) = delete;
  StoreLine& operator=(const StoreLine&) = delete;

  bool silent() const { return silent_; }
  std::string silence() const {
    return fmt::format("the rendezvous store at {} has not answered for {}", where_, seconds_text(patience_));
  }

  // request(store)'s result, or StoreSilent. The request must own what it uses: one given up on runs on
  // after its caller has gone.
  template <class Request>
  auto ask(Request request) -> decltype(request(std::declval<c10d::Store&>())) {
    using Result = decltype(request(std::declval<c10d::Store&>()));
    if (silent_) throw StoreSilent(silence());
    auto promise = std::make_shared<std::promise<Result>>();
    auto answer = promise->get_future();
    {
      std::lock_guard<std::mutex> lock(shared_->mutex);
      shared_->jobs.emplace_back([promise, request](c10d::Store& store) {
        try {
          if constexpr (std::is_void_v<Result>) {
            request(store);
            promise->set_value();
          } else {
            promise->set_value(request(store));
          }
        } catch (...) {
          promise->set_exception(std::current_exception());
        }
      });
    }
    shared_->cv.notify_one();
    if (answer.wait_for(patience_) != std::future_status::ready) {
      silent_ = true;
      throw StoreSilent(silence());
    }
    return answer.get();
  }

 private:
  struct Shared {
    std::mutex mutex;
    std::condition_variable cv;
    std::deque<std::function<void(c10d::Store&)>> jobs;
    bool stop = false;
    c10::intrusive_ptr<c10d::Store> store;
  };
  std::shared_ptr<Shared> shared_;
  std::thread thread_;
  std::chrono::milliseconds patience_;
  std::string where_;
  std::atomic<bool> silent_{false};
};

// Each rank adds 1 to its own counter in the store every period, on its own connection and thread, so
// that the others can tell a hung rank from a slow one. Its state is shared with the thread: a thread
// stuck in a request to a silent store is left behind when the rank stops.
struct Heartbeat {
  std::mutex mutex;
  std::condition_variable cv;
  bool stopping = false, finished = false;
};

}  // namespace

std::optional<DistEnv> DistEnv::from_environment(const std::function<const char*(const char*)>& get_fn) {
  auto get = [&](const char* name) -> const char* {
    const char* v = get_fn ? get_fn(name) : std::getenv(name);
    return v && *v ? v : nullptr;
  };
  const char* world = get("WORLD_SIZE");
  if (!world) return std::nullopt;
  DistEnv e;
  e.world_size = parse_variable("WORLD_SIZE", world, 1);
  const char* rank = get("RANK");
  BIRDPLANE_CHECK(rank, "WORLD_SIZE={} is set but RANK is not; a multi-process run needs both (torchrun sets them)",
                  e.world_size);
  e.rank = parse_variable("RANK", rank, 0);
  BIRDPLANE_CHECK(e.rank < e.world_size, "RANK={} is out of range for WORLD_SIZE={} (expected 0 to {})", e.rank,
                  e.world_size, e.world_size - 1);
  if (const char* v = get("LOCAL_RANK")) e.local_rank = parse_variable("LOCAL_RANK", v, 0);
  e.local_world_size = e.world_size;
  if (const char* v = get("LOCAL_WORLD_SIZE")) e.local_world_size = parse_variable("LOCAL_WORLD_SIZE", v, 1);
  e.master_addr = get("MASTER_ADDR") ? get("MASTER_ADDR") : "127.0.0.1";
  if (const char* v = get("MASTER_PORT")) e.master_port = parse_variable("MASTER_PORT", v, 0);
  BIRDPLANE_CHECK(e.master_port <= 65535, "MASTER_PORT={} is not a TCP port (expected 1 to 65535)", e.master_port);
  if (const char* v = get("TORCHELASTIC_USE_AGENT_STORE")) e.agent_store = std::string(v) == "True";
  return e;
}

// ---------------------------------------------------------------------------------------------------
struct Distributed::Impl {
  DistEnv env;
  DistOptions options;
  std::string prefix;                               // keys of this attempt (torchrun may restart)
  c10::intrusive_ptr<c10d::Store> store;            // the main thread's connection (under prefix)
  std::unique_ptr<StoreLine> line;                  // the requests made on `store` after the rendezvous
  c10::intrusive_ptr<c10d::Store> beat_store;       // the heartbeat thread's own connection
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
  std::thread beat_thread;
  std::shared_ptr<Heartbeat> heartbeat = std::make_shared<Heartbeat>();
  int64_t text_count = 0;

  c10d::ProcessGroupGloo* live() const {
    BIRDPLANE_CHECK(group, "this rank has left the process group after a failure");
    return group.get();
  }

  std::string where() const { return fmt::format("{}:{}", env.master_addr, env.master_port); }

  c10::intrusive_ptr<c10d::TCPStore> connect(bool server) const {
    return tcp_store(env.master_addr, env.master_port, server, options.timeout);
  }

  void start_heartbeat() {
    beat_thread = std::thread([beat = heartbeat, store = beat_store, key = fmt::format("beat/{}", env.rank),
                               period = std::chrono::duration<double>(options.heartbeat_seconds)] {
      std::unique_lock<std::mutex> lock(beat->mutex);
      while (!beat->stopping) {
        lock.unlock();
        try {
          store->add(key, 1);
        } catch (const std::exception&) {
          lock.lock();
          break;  // the store is gone; a collective will notice and say so
        }
        lock.lock();
        beat->cv.wait_for(lock, period, [&] { return beat->stopping; });
      }
      beat->finished = true;
      beat->cv.notify_all();
    });
  }

  void stop_heartbeat() {
    if (!beat_thread.joinable()) return;
    std::unique_lock<std::mutex> lock(heartbeat->mutex);
    heartbeat->stopping = true;
    heartbeat->cv.notify_all();
    // A heartbeat waiting for a silent store's answer would never come back.
    const auto patience = line && line->silent() ? std::chrono::milliseconds(1000) : options.timeout;
    const bool finished = heartbeat->cv.wait_for(lock, patience, [&] { return heartbeat->finished; });
    lock.unlock();
    if (finished) beat_thread.join();
    else beat_thread.detach();
  }

  // The store's requests, through the line. (By value: a request given up on runs on without its caller.)
  int64_t add(const std::string& key, int64_t delta) {
    return line->ask([key, delta](c10d::Store& s) { return s.add(key, delta); });
  }
  void set(const std::string& key, const std::string& value) {
    line->ask([key, bytes = std::vector<uint8_t>(value.begin(), value.end())](c10d::Store& s) { s.set(key, bytes); });
  }
  bool has(const std::string& key) {
    return line->ask([key](c10d::Store& s) { return s.check({key}); });
  }

  int64_t beats(int64_t rank) { return add(fmt::format("beat/{}", rank), 0); }
  void acknowledge() { add("acknowledged", 1); }

  std::optional<std::string> failure_of(int64_t rank) {
    const std::string key = fmt::format("failed/{}", rank);
    if (!has(key)) return std::nullopt;
    return store_text(line->ask([key](c10d::Store& s) { return s.get(key); }));
  }
};

Distributed::Distributed(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Distributed::~Distributed() {
  if (impl_) impl_->stop_heartbeat();
}

std::unique_ptr<Distributed> Distributed::join(const DistEnv& env, const DistOptions& options) {
  BIRDPLANE_CHECK(!options.device.is_cuda(),
                  "distributed training on CUDA needs PyTorch's NCCL process group, which this LibTorch does "
                  "not provide (Debian's is CPU-only); train on the CPU (Gloo)");
  auto impl = std::make_unique<Impl>();
  impl->env = env;
  impl->options = options;
  const char* restart = std::getenv("TORCHELASTIC_RESTART_COUNT");
  impl->prefix = fmt::format("birdplane/{}/", restart && *restart ? restart : "0");
  const bool server = !env.agent_store && env.rank == 0;
  c10::intrusive_ptr<c10d::TCPStore> tcp, beat_tcp;
  try {
    tcp = impl->connect(server);
    beat_tcp = impl->connect(false);
  } catch (const std::exception& e) {
    const std::string why = first_line(e.what());
    if (server) {
      fail("rank 0 could not serve the rendezvous store on port {} (MASTER_PORT): {}. Is another run using the "
           "port? Pick a free one with MASTER_PORT",
           env.master_port, why);
    }
    fail("could not reach the rendezvous store at {} (MASTER_ADDR:MASTER_PORT) within {}: {}. Check that {} is "
         "running there and the port is open",
         impl->where(), seconds_text(options.timeout), why,
         env.agent_store ? "the launcher (torchrun's agent or a StoreServer)" : "rank 0");
  }
  impl->store = c10::make_intrusive<c10d::PrefixStore>(impl->prefix, tcp);
  impl->beat_store = c10::make_intrusive<c10d::PrefixStore>(impl->prefix, beat_tcp);
  impl->line = std::make_unique<StoreLine>(impl->store, options.timeout, impl->where());

  auto gloo = c10d::ProcessGroupGloo::Options::create(options.timeout);
  const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
  if (ifname && *ifname) {
    gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
  } else if (is_loopback(env.master_addr)) {
    gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  } else {
    gloo->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  // The heartbeat starts before the group forms, so a rank that never arrives can be named.
  impl->start_heartbeat();
  auto dist = std::unique_ptr<Distributed>(new Distributed(std::move(impl)));
  try {
    dist->impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(
        c10::make_intrusive<c10d::PrefixStore>("gloo/", dist->impl_->store), static_cast<int>(env.rank),
        static_cast<int>(env.world_size), gloo);
  } catch (const std::exception& e) {
    fail("the {} ranks did not all join the process group at {} within {} (the timeout): {}", env.world_size,
         dist->impl_->where(), seconds_text(options.timeout), first_line(e.what()));
  }
  return dist;
}

int64_t Distributed::rank() const { return impl_->env.rank; }
int64_t Distributed::world_size() const { return impl_->env.world_size; }
int64_t Distributed::local_world_size() const { return impl_->env.local_world_size; }
const DistOptions& Distributed::options() const { return impl_->options; }
std::string Distributed::backend() const { return "gloo"; }

void Distributed::report_failure(const std::string& message) noexcept {
  Impl& d = *impl_;
  try {
    d.set(fmt::format("failed/{}", rank()), message);
  } catch (...) {
  }
  try {
    // Closing this rank's connections makes the others' pending collectives fail now rather than at
    // the timeout; they then read the message above.
    d.group.reset();
    // Rank 0 of env:// serves the store: it stays up until the others have read the message (or a
    // few seconds), since its exit takes the store with it.
    if (!d.env.agent_store && rank() == 0) {
      const auto until = Clock::now() + std::min<std::chrono::milliseconds>(d.options.timeout, std::chrono::seconds(10));
      while (d.add("acknowledged", 0) < world_size() - 1 && Clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  } catch (...) {
  }
}

void Distributed::fail_lost(const std::string& what, const std::string& context) {
  Impl& d = *impl_;
  const std::string cause = first_line(what);
  const int64_t n = world_size();
  const bool silent_already = d.line->silent();  // the store's silence is the failure itself
  try {
    auto named_failure = [&]() -> std::optional<std::pair<int64_t, std::string>> {
      for (int64_t r = 0; r < n; ++r) {
        if (r == rank()) continue;
        if (auto msg = d.failure_of(r)) {
          d.acknowledge();
          return std::make_pair(r, *msg);
        }
      }
      return std::nullopt;
    };
    if (auto f = named_failure()) {
      throw DistributedError(fmt::format("rank {} failed: {}; {}", f->first, f->second, context), f->first);
    }
    // Whose heartbeat has stopped: two readings a few beats apart.
    std::vector<int64_t> before(n);
    for (int64_t r = 0; r < n; ++r) before[r] = d.beats(r);
    std::this_thread::sleep_for(std::chrono::duration<double>(3 * d.options.heartbeat_seconds));
    if (auto f = named_failure()) {
      throw DistributedError(fmt::format("rank {} failed: {}; {}", f->first, f->second, context), f->first);
    }
    for (int64_t r = 0; r < n; ++r) {
      if (r == rank() || d.beats(r) != before[r]) continue;
      throw DistributedError(fmt::format("lost rank {} (it stopped responding: killed, crashed or hung) ({}); {}",
                                         r, cause, context),
                             r);
    }
  } catch (const DistributedError&) {
    throw;
  } catch (const StoreSilent& e) {
    // Someone stopped half-way through a request to the store; who cannot be asked of it any more.
    throw DistributedError(
        fmt::format("{}{}: some rank (or another client of the store) stopped in the middle of a request to it, hung "
                    "or suspended, so it cannot say which; {}",
                    silent_already ? "" : fmt::format("lost contact with the other ranks ({}), and ", cause), e.what(),
                    context),
        -1);
  } catch (const std::exception&) {
    // The store itself is gone: whoever served it stopped.
    if (!d.env.agent_store) {
      throw DistributedError(
          fmt::format("lost rank 0, which served the rendezvous store at {} ({}); {}", d.where(), cause, context), 0);
    }
    throw DistributedError(fmt::format("lost the launcher's rendezvous store at {} (the launcher stopped) ({}); {}",
                                       d.where(), cause, context),
                           -1);
  }
  throw DistributedError(fmt::format("a collective operation failed and every rank still responds: {}; {}", cause,
                                     context),
                         -1);
}

void Distributed::broadcast(std::vector<at::Tensor>& tensors, int64_t root) {
  if (tensors.empty()) return;
  c10d::BroadcastOptions o;
  o.rootRank = static_cast<int>(root);
  try {
    // Gloo broadcasts one tensor list of a single tensor per call on the CPU.
    for (auto& t : tensors) {
      std::vector<at::Tensor> one{t};
      impl_->live()->broadcast(one, o)->wait();
    }
  } catch (const std::exception& e) {
    fail_lost(e.what(), "during a broadcast");
  }
}

void Distributed::all_reduce_sum(std::vector<at::Tensor>& tensors) {
  try {
    for (auto& t : tensors) {
      std::vector<at::Tensor> one{t};
      impl_->live()->allreduce(one)->wait();
    }
  } catch (const std::exception& e) {
    fail_lost(e.what(), "during an all-reduce");
  }
}

void Distributed::barrier() {
  try {
    impl_->live()->barrier()->wait();
  } catch (const std::exception& e) {
    fail_lost(e.what(), "at a barrier");
  }
}

std::string Distributed::broadcast_text(const std::string& text) {
  std::vector<at::Tensor> size{torch::tensor({static_cast<int64_t>(is_main() ? text.size() : 0)}, torch::kInt64)};
  broadcast(size);
  const int64_t n = size[0].item<int64_t>();
  std::vector<at::Tensor> bytes{torch::empty({std::max<int64_t>(n, 1)}, torch::kUInt8)};
  if (is_main() && n > 0) std::memcpy(bytes[0].data_ptr<uint8_t>(), text.data(), static_cast<size_t>(n));
  broadcast(bytes);
  return std::string(reinterpret_cast<const char*>(bytes[0].data_ptr<uint8_t>()), static_cast<size_t>(n));
}

void Distributed::main_finished(const std::string& step) {
  try {
    impl_->set("done/" + step, "1");
  } catch (const std::exception& e) {
    fail_lost(e.what(), "while telling the other ranks that " + step + " is done");
  }
}

void Distributed::wait_for_main(const std::string& step) {
  Impl& d = *impl_;
  try {
    int64_t last = d.beats(0);
    auto last_change = Clock::now();
    while (!d.has("done/" + step)) {
      if (auto msg = d.failure_of(0)) {
        d.acknowledge();
        throw DistributedError(fmt::format("rank 0 failed: {}", *msg), 0);
      }
      const int64_t now = d.beats(0);
      if (now != last) {
        last = now;
        last_change = Clock::now();
      } else if (Clock::now() - last_change > d.options.timeout) {
        throw DistributedError(fmt::format("lost rank 0: no sign of life for {} while waiting for it to finish {}",
                                           seconds_text(d.options.timeout), step),
                               0);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  } catch (const DistributedError&) {
    throw;
  } catch (const std::exception& e) {
    fail_lost(e.what(), "while waiting for rank 0 to finish " + step);
  }
}

// ---------------------------------------------------------------------------------------------------
// The gradient reducer.

namespace {
constexpr int64_t kMaxExtras = 8;
}

struct GradientReducer::Impl {
  Distributed* dist = nullptr;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
  struct Slot {
    at::Tensor param;
    int64_t bucket = 0, offset = 0, numel = 0;
    bool ready = false;
  };
  struct Bucket {
    at::Tensor flat;              // gradients (and in the last bucket, the extras after them)
    int64_t grad_numel = 0;
    std::vector<int64_t> slots;
    int64_t pending = 0;
    bool launched = false;
    c10::intrusive_ptr<c10d::Work> work;
  };
  std::vector<Slot> slots;
  std::vector<Bucket> buckets;
  std::vector<std::pair<int64_t, unsigned>> hooks;  // (slot, hook id)
  int64_t next_launch = 0;
  int64_t extras = 0;
  bool in_step = false;
  double wait_seconds = 0;
  std::string hook_error;  // a problem found inside a hook, thrown from finish_step

  void launch(int64_t b) {
    Bucket& bucket = buckets[b];
    std::vector<at::Tensor> one{bucket.flat};
    bucket.work = group->allreduce(one);
    bucket.launched = true;
  }

  void launch_ready() {
    while (next_launch < static_cast<int64_t>(buckets.size()) && buckets[next_launch].pending == 0) launch(next_launch++);
  }

  void on_grad(int64_t i, const at::Tensor& grad) {
    if (!in_step) return;  // a backward pass outside a training step (none in birdplane)
    Slot& s = slots[i];
    Bucket& bucket = buckets[s.bucket];
    auto dst = bucket.flat.narrow(0, s.offset, s.numel);
    if (bucket.launched) {
      hook_error = "a parameter received a second gradient after its bucket's all-reduce began; the distributed "
                   "step needs each parameter used once per forward pass";
      return;
    }
    if (s.ready) {
      dst.add_(grad.reshape(-1));
      return;
    }
    dst.copy_(grad.reshape(-1));
    s.ready = true;
    if (--bucket.pending == 0) launch_ready();
  }
};

GradientReducer::GradientReducer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

GradientReducer::~GradientReducer() {
  if (!impl_) return;
  for (auto& [slot, id] : impl_->hooks) impl_->slots[slot].param.remove_hook(id);
  // Work still in flight (a step abandoned by an error) must finish before its buffers go.
  for (auto& b : impl_->buckets) {
    if (!b.work) continue;
    try {
      b.work->wait();
    } catch (...) {
    }
  }
}

std::unique_ptr<GradientReducer> Distributed::make_reducer(std::vector<at::Tensor> parameters, int64_t bucket_bytes,
                                                           int64_t first_bucket_bytes) {
  auto r = std::make_unique<GradientReducer::Impl>();
  r->dist = this;
  r->group = impl_->group;
  std::vector<at::Tensor> params;
  for (auto& p : parameters)
    if (p.requires_grad()) params.push_back(p);
  BIRDPLANE_CHECK(!params.empty(), "the model has no trainable parameters to average across ranks");
  const auto options = params.front().options();
  for (const auto& p : params) {
    BIRDPLANE_CHECK(p.scalar_type() == params.front().scalar_type() && p.device() == params.front().device(),
                    "distributed training needs every parameter in one dtype on one device");
  }
  // Reverse order: backward reaches the last layers first. The first bucket is small so that its
  // all-reduce starts early; the others fill up to bucket_bytes (DDP's 1 MiB and 25 MiB).
  const int64_t elem = static_cast<int64_t>(params.front().element_size());
  int64_t limit = std::max<int64_t>(first_bucket_bytes, elem);
  std::vector<std::vector<int64_t>> groups(1);
  int64_t filled = 0;
  r->slots.resize(params.size());
  for (int64_t i = static_cast<int64_t>(params.size()) - 1; i >= 0; --i) {
    const int64_t bytes = params[i].numel() * elem;
    if (!groups.back().empty() && filled + bytes > limit) {
      groups.emplace_back();
      filled = 0;
      limit = std::max<int64_t>(bucket_bytes, elem);
    }
    groups.back().push_back(i);
    filled += bytes;
  }
  for (size_t b = 0; b < groups.size(); ++b) {
    GradientReducer::Impl::Bucket bucket;
    int64_t offset = 0;
    for (int64_t i : groups[b]) {
      auto& s = r->slots[i];
      s.param = params[i];
      s.bucket = static_cast<int64_t>(b);
      s.offset = offset;
      s.numel = params[i].numel();
      offset += s.numel;
      bucket.slots.push_back(i);
    }
    bucket.grad_numel = offset;
    const bool last = b + 1 == groups.size();
    bucket.flat = torch::zeros({offset + (last ? kMaxExtras : 0)}, options.requires_grad(false));
    r->buckets.push_back(std::move(bucket));
  }
  GradientReducer::Impl* raw = r.get();
  for (int64_t i = 0; i < static_cast<int64_t>(r->slots.size()); ++i) {
    const unsigned id = r->slots[i].param.register_hook([raw, i](const at::Tensor& grad) { raw->on_grad(i, grad); });
    r->hooks.emplace_back(i, id);
  }
  return std::make_unique<GradientReducer>(std::move(r));
}

void GradientReducer::begin_step(const std::vector<double>& extras) {
  Impl& r = *impl_;
  BIRDPLANE_CHECK(static_cast<int64_t>(extras.size()) <= kMaxExtras, "at most {} values ride along with a step",
                  kMaxExtras);
  for (auto& s : r.slots) s.ready = false;
  for (auto& b : r.buckets) {
    b.pending = static_cast<int64_t>(b.slots.size());
    b.launched = false;
    b.work.reset();
  }
  auto& last = r.buckets.back();
  auto tail = last.flat.narrow(0, last.grad_numel, kMaxExtras);
  std::vector<double> padded(extras);
  padded.resize(kMaxExtras, 0.0);
  tail.copy_(torch::tensor(padded, torch::kDouble));
  r.extras = static_cast<int64_t>(extras.size());
  r.next_launch = 0;
  r.hook_error.clear();
  r.in_step = true;
}

std::vector<double> GradientReducer::finish_step() {
  Impl& r = *impl_;
  r.in_step = false;
  BIRDPLANE_CHECK(r.hook_error.empty(), "{}", r.hook_error);
  // Parameters that got no gradient on this rank count as zeros; then every bucket goes, in order.
  for (auto& s : r.slots) {
    if (!s.ready && !r.buckets[s.bucket].launched) r.buckets[s.bucket].flat.narrow(0, s.offset, s.numel).zero_();
  }
  for (auto& b : r.buckets) b.pending = 0;
  const auto start = Clock::now();
  try {
    r.launch_ready();
    for (auto& b : r.buckets) b.work->wait();
  } catch (const std::exception& e) {
    r.wait_seconds += std::chrono::duration<double>(Clock::now() - start).count();
    r.dist->fail_lost(e.what(), "during the gradient all-reduce");
  }
  r.wait_seconds += std::chrono::duration<double>(Clock::now() - start).count();
  const double world = static_cast<double>(r.dist->world_size());
  auto& last = r.buckets.back();
  auto tail = last.flat.narrow(0, last.grad_numel, r.extras).to(torch::kCPU, torch::kDouble);
  std::vector<double> sums(tail.data_ptr<double>(), tail.data_ptr<double>() + r.extras);
  for (auto& b : r.buckets) b.flat.narrow(0, 0, b.grad_numel).div_(world);
  // The averaged gradients become the parameters' grads (views into the buckets, as DDP's
  // gradient_as_bucket_view: no copy back). The trainer clears grads before each backward pass.
  for (auto& s : r.slots) {
    s.param.mutable_grad() = r.buckets[s.bucket].flat.narrow(0, s.offset, s.numel).view(s.param.sizes());
  }
  return sums;
}

std::vector<int64_t> GradientReducer::bucket_bytes() const {
  std::vector<int64_t> out;
  for (const auto& b : impl_->buckets) out.push_back(b.grad_numel * static_cast<int64_t>(b.flat.element_size()));
  return out;
}

double GradientReducer::wait_seconds() const { return impl_->wait_seconds; }

// ---------------------------------------------------------------------------------------------------

std::vector<std::pair<std::string, std::string>> local_worker_environment(int64_t rank, int64_t nproc,
                                                                          int64_t port) {
  return {{"RANK", std::to_string(rank)},
          {"LOCAL_RANK", std::to_string(rank)},
          {"GROUP_RANK", "0"},
          {"ROLE_RANK", std::to_string(rank)},
          {"WORLD_SIZE", std::to_string(nproc)},
          {"LOCAL_WORLD_SIZE", std::to_string(nproc)},
          {"ROLE_WORLD_SIZE", std::to_string(nproc)},
          {"MASTER_ADDR", "127.0.0.1"},
          {"MASTER_PORT", std::to_string(port)},
          {"TORCHELASTIC_USE_AGENT_STORE", "True"},
          {"TORCHELASTIC_RESTART_COUNT", "0"}};
}

struct StoreServer::Impl {
  c10::intrusive_ptr<c10d::TCPStore> store;
};

StoreServer::StoreServer(int64_t port, std::chrono::milliseconds timeout) : impl_(std::make_unique<Impl>()) {
  BIRDPLANE_CHECK_SETTING(port >= 0 && port <= 65535, "master_port",
                          "{} is not a TCP port (expected 0 for a free one, or 1 to 65535)", port);
  try {
    impl_->store = tcp_store("127.0.0.1", port, true, timeout);
  } catch (const std::exception& e) {
    fail("could not serve the rendezvous store on 127.0.0.1 port {}: {}. Is another run using it? Pick another "
         "port, or 0 for a free one",
         port, first_line(e.what()));
  }
}

StoreServer::~StoreServer() {
  // c10d's server joins its thread on the way out, and that thread may be waiting forever for the rest
  // of a request from a client that stopped half-way (see StoreLine). Ask it something first; if it
  // does not answer, leave it running: the process ends soon and takes it along.
  try {
    const std::chrono::seconds patience(2);
    StoreLine probe(tcp_store("127.0.0.1", port(), false, patience), patience, fmt::format("127.0.0.1:{}", port()));
    probe.ask([](c10d::Store& s) { return s.add("birdplane/server-answers", 0); });
  } catch (const StoreSilent&) {
    (void)impl_->store.release();
  } catch (const std::exception&) {
  }
}

int64_t StoreServer::port() const { return impl_->store->getPort(); }

}  // namespace birdplane::train
