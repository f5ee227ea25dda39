// libcurl, opened on first use (base/lazy_lib.h): only HTTP SMS providers and remote
// mailboxes (`returns`) call it. Each function smtpblast calls, under libcurl's own name,
// forwards to libcurl's.
#include <curl/curl.h>

#include <cstdarg>

#include "base/lazy_lib.h"

namespace {

// libcurl's soname has been libcurl.so.4 since 7.16.
constinit sb::LazyLib curl_lib("libcurl.so.4");

// The one argument after a setopt's option, passed on with the type libcurl reads for it:
// the option's number says which (CURLOPTTYPE_*, the same ranges for easy and multi options).
template <typename F, typename H, typename O>
auto forward_option(F real, H handle, O option, va_list ap) {
  const long kind = static_cast<long>(option) / 10000 * 10000;
  switch (kind) {
    case CURLOPTTYPE_LONG: return real(handle, option, va_arg(ap, long));
    case CURLOPTTYPE_FUNCTIONPOINT: return real(handle, option, va_arg(ap, void (*)()));
    case CURLOPTTYPE_OFF_T: return real(handle, option, va_arg(ap, curl_off_t));
    default: return real(handle, option, va_arg(ap, void *));  // OBJECTPOINT, BLOB
  }
}

}  // namespace

extern "C" {

// Parenthesised names: curl.h makes these macros (typecheck-gcc.h) when compiled with GCC.
CURLcode(curl_easy_setopt)(CURL *handle, CURLoption option, ...) {
  SB_LAZY_REAL(curl_lib, curl_easy_setopt);
  va_list ap;
  va_start(ap, option);
  CURLcode rc = forward_option(sb_real, handle, option, ap);
  va_end(ap);
  return rc;
}

CURLMcode(curl_multi_setopt)(CURLM *handle, CURLMoption option, ...) {
  SB_LAZY_REAL(curl_lib, curl_multi_setopt);
  va_list ap;
  va_start(ap, option);
  CURLMcode rc = forward_option(sb_real, handle, option, ap);
  va_end(ap);
  return rc;
}

// Every CURLINFO_* takes a pointer to where the answer goes.
CURLcode(curl_easy_getinfo)(CURL *handle, CURLINFO info, ...) {
  SB_LAZY_REAL(curl_lib, curl_easy_getinfo);
  va_list ap;
  va_start(ap, info);
  void *out = va_arg(ap, void *);
  va_end(ap);
  return sb_real(handle, info, out);
}

void curl_easy_cleanup(CURL *curl) {
  SB_LAZY_REAL(curl_lib, curl_easy_cleanup);
  sb_real(curl);
}

CURL *curl_easy_init(void) {
  SB_LAZY_REAL(curl_lib, curl_easy_init);
  return sb_real();
}

void curl_easy_reset(CURL *curl) {
  SB_LAZY_REAL(curl_lib, curl_easy_reset);
  sb_real(curl);
}

const char *curl_easy_strerror(CURLcode a0) {
  SB_LAZY_REAL(curl_lib, curl_easy_strerror);
  return sb_real(a0);
}

CURLcode curl_global_init(long flags) {
  SB_LAZY_REAL(curl_lib, curl_global_init);
  return sb_real(flags);
}

CURLMcode curl_multi_add_handle(CURLM *multi_handle, CURL *curl_handle) {
  SB_LAZY_REAL(curl_lib, curl_multi_add_handle);
  return sb_real(multi_handle, curl_handle);
}

CURLMcode curl_multi_assign(CURLM *multi_handle, curl_socket_t sockfd, void *sockp) {
  SB_LAZY_REAL(curl_lib, curl_multi_assign);
  return sb_real(multi_handle, sockfd, sockp);
}

CURLMcode curl_multi_cleanup(CURLM *multi_handle) {
  SB_LAZY_REAL(curl_lib, curl_multi_cleanup);
  return sb_real(multi_handle);
}

CURLMsg *curl_multi_info_read(CURLM *multi_handle, int *msgs_in_queue) {
  SB_LAZY_REAL(curl_lib, curl_multi_info_read);
  return sb_real(multi_handle, msgs_in_queue);
}

CURLM *curl_multi_init(void) {
  SB_LAZY_REAL(curl_lib, curl_multi_init);
  return sb_real();
}

CURLMcode curl_multi_remove_handle(CURLM *multi_handle, CURL *curl_handle) {
  SB_LAZY_REAL(curl_lib, curl_multi_remove_handle);
  return sb_real(multi_handle, curl_handle);
}

CURLMcode curl_multi_socket_action(CURLM *multi_handle, curl_socket_t s, int ev_bitmask,
                                   int *running_handles) {
  SB_LAZY_REAL(curl_lib, curl_multi_socket_action);
  return sb_real(multi_handle, s, ev_bitmask, running_handles);
}

struct curl_slist *curl_slist_append(struct curl_slist *list, const char *data) {
  SB_LAZY_REAL(curl_lib, curl_slist_append);
  return sb_real(list, data);
}

void curl_slist_free_all(struct curl_slist *list) {
  SB_LAZY_REAL(curl_lib, curl_slist_free_all);
  sb_real(list);
}

}  // extern "C"
