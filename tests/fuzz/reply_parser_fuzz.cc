// Fuzz target: the reply parser must never crash, loop, or produce an invalid reply.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "smtp/reply_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sb::ReplyParser p;
  sb::Reply r;
  // The first byte picks a split size, so reassembly across calls is covered too.
  size_t chunk = size > 0 ? (data[0] % 17) + 1 : 1;
  std::string_view all(reinterpret_cast<const char*>(data), size);
  while (!all.empty() && !p.failed()) {
    std::string_view in = all.substr(0, chunk);
    all.remove_prefix(in.size());
    while (p.next(in, r)) {
      if (r.code < 200 || r.code > 599 || r.text.size() > sb::ReplyParser::kMaxReplyText) std::abort();
      for (char c : r.text) {
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n') std::abort();
      }
    }
    if (!p.failed() && !in.empty()) std::abort();  // the parser consumed everything
  }
  return 0;
}
