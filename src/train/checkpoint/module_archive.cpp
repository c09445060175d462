#include "train/checkpoint/module_archive.h"

#include "birdplane/train/checkpoint.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <string_view>

#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/read_adapter_interface.h>
#include <caffe2/serialize/versions.h>
#include <fmt/format.h>

#include "birdplane/check.h"
#include "train/checkpoint/class_file.h"
#include "train/checkpoint/pickle_storages.h"

namespace birdplane::train {
namespace {

constexpr size_t kMaxClassChain = 64;  // classes naming classes: LibTorch loads them recursively
constexpr uint64_t kMaxClassFile = 1 << 20;  // bytes in one class definition (they are a few hundred)

// The file's bytes for LibTorch's zip reader (used only to inflate class definitions, after
// check_zip_structure): a read past the end reads nothing instead of memory beyond the buffer.
class BytesReader final : public caffe2::serialize::ReadAdapterInterface {
 public:
  explicit BytesReader(const std::vector<char>& bytes) : bytes_(bytes) {}
  size_t size() const override { return bytes_.size(); }
  size_t read(uint64_t pos, void* buf, size_t n, const char* /*what*/) const override {
    if (pos >= bytes_.size()) return 0;
    n = std::min<uint64_t>(n, bytes_.size() - pos);
    std::memcpy(buf, bytes_.data() + pos, n);
    return n;
  }

 private:
  const std::vector<char>& bytes_;
};

}  // namespace

std::string module_archive(const std::vector<char>& bytes, const std::vector<ZipEntry>& entries,
                           const std::string& path, const std::string& what) {
  auto damaged = [&](const std::string& why) { fail("{} {} is damaged ({})", what, path, why); };
  // The archive's folder: the one holding data.pkl (check_pickled_storages found exactly one).
  std::string prefix;
  for (const auto& e : entries) {
    const auto slash = e.name.find('/');
    if (slash != std::string::npos && e.name.compare(slash, std::string::npos, "/data.pkl") == 0)
      prefix = e.name.substr(0, slash + 1);
  }
  if (prefix.empty()) damaged("no data.pkl entry");
  auto content = [&](const ZipEntry& e) {
    if (e.method != 0) damaged("its entry " + e.name + " is compressed; LibTorch and torch.save store it");
    return std::string_view(bytes.data() + e.data_offset, e.size);
  };
  std::map<std::string, const ZipEntry*> records;  // by name inside the archive's folder
  for (const auto& e : entries)
    if (e.name.compare(0, prefix.size(), prefix) == 0) records[e.name.substr(prefix.size())] = &e;
  if (records.count("code/__torch__.py") == 0)
    throw StateDictNotCheckpointError(
        fmt::format("{} {} is not a birdplane checkpoint (it holds no model, only data, as a state_dict does)", what,
                    path),
        path);

  // version (checked by check_zip_structure): format 3 and later, as LibTorch writes them (1 and 2 go
  // to its legacy JSON and protobuf readers).
  auto version_it = records.find(".data/version");
  if (version_it == records.end()) version_it = records.find("version");
  if (version_it == records.end()) damaged("no version entry");
  const uint64_t version = format_version(content(*version_it->second));
  if (version < caffe2::serialize::kMinProducedFileFormatVersion ||
      version > caffe2::serialize::kMaxSupportedFileFormatVersion)
    damaged(fmt::format("format version {}, birdplane reads {} to {}", version,
                        caffe2::serialize::kMinProducedFileFormatVersion,
                        caffe2::serialize::kMaxSupportedFileFormatVersion));
  // constants.pkl: a module without methods has none (an empty tuple).
  auto constants_it = records.find("constants.pkl");
  if (constants_it == records.end() || content(*constants_it->second) != std::string_view("\x80\x02).", 4))
    damaged("its constants.pkl is not the empty one of a birdplane file");

  // The class definitions (LibTorch deflates the longer ones), and the chain of classes naming classes.
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;  // made when a definition is deflated
  auto class_text = [&](const std::string& name, const ZipEntry& e) -> std::string {
    if (e.size > kMaxClassFile)
      damaged(fmt::format("its class definition {} is {} bytes long; LibTorch writes them under {}", name, e.size,
                          kMaxClassFile));
    if (e.method == 0) return std::string(content(e));
    if (!reader)
      reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(std::make_shared<BytesReader>(bytes));
    const auto [data, size] = reader->getRecord(name);
    if (size != e.size) damaged("its class definition " + name + " does not inflate to its size");
    return std::string(static_cast<const char*>(data.get()), size);
  };
  std::map<std::string, size_t> class_index;
  std::vector<std::pair<std::string, ClassFile>> classes;
  std::map<std::string, std::string> class_texts;
  for (const auto& [name, e] : records) {
    if (name.compare(0, 5, "code/") != 0 || name.size() < 3 || name.compare(name.size() - 3, 3, ".py") != 0) continue;
    ClassFile file;
    std::string text = class_path_is_known(name) ? class_text(name, *e) : std::string();
    if (text.empty() || !read_class_file(text, file))
      fail("{} {} is damaged or not a birdplane checkpoint (its class definition {} is not one LibTorch writes "
           "for a checkpoint)",
           what, path, name);
    class_index[name] = classes.size();
    classes.emplace_back(name, std::move(file));
    class_texts[name] = std::move(text);
  }
  std::vector<std::vector<size_t>> refers(classes.size());
  for (size_t i = 0; i < classes.size(); ++i) {
    for (const auto& ref : classes[i].second.refs) {
      auto it = class_index.find(ref);
      if (it == class_index.end())
        damaged(fmt::format("its class definition {} names a class it does not hold ({})", classes[i].first, ref));
      refers[i].push_back(it->second);
    }
  }
  const auto chain = deepest_nesting(refers);
  if (!chain) damaged("a class that contains itself");
  if (*chain > kMaxClassChain) damaged(fmt::format("classes nested {} deep", *chain));

  // A fresh zip with just these entries: LibTorch's zip reader sees only a well-formed archive, and
  // nothing unchecked (source-range pickles, extra files) is read.
  std::string out;
  caffe2::serialize::PyTorchStreamWriter writer([&out](const void* data, size_t size) {
    out.append(static_cast<const char*>(data), size);
    return size;
  });
  writer.setMinVersion(version);
  for (const auto& [name, e] : records) {
    if (name == "data.pkl" || name == "constants.pkl" || name.compare(0, 5, "data/") == 0) {
      const std::string_view data = content(*e);
      writer.writeRecord(name, data.data(), data.size());
    }
  }
  for (const auto& [name, text] : class_texts) writer.writeRecord(name, text.data(), text.size());
  writer.writeEndOfFile();
  return out;
}

}  // namespace birdplane::train
