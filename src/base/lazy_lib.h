// LazyLib: a shared library that only some verbs use, opened the first time one of its
// functions is called instead of by the dynamic loader at every start.
#pragma once

#include <mutex>

namespace sb {

// Why: libphonenumber, GMime, libcurl and libpq bring 45 of the program's 71 shared objects;
// resolving their symbols at every start (all are linked with BIND_NOW) cost ~31 million
// instructions, most of the start-up of a verb that never calls them (`load`, a benchmark
// harness whose CPU per message counts its start-up). Each such library gets a *_lazy.cc that
// defines, under the library's own names, the functions smtpblast calls; each forwards to the
// library's through a pointer looked up once. Callers and their headers are unchanged.
class LazyLib {
 public:
  // `soname`: the name the linker recorded before (e.g. "libcurl.so.4"); searched as dlopen
  // does.
  explicit constexpr LazyLib(const char* soname) : soname_(soname) {}
  LazyLib(const LazyLib&) = delete;
  LazyLib& operator=(const LazyLib&) = delete;

  // The library's `name`, opening the library on first use (thread-safe). A library or symbol
  // that cannot be found ends the process with status 127 and a message naming it, as the
  // dynamic loader did at start.
  void* symbol(const char* name);

 private:
  const char* soname_;
  std::once_flag once_;
  void* handle_ = nullptr;
};

// `name` of `lib` as a function pointer of type F (e.g. decltype(&curl_easy_init)).
template <typename F>
F lazy_function(LazyLib& lib, const char* name) {
  return reinterpret_cast<F>(lib.symbol(name));
}

}  // namespace sb

// In a forwarding definition of `fn`: `sb_real` is the library's own fn, looked up once.
#define SB_LAZY_REAL(lib, fn) \
  static const auto sb_real = ::sb::lazy_function<decltype(&fn)>(lib, #fn)
