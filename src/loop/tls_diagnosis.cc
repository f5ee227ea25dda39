// What a TLS handshake negotiated and why one failed: the facts OpenSSL's callbacks record
// during the handshake, and the message made of them.
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <iterator>
#include <string>
#include <vector>

#include "loop/tls_engine.h"
#include "loop/tls_text.h"

namespace sb {

using tls::cert_names;
using tls::drain_errors;
using tls::join_errors;
using tls::name_text;
using tls::printable;
using tls::QueuedError;
using tls::time_text;
using tls::version_name;

// Records why the chain failed, for a message naming the certificate, its issuer or its date.
int TlsEngine::verify_cb(int preverify_ok, X509_STORE_CTX* store) {
  auto* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* e = ssl ? static_cast<TlsEngine*>(SSL_get_app_data(ssl)) : nullptr;
  if (e == nullptr) return preverify_ok;
  X509* cert = X509_STORE_CTX_get_current_cert(store);
  int depth = X509_STORE_CTX_get_error_depth(store);
  if (cert != nullptr && depth == 0 && e->leaf_names_.empty()) e->leaf_names_ = cert_names(cert);
  if (!preverify_ok && e->verify_error_ == 0) {
    e->verify_error_ = X509_STORE_CTX_get_error(store);
    e->verify_depth_ = depth;
    if (cert != nullptr) {
      e->verify_subject_ = name_text(X509_get_subject_name(cert));
      e->verify_issuer_ = name_text(X509_get_issuer_name(cert));
      e->verify_not_after_ = time_text(X509_get0_notAfter(cert));
      e->verify_not_before_ = time_text(X509_get0_notBefore(cert));
    }
  }
  return preverify_ok;
}

// Catches the version in the ServerHello: a server that speaks only TLS 1.0 answers with it,
// and the message can then say so instead of "unsupported protocol".
void TlsEngine::msg_cb(int write_p, int /*version*/, int content_type, const void* buf, size_t len,
                       SSL* ssl, void* /*arg*/) {
  if (write_p || content_type != SSL3_RT_HANDSHAKE || len < 6) return;
  const auto* p = static_cast<const unsigned char*>(buf);
  if (p[0] != SSL3_MT_SERVER_HELLO) return;
  auto* e = static_cast<TlsEngine*>(SSL_get_app_data(ssl));
  if (e != nullptr) e->server_hello_version_ = (p[4] << 8) | p[5];
}

TlsInfo TlsEngine::info() const {
  TlsInfo i;
  i.protocol = SSL_get_version(ssl_);
  if (const SSL_CIPHER* c = SSL_get_current_cipher(ssl_)) i.cipher = SSL_CIPHER_get_name(c);
  if (X509* peer = SSL_get0_peer_certificate(ssl_)) {
    i.peer_subject = name_text(X509_get_subject_name(peer));
    i.peer_issuer = name_text(X509_get_issuer_name(peer));
  } else if (!verify_subject_.empty() && verify_depth_ == 0) {
    i.peer_subject = verify_subject_;
    i.peer_issuer = verify_issuer_;
  }
  i.verify_enabled = !server_ && ctx_->cfg_.verify;
  i.verify_code = SSL_get_verify_result(ssl_);
  if (i.verify_code == X509_V_OK && verify_error_ != 0) i.verify_code = verify_error_;
  i.verify_result = X509_verify_cert_error_string(i.verify_code);
  i.resumed = SSL_session_reused(ssl_) == 1;
  return i;
}

const char* tls_failure_cause_name(TlsFailureCause c) {
  // Indexed by TlsFailureCause: one name per cause, checked at compile time.
  static constexpr const char* kNames[] = {"other",
                                           "plaintext_greeting",
                                           "not_tls",
                                           "hostname_mismatch",
                                           "cert_expired",
                                           "cert_not_yet_valid",
                                           "untrusted_issuer",
                                           "cert_invalid",
                                           "protocol_version",
                                           "no_common_cipher"};
  static_assert(std::size(kNames) == static_cast<size_t>(TlsFailureCause::kCount),
                "one name per TlsFailureCause");
  return c < TlsFailureCause::kCount ? kNames[static_cast<size_t>(c)] : "?";
}

std::string tls_failure_text(const TlsFailure& f) {
  return f.hint.empty() ? f.text : f.text + " (" + f.hint + ")";
}

TlsFailure TlsEngine::handshake_failure(int ssl_error) {
  std::vector<QueuedError> errs = drain_errors();
  int reason = 0;
  for (const QueuedError& e : errs) {
    if (ERR_GET_LIB(e.code) == ERR_LIB_SSL) {
      reason = ERR_GET_REASON(e.code);
      break;
    }
  }
  TlsFailure f;
  std::string& msg = f.text;
  msg = "TLS handshake with " + printable(host_) + " failed: ";
  const std::string min_name = version_name(server_ ? TLS1_2_VERSION : ctx_->cfg_.min_version);

  if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED && !server_) {
    long code = verify_error_ != 0 ? verify_error_ : SSL_get_verify_result(ssl_);
    msg += "certificate verify failed: ";
    const std::string what =
        verify_depth_ > 0 ? "a CA certificate in the server's chain (" + verify_subject_ + ")"
                          : "the server's certificate";
    switch (code) {
      case X509_V_ERR_HOSTNAME_MISMATCH:
      case X509_V_ERR_IP_ADDRESS_MISMATCH:
        f.cause = TlsFailureCause::kHostnameMismatch;
        msg += "hostname mismatch: the certificate is for " +
               (leaf_names_.empty() ? std::string("other names") : leaf_names_) + ", not " +
               printable(host_);
        f.hint = "connect with a name the certificate lists";
        break;
      case X509_V_ERR_CERT_HAS_EXPIRED:
        f.cause = TlsFailureCause::kCertExpired;
        msg += "certificate has expired: " + what + " expired on " + verify_not_after_;
        f.hint = "the server's operator must renew it";
        break;
      case X509_V_ERR_CERT_NOT_YET_VALID:
        f.cause = TlsFailureCause::kCertNotYetValid;
        msg += "certificate is not yet valid: " + what + " is valid from " + verify_not_before_;
        f.hint = "check this machine's clock";
        break;
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
      case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
      case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
      case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
      case X509_V_ERR_CERT_UNTRUSTED:
        f.cause = TlsFailureCause::kUntrustedIssuer;
        msg += std::string(X509_verify_cert_error_string(code)) + ": " + what + " (" +
               verify_subject_ + ") is issued by " + verify_issuer_ +
               ", which is not a trusted CA here";
        break;
      default:
        f.cause = TlsFailureCause::kCertInvalid;
        msg += X509_verify_cert_error_string(code);
        f.hint = what + (verify_subject_.empty() ? "" : ", " + verify_subject_);
        break;
    }
    return f;
  }
  if (reason == SSL_R_UNSUPPORTED_PROTOCOL || reason == SSL_R_TLSV1_ALERT_PROTOCOL_VERSION ||
      reason == SSL_R_WRONG_SSL_VERSION || reason == SSL_R_NO_PROTOCOLS_AVAILABLE ||
      reason == SSL_R_VERSION_TOO_LOW) {
    f.cause = TlsFailureCause::kProtocolVersion;
    if (server_) {
      msg += "the client offers only TLS versions older than " + min_name;
    } else if (server_hello_version_ != 0 && server_hello_version_ < ctx_->cfg_.min_version) {
      msg += "server offers only " + version_name(server_hello_version_) + "; smtpblast requires " +
             min_name + " or newer";
    } else {
      msg += "server refused " + min_name +
             " and newer (protocol version alert): it offers only an older TLS version; "
             "smtpblast requires " +
             min_name + " or newer";
    }
    return f;
  }
  std::string detail = join_errors(errs);
  if (detail.empty()) {
    detail = ssl_error == SSL_ERROR_SYSCALL ? "connection closed during the handshake"
                                            : "OpenSSL error " + std::to_string(ssl_error);
  }
  msg += detail;
  if (!server_ && (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_PACKET_LENGTH_TOO_LONG ||
                   reason == SSL_R_HTTP_REQUEST)) {
    f.cause = TlsFailureCause::kNotTls;
    f.hint =
        "the server does not speak TLS here: implicit TLS is port 465; for port 587 or 25 "
        "use STARTTLS";
  } else if (!server_ && reason == SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE) {
    f.cause = TlsFailureCause::kNoCommonCipher;
    f.hint = "no cipher or key exchange in common with the server";
  }
  return f;
}

}  // namespace sb
