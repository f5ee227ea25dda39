// Fuzz target: parse_return, classification and matching never crash and keep their bounds.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "returns/classify.h"
#include "returns/report.h"
#include "returns/verp.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const sb::Classifier cl = sb::Classifier::create().value();
  std::string_view in(reinterpret_cast<const char*>(data), size);
  sb::ReturnReport r = sb::parse_return(in);
  if (r.recipients.size() > sb::kMaxRecipients) std::abort();
  if (r.original_x_headers.size() > sb::kMaxXHeaders) std::abort();
  for (const auto& rr : r.recipients) {
    for (const std::string* s : {&rr.final_recipient, &rr.diagnostic, &rr.action, &rr.status}) {
      if (s->size() > sb::kMaxFieldText) std::abort();
      for (char c : *s) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) std::abort();
      }
    }
  }
  for (size_t i = 0; i <= r.recipients.size(); ++i) (void)cl.classify(r, i);
  (void)sb::match_return(r, sb::MatchKeys{"0123456789abcdef", "fixture-verp-key"});
  return 0;
}
