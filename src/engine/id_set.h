// IdSet: a set of non-negative recipient ids in one flat array (the ledger's open obligations).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace sb {

// Open addressing with linear probing: an insert or erase costs a hash and a probe or two, and
// nothing is allocated per id (std::unordered_set allocates a node per insert, which was most of
// the ledger's cost per recipient). Ids must be >= 0: -1 and -2 mark empty and erased slots.
class IdSet {
 public:
  IdSet() { slots_.assign(kMinSlots, kEmpty); }

  // False when `id` was already in the set.
  bool insert(int64_t id) {
    if ((used_ + 1) * 2 > slots_.size()) rehash(size_ * 4 > slots_.size() ? slots_.size() * 2
                                                                           : slots_.size());
    size_t i = find_slot(id);
    if (slots_[i] == id) return false;
    // find_slot returns the first erased slot on the way when the id is absent.
    if (slots_[i] == kEmpty) ++used_;
    slots_[i] = id;
    ++size_;
    return true;
  }
  // False when `id` was not in the set.
  bool erase(int64_t id) {
    size_t i = find_slot(id);
    if (slots_[i] != id) return false;
    slots_[i] = kErased;
    --size_;
    return true;
  }
  bool contains(int64_t id) const { return slots_[find_slot(id)] == id; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  void clear() {
    slots_.assign(kMinSlots, kEmpty);
    size_ = used_ = 0;
  }
  template <class F>
  void for_each(F&& f) const {
    for (int64_t s : slots_) {
      if (s >= 0) f(s);
    }
  }

 private:
  static constexpr int64_t kEmpty = -1;
  static constexpr int64_t kErased = -2;
  static constexpr size_t kMinSlots = 64;

  static size_t hash(int64_t id) {
    // Fibonacci hashing: consecutive ids (the common case) spread over the table.
    return static_cast<size_t>(static_cast<uint64_t>(id) * 0x9E3779B97F4A7C15ull >> 20);
  }
  // The slot holding `id`, else the first erased slot met on its probe path, else the empty
  // slot that ends the path. The table always has an empty slot (load <= 1/2).
  size_t find_slot(int64_t id) const {
    const size_t mask = slots_.size() - 1;
    size_t i = hash(id) & mask;
    size_t erased = SIZE_MAX;
    for (;;) {
      int64_t s = slots_[i];
      if (s == id) return i;
      if (s == kEmpty) return erased != SIZE_MAX ? erased : i;
      if (s == kErased && erased == SIZE_MAX) erased = i;
      i = (i + 1) & mask;
    }
  }
  void rehash(size_t n) {
    std::vector<int64_t> old;
    old.swap(slots_);
    slots_.assign(n, kEmpty);
    size_ = used_ = 0;
    for (int64_t s : old) {
      if (s >= 0) insert(s);
    }
  }

  std::vector<int64_t> slots_;
  size_t size_ = 0;  // ids in the set
  size_t used_ = 0;  // slots not empty (ids and erased marks): what the load counts
};

}  // namespace sb
