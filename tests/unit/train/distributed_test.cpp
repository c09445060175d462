// torchrun's environment read into DistEnv; the environment --nproc gives its workers.
#include <map>

#include <gtest/gtest.h>

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
