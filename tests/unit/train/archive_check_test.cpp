// Validated reads of model files: LibTorch 1.13 trusts the sizes inside an archive, so a data entry
// shorter than its tensor gave garbage weights (eval) or a crash (--init-from), and arbitrary bytes
// reached its zip reader. These tests damage real files every way the checks must catch.
#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "birdplane/check.h"
#include "birdplane/nn/model.h"
#include "birdplane/train/checkpoint.h"
#include "support/expect_error.h"
#include "support/fixtures.h"
#include "support/torch_archive.h"

namespace fs = std::filesystem;
using namespace birdplane;
using birdplane::fixtures::message_of;
using birdplane::fixtures::contains;
using birdplane::fixtures::read_file;
using birdplane::fixtures::run_shell;
using birdplane::fixtures::TempDir;
using birdplane::fixtures::write_text;

namespace {

train::ModelConfig net_config() {
  train::ModelConfig c;
  c.spec.name = "net";
  c.spec.num_classes = 2;
  c.spec.image_shape = {3, 32, 32};
  c.classes = {"airplane", "bird"};
  c.mean = {0.5, 0.5, 0.5};
  c.std = {0.25, 0.25, 0.25};
  return c;
}

// Rewrites a zip archive with Python's zipfile, the entry ending in `entry` cut to `keep` bytes; the
// zip directory stays consistent, as in a file damaged before it was zipped.
void cut_entry(const std::string& src, const std::string& dst, const std::string& entry, int keep) {
  const std::string script = R"PY(
import sys, zipfile
src, dst, entry, keep = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
zin = zipfile.ZipFile(src)
with zipfile.ZipFile(dst, 'w', zipfile.ZIP_STORED) as zout:
    for info in zin.infolist():
        data = zin.read(info.filename)
        if info.filename.endswith(entry):
            data = data[:keep]
        zout.writestr(info.filename, data)
)PY";
  const std::string py = dst + ".py";
  write_text(py, script);
  const auto r = run_shell("/usr/bin/python3 " + py + " " + src + " " + dst + " " + entry + " " + std::to_string(keep));
  ASSERT_EQ(r.exit_code, 0) << r.err;
}


}  // namespace

TEST(ArchiveCheck, ShortTensorDataInACheckpointIsDamageNotGarbage) {
  TempDir t;
  auto model = nn::make_model(net_config().spec);
  train::save_checkpoint(t / "model.pt", net_config(), *model);
  ASSERT_NO_THROW(train::load_checkpoint(t / "model.pt"));
  // net's fc1.weight is 32 x 512 floats: 65,536 bytes in one data entry. Cut every data entry in turn.
  for (int key = 0; key < 8; ++key) {
    cut_entry(t / "model.pt", t / "short.pt", "data/" + std::to_string(key), 4);
    const std::string m = message_of([&] { train::load_checkpoint(t / "short.pt"); });
    EXPECT_TRUE(contains(m, "is damaged") && contains(m, "holds 4 bytes")) << key << ": " << m;
  }
}

TEST(ArchiveCheck, ShortTensorDataInAStateDictIsRefusedBeforeUse) {
  TempDir t;
  auto model = nn::make_model(net_config().spec);
  train::export_state_dict(t / "sd.pt", *model);
  auto target = nn::make_model(net_config().spec);
  ASSERT_NO_THROW(train::import_state_dict(t / "sd.pt", *target));
  cut_entry(t / "sd.pt", t / "short.pt", "data/4", 1000);
  const std::string m = message_of([&] { train::import_state_dict(t / "short.pt", *target); });
  EXPECT_TRUE(contains(m, "short.pt") && contains(m, "holds 1000 bytes, its tensor needs 65536")) << m;
}

TEST(ArchiveCheck, AChangedWeightIsAChecksumMismatch) {
  TempDir t;
  auto model = nn::make_model(net_config().spec);
  train::save_checkpoint(t / "model.pt", net_config(), *model);
  // Flip one byte inside the largest data entry, keeping its size: only the checksum can tell.
  std::string bytes = read_file(t / "model.pt");
  const std::string probe = "data/4";
  const size_t name = bytes.find(probe);
  ASSERT_NE(name, std::string::npos);
  // The local header's name is followed by its extra field and then the data; 2,000 bytes on is inside
  // the 65,536 bytes of fc1.weight.
  bytes[name + probe.size() + 2000] = static_cast<char>(bytes[name + probe.size() + 2000] ^ 0x5a);
  write_text(t / "flipped.pt", bytes);
  const std::string m = message_of([&] { train::load_checkpoint(t / "flipped.pt"); });
  EXPECT_TRUE(contains(m, "flipped.pt") && (contains(m, "checksum mismatch") || contains(m, "damaged"))) << m;
}

TEST(ArchiveCheck, TruncatedFilesAndArbitraryBytesAreErrorsNeverCrashes) {
  TempDir t;
  auto model = nn::make_model(net_config().spec);
  train::save_checkpoint(t / "model.pt", net_config(), *model);
  train::export_state_dict(t / "sd.pt", *model);
  auto target = nn::make_model(net_config().spec);
  for (const std::string& name : {std::string("model.pt"), std::string("sd.pt")}) {
    const std::string whole = read_file(t / name);
    for (size_t cut : {size_t{0}, size_t{1}, size_t{30}, whole.size() / 3, whole.size() / 2, whole.size() - 30,
                       whole.size() - 1}) {
      write_text(t / "cut.pt", whole.substr(0, cut));
      EXPECT_THROW(train::load_checkpoint(t / "cut.pt"), Error) << name << " cut at " << cut;
      EXPECT_THROW(train::import_state_dict(t / "cut.pt", *target), Error) << name << " cut at " << cut;
    }
  }
  // Random bytes, half of them behind a zip signature, and random bytes written over the middle of a
  // real file (the ASan build once found LibTorch's zip reader reading freed memory on such input).
  std::mt19937 rng(7);
  const std::string whole = read_file(t / "model.pt");
  for (int i = 0; i < 200; ++i) {
    std::string bytes(static_cast<size_t>(rng() % 4096), '\0');
    for (auto& c : bytes) c = static_cast<char>(rng());
    if (i % 2 == 0) bytes = "PK\x03\x04" + bytes;
    if (i % 4 == 1) {
      bytes = whole;
      const size_t at = rng() % bytes.size();
      for (size_t k = at; k < std::min(bytes.size(), at + 1 + rng() % 64); ++k) bytes[k] = static_cast<char>(rng());
    }
    write_text(t / "junk.pt", bytes);
    try {
      train::load_checkpoint(t / "junk.pt");
    } catch (const Error&) {
    }
    try {
      train::import_state_dict(t / "junk.pt", *target);
    } catch (const Error&) {
    }
  }
}

TEST(ArchiveCheck, AStateDictMayNameOnlyWhatADictOfTensorsNeeds) {
  TempDir t;
  // A Python state_dict with one extra object whose class the pickle names: refused with its name.
  const auto r = run_shell("/usr/bin/python3 -c \"import torch, collections; "
                           "torch.save({'w': torch.zeros(2), 'extra': collections.Counter('ab')}, '" + (t / "odd.pt") +
                           "'); torch.save(collections.OrderedDict(w=torch.ones(3)), '" + (t / "plain.pt") + "')\"");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto model = nn::make_model(net_config().spec);
  const std::string m = message_of([&] { train::import_state_dict(t / "odd.pt", *model); });
  EXPECT_TRUE(contains(m, "collections.Counter")) << m;
  // An OrderedDict of tensors passes the checks (and then fails only on its keys).
  const std::string k = message_of([&] { train::import_state_dict(t / "plain.pt", *model); });
  EXPECT_FALSE(contains(k, "names")) << k;
  EXPECT_FALSE(contains(k, "damaged")) << k;
}

// The pickle walker gets broken pickles: data.pkl cut at every few bytes (the zip around it stays
// consistent), each an Error naming the file, never a crash and never LibTorch's own reader first.
TEST(ArchiveCheck, ABrokenPickleIsDamage) {
  TempDir t;
  auto model = nn::make_model(net_config().spec);
  train::export_state_dict(t / "sd.pt", *model);
  train::save_checkpoint(t / "model.pt", net_config(), *model);
  auto target = nn::make_model(net_config().spec);
  for (int keep : {0, 1, 2, 10, 50, 200, 400}) {
    cut_entry(t / "sd.pt", t / "cut_sd.pt", "data.pkl", keep);
    const std::string m = message_of([&] { train::import_state_dict(t / "cut_sd.pt", *target); });
    EXPECT_TRUE(contains(m, "cut_sd.pt") && contains(m, "damaged")) << keep << ": " << m;
    cut_entry(t / "model.pt", t / "cut_model.pt", "data.pkl", keep);
    const std::string c = message_of([&] { train::load_checkpoint(t / "cut_model.pt"); });
    EXPECT_TRUE(contains(c, "cut_model.pt") && contains(c, "damaged")) << keep << ": " << c;
  }
}

// Pickles that LibTorch 1.13's unpickler misreads (it trusts the stack's shape: a dict's last key
// without a value is read from past the end of its stack), that it would never free (a list inside
// itself), or that it frees recursively (nesting deep enough overflows the stack), and repeats that
// would make the walker itself copy without bound: each is refused, or ends at once, before LibTorch
// reads a byte. Two names equal but for case are refused too: LibTorch's zip reader ignores case, so it
// could read the one the walker did not.
TEST(ArchiveCheck, PickleShapesLibTorchMisreadsAreRefused) {
  TempDir t;
  auto model = nn::make_model(net_config().spec);
  const std::string deep = fixtures::bytes("\x80\x02N") + std::string(5000, '\x85') + ".";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {fixtures::bytes("\x80\x02(K\x01K\x02K\x03" "d."), "a dict key without its value"},  // DICT of 3 items
      {fixtures::bytes("\x80\x02}(K\x01u."), "a dict key without its value"},               // SETITEMS of 1
      {fixtures::bytes("\x80\x02(K\x01" "e."), "no container"},                            // APPENDS to nothing
      {fixtures::bytes("\x80\x02]q\x00h\x00" "a."), "holds itself"},                       // a list inside itself
      {deep, "nests values 5000 deep"},                                                    // 5000 TUPLE1s
  };
  for (const auto& [pickle, says] : cases) {
    fixtures::write_records(t / "p.pt", {{"data.pkl", pickle}});
    fixtures::expect_error([&] { train::import_state_dict(t / "p.pt", *model); }, {"p.pt", "damaged", says});
    fixtures::expect_error([&] { train::load_checkpoint(t / "p.pt"); }, {"p.pt", "damaged", says});
  }
  // DUP and TUPLE2, 64 times: 2^64 leaves if the walker copied what it repeats. It shares them and
  // ends at once; LibTorch then refuses DUP, which it does not know.
  std::string doubling = fixtures::bytes("\x80\x02N");
  for (int i = 0; i < 64; ++i) doubling += "2\x86";
  doubling += ".";
  fixtures::write_records(t / "dup.pt", {{"data.pkl", doubling}});
  EXPECT_THROW(train::import_state_dict(t / "dup.pt", *model), Error);
  // data.pkl and DATA.PKL: which one LibTorch reads is not the walker's choice.
  fixtures::write_records(t / "case.pt", {{"data.pkl", fixtures::bytes("\x80\x02}.")}, {"DATA.PKL", doubling}});
  fixtures::expect_error([&] { train::import_state_dict(t / "case.pt", *model); },
                         {"case.pt", "damaged", "archive/DATA.PKL appears twice"});
}
