#include "train/archive_check.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string_view>
#include <variant>

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/read_adapter_interface.h>
#include <caffe2/serialize/versions.h>
#include <fmt/format.h>

#include "birdplane/check.h"

namespace birdplane::train {
namespace {

// Little-endian fields at an offset already checked to lie inside the buffer.
uint64_t le(const std::vector<char>& b, uint64_t at, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(b[at + static_cast<uint64_t>(i)]);
  return v;
}

constexpr uint32_t kEndRecord = 0x06054b50, kZip64End = 0x06064b50, kZip64Locator = 0x07064b50,
                   kCentral = 0x02014b50, kLocal = 0x04034b50;

// The zip format's CRC-32 (only ever run on a version entry, a few bytes).
uint32_t zip_crc32(std::string_view data) {
  uint32_t crc = 0xFFFFFFFFu;
  for (char c : data) {
    crc ^= static_cast<uint8_t>(c);
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

// A version entry's number: up to three digits and an optional line end ("3\n" as LibTorch and
// torch.save write it); 0 for anything else.
uint64_t format_version(std::string_view text) {
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  if (text.empty() || text.size() > 3 || text.find_first_not_of("0123456789") != std::string_view::npos) return 0;
  uint64_t v = 0;
  for (char c : text) v = v * 10 + static_cast<uint64_t>(c - '0');
  return v;
}

}  // namespace

std::vector<ZipEntry> check_zip_structure(const std::vector<char>& b, const std::string& path,
                                          const std::string& what) {
  const uint64_t n = b.size();
  auto damaged = [&](const std::string& why) {
    fail("{} {} is damaged ({}); it cannot be read", what, path, why);
  };
  auto inside = [&](uint64_t at, uint64_t len) { return at <= n && len <= n - at; };
  if (n < 22 || le(b, 0, 4) != kLocal) {
    fail("{} {} is not a LibTorch file ({}); expected a file written by birdplane or torch.save", what, path,
         n == 0 ? "it is empty" : "it does not start like a zip archive");
  }
  // The end record sits in the last 22 + 65535 bytes (its comment may be up to 65535 bytes long).
  uint64_t end = n;
  for (uint64_t at = n - 22 + 1; at-- > 0 && n - at <= 22 + 65535;) {
    if (le(b, at, 4) == kEndRecord && at + 22 + le(b, at + 20, 2) == n) {
      end = at;
      break;
    }
  }
  if (end == n) damaged("no zip end record: the file is truncated");
  uint64_t entries = le(b, end + 10, 2), dir_size = le(b, end + 12, 4), dir_offset = le(b, end + 16, 4);
  uint64_t dir_limit = end;
  if (entries == 0xFFFF || dir_size == 0xFFFFFFFF || dir_offset == 0xFFFFFFFF ||
      (end >= 20 && le(b, end - 20, 4) == kZip64Locator)) {
    if (end < 20 || le(b, end - 20, 4) != kZip64Locator) damaged("a zip64 archive without its locator");
    const uint64_t z = le(b, end - 20 + 8, 8);
    if (!inside(z, 56) || z + 56 > end - 20 || le(b, z, 4) != kZip64End) damaged("a bad zip64 end record");
    entries = le(b, z + 32, 8);
    dir_size = le(b, z + 40, 8);
    dir_offset = le(b, z + 48, 8);
    dir_limit = z;
  }
  if (!inside(dir_offset, dir_size) || dir_offset + dir_size > dir_limit) damaged("its directory lies outside the file");
  if (entries > dir_size / 46) damaged("its directory claims more entries than it holds");
  std::vector<ZipEntry> out;
  std::set<std::string> names;
  uint64_t at = dir_offset;
  for (uint64_t i = 0; i < entries; ++i) {
    if (!inside(at, 46) || at + 46 > dir_offset + dir_size || le(b, at, 4) != kCentral) damaged("a bad directory entry");
    ZipEntry e;
    e.method = static_cast<int>(le(b, at + 10, 2));
    e.stored_size = le(b, at + 20, 4);
    e.size = le(b, at + 24, 4);
    const uint64_t name_len = le(b, at + 28, 2), extra_len = le(b, at + 30, 2), comment_len = le(b, at + 32, 2);
    uint64_t local = le(b, at + 42, 4);
    const uint64_t record = 46 + name_len + extra_len + comment_len;
    if (at + record > dir_offset + dir_size) damaged("a directory entry runs past the directory");
    e.name.assign(&b[at + 46], name_len);
    // zip64 sizes and offset, in this order, for the fields saturated above.
    for (uint64_t x = at + 46 + name_len; x + 4 <= at + 46 + name_len + extra_len;) {
      const uint64_t id = le(b, x, 2), len = le(b, x + 2, 2);
      if (x + 4 + len > at + 46 + name_len + extra_len) damaged("a bad extra field in " + e.name);
      if (id == 0x0001) {
        uint64_t y = x + 4;
        auto next = [&](uint64_t& field) {
          if (field != 0xFFFFFFFF) return;
          if (y + 8 > x + 4 + len) damaged("a short zip64 field in " + e.name);
          field = le(b, y, 8);
          y += 8;
        };
        next(e.size);
        next(e.stored_size);
        next(local);
      }
      x += 4 + len;
    }
    // LibTorch's zip reader (miniz) finds entries ignoring case, and skips reading an entry marked as
    // a folder (leaving its buffer as it was) or refuses an encrypted one.
    std::string lower = e.name;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!names.insert(lower).second) damaged("the entry " + e.name + " appears twice");
    if ((!e.name.empty() && e.name.back() == '/') || (le(b, at + 38, 4) & 0x10) != 0)
      damaged("the entry " + e.name + " is marked as a folder");
    if ((le(b, at + 8, 2) & 0x61) != 0) damaged("the entry " + e.name + " is encrypted or a patch");
    e.crc = static_cast<uint32_t>(le(b, at + 16, 4));
    if (!(e.method == 0 && e.stored_size == e.size) && e.method != 8)
      damaged(fmt::format("the entry {} uses compression method {} with sizes {} and {}", e.name, e.method,
                          e.stored_size, e.size));
    if (!inside(local, 30) || le(b, local, 4) != kLocal) damaged("the entry " + e.name + " has no local header");
    e.data_offset = local + 30 + le(b, local + 26, 2) + le(b, local + 28, 2);
    if (!inside(e.data_offset, e.stored_size) || e.data_offset + e.stored_size > dir_offset)
      damaged(fmt::format("the entry {} runs past the end of the data ({} bytes from offset {})", e.name,
                          e.stored_size, e.data_offset));
    out.push_back(std::move(e));
    at += record;
  }
  // What LibTorch's reader (PyTorchStreamReader) requires as it opens the archive, where a failure
  // leaks the zip state it has opened: the entries lie in one folder (the first entry's), which holds
  // a version entry (.data/version before version) with a format it reads. Its CRC is checked here
  // too (LibTorch's zip reader checks none).
  auto not_libtorch = [&](const std::string& why) {
    fail("{} {} is not a LibTorch file ({}); expected a file written by birdplane or torch.save", what, path, why);
  };
  if (out.empty()) not_libtorch("an empty zip archive");
  const auto slash = out.front().name.find('/');
  if (slash == std::string::npos || slash == 0) not_libtorch("its entries are not in a folder");
  const std::string folder = out.front().name.substr(0, slash + 1);
  const ZipEntry* version = nullptr;
  for (const std::string& name : {folder + ".data/version", folder + "version"}) {
    for (const auto& e : out) {
      if (e.name.size() == name.size() &&
          std::equal(e.name.begin(), e.name.end(), name.begin(), [](char x, char y) {
            return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
          }))
        version = &e;
    }
    if (version) break;
  }
  for (const auto& e : out)
    if (e.name.compare(0, folder.size(), folder) != 0)
      damaged("the entry " + e.name + " lies outside the archive's folder " + folder);
  if (!version) not_libtorch("no version entry");
  if (version->method != 0 || version->size == 0 || version->size > 8) damaged("a bad version entry");
  const std::string_view text(b.data() + version->data_offset, version->size);
  if (zip_crc32(text) != version->crc) damaged("its version entry does not match its checksum");
  const uint64_t format = format_version(text);
  if (format == 0) damaged("its version entry is not a number");
  if (format < caffe2::serialize::kMinSupportedFileFormatVersion ||
      format > caffe2::serialize::kMaxSupportedFileFormatVersion)
    damaged(fmt::format("its format is {}, LibTorch reads formats {} to {}", format,
                        caffe2::serialize::kMinSupportedFileFormatVersion,
                        caffe2::serialize::kMaxSupportedFileFormatVersion));
  return out;
}

namespace {

// What the pickle walker keeps of a stack value: strings, integers and globals (what a storage's
// persistent id holds), tuples of them, marks, and anything else as an opaque value. Strings, globals
// and tuples are shared, not copied, when the pickle repeats a value (BINGET, DUP): copying them would
// let a few bytes double the walker's memory again and again (a tuple of two copies of the last one).
struct Global {
  std::string module, name;
};
struct Value;
using Str = std::shared_ptr<const std::string>;
using GlobalRef = std::shared_ptr<const Global>;
using Tuple = std::shared_ptr<const std::vector<Value>>;
struct Mark {};
struct Opaque {};
struct Value {
  std::variant<Opaque, Mark, Str, int64_t, GlobalRef, Tuple> v;
  size_t node = 0;  ///< the value's place in the graph of what holds what (every copy shares it)
};

// Nesting deeper than this is refused: LibTorch frees nested values recursively (a deep enough file
// overflows the stack), and no state_dict or module comes near it.
constexpr size_t kMaxNesting = 1000;

int64_t storage_itemsize(const std::string& type) {
  static const std::map<std::string, int64_t> kSizes = {
      {"FloatStorage", 4}, {"DoubleStorage", 8}, {"HalfStorage", 2},  {"BFloat16Storage", 2},
      {"LongStorage", 8},  {"IntStorage", 4},    {"ShortStorage", 2}, {"CharStorage", 1},
      {"ByteStorage", 1},  {"BoolStorage", 1},   {"ComplexFloatStorage", 8}, {"ComplexDoubleStorage", 16}};
  auto it = kSizes.find(type);
  return it == kSizes.end() ? 0 : it->second;
}

// The deepest nesting in a graph of values (children[i]: what value i holds), or nullopt when a value
// holds itself, directly or through others (LibTorch's reference-counted values would never be freed).
// Iterative, so a deep graph cannot overflow this stack either.
std::optional<size_t> deepest_nesting(const std::vector<std::vector<size_t>>& children) {
  enum : uint8_t { kNew, kOpen, kDone };
  std::vector<uint8_t> state(children.size(), kNew);
  std::vector<size_t> depth(children.size(), 0);
  size_t deepest = 0;
  std::vector<std::pair<size_t, size_t>> todo;  // (node, next child to visit)
  for (size_t root = 0; root < children.size(); ++root) {
    if (state[root] != kNew) continue;
    todo.push_back({root, 0});
    state[root] = kOpen;
    while (!todo.empty()) {
      auto& [node, next] = todo.back();
      if (next < children[node].size()) {
        const size_t child = children[node][next++];
        if (state[child] == kOpen) return std::nullopt;
        if (state[child] == kNew) {
          state[child] = kOpen;
          todo.push_back({child, 0});
        }
        continue;
      }
      for (size_t child : children[node]) depth[node] = std::max(depth[node], depth[child] + 1);
      deepest = std::max(deepest, depth[node]);
      state[node] = kDone;
      todo.pop_back();
    }
  }
  return deepest;
}

}  // namespace

void check_pickled_storages(const std::vector<char>& bytes, const std::vector<ZipEntry>& entries,
                            const std::string& path, const std::string& what, bool plain_only) {
  auto damaged = [&](const std::string& why) { fail("{} {} is damaged ({})", what, path, why); };
  const ZipEntry* pickle = nullptr;
  std::map<std::string, const ZipEntry*> by_name;
  for (const auto& e : entries) {
    by_name[e.name] = &e;
    const auto slash = e.name.find('/');
    if (slash != std::string::npos && e.name.compare(slash, std::string::npos, "/data.pkl") == 0) {
      if (pickle) damaged("two data.pkl entries");
      pickle = &e;
    }
  }
  if (!pickle) damaged("no data.pkl entry");
  if (pickle->method != 0) damaged("a compressed data.pkl");
  const std::string prefix = pickle->name.substr(0, pickle->name.find('/'));
  const char* p = bytes.data() + pickle->data_offset;
  const uint64_t n = pickle->size;
  uint64_t at = 0;
  auto need = [&](uint64_t k) {
    if (k > n - at) damaged("its pickle ends in the middle of a value");
  };
  auto u = [&](int k) {
    need(static_cast<uint64_t>(k));
    uint64_t v = 0;
    for (int i = k - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[at + static_cast<uint64_t>(i)]);
    at += static_cast<uint64_t>(k);
    return v;
  };
  auto text = [&](uint64_t k) {
    need(k);
    auto s = std::make_shared<const std::string>(p + at, k);
    at += k;
    return s;
  };
  auto line = [&]() {
    const uint64_t start = at;
    while (at < n && p[at] != '\n') ++at;
    if (at >= n) damaged("its pickle ends in the middle of a name");
    return std::string(p + start, p + at++);
  };
  // What holds what: children[i] are the values value i holds (a container's items, an object's
  // state, a call's arguments).
  std::vector<std::vector<size_t>> children;
  auto make = [&](decltype(Value::v) v, std::vector<size_t> held = {}) {
    children.push_back(std::move(held));
    return Value{std::move(v), children.size() - 1};
  };
  std::vector<Value> stack;
  std::vector<Value> memo;  // LibTorch sizes its memo by the largest index: indices must come in order
  auto push = [&](decltype(Value::v) v, std::vector<size_t> held = {}) {
    stack.push_back(make(std::move(v), std::move(held)));
  };
  auto pop = [&]() {
    if (stack.empty() || std::holds_alternative<Mark>(stack.back().v)) damaged("a broken pickle (stack underflow)");
    Value v = std::move(stack.back());
    stack.pop_back();
    return v;
  };
  auto pop_to_mark = [&]() {
    std::vector<Value> items;
    while (!stack.empty() && !std::holds_alternative<Mark>(stack.back().v)) {
      items.push_back(std::move(stack.back()));
      stack.pop_back();
    }
    if (stack.empty()) damaged("a broken pickle (no mark)");
    stack.pop_back();
    std::reverse(items.begin(), items.end());
    return items;
  };
  auto nodes = [](const std::vector<Value>& items) {
    std::vector<size_t> out;
    for (const auto& item : items) out.push_back(item.node);
    return out;
  };
  // APPEND(S), SETITEM(S), BUILD: the items go into the value below them (LibTorch reads it without
  // checking that there is one).
  auto put_into_top = [&](const std::vector<Value>& items) {
    if (stack.empty() || std::holds_alternative<Mark>(stack.back().v))
      damaged("a broken pickle (items with no container to hold them)");
    auto& held = children[stack.back().node];
    for (const auto& item : items) held.push_back(item.node);
  };
  auto pairs = [&](const std::vector<Value>& items) {
    // LibTorch 1.13 reads a key's value past the end of its stack when one is missing.
    if (items.size() % 2 != 0) damaged("a broken pickle (a dict key without its value)");
  };
  auto memo_put = [&](uint64_t index) {
    if (stack.empty() || std::holds_alternative<Mark>(stack.back().v)) damaged("a broken pickle");
    if (index > memo.size()) damaged(fmt::format("a broken pickle (memo entry {} out of order)", index));
    if (index == memo.size()) memo.push_back(stack.back()); else memo[index] = stack.back();
  };
  auto check_global = [&](const Global& g) {
    if (!plain_only) return;
    const std::string full = g.module + "." + g.name;
    const bool storage = g.module == "torch" && storage_itemsize(g.name) > 0;
    if (!storage && full != "torch._utils._rebuild_tensor_v2" && full != "torch._utils._rebuild_parameter" &&
        full != "collections.OrderedDict" && full != "torch.jit._pickle.restore_type_tag")
      fail("{} {} names {} in its pickle; a state_dict holds only tensors, dicts, lists, numbers and strings", what,
           path, full);
  };
  auto storage = [&](const Value& id) {
    const Tuple* tp = std::get_if<Tuple>(&id.v);
    if (!tp || (*tp)->size() != 5) damaged("a persistent id that is not a storage");
    const auto& t = **tp;
    const auto* kind = std::get_if<Str>(&t[0].v);
    const auto* type = std::get_if<GlobalRef>(&t[1].v);
    const auto* key = std::get_if<Str>(&t[2].v);
    const auto* numel = std::get_if<int64_t>(&t[4].v);
    if (!kind || **kind != "storage" || !type || !key || !numel) damaged("a persistent id that is not a storage");
    const Global& g = **type;
    const int64_t itemsize = g.module == "torch" ? storage_itemsize(g.name) : 0;
    if (itemsize == 0) damaged("a storage of unknown type " + g.module + "." + g.name);
    if (*numel < 0 || *numel > (int64_t{1} << 40)) damaged(fmt::format("a storage of {} elements", *numel));
    const std::string record = prefix + "/data/" + **key;
    auto it = by_name.find(record);
    if (it == by_name.end()) damaged("the tensor data " + record + " is missing");
    const auto bytes_needed = static_cast<uint64_t>(*numel * itemsize);
    if (it->second->size < bytes_needed)
      damaged(fmt::format("the tensor data {} holds {} bytes, its tensor needs {}", record, it->second->size,
                          bytes_needed));
  };
  for (bool stop = false; !stop;) {
    if (at >= n) damaged("its pickle has no end");
    const auto op = static_cast<uint8_t>(p[at++]);
    switch (op) {
      case 0x80: u(1); break;                                         // PROTO
      case 0x95: u(8); break;                                         // FRAME
      case '(': stack.push_back({Mark{}}); break;                     // MARK
      case ')': case ']': case '}': case 'N': case 0x88: case 0x89: case 0x8f:  // empty containers, None, bools
        push(Opaque{});
        break;
      case 'K': push(static_cast<int64_t>(u(1))); break;
      case 'M': push(static_cast<int64_t>(u(2))); break;
      case 'J': push(static_cast<int64_t>(static_cast<int32_t>(u(4)))); break;
      case 'G': u(8); push(Opaque{}); break;                          // BINFLOAT
      case 0x8a: {                                                    // LONG1
        const uint64_t k = u(1);
        if (k > 8) { text(k); push(Opaque{}); break; }
        uint64_t v = k ? u(static_cast<int>(k)) : 0;
        if (k > 0 && k < 8 && (v >> (8 * k - 1)) & 1) v |= ~uint64_t{0} << (8 * k);  // sign-extend
        push(static_cast<int64_t>(v));
        break;
      }
      case 0x8b: text(u(4)); push(Opaque{}); break;                   // LONG4
      case 'X': push(text(u(4))); break;                              // BINUNICODE
      case 0x8c: push(text(u(1))); break;                             // SHORT_BINUNICODE
      case 0x8d: push(text(u(8))); break;                             // BINUNICODE8
      case 'T': case 'B': text(u(4)); push(Opaque{}); break;          // BINSTRING, BINBYTES
      case 'U': case 'C': text(u(1)); push(Opaque{}); break;          // SHORT_BINSTRING, SHORT_BINBYTES
      case 0x8e: text(u(8)); push(Opaque{}); break;                   // BINBYTES8
      case 't': case 0x85: case 0x86: case 0x87: {                    // TUPLE, TUPLE1, TUPLE2, TUPLE3
        std::vector<Value> items;
        if (op == 't') {
          items = pop_to_mark();
        } else {
          for (int i = 0; i < op - 0x84; ++i) items.push_back(pop());
          std::reverse(items.begin(), items.end());
        }
        auto held = nodes(items);
        push(std::make_shared<const std::vector<Value>>(std::move(items)), std::move(held));
        break;
      }
      case 'l': push(Opaque{}, nodes(pop_to_mark())); break;          // LIST
      case 'd': {                                                     // DICT
        const auto items = pop_to_mark();
        pairs(items);
        push(Opaque{}, nodes(items));
        break;
      }
      case 'a': put_into_top({pop()}); break;                         // APPEND
      case 'e': case 0x90: put_into_top(pop_to_mark()); break;        // APPENDS, ADDITEMS
      case 'u': {                                                     // SETITEMS
        const auto items = pop_to_mark();
        pairs(items);
        put_into_top(items);
        break;
      }
      case 's': {                                                     // SETITEM
        Value value = pop(), key = pop();
        put_into_top({key, value});
        break;
      }
      case 'b': put_into_top({pop()}); break;                         // BUILD
      case 'R': case 0x81: {                                          // REDUCE, NEWOBJ
        Value args = pop();
        Value callable = pop();
        if (const auto* g = std::get_if<GlobalRef>(&callable.v)) check_global(**g);
        push(Opaque{}, {args.node});
        break;
      }
      case 'o': push(Opaque{}, nodes(pop_to_mark())); break;          // OBJ
      case 'c': {                                                     // GLOBAL
        Global g{line(), ""};
        g.name = line();
        check_global(g);
        push(std::make_shared<const Global>(std::move(g)));
        break;
      }
      case 0x93: {                                                    // STACK_GLOBAL
        Value name = pop(), module = pop();
        const auto* m = std::get_if<Str>(&module.v);
        const auto* nm = std::get_if<Str>(&name.v);
        if (!m || !nm) damaged("a broken pickle (a global without its name)");
        Global g{**m, **nm};
        check_global(g);
        push(std::make_shared<const Global>(std::move(g)));
        break;
      }
      case 'Q': {                                                     // BINPERSID
        Value id = pop();
        storage(id);
        push(Opaque{}, {id.node});
        break;
      }
      case 'q': memo_put(u(1)); break;                                // BINPUT
      case 'r': memo_put(u(4)); break;                                // LONG_BINPUT
      case 0x94: memo_put(memo.size()); break;                        // MEMOIZE
      case 'h': case 'j': {                                           // BINGET, LONG_BINGET
        const uint64_t index = u(op == 'h' ? 1 : 4);
        if (index >= memo.size()) damaged("a broken pickle (an unknown memo entry)");
        stack.push_back(memo[index]);
        break;
      }
      case '0': pop(); break;                                         // POP
      case '1': pop_to_mark(); break;                                 // POP_MARK
      case '2': { Value v = pop(); stack.push_back(v); stack.push_back(std::move(v)); break; }  // DUP
      case '.': stop = true; break;                                   // STOP
      default:
        damaged(fmt::format("pickle opcode 0x{:02x} at byte {} is not one birdplane reads", op, at - 1));
    }
  }
  const auto deepest = deepest_nesting(children);
  if (!deepest) damaged("a broken pickle (a value that holds itself)");
  if (*deepest > kMaxNesting)
    damaged(fmt::format("its pickle nests values {} deep; birdplane reads up to {}", *deepest, kMaxNesting));
}

namespace {

// The class definitions LibTorch writes for a torch::serialize::OutputArchive (code/__torch__.py and
// code/__torch__/___torch_mangle_N.py), line by line:
//   class Module(Module):
//     __parameters__ = ["weight", "bias", ]
//     __buffers__ = []
//     __annotations__ = []
//     __annotations__["params/0"] = str
//     lr : float
//     model : __torch__.___torch_mangle_0.Module
// LibTorch 1.13 compiles these with its TorchScript front end, which crashes on malformed source (a
// damaged `__buffers__` line read freed memory). So nothing else reaches it: each file must be made of
// exactly these lines, its types from a short list, its class references to files in the archive.
struct ClassFile {
  std::vector<std::string> refs;  ///< the classes its attributes name, as code/ paths
};

// "__torch__.Module" -> "code/__torch__.py", "__torch__.___torch_mangle_7.Module" ->
// "code/__torch__/___torch_mangle_7.py"; "" for anything else.
std::string class_path(std::string_view name) {
  constexpr std::string_view kTop = "__torch__.Module", kMangled = "__torch__.___torch_mangle_", kEnd = ".Module";
  if (name == kTop) return "code/__torch__.py";
  if (name.size() <= kMangled.size() + kEnd.size() || name.substr(0, kMangled.size()) != kMangled ||
      name.substr(name.size() - kEnd.size()) != kEnd)
    return "";
  const std::string_view digits = name.substr(kMangled.size(), name.size() - kMangled.size() - kEnd.size());
  if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string_view::npos) return "";
  return "code/__torch__/___torch_mangle_" + std::string(digits) + ".py";
}

// Reads one type at s[i...]: Tensor, int, float, bool, str, a class reference, or Tuple[...], List[T],
// Optional[T], Dict[K, V] of them, at most 8 deep. False when it is none of these.
bool read_type(std::string_view s, size_t& i, int depth, ClassFile& file) {
  if (depth > 8) return false;
  const size_t start = i;
  while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '_' || s[i] == '.')) ++i;
  const std::string_view word = s.substr(start, i - start);
  if (i < s.size() && s[i] == '[') {
    int arity = 0;
    if (word == "List" || word == "Optional") arity = 1;
    else if (word == "Dict") arity = 2;
    else if (word != "Tuple") return false;
    ++i;
    int count = 0;
    for (;;) {
      if (!read_type(s, i, depth + 1, file)) return false;
      ++count;
      if (s.substr(i, 2) == ", ") {
        i += 2;
      } else if (i < s.size() && s[i] == ']') {
        ++i;
        break;
      } else {
        return false;
      }
    }
    return arity == 0 || count == arity;
  }
  if (word == "Tensor" || word == "int" || word == "float" || word == "bool" || word == "str") return true;
  std::string path = class_path(word);
  if (path.empty()) return false;
  file.refs.push_back(std::move(path));
  return true;
}

bool read_whole_type(std::string_view s, ClassFile& file) {
  size_t i = 0;
  return read_type(s, i, 0, file) && i == s.size();
}

bool is_identifier(std::string_view s) {
  static const std::set<std::string_view> kKeywords = {
      "False", "None",   "True",  "and",    "as",   "assert", "async",  "await",    "break",
      "class", "continue", "def", "del",    "elif", "else",   "except", "finally",  "for",
      "from",  "global", "if",    "import", "in",   "is",     "lambda", "nonlocal", "not",
      "or",    "pass",   "raise", "return", "try",  "while",  "with",   "yield",    "print"};
  if (s.empty() || s.size() > 256 || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  if (s.size() >= 4 && s.substr(0, 2) == "__" && s.substr(s.size() - 2) == "__") return false;
  return kKeywords.count(s) == 0;
}

// A quoted key: "weight", "params/size", "0x6100000ffd40".
bool is_key(std::string_view s) {
  if (s.empty() || s.size() > 256) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '/' && c != '-') return false;
  return true;
}

// `["a", "b", ]` or `[]`.
bool is_key_list(std::string_view s) {
  if (s.size() < 2 || s.front() != '[' || s.back() != ']') return false;
  s = s.substr(1, s.size() - 2);
  while (!s.empty()) {
    if (s.front() != '"') return false;
    const size_t close = s.find('"', 1);
    if (close == std::string_view::npos || !is_key(s.substr(1, close - 1)) || s.substr(close + 1, 2) != ", ")
      return false;
    s = s.substr(close + 3);
  }
  return true;
}

bool read_class_file(std::string_view text, ClassFile& file) {
  constexpr std::string_view kHead = "class Module(Module):\n";
  if (text.substr(0, kHead.size()) != kHead || text.back() != '\n') return false;
  std::set<std::string> names;
  size_t at = kHead.size();
  while (at < text.size()) {
    const size_t end = text.find('\n', at);
    const std::string_view line = text.substr(at, end - at);
    at = end + 1;
    if (line.substr(0, 2) != "  ") return false;
    const std::string_view body = line.substr(2);
    constexpr std::string_view kParams = "__parameters__ = ", kBuffers = "__buffers__ = ",
                               kAnnotations = "__annotations__ = []", kAnnotation = "__annotations__[\"";
    if (body.substr(0, kParams.size()) == kParams) {
      if (!is_key_list(body.substr(kParams.size()))) return false;
    } else if (body.substr(0, kBuffers.size()) == kBuffers) {
      if (!is_key_list(body.substr(kBuffers.size()))) return false;
    } else if (body == kAnnotations) {
    } else if (body.substr(0, kAnnotation.size()) == kAnnotation) {
      const size_t close = body.find("\"] = ", kAnnotation.size());
      if (close == std::string_view::npos) return false;
      const std::string_view key = body.substr(kAnnotation.size(), close - kAnnotation.size());
      if (!is_key(key) || !names.insert(std::string(key)).second) return false;
      if (!read_whole_type(body.substr(close + 5), file)) return false;
    } else {
      const size_t colon = body.find(" : ");
      if (colon == std::string_view::npos) return false;
      const std::string_view name = body.substr(0, colon);
      if (!is_identifier(name) || !names.insert(std::string(name)).second) return false;
      if (!read_whole_type(body.substr(colon + 3), file)) return false;
    }
  }
  return true;
}

// code/__torch__.py or code/__torch__/___torch_mangle_N.py: where LibTorch puts a class it names
// __torch__.Module or __torch__.___torch_mangle_N.Module.
bool class_path_is_known(const std::string& file) {
  if (file == "code/__torch__.py") return true;
  constexpr std::string_view kStart = "code/__torch__/___torch_mangle_", kEnd = ".py";
  const std::string_view f = file;
  if (f.size() <= kStart.size() + kEnd.size() || f.substr(0, kStart.size()) != kStart ||
      f.substr(f.size() - kEnd.size()) != kEnd)
    return false;
  const std::string_view digits = f.substr(kStart.size(), f.size() - kStart.size() - kEnd.size());
  return digits.size() <= 9 && digits.find_first_not_of("0123456789") == std::string_view::npos;
}

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
    fail("{} {} is not a birdplane checkpoint (it holds no model, only data; a state_dict from `birdplane "
         "export` or Python's torch.save is read by `birdplane train --init-from`)",
         what, path);

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

void check_tensor_storage(const at::Tensor& t, const std::string& path, const std::string& key) {
  if (!t.defined() || t.numel() == 0) return;
  BIRDPLANE_CHECK(t.has_storage(), "{} is damaged: the tensor {} has no storage", path, key);
  int64_t last = t.storage_offset();
  BIRDPLANE_CHECK(last >= 0, "{} is damaged: the tensor {} starts before its storage", path, key);
  for (int64_t d = 0; d < t.dim(); ++d) {
    BIRDPLANE_CHECK(t.stride(d) >= 0, "{} is damaged: the tensor {} has a negative stride", path, key);
    last += (t.size(d) - 1) * t.stride(d);
  }
  const auto need = static_cast<uint64_t>(last + 1) * static_cast<uint64_t>(t.element_size());
  const auto have = static_cast<uint64_t>(t.storage().nbytes());
  BIRDPLANE_CHECK(have >= need,
                  "{} is damaged: the tensor {} ({} {}) needs {} bytes of data, the file holds {}", path, key,
                  c10::toString(t.scalar_type()), c10::str(t.sizes()), need, have);
}

uint64_t tensors_checksum(const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](const void* data, size_t size) {
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < size; ++i) h = (h ^ p[i]) * 1099511628211ull;
  };
  for (const auto& [name, tensor] : tensors) {
    const at::Tensor t = tensor.detach().cpu().contiguous();
    const std::string head = fmt::format("{}|{}|{}|", name, c10::toString(t.scalar_type()), c10::str(t.sizes()));
    mix(head.data(), head.size());
    // Eight bytes at a time: the byte-wise hash would take ~15 ms on book-large's weights.
    const auto* p = static_cast<const uint8_t*>(t.data_ptr());
    const size_t size = static_cast<size_t>(t.nbytes());
    size_t i = 0;
    for (; i + 8 <= size; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      h = (h ^ w) * 0x100000001b3ull;
      h ^= h >> 29;
    }
    mix(p + i, size - i);
  }
  return h;
}

}  // namespace birdplane::train
