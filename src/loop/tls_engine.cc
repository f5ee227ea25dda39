// TlsEngine: OpenSSL driven through a custom BIO over the caller's buffers.
#include "loop/tls_engine.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "loop/tls_text.h"

namespace sb {

using tls::drain_errors;
using tls::join_errors;
using tls::printable;

namespace {

// The largest plaintext one TLS record carries; writes are cut and coalesced to this size.
constexpr size_t kMaxRecordPlain = SSL3_RT_MAX_PLAIN_LENGTH;
// SSL_read fills at most one record per call; asking for a record's worth avoids short reads.
constexpr size_t kReadChunk = SSL3_RT_MAX_PLAIN_LENGTH;

bool is_ip_literal(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// Sets the engine's output target for the duration of one call into OpenSSL.
class OutTarget {
 public:
  OutTarget(std::string** slot, std::string& out) : slot_(slot) { *slot_ = &out; }
  ~OutTarget() { *slot_ = nullptr; }
  OutTarget(const OutTarget&) = delete;
  OutTarget& operator=(const OutTarget&) = delete;

 private:
  std::string** slot_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// The BIO: reads from the engine's current input view, appends to its current output string.

BIO_METHOD* TlsEngine::bio_method() {
  static BIO_METHOD* const kMethod = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "smtpblast_tls");
    if (m == nullptr) std::abort();
    BIO_meth_set_write(m, &TlsEngine::bio_write);
    BIO_meth_set_read(m, &TlsEngine::bio_read);
    BIO_meth_set_ctrl(m, &TlsEngine::bio_ctrl);
    return m;
  }();
  return kMethod;
}

int TlsEngine::bio_write(BIO* b, const char* data, int len) {
  auto* e = static_cast<TlsEngine*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  if (e == nullptr || e->out_ == nullptr) {
    // Every call into OpenSSL sets an output target; reaching here is a bug.
    BIO_set_retry_write(b);
    return -1;
  }
  e->out_->append(data, static_cast<size_t>(len));
  return len;
}

int TlsEngine::bio_read(BIO* b, char* data, int len) {
  auto* e = static_cast<TlsEngine*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  if (e == nullptr || e->in_.empty()) {
    BIO_set_retry_read(b);  // "no more yet", not end of stream
    return -1;
  }
  size_t n = std::min(e->in_.size(), static_cast<size_t>(len));
  std::memcpy(data, e->in_.data(), n);
  e->in_.remove_prefix(n);
  return static_cast<int>(n);
}

long TlsEngine::bio_ctrl(BIO* b, int cmd, long num, void* /*ptr*/) {
  auto* e = static_cast<TlsEngine*>(BIO_get_data(b));
  switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;
    case BIO_CTRL_PENDING: return e ? static_cast<long>(e->in_.size()) : 0;
    case BIO_CTRL_WPENDING: return 0;
    case BIO_CTRL_GET_CLOSE: return BIO_get_shutdown(b);
    case BIO_CTRL_SET_CLOSE: BIO_set_shutdown(b, static_cast<int>(num)); return 1;
    default: return 0;
  }
}

// ---------------------------------------------------------------------------------------------
// TlsEngine

TlsEngine::TlsEngine(std::shared_ptr<TlsContext> ctx, SSL* ssl, std::string host, bool server)
    : ctx_(std::move(ctx)), ssl_(ssl), host_(std::move(host)), server_(server) {
  SSL_set_app_data(ssl_, this);
  BIO* bio = BIO_new(bio_method());
  if (bio == nullptr) std::abort();
  BIO_set_data(bio, this);
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl_, bio, bio);  // one reference, used for both directions
}

TlsEngine::~TlsEngine() {
  // SSL_free marks the session unresumable when no close_notify was sent. SMTP servers close
  // after "221" without one, and a pool connection ends at its message cap; neither says
  // anything against the session, so keep it. Fatal TLS errors still invalidate it (OpenSSL
  // does that when the alert is sent, and fail() drops a session whose handshake failed).
  if (handshake_done_ && !failed_) {
    SSL_set_shutdown(ssl_, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  }
  SSL_free(ssl_);
}

Result<std::unique_ptr<TlsEngine>> TlsEngine::create_client(std::shared_ptr<TlsContext> ctx,
                                                            std::string_view host_in) {
  if (!ctx || ctx->is_server()) return make_error(ErrDomain::kSsl, "not a TLS client context");
  std::string host(host_in.empty() ? std::string_view(ctx->cfg_.sni_host) : host_in);
  if (!host.empty() && host.back() == '.') host.pop_back();
  if (host.empty() && ctx->cfg_.verify) {
    return make_error(ErrDomain::kConfig,
                      "TLS certificate verification needs the server's host name "
                      "(or --tls-verify no)");
  }
  ERR_clear_error();
  SSL* ssl = SSL_new(ctx->ctx_);
  if (ssl == nullptr) {
    return make_error(ErrDomain::kSsl,
                      "cannot create a TLS connection: " + join_errors(drain_errors()));
  }
  std::unique_ptr<TlsEngine> e(new TlsEngine(ctx, ssl, host, false));
  SSL_set_connect_state(ssl);
  // The name is checked even with --tls-verify no, so info() can say what would have failed.
  if (!host.empty()) {
    bool ok;
    if (is_ip_literal(host)) {
      // RFC 6066 forbids IP literals in SNI; the certificate must list the IP instead.
      ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str()) == 1;
    } else {
      ok =
          SSL_set_tlsext_host_name(ssl, host.c_str()) == 1 && SSL_set1_host(ssl, host.c_str()) == 1;
      SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    }
    if (!ok) {
      return make_error(ErrDomain::kConfig,
                        "cannot use '" + printable(host) +
                            "' as a TLS host name: " + join_errors(drain_errors()));
    }
  }
  SSL_set_msg_callback(ssl, &TlsEngine::msg_cb);
  if (ctx->cfg_.allow_resumption) {
    const SSL_SESSION* cached = nullptr;
    if (SSL_SESSION* sess = ctx->take_session_ref(e->host_, &cached)) {
      if (SSL_set_session(ssl, sess) == 1) e->offered_session_ = cached;
      SSL_SESSION_free(sess);  // the SSL holds its own reference
      ERR_clear_error();
    }
  }
  return e;
}

Result<std::unique_ptr<TlsEngine>> TlsEngine::create_server(std::shared_ptr<TlsContext> ctx) {
  if (!ctx || !ctx->is_server()) return make_error(ErrDomain::kSsl, "not a TLS server context");
  ERR_clear_error();
  SSL* ssl = SSL_new(ctx->ctx_);
  if (ssl == nullptr) {
    return make_error(ErrDomain::kSsl,
                      "cannot create a TLS connection: " + join_errors(drain_errors()));
  }
  std::unique_ptr<TlsEngine> e(new TlsEngine(std::move(ctx), ssl, "client", true));
  SSL_set_accept_state(ssl);
  return e;
}

Status TlsEngine::start_handshake(std::string& cipher_out) {
  if (failed_) return make_error(ErrDomain::kSsl, error_);
  if (started_) return {};
  started_ = true;
  ERR_clear_error();
  OutTarget target(&out_, cipher_out);
  std::string no_plain;
  return drive(no_plain);
}

Status TlsEngine::on_cipher_in(std::string_view in, std::string& plain_out,
                               std::string& cipher_out) {
  if (failed_) return make_error(ErrDomain::kSsl, error_);
  if (peer_closed_) return {};  // bytes after close_notify are not ours to interpret
  // A plaintext server answers our ClientHello with its greeting: say that, not OpenSSL's
  // "wrong version number".
  if (!server_ && !got_input_ && !handshake_done_ && in.size() >= 4 && in.substr(0, 3) == "220" &&
      (in[3] == ' ' || in[3] == '-')) {
    return fail({TlsFailureCause::kPlaintextGreeting, "the server sent a plaintext SMTP greeting",
                 "it does not speak TLS at once"});
  }
  got_input_ = got_input_ || !in.empty();
  started_ = true;
  ERR_clear_error();
  OutTarget target(&out_, cipher_out);
  in_ = in;
  Status s = drive(plain_out);
  in_ = {};
  return s;
}

Status TlsEngine::drive(std::string& plain_out) {
  if (!handshake_done_) {
    int r = SSL_do_handshake(ssl_);
    if (r != 1) {
      int err = SSL_get_error(ssl_, r);
      if (err == SSL_ERROR_WANT_READ) return {};
      return fail_from_ssl(err);
    }
    handshake_done_ = true;
    SSL_set_msg_callback(ssl_, nullptr);
    if (!queued_plain_.empty()) {
      Status s = write_chunk(queued_plain_.data(), queued_plain_.size());
      std::string().swap(queued_plain_);
      if (!s.ok()) return s;
    }
  }
  // Drain every complete record; TLS 1.3 tickets and key updates are handled in here too.
  // Decrypting into a buffer of our own and appending the n bytes costs one copy of what
  // arrived; growing plain_out by a record first would zero 16 KB for every short reply.
  if (!read_buf_) read_buf_ = std::make_unique<char[]>(kReadChunk);
  for (;;) {
    size_t n = 0;
    int r = SSL_read_ex(ssl_, read_buf_.get(), kReadChunk, &n);
    if (r == 1) {
      plain_out.append(read_buf_.get(), n);
      continue;
    }
    int err = SSL_get_error(ssl_, r);
    if (err == SSL_ERROR_WANT_READ) return {};
    if (err == SSL_ERROR_ZERO_RETURN) {
      peer_closed_ = true;
      return {};
    }
    return fail_from_ssl(err);
  }
}

Status TlsEngine::write_chunk(const char* p, size_t n) {
  if (n == 0) return {};
  size_t written = 0;
  // Our BIO never refuses a write, so SSL_write consumes everything or fails for good.
  if (SSL_write_ex(ssl_, p, n, &written) != 1 || written != n) {
    return fail_from_ssl(SSL_get_error(ssl_, 0));
  }
  return {};
}

Status TlsEngine::write_plain(std::string_view data, std::string& cipher_out) {
  if (failed_) return make_error(ErrDomain::kSsl, error_);
  if (shutdown_sent_) return make_error(ErrDomain::kSsl, "write after TLS shutdown");
  if (!handshake_done_) {
    queued_plain_.append(data);
    return {};
  }
  ERR_clear_error();
  OutTarget target(&out_, cipher_out);
  return write_chunk(data.data(), data.size());
}

Status TlsEngine::write_plain(const Outbox& data, std::string& cipher_out) {
  if (failed_) return make_error(ErrDomain::kSsl, error_);
  if (shutdown_sent_) return make_error(ErrDomain::kSsl, "write after TLS shutdown");
  if (!handshake_done_) {
    for (size_t i = 0; i < data.slice_count(); ++i) queued_plain_.append(data.slice(i));
    return {};
  }
  ERR_clear_error();
  OutTarget target(&out_, cipher_out);
  stage_.clear();
  for (size_t i = 0; i < data.slice_count(); ++i) {
    std::string_view s = data.slice(i);
    while (!s.empty()) {
      if (stage_.empty() && s.size() >= kMaxRecordPlain) {
        // Whole records straight from the caller's memory (message bodies): no copy.
        size_t n = s.size() - s.size() % kMaxRecordPlain;
        Status st = write_chunk(s.data(), n);
        if (!st.ok()) return st;
        s.remove_prefix(n);
        continue;
      }
      size_t take = std::min(kMaxRecordPlain - stage_.size(), s.size());
      stage_.append(s.substr(0, take));
      s.remove_prefix(take);
      if (stage_.size() == kMaxRecordPlain) {
        Status st = write_chunk(stage_.data(), stage_.size());
        stage_.clear();
        if (!st.ok()) return st;
      }
    }
  }
  Status st = write_chunk(stage_.data(), stage_.size());
  stage_.clear();
  return st;
}

void TlsEngine::shutdown(std::string& cipher_out) {
  if (!handshake_done_ || failed_ || shutdown_sent_) return;
  shutdown_sent_ = true;
  ERR_clear_error();
  OutTarget target(&out_, cipher_out);
  SSL_shutdown(ssl_);  // sends close_notify; we do not wait for the peer's
  ERR_clear_error();
}

Status TlsEngine::fail(TlsFailure failure) {
  failed_ = true;
  failure_ = std::move(failure);
  TlsFailureDescriber describe = ctx_->cfg_.describe_failure;
  error_ = describe != nullptr ? describe(failure_) : tls_failure_text(failure_);
  if (offered_session_ != nullptr) {
    // A session whose connection failed (in the handshake or after it) is not offered again
    // (OpenSSL marks only the copy this connection used).
    ctx_->forget_session(host_, offered_session_);
  }
  if (!server_) ctx_->forget_origin(host_, this);  // nor any this connection brought
  return make_error(ErrDomain::kSsl, error_);
}

Status TlsEngine::fail_from_ssl(int ssl_error) {
  if (handshake_done_) {
    std::string detail = join_errors(drain_errors());
    if (detail.empty()) detail = "OpenSSL error " + std::to_string(ssl_error);
    return fail({TlsFailureCause::kOther,
                 "TLS connection with " + printable(host_) + " failed: " + detail,
                 {}});
  }
  return fail(handshake_failure(ssl_error));
}

}  // namespace sb
