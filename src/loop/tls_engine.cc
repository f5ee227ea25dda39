// TlsEngine and TlsContext: OpenSSL driven through a custom BIO over the caller's buffers.
#include "loop/tls_engine.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <vector>

namespace sb {
namespace {

// The largest plaintext one TLS record carries; writes are cut and coalesced to this size.
constexpr size_t kMaxRecordPlain = SSL3_RT_MAX_PLAIN_LENGTH;
// SSL_read fills at most one record per call; asking for a record's worth avoids short reads.
constexpr size_t kReadChunk = SSL3_RT_MAX_PLAIN_LENGTH;
// Certificate text is chosen by the server: cap what we quote back.
constexpr size_t kMaxQuoted = 200;

std::string version_name(int v) {
  switch (v) {
    case SSL3_VERSION: return "SSL 3.0";
    case TLS1_VERSION: return "TLS 1.0";
    case TLS1_1_VERSION: return "TLS 1.1";
    case TLS1_2_VERSION: return "TLS 1.2";
    case TLS1_3_VERSION: return "TLS 1.3";
    default: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "version 0x%04x", v);
      return buf;
    }
  }
}

// Untrusted bytes (names from the peer's certificate) made safe for a log or terminal.
std::string printable(std::string_view s) {
  std::string out;
  out.reserve(std::min(s.size(), kMaxQuoted));
  for (char c : s) {
    if (out.size() >= kMaxQuoted) {
      out += "...";
      break;
    }
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  return out;
}

std::string name_text(const X509_NAME* name) {
  if (name == nullptr) return {};
  BIO* mem = BIO_new(BIO_s_mem());
  if (mem == nullptr) return {};
  // RFC 2253 flags escape control and non-ASCII bytes.
  X509_NAME_print_ex(mem, name, 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long n = BIO_get_mem_data(mem, &data);
  std::string s = n > 0 ? printable(std::string_view(data, static_cast<size_t>(n))) : "";
  BIO_free(mem);
  return s;
}

std::string time_text(const ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return {};
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

// The names a certificate is valid for: its DNS and IP SANs, else its CN.
std::string cert_names(X509* cert) {
  std::string out;
  auto add = [&out](std::string_view s) {
    if (!out.empty()) out += ", ";
    out += printable(s);
  };
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans) && out.size() < kMaxQuoted; ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
      if (gn->type == GEN_DNS) {
        add(std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(gn->d.dNSName)),
                             static_cast<size_t>(ASN1_STRING_length(gn->d.dNSName))));
      } else if (gn->type == GEN_IPADD) {
        int len = ASN1_STRING_length(gn->d.iPAddress);
        const unsigned char* p = ASN1_STRING_get0_data(gn->d.iPAddress);
        char buf[INET6_ADDRSTRLEN] = {};
        if (len == 4 || len == 16) {
          inet_ntop(len == 4 ? AF_INET : AF_INET6, p, buf, sizeof buf);
          add(buf);
        }
      }
    }
    GENERAL_NAMES_free(sans);
  }
  if (out.empty()) {
    char cn[256] = {};
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn) > 0) {
      add(cn);
    }
  }
  return out;
}

bool is_ip_literal(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

struct QueuedError {
  unsigned long code;
  std::string text;
};

// Drains this thread's OpenSSL error queue, so no error leaks into the next connection.
std::vector<QueuedError> drain_errors() {
  std::vector<QueuedError> out;
  const char* data = nullptr;
  int flags = 0;
  unsigned long code;
  while ((code = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) != 0) {
    const char* reason = ERR_reason_error_string(code);
    std::string text = reason ? reason : "error " + std::to_string(ERR_GET_REASON(code));
    if ((flags & ERR_TXT_STRING) && data != nullptr && *data != '\0') {
      text += " (" + printable(data) + ")";
    }
    out.push_back(QueuedError{code, std::move(text)});
  }
  ERR_clear_error();
  return out;
}

std::string join_errors(const std::vector<QueuedError>& errs) {
  std::string s;
  for (const QueuedError& e : errs) {
    if (s.find(e.text) != std::string::npos) continue;
    if (!s.empty()) s += ": ";
    s += e.text;
  }
  return s;
}

Error config_error(std::string msg) {
  std::string detail = join_errors(drain_errors());
  if (!detail.empty()) msg += ": " + detail;
  return make_error(ErrDomain::kConfig, std::move(msg));
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
// TlsContext

TlsContext::TlsContext(SSL_CTX* ctx, bool server, TlsClientConfig cfg)
    : ctx_(ctx), server_(server), cfg_(std::move(cfg)) {
  SSL_CTX_set_app_data(ctx_, this);
}

TlsContext::~TlsContext() {
  forget_sessions();
  SSL_CTX_free(ctx_);
}

Result<std::shared_ptr<TlsContext>> TlsContext::create_client(const TlsClientConfig& cfg) {
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return config_error("cannot create a TLS client context");
  std::shared_ptr<TlsContext> self(new TlsContext(ctx, false, cfg));
  if (SSL_CTX_set_min_proto_version(ctx, cfg.min_version) != 1) {
    return config_error("unsupported minimum TLS version " + version_name(cfg.min_version));
  }
  // Renegotiation would make SSL_write wait for the peer, which the engine does not model;
  // SMTP servers have no reason to renegotiate.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  if (!cfg.cipher_list.empty() && SSL_CTX_set_cipher_list(ctx, cfg.cipher_list.c_str()) != 1) {
    return config_error("no usable cipher in the TLS cipher list '" + cfg.cipher_list + "'");
  }
  if (cfg.verify && SSL_CTX_set_default_verify_paths(ctx) != 1) {
    return config_error("cannot load the system CA store");
  }
  // --ca-file is loaded even with --tls-verify no, so info() still reports what it would say.
  if (!cfg.ca_file.empty() &&
      SSL_CTX_load_verify_locations(ctx, cfg.ca_file.c_str(), nullptr) != 1) {
    return config_error("cannot load CA certificates from --ca-file " + cfg.ca_file);
  }
  SSL_CTX_set_verify(ctx, cfg.verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, &TlsEngine::verify_cb);
  if (cfg.allow_resumption) {
    // Sessions live in our per-host map, not OpenSSL's client cache, which has no lookup by
    // host; TLS 1.3 tickets arrive after the handshake, so only the callback sees them all.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, &TlsContext::on_new_session);
  } else {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  }
  return self;
}

Result<std::shared_ptr<TlsContext>> TlsContext::create_server(const std::string& cert_file,
                                                              const std::string& key_file,
                                                              const TlsServerOptions& opts) {
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) return config_error("cannot create a TLS server context");
  std::shared_ptr<TlsContext> self(new TlsContext(ctx, true, TlsClientConfig{}));
  if (SSL_CTX_set_min_proto_version(ctx, opts.min_version) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, opts.max_version) != 1) {
    return config_error("unsupported TLS version range");
  }
  SSL_CTX_set_options(
      ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (!opts.cipher_list.empty() && SSL_CTX_set_cipher_list(ctx, opts.cipher_list.c_str()) != 1) {
    return config_error("no usable cipher in the TLS cipher list '" + opts.cipher_list + "'");
  }
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1) {
    return config_error("cannot load the TLS certificate " + cert_file);
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return config_error("cannot load the TLS private key " + key_file);
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return config_error("the TLS private key " + key_file + " does not match " + cert_file);
  }
  static const unsigned char kSidCtx[] = "smtpblast";
  SSL_CTX_set_session_id_context(ctx, kSidCtx, sizeof kSidCtx - 1);
  if (!opts.tickets) SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  return self;
}

int TlsContext::on_new_session(SSL* ssl, SSL_SESSION* sess) {
  auto* engine = static_cast<TlsEngine*>(SSL_get_app_data(ssl));
  if (engine == nullptr || engine->server_ || !SSL_SESSION_is_resumable(sess)) return 0;
  engine->ctx_->store_session(engine->host_, sess, engine);
  return 1;  // we keep the reference
}

SSL_SESSION* TlsContext::take_session_ref(const std::string& host,
                                          const SSL_SESSION** cached) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(host);
  if (it == sessions_.end()) return nullptr;
  auto& list = it->second;
  // OpenSSL marks a session unresumable after a fatal error on a connection that used it.
  for (auto li = list.begin(); li != list.end();) {
    if (SSL_SESSION_is_resumable(li->sess)) {
      ++li;
    } else {
      SSL_SESSION_free(li->sess);
      li = list.erase(li);
    }
  }
  if (list.empty()) return nullptr;
  Stored* pick = &list.back();
  for (auto ri = list.rbegin(); ri != list.rend(); ++ri) {
    if (!ri->used) {
      pick = &*ri;
      break;
    }
  }
  pick->used = true;
  // A copy: OpenSSL marks a TLS 1.3 session it resumed with as not resumable (single use). A
  // server that sends no new ticket after a resumption (Postfix) would then leave nothing to
  // offer, and every other connection would pay a full handshake. The cached original stays
  // resumable and is offered again (RFC 8446 allows ticket reuse; the server decides).
  *cached = pick->sess;
  return SSL_SESSION_dup(pick->sess);
}

void TlsContext::store_session(const std::string& host, SSL_SESSION* sess, const void* origin) {
  SSL_SESSION* dropped = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto& list = sessions_[host];
    // A TLS 1.2 session replaces the older ones (one reusable session is enough).
    if (SSL_SESSION_get_protocol_version(sess) < TLS1_3_VERSION) {
      for (const Stored& old : list) SSL_SESSION_free(old.sess);
      list.clear();
    }
    list.push_back(Stored{sess, origin, false});
    if (list.size() > kSessionsPerHost) {
      dropped = list.front().sess;
      list.erase(list.begin());
    }
  }
  if (dropped != nullptr) SSL_SESSION_free(dropped);
}

void TlsContext::forget_origin(const std::string& host, const void* origin) {
  std::vector<SSL_SESSION*> old;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sessions_.find(host);
    if (it == sessions_.end()) return;
    auto& list = it->second;
    for (auto li = list.begin(); li != list.end();) {
      if (li->origin == origin) {
        old.push_back(li->sess);
        li = list.erase(li);
      } else {
        ++li;
      }
    }
  }
  for (SSL_SESSION* sess : old) SSL_SESSION_free(sess);
}

void TlsContext::forget_session(const std::string& host, const SSL_SESSION* if_this) {
  SSL_SESSION* old = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sessions_.find(host);
    if (it == sessions_.end()) return;
    auto& list = it->second;
    for (auto li = list.begin(); li != list.end(); ++li) {
      if (li->sess == if_this) {
        old = li->sess;
        list.erase(li);
        break;
      }
    }
  }
  if (old != nullptr) SSL_SESSION_free(old);
}

void TlsContext::forget_sessions() {
  std::map<std::string, std::vector<Stored>, std::less<>> old;
  {
    std::lock_guard<std::mutex> lock(mu_);
    old.swap(sessions_);
  }
  for (auto& [host, list] : old) {
    for (const Stored& st : list) SSL_SESSION_free(st.sess);
  }
}

bool TlsContext::has_session(const std::string& host) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(host);
  return it != sessions_.end() && !it->second.empty();
}

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
    return fail("the server sent a plaintext SMTP greeting: use --tls starttls (it does not "
                "speak TLS at once)");
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

Status TlsEngine::fail(std::string message) {
  failed_ = true;
  error_ = std::move(message);
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
    return fail("TLS connection with " + printable(host_) + " failed: " + detail);
  }
  return fail(handshake_error_text(ssl_error));
}

std::string TlsEngine::handshake_error_text(int ssl_error) {
  std::vector<QueuedError> errs = drain_errors();
  int reason = 0;
  for (const QueuedError& e : errs) {
    if (ERR_GET_LIB(e.code) == ERR_LIB_SSL) {
      reason = ERR_GET_REASON(e.code);
      break;
    }
  }
  std::string msg = "TLS handshake with " + printable(host_) + " failed: ";
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
        msg += "hostname mismatch: the certificate is for " +
               (leaf_names_.empty() ? std::string("other names") : leaf_names_) + ", not " +
               printable(host_) +
               " (connect with a name the certificate lists, or --tls-verify no)";
        break;
      case X509_V_ERR_CERT_HAS_EXPIRED:
        msg += "certificate has expired: " + what + " expired on " + verify_not_after_ +
               " (the server's operator must renew it; or --tls-verify no)";
        break;
      case X509_V_ERR_CERT_NOT_YET_VALID:
        msg += "certificate is not yet valid: " + what + " is valid from " + verify_not_before_ +
               " (check this machine's clock; or --tls-verify no)";
        break;
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
      case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
      case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
      case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
      case X509_V_ERR_CERT_UNTRUSTED:
        msg += std::string(X509_verify_cert_error_string(code)) + ": " + what + " (" +
               verify_subject_ + ") is issued by " + verify_issuer_ +
               ", which is not a trusted CA here (give --ca-file, or --tls-verify no)";
        break;
      default:
        msg += std::string(X509_verify_cert_error_string(code)) + " (" + what +
               (verify_subject_.empty() ? "" : ", " + verify_subject_) +
               "; give --ca-file, or --tls-verify no)";
        break;
    }
    return msg;
  }
  if (reason == SSL_R_UNSUPPORTED_PROTOCOL || reason == SSL_R_TLSV1_ALERT_PROTOCOL_VERSION ||
      reason == SSL_R_WRONG_SSL_VERSION || reason == SSL_R_NO_PROTOCOLS_AVAILABLE ||
      reason == SSL_R_VERSION_TOO_LOW) {
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
    return msg;
  }
  std::string detail = join_errors(errs);
  if (detail.empty()) {
    detail = ssl_error == SSL_ERROR_SYSCALL ? "connection closed during the handshake"
                                            : "OpenSSL error " + std::to_string(ssl_error);
  }
  msg += detail;
  if (!server_ && (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_PACKET_LENGTH_TOO_LONG ||
                   reason == SSL_R_HTTP_REQUEST)) {
    msg +=
        " (the server does not speak TLS here: implicit TLS is port 465; for port 587 "
        "or 25 use --tls starttls)";
  } else if (!server_ && reason == SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE) {
    msg += " (no cipher or key exchange in common with the server)";
  }
  return msg;
}

}  // namespace sb
