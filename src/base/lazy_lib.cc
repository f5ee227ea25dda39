#include "base/lazy_lib.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>

namespace sb {

void* LazyLib::symbol(const char* name) {
  std::call_once(once_, [this] {
    // RTLD_LOCAL: the library's symbols stay out of the global scope, so they never take the
    // place of the forwarding definitions (or of anything else) for later lookups.
    handle_ = ::dlopen(soname_, RTLD_NOW | RTLD_LOCAL);
    if (handle_ == nullptr) {
      std::fprintf(stderr, "smtpblast: cannot load %s: %s\n", soname_, ::dlerror());
      std::_Exit(127);
    }
  });
  ::dlerror();
  void* sym = ::dlsym(handle_, name);
  if (sym == nullptr) {
    const char* why = ::dlerror();
    std::fprintf(stderr, "smtpblast: %s: no symbol %s%s%s\n", soname_, name, why ? ": " : "",
                 why ? why : "");
    std::_Exit(127);
  }
  return sym;
}

}  // namespace sb
