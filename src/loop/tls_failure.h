// Why a TLS connection failed, in TLS terms: the engine's report, worded for users elsewhere.
#pragma once

#include <cstdint>
#include <string>

namespace sb {

// The engine knows nothing of the command line: TlsClientConfig::describe_failure (the CLI's,
// cli/session_advice.h) adds the flags that help.
enum class TlsFailureCause : uint8_t {
  kOther,              // OpenSSL's own words (after the handshake, server side, ...)
  kPlaintextGreeting,  // the server answered our ClientHello with an SMTP greeting
  kNotTls,             // the server does not speak TLS on this port (wrong version number)
  kHostnameMismatch,   // the certificate does not name the host we connected to
  kCertExpired,
  kCertNotYetValid,
  kUntrustedIssuer,  // the chain does not end at a CA trusted here
  kCertInvalid,      // another verification failure
  kProtocolVersion,  // no TLS version in common (a TLS 1.0-only server)
  kNoCommonCipher,
  kCount,
};
const char* tls_failure_cause_name(TlsFailureCause c);

struct TlsFailure {
  TlsFailureCause cause = TlsFailureCause::kOther;
  // What failed: "TLS handshake with mx.example failed: certificate has expired: ...".
  std::string text;
  // What helps that needs no flag ("check this machine's clock"), or "".
  std::string hint;
};

// The engine's own wording: the text, and the hint in parentheses.
std::string tls_failure_text(const TlsFailure& f);

using TlsFailureDescriber = std::string (*)(const TlsFailure&);

}  // namespace sb
