#include "train/archive_check.h"

#include <cstring>
#include <map>
#include <set>
#include <variant>

#include <ATen/ATen.h>
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
    if (!names.insert(e.name).second) damaged("the entry " + e.name + " appears twice");
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
  return out;
}

namespace {

// What the pickle walker keeps of a stack value: strings, integers and globals (what a storage's
// persistent id holds), tuples of them, marks, and anything else as an opaque value.
struct Global {
  std::string module, name;
};
struct Value;
using Tuple = std::vector<Value>;
struct Mark {};
struct Opaque {};
struct Value {
  std::variant<Opaque, Mark, std::string, int64_t, Global, Tuple> v;
};

int64_t storage_itemsize(const std::string& type) {
  static const std::map<std::string, int64_t> kSizes = {
      {"FloatStorage", 4}, {"DoubleStorage", 8}, {"HalfStorage", 2},  {"BFloat16Storage", 2},
      {"LongStorage", 8},  {"IntStorage", 4},    {"ShortStorage", 2}, {"CharStorage", 1},
      {"ByteStorage", 1},  {"BoolStorage", 1},   {"ComplexFloatStorage", 8}, {"ComplexDoubleStorage", 16}};
  auto it = kSizes.find(type);
  return it == kSizes.end() ? 0 : it->second;
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
    std::string s(p + at, k);
    at += k;
    return s;
  };
  auto line = [&]() {
    const uint64_t start = at;
    while (at < n && p[at] != '\n') ++at;
    if (at >= n) damaged("its pickle ends in the middle of a name");
    return std::string(p + start, p + at++);
  };
  std::vector<Value> stack;
  std::map<uint64_t, Value> memo;
  auto pop = [&]() {
    if (stack.empty() || std::holds_alternative<Mark>(stack.back().v)) damaged("a broken pickle (stack underflow)");
    Value v = std::move(stack.back());
    stack.pop_back();
    return v;
  };
  auto pop_to_mark = [&]() {
    Tuple items;
    while (!stack.empty() && !std::holds_alternative<Mark>(stack.back().v)) {
      items.insert(items.begin(), std::move(stack.back()));
      stack.pop_back();
    }
    if (stack.empty()) damaged("a broken pickle (no mark)");
    stack.pop_back();
    return items;
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
    const Tuple* t = std::get_if<Tuple>(&id.v);
    if (!t || t->size() != 5) damaged("a persistent id that is not a storage");
    const auto* kind = std::get_if<std::string>(&(*t)[0].v);
    const auto* type = std::get_if<Global>(&(*t)[1].v);
    const auto* key = std::get_if<std::string>(&(*t)[2].v);
    const auto* numel = std::get_if<int64_t>(&(*t)[4].v);
    if (!kind || *kind != "storage" || !type || !key || !numel) damaged("a persistent id that is not a storage");
    const int64_t itemsize = type->module == "torch" ? storage_itemsize(type->name) : 0;
    if (itemsize == 0) damaged("a storage of unknown type " + type->module + "." + type->name);
    if (*numel < 0 || *numel > (int64_t{1} << 40)) damaged(fmt::format("a storage of {} elements", *numel));
    const std::string record = prefix + "/data/" + *key;
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
        stack.push_back({Opaque{}});
        break;
      case 'K': stack.push_back({static_cast<int64_t>(u(1))}); break;
      case 'M': stack.push_back({static_cast<int64_t>(u(2))}); break;
      case 'J': stack.push_back({static_cast<int64_t>(static_cast<int32_t>(u(4)))}); break;
      case 'G': u(8); stack.push_back({Opaque{}}); break;             // BINFLOAT
      case 0x8a: {                                                    // LONG1
        const uint64_t k = u(1);
        if (k > 8) { text(k); stack.push_back({Opaque{}}); break; }
        uint64_t v = k ? u(static_cast<int>(k)) : 0;
        if (k > 0 && k < 8 && (v >> (8 * k - 1)) & 1) v |= ~uint64_t{0} << (8 * k);  // sign-extend
        stack.push_back({static_cast<int64_t>(v)});
        break;
      }
      case 0x8b: text(u(4)); stack.push_back({Opaque{}}); break;      // LONG4
      case 'X': stack.push_back({text(u(4))}); break;                 // BINUNICODE
      case 0x8c: stack.push_back({text(u(1))}); break;                // SHORT_BINUNICODE
      case 0x8d: stack.push_back({text(u(8))}); break;                // BINUNICODE8
      case 'T': case 'B': text(u(4)); stack.push_back({Opaque{}}); break;  // BINSTRING, BINBYTES
      case 'U': case 'C': text(u(1)); stack.push_back({Opaque{}}); break;  // SHORT_BINSTRING, SHORT_BINBYTES
      case 0x8e: text(u(8)); stack.push_back({Opaque{}}); break;      // BINBYTES8
      case 't': stack.push_back({pop_to_mark()}); break;              // TUPLE
      case 0x85: { Tuple t{pop()}; stack.push_back({t}); break; }
      case 0x86: { Value b = pop(), a = pop(); stack.push_back({Tuple{a, b}}); break; }
      case 0x87: { Value c = pop(), b = pop(), a = pop(); stack.push_back({Tuple{a, b, c}}); break; }
      case 'l': case 'd': pop_to_mark(); stack.push_back({Opaque{}}); break;  // LIST, DICT
      case 'a': pop(); break;                                         // APPEND
      case 'e': case 'u': case 0x90: pop_to_mark(); break;            // APPENDS, SETITEMS, ADDITEMS
      case 's': pop(); pop(); break;                                  // SETITEM
      case 'b': pop(); break;                                         // BUILD
      case 'R': case 0x81: {                                          // REDUCE, NEWOBJ
        pop();
        Value callable = pop();
        if (const auto* g = std::get_if<Global>(&callable.v)) check_global(*g);
        stack.push_back({Opaque{}});
        break;
      }
      case 'o': pop_to_mark(); stack.push_back({Opaque{}}); break;    // OBJ
      case 'c': {                                                     // GLOBAL
        Global g{line(), ""};
        g.name = line();
        check_global(g);
        stack.push_back({g});
        break;
      }
      case 0x93: {                                                    // STACK_GLOBAL
        Value name = pop(), module = pop();
        const auto* m = std::get_if<std::string>(&module.v);
        const auto* nm = std::get_if<std::string>(&name.v);
        if (!m || !nm) damaged("a broken pickle (a global without its name)");
        Global g{*m, *nm};
        check_global(g);
        stack.push_back({g});
        break;
      }
      case 'Q': storage(pop()); stack.push_back({Opaque{}}); break;   // BINPERSID
      case 'q': if (stack.empty()) damaged("a broken pickle"); memo[u(1)] = stack.back(); break;
      case 'r': if (stack.empty()) damaged("a broken pickle"); memo[u(4)] = stack.back(); break;
      case 0x94: if (stack.empty()) damaged("a broken pickle"); memo[memo.size()] = stack.back(); break;
      case 'h': case 'j': {                                           // BINGET, LONG_BINGET
        auto it = memo.find(u(op == 'h' ? 1 : 4));
        if (it == memo.end()) damaged("a broken pickle (an unknown memo entry)");
        stack.push_back(it->second);
        break;
      }
      case '0': pop(); break;                                         // POP
      case '1': pop_to_mark(); break;                                 // POP_MARK
      case '2': if (stack.empty()) damaged("a broken pickle"); stack.push_back(stack.back()); break;
      case '.': stop = true; break;                                   // STOP
      default:
        damaged(fmt::format("pickle opcode 0x{:02x} at byte {} is not one birdplane reads", op, at - 1));
    }
  }
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
