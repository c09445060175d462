#include "train/checkpoint/pickle_storages.h"

#include <algorithm>
#include <map>
#include <memory>
#include <variant>

#include <fmt/format.h>

#include "birdplane/check.h"

namespace birdplane::train {
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

}  // namespace

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

}  // namespace birdplane::train
