// A compact set of address keys with the line each was first seen on, for import dedup.
#include "store/address_set.h"

#include <functional>

namespace sb {
namespace {
constexpr size_t kInitialSlots = 1024;  // a power of two
}  // namespace

AddressSet::AddressSet() : slots_(kInitialSlots) {}

uint64_t AddressSet::insert(std::string_view key, uint64_t line) {
  // Keep the load at or below one half so linear probes stay short.
  if ((size_ + 1) * 2 > slots_.size()) grow();
  uint64_t h = std::hash<std::string_view>{}(key);
  size_t mask = slots_.size() - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    Slot& s = slots_[i];
    if (!s.used) {
      s.used = 1;
      s.hash = h;
      s.offset = arena_.size();
      s.length = static_cast<uint32_t>(key.size());
      s.line = line;
      arena_.append(key);
      ++size_;
      return 0;
    }
    if (s.hash == h && std::string_view(arena_).substr(s.offset, s.length) == key) {
      return s.line;
    }
  }
}

void AddressSet::grow() {
  std::vector<Slot> old(slots_.size() * 2);
  old.swap(slots_);
  size_t mask = slots_.size() - 1;
  for (const Slot& s : old) {
    if (!s.used) continue;
    size_t i = s.hash & mask;
    while (slots_[i].used) i = (i + 1) & mask;
    slots_[i] = s;
  }
}

}  // namespace sb
