// TlsEngine: OpenSSL client/server over in-memory buffers (no sockets), on a shared TlsContext.
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "base/outbox.h"
#include "base/result.h"
#include "loop/tls_context.h"

namespace sb {

// What a finished handshake negotiated; for `smtpblast check`, logs and tests.
struct TlsInfo {
  std::string protocol;      // "TLSv1.3"
  std::string cipher;        // "TLS_AES_256_GCM_SHA384"
  std::string peer_subject;  // "CN=localhost" (one line, RFC 2253), empty without a certificate
  std::string peer_issuer;
  bool verify_enabled = false;  // false: --tls-verify no, the result below was not enforced
  long verify_code = 0;         // X509_V_OK or X509_V_ERR_*, as OpenSSL computed it
  std::string verify_result;    // "ok", or OpenSSL's text, e.g. "certificate has expired"
  bool resumed = false;
};

// One TLS connection, client or server side. The caller moves bytes: what arrives from the
// socket goes to on_cipher_in, whatever lands in `cipher_out` goes to the socket. The engine
// sees only the bytes it is given, so plaintext read before STARTTLS never reaches it.
// Not thread-safe; one engine lives on one worker thread.
class TlsEngine {
 public:
  // `host` overrides the context's sni_host (direct MX delivery shares one context).
  static Result<std::unique_ptr<TlsEngine>> create_client(std::shared_ptr<TlsContext> ctx,
                                                          std::string_view host = {});
  static Result<std::unique_ptr<TlsEngine>> create_server(std::shared_ptr<TlsContext> ctx);
  ~TlsEngine();
  TlsEngine(const TlsEngine&) = delete;
  TlsEngine& operator=(const TlsEngine&) = delete;

  // Client: appends the ClientHello. Server: nothing to send; it waits for the hello.
  // Fails only when OpenSSL cannot build a hello (for example no usable cipher).
  Status start_handshake(std::string& cipher_out);
  // Ciphertext from the socket: decrypted application bytes are appended to `plain_out`,
  // handshake records, alerts and key-update replies to `cipher_out` (send them even when
  // an error is returned: they carry the alert that tells the peer why).
  Status on_cipher_in(std::string_view in, std::string& plain_out, std::string& cipher_out);
  // Encrypts application bytes into `cipher_out`; before the handshake is done they are
  // queued and go out with the handshake's last flight.
  Status write_plain(std::string_view data, std::string& cipher_out);
  // Same, for an Outbox: small slices are coalesced into full records rather than one record
  // (and one AEAD call) per SMTP command.
  Status write_plain(const Outbox& data, std::string& cipher_out);
  // Sends close_notify (once; nothing before the handshake is done).
  void shutdown(std::string& cipher_out);

  bool handshake_done() const { return handshake_done_; }
  bool failed() const { return failed_; }
  // The peer sent close_notify; nothing more will be decrypted.
  bool peer_closed() const { return peer_closed_; }
  const std::string& host() const { return host_; }
  // Meaningful after handshake_done(); the verify fields also after a verify failure.
  TlsInfo info() const;
  // Why the engine failed, typed (meaningful once failed()).
  const TlsFailure& failure() const { return failure_; }

 private:
  friend class TlsContext;
  TlsEngine(std::shared_ptr<TlsContext> ctx, SSL* ssl, std::string host, bool server);
  static BIO_METHOD* bio_method();
  Status drive(std::string& plain_out);
  Status write_chunk(const char* p, size_t n);
  // Records the failure; the error's message is its described form (describe_failure).
  Status fail(TlsFailure failure);
  Status fail_from_ssl(int ssl_error);
  TlsFailure handshake_failure(int ssl_error);
  static int bio_write(BIO* b, const char* data, int len);
  static int bio_read(BIO* b, char* data, int len);
  static long bio_ctrl(BIO* b, int cmd, long num, void* ptr);
  static int verify_cb(int preverify_ok, X509_STORE_CTX* store);
  static void msg_cb(int write_p, int version, int content_type, const void* buf, size_t len,
                     SSL* ssl, void* arg);

  std::shared_ptr<TlsContext> ctx_;
  SSL* ssl_;
  std::string host_;
  bool server_;
  bool started_ = false;
  bool got_input_ = false;  // a byte came from the peer
  bool handshake_done_ = false;
  bool failed_ = false;
  bool peer_closed_ = false;
  bool shutdown_sent_ = false;
  const SSL_SESSION* offered_session_ = nullptr;  // the cache entry offered (a copy of it went
                                                  // out); identity only, to drop it on failure
  std::string error_;                             // the first fatal error, repeated on later calls
  TlsFailure failure_;
  // The custom BIO reads from in_ and appends to out_: no intermediate buffer, no copy.
  std::string_view in_;
  std::string* out_ = nullptr;
  std::string queued_plain_;          // written before the handshake finished
  std::string stage_;                 // coalesces small Outbox slices into records
  std::unique_ptr<char[]> read_buf_;  // one record of plaintext, allocated at first read
  // Facts recorded during the handshake for the error message.
  int server_hello_version_ = 0;
  int verify_error_ = 0;
  int verify_depth_ = -1;
  std::string verify_subject_;
  std::string verify_issuer_;
  std::string verify_not_after_;
  std::string verify_not_before_;
  std::string leaf_names_;  // the names the server certificate lists (SAN DNS/IP, else CN)
};

}  // namespace sb
