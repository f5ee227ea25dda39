// DKIM signing (RFC 6376, RSA-SHA256 and Ed25519-SHA256 per RFC 8463) of rendered messages.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

typedef struct evp_pkey_st EVP_PKEY;
typedef struct evp_md_ctx_st EVP_MD_CTX;
typedef struct evp_md_st EVP_MD;

namespace sb {

struct DkimKeyConfig {
  std::string key_file, domain, selector;
  // "rsa-sha256", "ed25519-sha256", or "" for the one the key's type calls for.
  std::string algorithm = "rsa-sha256";
  std::string header_canon = "relaxed", body_canon = "relaxed";  // or "simple"
};

enum class DkimCanon { kSimple, kRelaxed };

// Body canonicalisation (RFC 6376 §3.4.3/§3.4.4) as a streaming machine: feed the body in any
// number of chunks, split anywhere (even inside a CRLF); the output is the same as for the
// whole body at once. Trailing empty lines are held back until more content proves they are
// not trailing, so memory stays O(1) whatever the body size.
class DkimBodyCanonicalizer {
 public:
  explicit DkimBodyCanonicalizer(DkimCanon c) : canon_(c) {}
  void reset();
  // Appends the canonical bytes that `in` makes certain to `out`.
  void update(std::string_view in, std::string& out);
  // Appends the rest (the final CRLF; for simple, the CRLF of an empty body) to `out`.
  void finish(std::string& out);

 private:
  DkimCanon canon_;
  size_t crlf_pending_ = 0;   // line ends after the last content byte, not yet written
  bool cr_pending_ = false;   // a CR seen, its LF not yet
  bool wsp_pending_ = false;  // relaxed: a run of SP/HTAB seen, not yet written
  bool any_content_ = false;
};

// The canonical body as one string (tests, tools; the signer streams instead).
std::string dkim_canonical_body(DkimCanon c, std::string_view body);
// One header field canonicalised. `field` is the raw field as on the wire ("Name: value",
// folds included, with or without its final CRLF); the result ends with CRLF only when
// `with_crlf` (the DKIM-Signature field itself is hashed without it).
void dkim_canonical_header(DkimCanon c, std::string_view field, bool with_crlf, std::string& out);

// SHA-256 of a canonicalised body, fed in chunks; bh= is base64 of the digest.
class DkimBodyHasher {
 public:
  explicit DkimBodyHasher(DkimCanon c);
  ~DkimBodyHasher();
  DkimBodyHasher(const DkimBodyHasher&) = delete;
  DkimBodyHasher& operator=(const DkimBodyHasher&) = delete;
  void reset();
  void update(std::string_view body_bytes);
  // The base64 bh= value (44 characters). The hasher must be reset() before reuse.
  std::string finish();

 private:
  DkimBodyCanonicalizer canon_;
  EVP_MD_CTX* md_ = nullptr;
  std::string buf_;  // canonical bytes waiting for the digest; reused
};

// "" when d= aligns with the From: domain for DMARC (equal, or a parent of it); otherwise a
// sentence naming the consequence. `from` may be an address (the part after the last '@' is
// used) or a domain.
std::string alignment_warning(std::string_view from, std::string_view dkim_domain);

// Signs messages with one private key, loaded once. All methods are const and thread-safe: the
// worker threads share one signer; each sign() borrows a digest/sign context from a small
// pool (a mutex held for a pointer swap, never while hashing or signing).
class DkimSigner {
 public:
  using Clock = std::function<int64_t()>;  // seconds since the epoch, for t=

  // Loads and checks the key: PEM (PKCS#8 or PKCS#1), RSA >= 1024 bits or Ed25519, of the type
  // `algorithm` names (any of the two when it is empty). Failures are kConfig errors that name the
  // file. `clock` defaults to time(nullptr).
  static Result<std::unique_ptr<DkimSigner>> create(const DkimKeyConfig& cfg, Clock clock = {});
  ~DkimSigner();
  DkimSigner(const DkimSigner&) = delete;
  DkimSigner& operator=(const DkimSigner&) = delete;

  // Things the user should hear about once at start-up (a key readable by group/others, an RSA
  // key under 2048 bits); empty when none.
  const std::vector<std::string>& warnings() const { return warnings_; }

  // Per template, when every recipient gets the same body: the bh= value of the body of a
  // complete message given as wire pieces (the header block is skipped). Pass it to sign().
  std::string precompute_body_hash(const std::vector<std::string_view>& wire_pieces) const;

  // Per message: computes the DKIM-Signature field (folded, lines <= 78 octets, CRLF-terminated)
  // for the complete message in `wire_pieces` (CRLF line ends, NOT dot-stuffed) and stores it
  // in `header_out` (replaced, capacity kept); prepend it to the message. When `body_hash` is
  // given (from precompute_body_hash) the body is not read; otherwise it is hashed streaming
  // over the pieces. `timestamp` is the t= value (seconds since the epoch); negative: the
  // clock's. A caller that renders the same message twice (a backup copy) passes the same time
  // and gets the same field. Fails with kInput when the message has no From: field.
  Status sign(const std::vector<std::string_view>& wire_pieces, std::string& header_out,
              std::string_view body_hash = {}, int64_t timestamp = -1) const;

  // Signs `data` (canonicalised header data, as RFC 6376 §3.7 builds it) and returns base64 of
  // the signature. For known-answer tests; sign() uses the same path.
  Result<std::string> sign_header_data(std::string_view data) const;

  // The TXT record to publish at <selector>._domainkey.<domain>: "v=DKIM1; k=rsa; p=...".
  std::string dns_txt_record() const;
  std::string dns_name() const { return selector_ + "._domainkey." + domain_; }

  const std::string& algorithm() const { return algorithm_; }
  const std::string& domain() const { return domain_; }
  const std::string& selector() const { return selector_; }

  // The header fields signed when present, in this order (From is also listed once more than
  // it occurs, so a second From: added later breaks the signature).
  static const std::vector<std::string_view>& signed_header_names();

 private:
  struct Ctx;  // per-sign scratch: digest contexts and buffers, pooled
  DkimSigner() = default;
  std::unique_ptr<Ctx> take_ctx() const;
  void give_ctx(std::unique_ptr<Ctx> c) const;
  Status sign_digest(Ctx& c, const unsigned char* digest, std::string& b64) const;

  EVP_PKEY* pkey_ = nullptr;
  EVP_MD* sha256_ = nullptr;  // fetched once: implicit fetches cost a lock per use in 3.0
  bool ed25519_ = false;
  DkimCanon header_canon_ = DkimCanon::kRelaxed, body_canon_ = DkimCanon::kRelaxed;
  std::string algorithm_, domain_, selector_, key_file_;
  std::string tags_prefix_;  // "v=1; a=...; c=...; d=...; s=...;" rendered once
  std::vector<std::string> warnings_;
  Clock clock_;
  mutable std::mutex pool_mu_;
  mutable std::vector<std::unique_ptr<Ctx>> pool_;
};

}  // namespace sb
