// A compact set of address keys with the line each was first seen on, for import dedup.
#include "store/address_set.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
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
  uint64_t tag = h | 1;
  size_t mask = slots_.size() - 1;
  // Probe from the tag, as grow() places by it: the same start for lookups and moves.
  for (size_t i = tag & mask;; i = (i + 1) & mask) {
    Slot& s = slots_[i];
    if (s.tag == 0) {
      // Offsets are 32-bit: 4 GiB of keys is over a hundred million addresses.
      if (arena_.size() + key.size() + 4 > UINT32_MAX) std::abort();
      s.tag = tag;
      s.offset = static_cast<uint32_t>(arena_.size());
      s.line = line > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(line);
      uint32_t n = static_cast<uint32_t>(key.size());
      arena_.append(reinterpret_cast<const char*>(&n), sizeof n);
      arena_.append(key);
      ++size_;
      return 0;
    }
    if (s.tag == tag) {
      uint32_t n;
      std::memcpy(&n, arena_.data() + s.offset, sizeof n);
      if (std::string_view(arena_).substr(s.offset + sizeof n, n) == key) return s.line;
    }
  }
}

void AddressSet::grow() {
  std::vector<Slot> old(slots_.size() * 2);
  old.swap(slots_);
  size_t mask = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.tag == 0) continue;
    size_t i = s.tag & mask;
    while (slots_[i].tag != 0) i = (i + 1) & mask;
    slots_[i] = s;
  }
}

}  // namespace sb
