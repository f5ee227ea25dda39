// libpsl, opened on first use (base/lazy_lib.h): only doctor looks up organizational domains.
// Each function smtpblast calls, under libpsl's own name, forwards to libpsl's.
#include <libpsl.h>

#include "base/lazy_lib.h"

namespace {
constinit sb::LazyLib psl_lib("libpsl.so.5");
}  // namespace

extern "C" {

const psl_ctx_t *psl_builtin(void) {
  SB_LAZY_REAL(psl_lib, psl_builtin);
  return sb_real();
}

psl_ctx_t *psl_latest(const char *fname) {
  SB_LAZY_REAL(psl_lib, psl_latest);
  return sb_real(fname);
}

const char *psl_registrable_domain(const psl_ctx_t *psl, const char *domain) {
  SB_LAZY_REAL(psl_lib, psl_registrable_domain);
  return sb_real(psl, domain);
}

}  // extern "C"
