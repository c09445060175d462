// A small unpickler for state_dict files (pickle_storages.h: read_state_dict_pickle). It runs after
// check_pickled_storages accepted the file, so the opcodes, the globals and the storages' bounds are known
// to be sound; it still checks every value it uses, since a check it relies on could change.
#include <cstring>
#include <map>
#include <memory>
#include <variant>

#include <ATen/ATen.h>
#include <c10/core/CPUAllocator.h>
#include <fmt/format.h>

#include "birdplane/check.h"
#include "train/checkpoint/pickle_storages.h"
#include "train/checkpoint/tensor_checks.h"

namespace birdplane::train {
namespace {

struct Obj;
using ObjPtr = std::shared_ptr<Obj>;
struct Global {
  std::string module, name;
};
struct Mark {};
struct None {};
struct Storage {
  c10::Storage storage;
  at::ScalarType dtype;
};
using Items = std::vector<ObjPtr>;
struct Dict {
  std::vector<std::pair<ObjPtr, ObjPtr>> items;
};
// Values are shared (memo, BINGET): a dict filled after it was memoized is the one the memo holds.
struct Obj {
  std::variant<None, Mark, bool, int64_t, double, std::string, Global, Items, Dict, Storage, at::Tensor> v;
};

at::ScalarType storage_dtype(const std::string& name) {
  static const std::map<std::string, at::ScalarType> kTypes = {
      {"FloatStorage", at::kFloat},  {"DoubleStorage", at::kDouble}, {"HalfStorage", at::kHalf},
      {"BFloat16Storage", at::kBFloat16}, {"LongStorage", at::kLong}, {"IntStorage", at::kInt},
      {"ShortStorage", at::kShort},  {"CharStorage", at::kChar},     {"ByteStorage", at::kByte},
      {"BoolStorage", at::kBool},    {"ComplexFloatStorage", at::kComplexFloat},
      {"ComplexDoubleStorage", at::kComplexDouble}};
  auto it = kTypes.find(name);
  return it == kTypes.end() ? at::ScalarType::Undefined : it->second;
}

}  // namespace

std::vector<std::pair<std::string, at::Tensor>> read_state_dict_pickle(const std::vector<char>& bytes,
                                                                       const std::vector<ZipEntry>& entries,
                                                                       const std::string& path) {
  auto bad = [&](const std::string& why) -> void { fail("state_dict file {} is damaged ({})", path, why); };
  const ZipEntry* pickle = nullptr;
  std::map<std::string, const ZipEntry*> by_name;
  for (const auto& e : entries) {
    by_name[e.name] = &e;
    const auto slash = e.name.find('/');
    if (slash != std::string::npos && e.name.compare(slash, std::string::npos, "/data.pkl") == 0) pickle = &e;
  }
  if (!pickle || pickle->method != 0) bad("no stored data.pkl");
  const std::string prefix = pickle->name.substr(0, pickle->name.find('/'));
  const char* p = bytes.data() + pickle->data_offset;
  const uint64_t n = pickle->size;
  uint64_t at = 0;
  auto u = [&](int k) {
    if (static_cast<uint64_t>(k) > n - at) bad("its pickle ends in the middle of a value");
    uint64_t v = 0;
    for (int i = k - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[at + static_cast<uint64_t>(i)]);
    at += static_cast<uint64_t>(k);
    return v;
  };
  auto text = [&](uint64_t k) {
    if (k > n - at) bad("its pickle ends in the middle of a string");
    std::string s(p + at, k);
    at += k;
    return s;
  };
  auto line = [&]() {
    const uint64_t start = at;
    while (at < n && p[at] != '\n') ++at;
    if (at >= n) bad("its pickle ends in the middle of a name");
    return std::string(p + start, p + at++);
  };
  auto make = [](auto value) { return std::make_shared<Obj>(Obj{std::move(value)}); };
  std::vector<ObjPtr> stack, memo;
  auto pop = [&]() {
    if (stack.empty() || std::holds_alternative<Mark>(stack.back()->v)) bad("a broken pickle (stack underflow)");
    ObjPtr o = std::move(stack.back());
    stack.pop_back();
    return o;
  };
  auto pop_to_mark = [&]() {
    Items items;
    while (!stack.empty() && !std::holds_alternative<Mark>(stack.back()->v)) {
      items.push_back(std::move(stack.back()));
      stack.pop_back();
    }
    if (stack.empty()) bad("a broken pickle (no mark)");
    stack.pop_back();
    std::reverse(items.begin(), items.end());
    return items;
  };
  auto top_dict = [&]() -> Dict& {
    if (stack.empty()) bad("a broken pickle (items with no dict to hold them)");
    auto* d = std::get_if<Dict>(&stack.back()->v);
    if (!d) bad("a broken pickle (items set on something other than a dict)");
    return *d;
  };
  auto as_int = [&](const ObjPtr& o) {
    const auto* i = std::get_if<int64_t>(&o->v);
    if (!i) bad("a tensor's size, stride or offset is not a whole number");
    return *i;
  };
  auto int_list = [&](const ObjPtr& o) {
    const auto* items = std::get_if<Items>(&o->v);
    if (!items || items->size() > 64) bad("a tensor's sizes or strides are not a tuple of whole numbers");
    std::vector<int64_t> out;
    for (const auto& i : *items) out.push_back(as_int(i));
    return out;
  };
  // A callable with its arguments: the few a state_dict uses.
  auto call = [&](const Global& g, const ObjPtr& args) -> ObjPtr {
    const auto* a = std::get_if<Items>(&args->v);
    if (!a) bad("a call without an argument tuple");
    const std::string full = g.module + "." + g.name;
    if (full == "collections.OrderedDict") {
      if (!a->empty()) bad("OrderedDict called with arguments");
      return make(Dict{});
    }
    if (full == "torch._utils._rebuild_tensor_v2") {
      if (a->size() < 4) bad("a tensor without its storage, offset, sizes and strides");
      const auto* st = std::get_if<Storage>(&(*a)[0]->v);
      if (!st) bad("a tensor whose storage is not one");
      const auto sizes = int_list((*a)[2]), strides = int_list((*a)[3]);
      const int64_t offset = as_int((*a)[1]);
      if (sizes.size() != strides.size()) bad("a tensor with as many strides as sizes");
      // Every number comes from the file: sizes, strides and the offset are bounded first (a storage holds
      // at most 2^40 elements), so the arithmetic below cannot overflow.
      constexpr int64_t kMax = int64_t{1} << 40;
      for (size_t i = 0; i < sizes.size(); ++i)
        if (sizes[i] < 0 || strides[i] < 0 || sizes[i] > kMax || strides[i] > kMax)
          bad("a tensor with a negative or huge size or stride");
      if (offset < 0 || offset > kMax) bad("a tensor starting outside its storage");
      // Bounds before the view exists: the last element must lie inside the storage (an empty tensor
      // touches nothing). Overflow-checked: a product of two bounded numbers can still pass 2^63.
      bool empty = false;
      for (const auto size : sizes) empty = empty || size == 0;
      int64_t last = offset;
      for (size_t i = 0; i < sizes.size() && !empty; ++i) {
        int64_t step = 0;
        if (sizes[i] > 0 && (__builtin_mul_overflow(sizes[i] - 1, strides[i], &step) ||
                             __builtin_add_overflow(last, step, &last) || last > kMax))
          bad("a tensor reaching past its storage");
      }
      const auto itemsize = static_cast<int64_t>(c10::elementSize(st->dtype));
      if (!empty && (last + 1) * itemsize > static_cast<int64_t>(st->storage.nbytes()))
        bad("a tensor reaching past its storage");
      auto t = at::empty({0}, at::TensorOptions().dtype(st->dtype));
      t.set_(st->storage, offset, sizes, strides);
      return make(t);
    }
    if (full == "torch._utils._rebuild_parameter") {
      if (a->empty() || !std::holds_alternative<at::Tensor>((*a)[0]->v)) bad("a parameter without its tensor");
      return (*a)[0];
    }
    if (full == "torch.jit._pickle.restore_type_tag") {
      if (a->empty()) bad("a typed value without its value");
      return (*a)[0];
    }
    fail("state_dict file {} names {} in its pickle; a state_dict holds only tensors, dicts, lists, numbers and strings",
         path, full);
  };
  auto storage = [&](const ObjPtr& id) -> ObjPtr {
    const auto* t = std::get_if<Items>(&id->v);
    if (!t || t->size() != 5) bad("a persistent id that is not a storage");
    const auto* kind = std::get_if<std::string>(&(*t)[0]->v);
    const auto* type = std::get_if<Global>(&(*t)[1]->v);
    const auto* key = std::get_if<std::string>(&(*t)[2]->v);
    const auto* numel = std::get_if<int64_t>(&(*t)[4]->v);
    if (!kind || *kind != "storage" || !type || !key || !numel) bad("a persistent id that is not a storage");
    const auto dtype = type->module == "torch" ? storage_dtype(type->name) : at::ScalarType::Undefined;
    if (dtype == at::ScalarType::Undefined) bad("a storage of unknown type " + type->module + "." + type->name);
    auto it = by_name.find(prefix + "/data/" + *key);
    if (it == by_name.end()) bad("the tensor data " + prefix + "/data/" + *key + " is missing");
    const ZipEntry& e = *it->second;
    if (e.method != 0) bad("the tensor data " + e.name + " is compressed");
    const auto itemsize = static_cast<uint64_t>(c10::elementSize(dtype));
    if (*numel < 0 || static_cast<uint64_t>(*numel) > e.size / itemsize)
      bad(fmt::format("the tensor data {} holds {} bytes, its storage needs {} elements", e.name, e.size, *numel));
    const size_t nbytes = static_cast<size_t>(*numel) * itemsize;
    at::DataPtr data = c10::GetCPUAllocator()->allocate(nbytes);
    if (nbytes) std::memcpy(data.get(), bytes.data() + e.data_offset, nbytes);
    c10::Storage s(c10::Storage::use_byte_size_t(), nbytes, std::move(data), nullptr, false);
    return make(Storage{std::move(s), dtype});
  };
  auto memo_put = [&](uint64_t index) {
    if (stack.empty()) bad("a broken pickle");
    if (index > memo.size() || index > (uint64_t{1} << 24)) bad("a broken pickle (memo entry out of order)");
    if (index == memo.size()) memo.push_back(stack.back()); else memo[index] = stack.back();
  };
  for (bool stop = false; !stop;) {
    if (at >= n) bad("its pickle has no end");
    const auto op = static_cast<uint8_t>(p[at++]);
    switch (op) {
      case 0x80: u(1); break;                                          // PROTO
      case 0x95: u(8); break;                                          // FRAME
      case '(': stack.push_back(make(Mark{})); break;                  // MARK
      case ')': stack.push_back(make(Items{})); break;                 // EMPTY_TUPLE
      case ']': stack.push_back(make(Items{})); break;                 // EMPTY_LIST
      case '}': stack.push_back(make(Dict{})); break;                  // EMPTY_DICT
      case 'N': stack.push_back(make(None{})); break;
      case 0x88: stack.push_back(make(true)); break;
      case 0x89: stack.push_back(make(false)); break;
      case 'K': stack.push_back(make(static_cast<int64_t>(u(1)))); break;
      case 'M': stack.push_back(make(static_cast<int64_t>(u(2)))); break;
      case 'J': stack.push_back(make(static_cast<int64_t>(static_cast<int32_t>(u(4))))); break;
      case 0x8a: {                                                     // LONG1
        const uint64_t k = u(1);
        if (k > 8) bad("a whole number of more than 64 bits");
        uint64_t v = k ? u(static_cast<int>(k)) : 0;
        if (k > 0 && k < 8 && (v >> (8 * k - 1)) & 1) v |= ~uint64_t{0} << (8 * k);
        stack.push_back(make(static_cast<int64_t>(v)));
        break;
      }
      case 'G': {                                                      // BINFLOAT, big-endian
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | u(1);
        double d;
        std::memcpy(&d, &bits, sizeof d);
        stack.push_back(make(d));
        break;
      }
      case 'X': stack.push_back(make(text(u(4)))); break;              // BINUNICODE
      case 0x8c: stack.push_back(make(text(u(1)))); break;             // SHORT_BINUNICODE
      case 0x8d: stack.push_back(make(text(u(8)))); break;             // BINUNICODE8
      case 'T': case 'B': stack.push_back(make(text(u(4)))); break;    // BINSTRING, BINBYTES
      case 'U': case 'C': stack.push_back(make(text(u(1)))); break;    // SHORT_BINSTRING, SHORT_BINBYTES
      case 't': stack.push_back(make(pop_to_mark())); break;           // TUPLE
      case 'l': stack.push_back(make(pop_to_mark())); break;           // LIST
      case 0x85: case 0x86: case 0x87: {                               // TUPLE1, TUPLE2, TUPLE3
        Items items;
        for (int i = 0; i < op - 0x84; ++i) items.push_back(pop());
        std::reverse(items.begin(), items.end());
        stack.push_back(make(std::move(items)));
        break;
      }
      case 'a': {                                                      // APPEND
        ObjPtr v = pop();
        if (stack.empty() || !std::holds_alternative<Items>(stack.back()->v)) bad("an append to something not a list");
        std::get<Items>(stack.back()->v).push_back(v);
        break;
      }
      case 'e': {                                                      // APPENDS
        Items items = pop_to_mark();
        if (stack.empty() || !std::holds_alternative<Items>(stack.back()->v)) bad("an append to something not a list");
        auto& list = std::get<Items>(stack.back()->v);
        list.insert(list.end(), items.begin(), items.end());
        break;
      }
      case 'd': case 'u': {                                            // DICT, SETITEMS
        Items items = pop_to_mark();
        if (items.size() % 2) bad("a dict key without its value");
        if (op == 'd') stack.push_back(make(Dict{}));
        Dict& d = top_dict();
        for (size_t i = 0; i < items.size(); i += 2) d.items.emplace_back(items[i], items[i + 1]);
        break;
      }
      case 's': {                                                      // SETITEM
        ObjPtr value = pop(), key = pop();
        top_dict().items.emplace_back(key, value);
        break;
      }
      case 'b': {                                                      // BUILD: an OrderedDict's _metadata
        pop();
        top_dict();  // only a dict's state is accepted, and dropped
        break;
      }
      case 'R': case 0x81: {                                           // REDUCE, NEWOBJ
        ObjPtr args = pop(), callable = pop();
        const auto* g = std::get_if<Global>(&callable->v);
        if (!g) bad("a call of something that is not a class or function");
        stack.push_back(call(*g, args));
        break;
      }
      case 'c': {                                                      // GLOBAL
        Global g{line(), ""};
        g.name = line();
        stack.push_back(make(std::move(g)));
        break;
      }
      case 0x93: {                                                     // STACK_GLOBAL
        ObjPtr name = pop(), module = pop();
        const auto* m = std::get_if<std::string>(&module->v);
        const auto* nm = std::get_if<std::string>(&name->v);
        if (!m || !nm) bad("a broken pickle (a global without its name)");
        stack.push_back(make(Global{*m, *nm}));
        break;
      }
      case 'Q': stack.push_back(storage(pop())); break;               // BINPERSID
      case 'q': memo_put(u(1)); break;                                 // BINPUT
      case 'r': memo_put(u(4)); break;                                 // LONG_BINPUT
      case 0x94: memo_put(memo.size()); break;                         // MEMOIZE
      case 'h': case 'j': {                                            // BINGET, LONG_BINGET
        const uint64_t index = u(op == 'h' ? 1 : 4);
        if (index >= memo.size()) bad("a broken pickle (an unknown memo entry)");
        stack.push_back(memo[index]);
        break;
      }
      case '0': pop(); break;                                          // POP
      case '1': pop_to_mark(); break;                                  // POP_MARK
      case '2': { ObjPtr v = pop(); stack.push_back(v); stack.push_back(v); break; }  // DUP
      case '.': stop = true; break;                                    // STOP
      default:
        bad(fmt::format("pickle opcode 0x{:02x} at byte {} is not one birdplane reads", op, at - 1));
    }
  }
  if (stack.size() != 1) bad("a broken pickle (not one value at its end)");
  const auto* d = std::get_if<Dict>(&stack.back()->v);
  if (!d) fail("{} holds no dict, expected a dict of tensors (a state_dict)", path);
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& [k, v] : d->items) {
    const auto* key = std::get_if<std::string>(&k->v);
    const auto* t = std::get_if<at::Tensor>(&v->v);
    if (!key) fail("{}: a key that is not a string; a state_dict maps names to tensors", path);
    if (!t) fail("{}: '{}' is not a tensor", path, *key);
    check_tensor_storage(*t, path, *key);
    out.emplace_back(*key, *t);
  }
  return out;
}

}  // namespace birdplane::train
