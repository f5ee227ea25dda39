// A compact set of address keys with the line each was first seen on, for import dedup.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sb {

// Open addressing over one key arena: about 48 octets per address plus the key itself,
// and no allocation per insert (std::unordered_map<std::string, ...> needed a node and
// usually a string buffer per address, which dominated the import profile).
class AddressSet {
 public:
  AddressSet();
  // Inserts key with `line` unless present. Returns 0 when inserted, else the line the
  // key was first inserted with.
  uint64_t insert(std::string_view key, uint64_t line);
  size_t size() const { return size_; }

 private:
  // 16 bytes a slot (a million addresses at load 1/2: 32 MB): the hash with its low bit set
  // (0 = empty), the key's offset in arena_ (length-prefixed there) and the first line.
  struct Slot {
    uint64_t tag = 0;
    uint32_t offset = 0;
    uint32_t line = 0;
  };
  void grow();

  std::vector<Slot> slots_;
  std::string arena_;
  size_t size_ = 0;
};

}  // namespace sb
