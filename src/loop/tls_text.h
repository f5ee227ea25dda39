// OpenSSL's errors and a certificate's fields as text that is safe to show a user.
#pragma once

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace sb::tls {

// Certificate text is chosen by the server: cap what we quote back.
constexpr size_t kMaxQuoted = 200;

// "TLS 1.2", or "version 0x0305" for one OpenSSL has no name for.
std::string version_name(int v);

// Untrusted bytes (names from the peer's certificate) made safe for a log or terminal.
std::string printable(std::string_view s);

// A distinguished name on one line (RFC 2253), printable.
std::string name_text(const X509_NAME* name);

// "2030-01-02 03:04:05 UTC", or "" when the time cannot be read.
std::string time_text(const ASN1_TIME* t);

// The names a certificate is valid for: its DNS and IP SANs, else its CN.
std::string cert_names(X509* cert);

struct QueuedError {
  unsigned long code;
  std::string text;
};

// Drains this thread's OpenSSL error queue, so no error leaks into the next connection.
std::vector<QueuedError> drain_errors();

// The errors' texts, each once, joined by ": ".
std::string join_errors(const std::vector<QueuedError>& errs);

// A configuration error: `msg` followed by what OpenSSL's queue says (drained).
Error config_error(std::string msg);

}  // namespace sb::tls
