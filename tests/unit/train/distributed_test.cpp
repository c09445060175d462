// torchrun's environment read into DistEnv; the environment --nproc gives its workers.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <thread>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <torch/version.h>

#include "birdplane/check.h"
#include "birdplane/train/distributed.h"
#include "support/expect_error.h"

using birdplane::train::DistEnv;

namespace {
std::optional<DistEnv> read(const std::map<std::string, std::string>& vars) {
  return DistEnv::from_environment([&](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

// Rank `rank` of two on this machine, with the store `server` serves (as --nproc's workers have it).
DistEnv rank_of_two(int64_t rank, const birdplane::train::StoreServer& server) {
  DistEnv env;
  env.rank = rank;
  env.world_size = 2;
  env.local_world_size = 2;
  env.master_addr = "127.0.0.1";
  env.master_port = server.port();
  env.agent_store = true;
  return env;
}
}  // namespace

TEST(DistEnv, NoWorldSizeMeansOneProcess) { EXPECT_FALSE(read({{"RANK", "0"}}).has_value()); }

TEST(DistEnv, ReadsTorchrunsVariables) {
  const auto e = read({{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "2"},
                       {"MASTER_ADDR", "10.0.0.7"}, {"MASTER_PORT", "29400"},
                       {"TORCHELASTIC_USE_AGENT_STORE", "True"}});
  ASSERT_TRUE(e);
  EXPECT_EQ(e->rank, 3);
  EXPECT_EQ(e->world_size, 4);
  EXPECT_EQ(e->local_rank, 1);
  EXPECT_EQ(e->local_world_size, 2);
  EXPECT_EQ(e->master_addr, "10.0.0.7");
  EXPECT_EQ(e->master_port, 29400);
  EXPECT_TRUE(e->agent_store);
  // Python's env:// defaults.
  const auto d = read({{"RANK", "0"}, {"WORLD_SIZE", "2"}});
  ASSERT_TRUE(d);
  EXPECT_EQ(d->master_addr, "127.0.0.1");
  EXPECT_EQ(d->master_port, 29500);
  EXPECT_EQ(d->local_world_size, 2);
  EXPECT_FALSE(d->agent_store);
}

TEST(DistEnv, BadValuesNameTheVariable) {
  birdplane::fixtures::expect_error([&] { read({{"WORLD_SIZE", "2"}}); }, {"RANK is not"});
  birdplane::fixtures::expect_error([&] { read({{"RANK", "2"}, {"WORLD_SIZE", "2"}}); }, {"RANK=2 is out of range"});
  birdplane::fixtures::expect_error([&] { read({{"RANK", "0"}, {"WORLD_SIZE", "0"}}); }, {"WORLD_SIZE='0'"});
  birdplane::fixtures::expect_error([&] { read({{"RANK", "-1"}, {"WORLD_SIZE", "2"}}); }, {"RANK='-1'"});
  birdplane::fixtures::expect_error([&] { read({{"RANK", "0"}, {"WORLD_SIZE", "2x"}}); }, {"WORLD_SIZE='2x'"});
  birdplane::fixtures::expect_error([&] { read({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "70000"}}); }, {"MASTER_PORT=70000 is not a TCP port"});
}

TEST(DistEnv, TheLaunchersEnvironmentReadsBack) {
  std::map<std::string, std::string> vars;
  for (const auto& [k, v] : birdplane::train::local_worker_environment(1, 3, 40000)) vars[k] = v;
  const auto e = read(vars);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->rank, 1);
  EXPECT_EQ(e->world_size, 3);
  EXPECT_EQ(e->local_world_size, 3);
  EXPECT_EQ(e->master_port, 40000);
  EXPECT_TRUE(e->agent_store);
}

// Two ranks as two threads of this process, joined through a store served here (as --nproc's launcher
// does): the reducer leaves every rank with the mean of the ranks' gradients, the extras summed.
TEST(GradientReducer, TwoRanksEndWithTheMeanGradient) {
  using namespace birdplane::train;
  StoreServer server(0, std::chrono::seconds(30));
  // One small network per rank, different initial weights: the broadcast must make them equal.
  auto make_net = [](int64_t seed) {
    torch::manual_seed(seed);
    return torch::nn::Sequential(torch::nn::Linear(6, 5), torch::nn::Tanh(), torch::nn::Linear(5, 3));
  };
  std::vector<torch::nn::Sequential> nets{make_net(1), make_net(2)};
  const auto inputs = std::vector<at::Tensor>{torch::randn({4, 6}), torch::randn({4, 6})};
  const auto labels = std::vector<at::Tensor>{torch::tensor({0, 1, 2, 0}), torch::tensor({2, 2, 1, 0})};
  std::vector<std::vector<double>> sums(2);
  std::vector<std::string> texts(2), errors(2);
  auto rank_main = [&](int64_t rank) {
    try {
      auto dist = Distributed::join(rank_of_two(rank, server), DistOptions());
      std::vector<at::Tensor> state;
      for (auto& p : nets[rank]->parameters()) state.push_back(p.detach());
      dist->broadcast(state);
      texts[rank] = dist->broadcast_text(rank == 0 ? "from rank 0" : "ignored");
      auto reducer = dist->make_reducer(nets[rank]->parameters(), 64, 16);  // small buckets: several of them
      auto loss = torch::nn::functional::cross_entropy(nets[rank]->forward(inputs[rank]), labels[rank]);
      reducer->begin_step({1.0 + static_cast<double>(rank), 10.0});
      loss.backward();
      sums[rank] = reducer->finish_step();
      EXPECT_GE(reducer->bucket_bytes().size(), 2u);
    } catch (const std::exception& e) {
      errors[rank] = e.what();
    }
  };
  std::thread a(rank_main, 0), b(rank_main, 1);
  a.join();
  b.join();
  ASSERT_EQ(errors[0], "");
  ASSERT_EQ(errors[1], "");
  EXPECT_EQ(texts[1], "from rank 0");
  EXPECT_EQ(sums[0], (std::vector<double>{3.0, 20.0}));
  EXPECT_EQ(sums[1], sums[0]);
  // The expected mean: rank 0's initial weights, each rank's batch, gradients averaged.
  auto reference = make_net(1);
  std::vector<at::Tensor> mean;
  for (int64_t rank = 0; rank < 2; ++rank) {
    for (auto& p : reference->parameters()) p.mutable_grad() = at::Tensor();
    torch::nn::functional::cross_entropy(reference->forward(inputs[rank]), labels[rank]).backward();
    auto params = reference->parameters();
    for (size_t i = 0; i < params.size(); ++i) {
      if (rank == 0) mean.push_back(params[i].grad().clone() / 2);
      else mean[i] += params[i].grad() / 2;
    }
  }
  for (int64_t rank = 0; rank < 2; ++rank) {
    auto params = nets[rank]->parameters();
    for (size_t i = 0; i < params.size(); ++i) {
      EXPECT_TRUE(torch::allclose(params[i].grad(), mean[i], 1e-6, 1e-7)) << "rank " << rank << " parameter " << i;
      EXPECT_TRUE(torch::equal(params[i], reference->parameters()[i])) << "weights not broadcast";
    }
  }
}

// c10d's store server reads each request whole before it serves anyone else: a client stopped half-way
// through one (here a socket that sends one byte of a request and nothing more) would leave every rank
// waiting for an answer forever. The ranks give up after the timeout and say why instead.
TEST(RendezvousStore, AClientStoppedMidRequestIsNamedAfterTheTimeout) {
  using namespace birdplane::train;
#if TORCH_VERSION_MAJOR >= 2
  GTEST_SKIP() << "the half request below is written for the store server of LibTorch 1.x (Debian's 1.13); "
                  "LibTorch 2 has another server, not checked here";
#endif
  StoreServer server(0, std::chrono::seconds(30));
  DistOptions options;
  options.timeout = std::chrono::seconds(2);
  std::atomic<int> joined{0};
  std::atomic<bool> wedged{false};
  std::vector<std::string> errors(2);
  std::vector<int64_t> lost(2, 99);
  std::vector<double> seconds(2);
  auto rank_main = [&](int64_t rank) {
    try {
      auto dist = Distributed::join(rank_of_two(rank, server), options);
      ++joined;
      while (!wedged) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      const auto start = std::chrono::steady_clock::now();
      try {
        // Rank 1 waits for a key; rank 0 asks who is lost after a failed collective.
        if (rank == 0) dist->fail_lost("Timed out waiting for a recv", "in the test");
        else dist->wait_for_main("the test's stage");
      } catch (const DistributedError& e) {
        errors[rank] = e.what();
        lost[rank] = e.lost_rank();
      }
      seconds[rank] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    } catch (const std::exception& e) {
      errors[rank] = std::string("unexpected: ") + e.what();
    }
  };
  std::thread a(rank_main, 0), b(rank_main, 1);
  while (joined < 2) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  // (No ASSERT before the joins: the ranks' threads must be joined either way.)
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(server.port()));
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  const uint8_t first_byte = 1;  // the start of a request, never finished
  EXPECT_TRUE(fd >= 0 && connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
              send(fd, &first_byte, 1, 0) == 1)
      << std::strerror(errno);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the server is now reading it
  wedged = true;
  a.join();
  b.join();
  if (fd >= 0) close(fd);  // the server goes on, and the requests left behind are answered
  EXPECT_EQ(errors[0].rfind("lost contact with the other ranks (Timed out waiting for a recv), and ", 0), 0u)
      << errors[0];
  EXPECT_EQ(errors[1].rfind("the rendezvous store at ", 0), 0u) << errors[1];
  for (int rank = 0; rank < 2; ++rank) {
    EXPECT_NE(errors[rank].find("the rendezvous store at 127.0.0.1:" + std::to_string(server.port()) +
                                " has not answered for 2 s: some rank (or another client of the store) stopped in "
                                "the middle of a request to it"),
              std::string::npos)
        << "rank " << rank << ": " << errors[rank];
    EXPECT_NE(errors[rank].find(rank == 0 ? "in the test" : "while waiting for rank 0 to finish the test's stage"),
              std::string::npos)
        << errors[rank];
    EXPECT_EQ(lost[rank], -1);
    // Given up after the timeout (and not much later), not waited on forever.
    EXPECT_GE(seconds[rank], 1.9);
    EXPECT_LT(seconds[rank], 15.0);
  }
}
