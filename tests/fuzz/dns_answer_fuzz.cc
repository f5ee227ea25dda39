// Fuzz target: the DNS answer parser must never crash, and what it returns must be consistent.
#include <cstdint>
#include <cstdlib>

#include "dns/answer_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = sb::dns::parse_answer(data, size);
  if (!r.ok()) {
    if (r.error().message.empty()) std::abort();
    return 0;
  }
  const sb::dns::Answer& a = r.value();
  if (a.qname.empty() || a.cname_chain.size() > sb::dns::kMaxCnameChain) std::abort();
  for (const auto& mx : a.mx) {
    if (mx.exchange.empty() || mx.exchange.size() > 4 * 255) std::abort();
  }
  for (const auto& ip : a.addresses) {
    if (ip.to_string().empty()) std::abort();
  }
  (void)a.no_data();
  return 0;
}
