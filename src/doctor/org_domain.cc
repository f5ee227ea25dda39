// Organizational domains through libpsl: the newest list on the system, else the built-in one.
#include "doctor/org_domain.h"

#include <libpsl.h>

#include "dns/answer_parser.h"

namespace sb::doctor {

namespace {

const psl_ctx_t* psl() {
  // psl_latest reads the distribution's list file when it is newer than the built-in one;
  // the context is immutable and shared.
  static const psl_ctx_t* ctx = [] {
    psl_ctx_t* c = psl_latest(nullptr);
    return c != nullptr ? static_cast<const psl_ctx_t*>(c) : psl_builtin();
  }();
  return ctx;
}

}  // namespace

std::string organizational_domain(std::string_view domain) {
  std::string d = dns::normalise_name(domain);
  if (d.empty() || d == ".") return d;
  const char* reg = psl_registrable_domain(psl(), d.c_str());
  return reg != nullptr ? std::string(reg) : d;
}

bool aligned(std::string_view a, std::string_view b, bool strict) {
  std::string na = dns::normalise_name(a), nb = dns::normalise_name(b);
  if (na.empty() || nb.empty()) return false;
  if (strict) return na == nb;
  return organizational_domain(na) == organizational_domain(nb);
}

std::string domain_of(std::string_view address) {
  size_t at = address.rfind('@');
  if (at == std::string_view::npos) return "";
  return dns::normalise_name(address.substr(at + 1));
}

}  // namespace sb::doctor
