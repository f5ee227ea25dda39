// TlsContext: one SSL_CTX per relay or listener, shared by every worker, with its session cache.
#include "loop/tls_context.h"

#include <openssl/err.h>

#include "loop/tls_engine.h"
#include "loop/tls_text.h"

namespace sb {

using tls::config_error;
using tls::version_name;

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

}  // namespace sb
