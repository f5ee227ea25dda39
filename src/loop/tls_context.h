// TlsContext: one SSL_CTX per relay or listener, shared by every worker, with its session cache.
#pragma once

#include <openssl/ssl.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/result.h"
#include "loop/tls_failure.h"

namespace sb {

struct TlsClientConfig {
  bool verify = true;    // --tls-verify (default yes): system CA store + ca_file, host name
  std::string ca_file;   // --ca-file: extra trusted CA(s), PEM; added to the system store
  std::string sni_host;  // default SNI and the name checked; an IP literal is checked as an IP
  int min_version = TLS1_2_VERSION;
  bool allow_resumption = true;
  std::string cipher_list;  // TLS 1.2 and older only; empty = OpenSSL's default
  // How a failed connection is worded for the user (the CLI adds flag advice); null:
  // tls_failure_text.
  TlsFailureDescriber describe_failure = nullptr;
};

struct TlsServerOptions {
  int min_version = TLS1_2_VERSION;
  int max_version = 0;      // 0 = the newest OpenSSL knows
  std::string cipher_list;  // e.g. "DEFAULT:@SECLEVEL=0" to let a test server speak TLS 1.0
  bool tickets = true;      // session tickets (resumption) for TLS 1.2 and 1.3
};

// One per relay (client) or listener (server), shared by every worker thread: owns the SSL_CTX
// (its CA store is loaded once, not per connection) and, for clients, the latest resumable
// session per host, so the pool's short-lived connections resume instead of re-verifying.
class TlsContext {
 public:
  static Result<std::shared_ptr<TlsContext>> create_client(const TlsClientConfig& cfg);
  static Result<std::shared_ptr<TlsContext>> create_server(const std::string& cert_file,
                                                           const std::string& key_file,
                                                           const TlsServerOptions& opts = {});
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  bool is_server() const { return server_; }
  const TlsClientConfig& client_config() const { return cfg_; }
  SSL_CTX* native() const { return ctx_; }
  // Drops every cached session (for example after the relay rotated its keys).
  void forget_sessions();
  bool has_session(const std::string& host) const;

 private:
  friend class TlsEngine;
  TlsContext(SSL_CTX* ctx, bool server, TlsClientConfig cfg);
  static int on_new_session(SSL* ssl, SSL_SESSION* sess);
  // Returns a new reference (caller frees) or null.
  // `cached` receives the cache entry the copy was made from (to forget it on failure).
  SSL_SESSION* take_session_ref(const std::string& host, const SSL_SESSION** cached) const;
  // Takes ownership; `origin` identifies the connection the session arrived on.
  void store_session(const std::string& host, SSL_SESSION* sess, const void* origin);
  void forget_session(const std::string& host, const SSL_SESSION* if_this);
  // A connection that ended in a fatal alert: none of the sessions it brought is resumed.
  void forget_origin(const std::string& host, const void* origin);

  SSL_CTX* ctx_;
  bool server_;
  TlsClientConfig cfg_;
  mutable std::mutex mu_;
  // Per host, the newest sessions last. A TLS 1.3 ticket is offered unused first (some
  // servers, OpenSSL's own among them, accept each ticket once); when all have been used the
  // newest is offered again (others, Postfix for one, accept reuse; a refusal only costs a full
  // handshake). A TLS 1.2 session is reused. Guarded by mu_.
  struct Stored {
    SSL_SESSION* sess;
    const void* origin;
    bool used = false;
  };
  mutable std::map<std::string, std::vector<Stored>, std::less<>> sessions_;
  static constexpr size_t kSessionsPerHost = 32;
};

}  // namespace sb
