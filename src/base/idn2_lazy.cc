// libidn2, opened on first use (base/lazy_lib.h): only a domain that is not ASCII is converted
// with it (address checks, MX lookups); here in base since message and dns both call it.
// Each function smtpblast calls, under libidn2's own name, forwards to libidn2's.
#include <idn2.h>

#include "base/lazy_lib.h"

namespace {
constinit sb::LazyLib idn2_lib("libidn2.so.0");
}  // namespace

extern "C" {

int idn2_to_ascii_8z(const char* input, char** output, int flags) {
  SB_LAZY_REAL(idn2_lib, idn2_to_ascii_8z);
  return sb_real(input, output, flags);
}

const char* idn2_strerror(int rc) {
  SB_LAZY_REAL(idn2_lib, idn2_strerror);
  return sb_real(rc);
}

void idn2_free(void* ptr) {
  SB_LAZY_REAL(idn2_lib, idn2_free);
  sb_real(ptr);
}

}  // extern "C"
