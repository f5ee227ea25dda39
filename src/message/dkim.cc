// DKIM signing: canonicalisation, header selection, body hash, signature field, key loading.
#include "message/dkim.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "base/text.h"

namespace sb {
namespace {

constexpr size_t kFoldWidth = 78;

// OpenSSL hands out digests, signatures and keys as unsigned bytes.
std::string_view bytes(const unsigned char* p, size_t n) {
  return {reinterpret_cast<const char*>(p), n};
}

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

// d=/s= values go into the header as they are; refuse anything that could add a tag or fold.
bool valid_dns_label_text(std::string_view s, bool allow_underscore) {
  if (s.empty() || s.size() > 253 || s.front() == '.' || s.back() == '.') return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || (allow_underscore && c == '_');
    if (!ok) return false;
  }
  return true;
}

Result<DkimCanon> parse_canon(const std::string& v, const char* what) {
  if (v == "relaxed") return DkimCanon::kRelaxed;
  if (v == "simple") return DkimCanon::kSimple;
  return make_error(ErrDomain::kConfig,
                    std::string("DKIM ") + what +
                        " canonicalization must be 'relaxed' or 'simple', not '" + v + "'");
}

const char* canon_name(DkimCanon c) { return c == DkimCanon::kRelaxed ? "relaxed" : "simple"; }

// Appends words to a header field, folding (CRLF HTAB) before a word that would pass the width.
struct Folder {
  std::string& out;
  size_t col;
  void word(std::string_view w, bool space) {
    size_t need = w.size() + (space ? 1 : 0);
    if (col + need > kFoldWidth && col > 1) {
      out += "\r\n\t";
      col = 1;
    } else if (space) {
      out += ' ';
      ++col;
    }
    out += w;
    col += w.size();
  }
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Canonicalisation

void DkimBodyCanonicalizer::reset() {
  crlf_pending_ = 0;
  cr_pending_ = false;
  wsp_pending_ = false;
  any_content_ = false;
}

void DkimBodyCanonicalizer::update(std::string_view in, std::string& out) {
  const bool relaxed = canon_ == DkimCanon::kRelaxed;
  size_t i = 0;
  while (i < in.size()) {
    char c = in[i];
    if (cr_pending_) {
      cr_pending_ = false;
      if (c == '\n') {
        ++crlf_pending_;
        wsp_pending_ = false;  // relaxed: white space at a line end goes
        ++i;
        continue;
      }
      // A bare CR is ordinary content; fall through to write it, then look at c again.
      for (; crlf_pending_ > 0; --crlf_pending_) out += "\r\n";
      if (wsp_pending_) out += ' ';
      wsp_pending_ = false;
      out += '\r';
      any_content_ = true;
      continue;
    }
    if (c == '\r') {
      cr_pending_ = true;
      ++i;
      continue;
    }
    if (relaxed && is_wsp(c)) {
      wsp_pending_ = true;
      ++i;
      continue;
    }
    for (; crlf_pending_ > 0; --crlf_pending_) out += "\r\n";
    if (wsp_pending_) out += ' ';
    wsp_pending_ = false;
    // Copy the run of ordinary bytes in one go.
    size_t j = i;
    while (j < in.size() && in[j] != '\r' && !(relaxed && is_wsp(in[j]))) ++j;
    out.append(in.data() + i, j - i);
    any_content_ = true;
    i = j;
  }
}

void DkimBodyCanonicalizer::finish(std::string& out) {
  if (cr_pending_) {  // a bare CR at the very end is content
    for (; crlf_pending_ > 0; --crlf_pending_) out += "\r\n";
    if (wsp_pending_) out += ' ';
    out += '\r';
    any_content_ = true;
  }
  // Content ends with exactly one CRLF (the last line's own, or one added, RFC 6376 §3.4.3/4);
  // an empty body is CRLF for simple and nothing for relaxed.
  if (any_content_ || canon_ == DkimCanon::kSimple) out += "\r\n";
  reset();
}

std::string dkim_canonical_body(DkimCanon c, std::string_view body) {
  DkimBodyCanonicalizer m(c);
  std::string out;
  m.update(body, out);
  m.finish(out);
  return out;
}

void dkim_canonical_header(DkimCanon c, std::string_view field, bool with_crlf, std::string& out) {
  if (c == DkimCanon::kSimple) {
    out += field;
    if (with_crlf && !(field.size() >= 2 && field.substr(field.size() - 2) == "\r\n")) {
      out += "\r\n";
    } else if (!with_crlf && field.size() >= 2 && field.substr(field.size() - 2) == "\r\n") {
      out.resize(out.size() - 2);
    }
    return;
  }
  size_t colon = field.find(':');
  std::string_view name = field.substr(0, colon);
  while (!name.empty() && is_wsp(name.back())) name.remove_suffix(1);
  for (char ch : name) out += lower_ascii(ch);
  if (colon == std::string_view::npos) {
    if (with_crlf) out += "\r\n";
    return;
  }
  out += ':';
  // Unfold (drop CR/LF), collapse WSP runs to one SP, drop WSP at both ends of the value.
  bool wsp = false, started = false;
  for (char ch : field.substr(colon + 1)) {
    if (ch == '\r' || ch == '\n') continue;
    if (is_wsp(ch)) {
      wsp = true;
      continue;
    }
    if (wsp && started) out += ' ';
    wsp = false;
    started = true;
    out += ch;
  }
  if (with_crlf) out += "\r\n";
}

// ---------------------------------------------------------------------------------------------
// Body hash

DkimBodyHasher::DkimBodyHasher(DkimCanon c) : canon_(c), md_(EVP_MD_CTX_new()) {
  buf_.reserve(16 * 1024 + 64);
  reset();
}

DkimBodyHasher::~DkimBodyHasher() { EVP_MD_CTX_free(md_); }

void DkimBodyHasher::reset() {
  canon_.reset();
  buf_.clear();
  if (md_ == nullptr || EVP_DigestInit_ex(md_, EVP_sha256(), nullptr) != 1) std::abort();
}

void DkimBodyHasher::update(std::string_view body_bytes) {
  constexpr size_t kSlice = 16 * 1024;
  while (!body_bytes.empty()) {
    std::string_view s = body_bytes.substr(0, kSlice);
    body_bytes.remove_prefix(s.size());
    canon_.update(s, buf_);
    EVP_DigestUpdate(md_, buf_.data(), buf_.size());
    buf_.clear();
  }
}

std::string DkimBodyHasher::finish() {
  canon_.finish(buf_);
  EVP_DigestUpdate(md_, buf_.data(), buf_.size());
  buf_.clear();
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(md_, d, &n);
  return base64_encode(bytes(d, n));
}

// ---------------------------------------------------------------------------------------------
// Alignment

std::string alignment_warning(std::string_view from, std::string_view dkim_domain) {
  size_t at = from.rfind('@');
  if (at != std::string_view::npos) from = from.substr(at + 1);
  while (!from.empty() && (from.back() == '>' || from.back() == '.' || is_wsp(from.back()))) {
    from.remove_suffix(1);
  }
  while (!dkim_domain.empty() && dkim_domain.back() == '.') dkim_domain.remove_suffix(1);
  std::string f = lower_ascii(from), d = lower_ascii(dkim_domain);
  if (!d.empty() &&
      (f == d || (f.size() > d.size() && f.compare(f.size() - d.size(), d.size(), d) == 0 &&
                  f[f.size() - d.size() - 1] == '.'))) {
    return {};
  }
  return "DKIM signing domain d=" + d + " is neither the From: domain " + f +
         " nor a parent of it, so the signature does not align for DMARC: receivers will not "
         "count it as DMARC authentication, and if " +
         f +
         " publishes p=quarantine or p=reject (and SPF does not align either) the mail goes to "
         "spam or is rejected. Sign with d=" +
         f + " or a parent domain of it.";
}

// ---------------------------------------------------------------------------------------------
// Signer

struct DkimSigner::Ctx {
  EVP_MD_CTX* hdr_md = nullptr;       // SHA-256 of the canonical header data
  EVP_MD_CTX* sign_md = nullptr;      // Ed25519: one-shot DigestSign over the 32-byte hash
  EVP_PKEY_CTX* sign_pkey = nullptr;  // RSA: PKCS#1 v1.5 over the hash, initialised once
  DkimBodyHasher body;
  std::string headers;  // the header block, copied (only it; the body is streamed)
  std::string canon;    // scratch for canonical header fields
  struct Field {
    size_t pos, len, name_len;
  };
  std::vector<Field> fields;
  std::string b64;

  explicit Ctx(DkimCanon body_canon) : body(body_canon) {}
  ~Ctx() {
    EVP_MD_CTX_free(hdr_md);
    EVP_MD_CTX_free(sign_md);
    EVP_PKEY_CTX_free(sign_pkey);
  }
  Ctx(const Ctx&) = delete;
  Ctx& operator=(const Ctx&) = delete;
};

const std::vector<std::string_view>& DkimSigner::signed_header_names() {
  static const std::vector<std::string_view> kNames = {"From",
                                                       "To",
                                                       "Subject",
                                                       "Date",
                                                       "Message-ID",
                                                       "MIME-Version",
                                                       "Content-Type",
                                                       "Content-Transfer-Encoding",
                                                       "List-Unsubscribe",
                                                       "List-Unsubscribe-Post",
                                                       "Reply-To",
                                                       "Cc",
                                                       "Feedback-ID"};
  return kNames;
}

Result<std::unique_ptr<DkimSigner>> DkimSigner::create(const DkimKeyConfig& cfg, Clock clock) {
  auto cfg_error = [&](std::string m) {
    return make_error(ErrDomain::kConfig, "DKIM key " + cfg.key_file + ": " + std::move(m));
  };
  if (!cfg.algorithm.empty() && cfg.algorithm != "rsa-sha256" &&
      cfg.algorithm != "ed25519-sha256") {
    return make_error(
        ErrDomain::kConfig,
        "DKIM algorithm must be rsa-sha256 or ed25519-sha256, not '" + cfg.algorithm + "'");
  }
  if (!valid_dns_label_text(cfg.domain, false)) {
    return make_error(ErrDomain::kConfig, "DKIM domain '" + cfg.domain + "' is not a domain name");
  }
  if (!valid_dns_label_text(cfg.selector, true)) {
    return make_error(ErrDomain::kConfig,
                      "DKIM selector '" + cfg.selector + "' is not a valid selector");
  }
  auto hc = parse_canon(cfg.header_canon, "header");
  if (!hc.ok()) return hc.error();
  auto bc = parse_canon(cfg.body_canon, "body");
  if (!bc.ok()) return bc.error();

  std::unique_ptr<DkimSigner> s(new DkimSigner());
  s->header_canon_ = *hc;
  s->body_canon_ = *bc;
  s->algorithm_ = cfg.algorithm;
  s->domain_ = lower_ascii(cfg.domain);
  s->selector_ = cfg.selector;
  s->key_file_ = cfg.key_file;
  s->clock_ = clock ? std::move(clock) : Clock([] { return int64_t(::time(nullptr)); });

  FILE* f = std::fopen(cfg.key_file.c_str(), "rb");
  if (f == nullptr) return cfg_error(std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fileno(f), &st) == 0 && (st.st_mode & (S_IRGRP | S_IROTH)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%03o", unsigned(st.st_mode & 0777));
    s->warnings_.push_back("DKIM key " + cfg.key_file + " is readable by group or others (mode " +
                           mode + "); chmod 600 it");
  }
  ERR_clear_error();
  s->pkey_ = PEM_read_PrivateKey(f, nullptr, nullptr, const_cast<char*>(""));
  std::fclose(f);
  if (s->pkey_ == nullptr) {
    return cfg_error("not a PEM private key (unencrypted PKCS#8 or PKCS#1): " + openssl_error());
  }
  if (EVP_PKEY_is_a(s->pkey_, "RSA")) {
    if (s->algorithm_.empty()) s->algorithm_ = "rsa-sha256";
    if (s->algorithm_ != "rsa-sha256") {
      return cfg_error("is an RSA key, but the algorithm is " + cfg.algorithm);
    }
    int bits = EVP_PKEY_get_bits(s->pkey_);
    if (bits < 1024) {
      return cfg_error("RSA key has " + std::to_string(bits) +
                       " bits; DKIM verifiers reject keys under 1024 bits (RFC 8301)");
    }
    if (bits < 2048) {
      s->warnings_.push_back("DKIM key " + cfg.key_file + " is RSA " + std::to_string(bits) +
                             " bits; use 2048 bits or more (RFC 8301 recommends 2048)");
    }
  } else if (EVP_PKEY_is_a(s->pkey_, "ED25519")) {
    s->ed25519_ = true;
    if (s->algorithm_.empty()) s->algorithm_ = "ed25519-sha256";
    if (s->algorithm_ != "ed25519-sha256") {
      return cfg_error("is an Ed25519 key, but the algorithm is " + cfg.algorithm);
    }
  } else {
    return cfg_error(std::string("is a ") + EVP_PKEY_get0_type_name(s->pkey_) +
                     " key; DKIM signs with RSA or Ed25519 keys only");
  }
  s->sha256_ = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  if (s->sha256_ == nullptr) return cfg_error("SHA-256 unavailable: " + openssl_error());

  s->tags_prefix_ = "v=1; a=" + s->algorithm_ + "; c=" + canon_name(s->header_canon_) + "/" +
                    canon_name(s->body_canon_) + "; d=" + s->domain_ + "; s=" + s->selector_ + ";";
  // Prove the key signs now, not at the first recipient.
  auto probe = s->sign_header_data("probe");
  if (!probe.ok()) return cfg_error("cannot sign with this key: " + probe.error().message);
  return s;
}

DkimSigner::~DkimSigner() {
  pool_.clear();
  EVP_MD_free(sha256_);
  EVP_PKEY_free(pkey_);
}

std::unique_ptr<DkimSigner::Ctx> DkimSigner::take_ctx() const {
  {
    std::lock_guard<std::mutex> lock(pool_mu_);
    if (!pool_.empty()) {
      auto c = std::move(pool_.back());
      pool_.pop_back();
      return c;
    }
  }
  auto c = std::make_unique<Ctx>(body_canon_);
  c->hdr_md = EVP_MD_CTX_new();
  if (c->hdr_md == nullptr) std::abort();
  if (ed25519_) {
    c->sign_md = EVP_MD_CTX_new();
    if (c->sign_md == nullptr) std::abort();
  } else {
    c->sign_pkey = EVP_PKEY_CTX_new_from_pkey(nullptr, pkey_, nullptr);
    if (c->sign_pkey == nullptr || EVP_PKEY_sign_init(c->sign_pkey) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(c->sign_pkey, RSA_PKCS1_PADDING) != 1 ||
        EVP_PKEY_CTX_set_signature_md(c->sign_pkey, sha256_) != 1) {
      EVP_PKEY_CTX_free(c->sign_pkey);
      c->sign_pkey = nullptr;  // sign_digest reports it
    }
  }
  return c;
}

void DkimSigner::give_ctx(std::unique_ptr<Ctx> c) const {
  std::lock_guard<std::mutex> lock(pool_mu_);
  pool_.push_back(std::move(c));
}

// RFC 6376 §3.7 hashes the header data with SHA-256; RSA signs that hash PKCS#1 v1.5
// (RSASSA-PKCS1-v1_5 with SHA-256, as EVP_DigestSign would), and RFC 8463 §3 has Ed25519
// (PureEdDSA) sign the 32-byte hash itself.
Status DkimSigner::sign_digest(Ctx& c, const unsigned char* digest, std::string& b64) const {
  unsigned char sig[1024];
  size_t siglen = sizeof sig;
  if (ed25519_) {
    if (EVP_DigestSignInit_ex(c.sign_md, nullptr, nullptr, nullptr, nullptr, pkey_, nullptr) != 1 ||
        EVP_DigestSign(c.sign_md, sig, &siglen, digest, 32) != 1) {
      return make_error(ErrDomain::kSys, "Ed25519 signing failed: " + openssl_error());
    }
  } else {
    if (c.sign_pkey == nullptr || size_t(EVP_PKEY_get_size(pkey_)) > sizeof sig ||
        EVP_PKEY_sign(c.sign_pkey, sig, &siglen, digest, 32) != 1) {
      return make_error(ErrDomain::kSys, "RSA signing failed: " + openssl_error());
    }
  }
  b64.clear();  // keeps its capacity: the per-context buffer is reused for every message
  append_base64(b64, bytes(sig, siglen));
  return {};
}

Result<std::string> DkimSigner::sign_header_data(std::string_view data) const {
  auto c = take_ctx();
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_DigestInit_ex(c->hdr_md, sha256_, nullptr) != 1 ||
      EVP_DigestUpdate(c->hdr_md, data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(c->hdr_md, d, &n) != 1) {
    give_ctx(std::move(c));
    return make_error(ErrDomain::kSys, "SHA-256 failed: " + openssl_error());
  }
  std::string b64;
  Status st = sign_digest(*c, d, b64);
  give_ctx(std::move(c));
  if (!st.ok()) return st.error();
  return b64;
}

namespace {

// Walks the pieces up to the empty line that ends the header block. Copies the header block
// (with the CRLF of its last field, without the empty line) into `headers`; returns where the
// body starts as (piece index, offset). No empty line: all header, no body.
std::pair<size_t, size_t> split_header_block(const std::vector<std::string_view>& pieces,
                                             std::string& headers) {
  static constexpr char kPat[] = "\r\n\r\n";
  headers.clear();
  int m = 2;  // as if a CRLF came before the message, so a leading empty line ends the headers
  for (size_t i = 0; i < pieces.size(); ++i) {
    std::string_view p = pieces[i];
    for (size_t j = 0; j < p.size(); ++j) {
      char ch = p[j];
      if (ch == kPat[m]) {
        if (++m == 4) {
          headers.append(p.data(), j + 1);
          headers.resize(headers.size() - 2);  // drop the empty line
          return {i, j + 1};
        }
      } else {
        m = ch == '\r' ? 1 : 0;
      }
    }
    headers.append(p);
  }
  return {pieces.size(), 0};
}

}  // namespace

std::string DkimSigner::precompute_body_hash(
    const std::vector<std::string_view>& wire_pieces) const {
  auto c = take_ctx();
  auto [pi, off] = split_header_block(wire_pieces, c->headers);
  c->body.reset();
  for (size_t i = pi; i < wire_pieces.size(); ++i) {
    c->body.update(i == pi ? wire_pieces[i].substr(off) : wire_pieces[i]);
  }
  std::string bh = c->body.finish();
  give_ctx(std::move(c));
  return bh;
}

Status DkimSigner::sign(const std::vector<std::string_view>& wire_pieces, std::string& header_out,
                        std::string_view body_hash, int64_t timestamp) const {
  auto c = take_ctx();
  struct Return {  // hands the context back on every path
    const DkimSigner* s;
    std::unique_ptr<Ctx>& c;
    ~Return() { s->give_ctx(std::move(c)); }
  } ret{this, c};

  auto [pi, off] = split_header_block(wire_pieces, c->headers);

  // Fields of the header block: a line starting with SP/HTAB continues the field before it.
  const std::string& h = c->headers;
  c->fields.clear();
  for (size_t pos = 0; pos < h.size();) {
    size_t end = pos;
    for (;;) {
      size_t nl = h.find("\r\n", end);
      end = nl == std::string::npos ? h.size() : nl + 2;
      if (end >= h.size() || !is_wsp(h[end])) break;
    }
    size_t colon = h.find(':', pos);
    size_t name_len = 0;
    if (colon != std::string::npos && colon < end) {
      name_len = colon - pos;
      while (name_len > 0 && is_wsp(h[pos + name_len - 1])) --name_len;
    }
    c->fields.push_back({pos, end - pos, name_len});
    pos = end;
  }

  // Header selection (RFC 6376 §5.4.2): a name listed k times signs its last k instances,
  // bottom up; From is listed once more than it occurs.
  c->canon.clear();
  header_out.clear();
  header_out += "DKIM-Signature: ";
  Folder fold{header_out, header_out.size()};
  // The fixed tags and t=, then h=.
  fold.word("v=1;", false);
  for (size_t p = 5; p < tags_prefix_.size();) {  // tags_prefix_ is "v=1; a=..; c=..; .."
    size_t e = tags_prefix_.find(';', p);
    fold.word(std::string_view(tags_prefix_).substr(p, e + 1 - p), true);
    p = e + 2;
  }
  std::string word = "t=" + std::to_string(timestamp >= 0 ? timestamp : clock_()) + ";";
  fold.word(word, true);
  bool has_from = false, first = true;
  for (std::string_view name : signed_header_names()) {
    const bool is_from = iequals(name, "From");
    size_t count = 0;
    for (size_t k = c->fields.size(); k-- > 0;) {
      const auto& f = c->fields[k];
      if (iequals(std::string_view(h).substr(f.pos, f.name_len), name)) {
        ++count;
        dkim_canonical_header(header_canon_, std::string_view(h).substr(f.pos, f.len), true,
                              c->canon);
      }
    }
    if (is_from) has_from = count > 0;
    const size_t listed = count + (is_from ? 1 : 0);
    for (size_t k = 0; k < listed; ++k) {
      // Names in h= are joined by ':'; a fold may come before a ':' (RFC 6376 §3.5).
      word.assign(first ? "h=" : ":");
      for (char ch : name) word += lower_ascii(ch);
      fold.word(word, first);
      first = false;
    }
  }
  if (!has_from) {
    header_out.clear();
    return make_error(ErrDomain::kInput, "cannot DKIM-sign a message without a From: field");
  }
  fold.word(";", false);

  std::string bh_local;
  if (body_hash.empty()) {
    c->body.reset();
    for (size_t i = pi; i < wire_pieces.size(); ++i) {
      c->body.update(i == pi ? wire_pieces[i].substr(off) : wire_pieces[i]);
    }
    bh_local = c->body.finish();
    body_hash = bh_local;
  }
  word.assign("bh=").append(body_hash).append(";");
  fold.word(word, true);
  fold.word("b=", true);

  // The signature field itself, with an empty b=, without its CRLF, is hashed last.
  dkim_canonical_header(header_canon_, header_out, false, c->canon);
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_DigestInit_ex(c->hdr_md, sha256_, nullptr) != 1 ||
      EVP_DigestUpdate(c->hdr_md, c->canon.data(), c->canon.size()) != 1 ||
      EVP_DigestFinal_ex(c->hdr_md, d, &n) != 1) {
    return make_error(ErrDomain::kSys, "SHA-256 failed: " + openssl_error());
  }
  Status st = sign_digest(*c, d, c->b64);
  if (!st.ok()) {
    header_out.clear();
    return st;
  }
  // b= value, folded: base64 may have FWS anywhere inside (RFC 6376 §2.4).
  std::string_view b = c->b64;
  while (!b.empty()) {
    size_t room = fold.col < kFoldWidth ? kFoldWidth - fold.col : 0;
    if (room == 0) {
      header_out += "\r\n\t";
      fold.col = 1;
      continue;
    }
    std::string_view chunk = b.substr(0, room);
    header_out += chunk;
    fold.col += chunk.size();
    b.remove_prefix(chunk.size());
  }
  header_out += "\r\n";
  return {};
}

std::string DkimSigner::dns_txt_record() const {
  unsigned char buf[4096];
  std::string p;
  if (ed25519_) {
    size_t len = sizeof buf;
    if (EVP_PKEY_get_raw_public_key(pkey_, buf, &len) == 1) p = base64_encode(bytes(buf, len));
    return "v=DKIM1; k=ed25519; p=" + p;
  }
  int len = i2d_PUBKEY(pkey_, nullptr);
  if (len > 0 && size_t(len) <= sizeof buf) {
    unsigned char* q = buf;
    i2d_PUBKEY(pkey_, &q);
    p = base64_encode(bytes(buf, size_t(len)));
  }
  return "v=DKIM1; k=rsa; p=" + p;
}

}  // namespace sb
