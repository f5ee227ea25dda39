// Compact encoding of a recipient's merge values (varint length + bytes per value).
#include "store/field_codec.h"

#include <cstdint>

namespace sb {

void append_field(std::string& out, std::string_view value) {
  uint64_t len = value.size();
  while (len >= 0x80) {
    out.push_back(static_cast<char>((len & 0x7F) | 0x80));
    len >>= 7;
  }
  out.push_back(static_cast<char>(len));
  out.append(value);
}

void encode_fields(const std::string* values, size_t n, std::string& out) {
  out.clear();
  for (size_t i = 0; i < n; ++i) append_field(out, values[i]);
}

bool decode_fields(std::string_view blob, size_t count, std::vector<std::string>& out) {
  out.resize(count);
  size_t pos = 0;
  for (size_t i = 0; i < count; ++i) {
    if (pos >= blob.size()) {
      out[i].clear();
      continue;
    }
    uint64_t len = 0;
    int shift = 0;
    for (;;) {
      if (pos >= blob.size() || shift > 56) return false;
      unsigned char b = static_cast<unsigned char>(blob[pos++]);
      len |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) break;
      shift += 7;
    }
    if (len > blob.size() - pos) return false;
    out[i].assign(blob.data() + pos, len);
    pos += len;
  }
  return true;
}

}  // namespace sb
