// Fuzz target: the doctor's readers of untrusted text (DKIM/DMARC tag lists from DNS, From:
// values, rendered messages, EHLO replies) must never crash and must keep their promises.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "../doctor/canned_dns.h"
#include "doctor/dkim_check.h"
#include "doctor/dmarc_check.h"
#include "doctor/message_check.h"
#include "doctor/spf_check.h"
#include "doctor/starttls_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sb::doctor;
  std::string in(reinterpret_cast<const char*>(data), size);
  for (const auto& [k, v] : parse_tags(in)) {
    if (k.find(';') != std::string::npos || v.find(';') != std::string::npos) std::abort();
  }
  for (const std::string& a : from_addresses(in)) (void)valid_address(a);
  for (const Row& r : check_message(in, in)) {
    if (r.check.empty() || (r.verdict != Verdict::kPass && r.fix.empty())) std::abort();
  }
  (void)ehlo_keywords(in);
  // The same text as every record the checks read.
  testing::CannedDns dns;
  dns.txt("example.com", in);
  dns.txt("_dmarc.example.com", in);
  dns.txt("s1._domainkey.example.com", in);
  (void)check_spf({"a@example.com", "", {testing::ip("192.0.2.1")}}, dns);
  (void)check_dkim({{"example.com", "s1", "rsa-sha256", "v=DKIM1; k=rsa; p=AAAA"}}, "example.com",
                   dns);
  (void)check_dmarc({"example.com", "example.com", true, {"example.com"}}, dns);
  Report rep;
  rep.add(Row{"x", in, Verdict::kFail, in, in, in});
  (void)rep.text();
  (void)rep.json();
  return 0;
}
