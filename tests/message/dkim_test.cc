// Unit tests for DKIM signing (src/message/dkim.h): canonicalisation tables, RFC known answers,
// signatures checked with OpenSSL's EVP_DigestVerify, and the sample writer that
// tests/integration/test_dkim_verify.py feeds to independent verifiers.
#include "message/dkim.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

namespace sb {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Helpers

std::string temp_dir() {
  const char* t = std::getenv("TMPDIR");
  std::string base = (t != nullptr && *t != '\0') ? t : "/tmp";
  std::string tmpl = base + "/sb-dkim-test-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
  return tmpl;
}

void write_file(const std::string& path, std::string_view data, mode_t mode = 0600) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(data.data(), std::streamsize(data.size()));
  f.close();
  ::chmod(path.c_str(), mode);
}

std::string pem_of(EVP_PKEY* k) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr);
  char* p = nullptr;
  long n = BIO_get_mem_data(b, &p);
  std::string s(p, size_t(n));
  BIO_free(b);
  return s;
}

// Test keys are made once per process: RSA 2048 keygen takes a while.
const std::string& key_file(const std::string& alg) {
  static std::map<std::string, std::string> files;
  static struct Dir {
    std::string path = temp_dir();
    ~Dir() { fs::remove_all(path); }
  } tmp;
  const std::string& dir = tmp.path;
  auto it = files.find(alg);
  if (it != files.end()) return it->second;
  EVP_PKEY* k = alg == "rsa-sha256" ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t(2048))
                                    : EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (k == nullptr) std::abort();
  std::string path = dir + "/" + alg + ".pem";
  write_file(path, pem_of(k));
  EVP_PKEY_free(k);
  return files[alg] = path;
}

std::unique_ptr<DkimSigner> make_signer(const std::string& alg,
                                        const std::string& canon = "relaxed",
                                        const std::string& key = "") {
  DkimKeyConfig cfg;
  cfg.key_file = key.empty() ? key_file(alg) : key;
  cfg.domain = "example.com";
  cfg.selector = "sel2024";
  cfg.algorithm = alg;
  cfg.header_canon = canon;
  cfg.body_canon = canon;
  auto r = DkimSigner::create(cfg, [] { return int64_t(1700000000); });
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().describe());
  if (!r.ok()) return nullptr;
  return std::move(r).value();
}

std::vector<std::string_view> split_every(std::string_view s, size_t n) {
  std::vector<std::string_view> out;
  for (size_t i = 0; i < s.size(); i += n) out.push_back(s.substr(i, n));
  return out;
}

std::string b64decode(std::string_view in) {
  std::string clean;
  for (char c : in) {
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') clean += c;
  }
  std::string out(clean.size(), '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(clean.data()), int(clean.size()));
  if (n < 0) return {};
  size_t pad = 0;
  while (pad < clean.size() && clean[clean.size() - 1 - pad] == '=') ++pad;
  out.resize(size_t(n) - pad);
  return out;
}

// A small, separate verifier: parses the DKIM-Signature field, rebuilds the header data the way
// RFC 6376 §5.4 describes, and checks b= with the public key via EVP_DigestVerify; bh= is checked
// against the canonical body. Canonicalisation is shared with the signer (it is tested against
// the RFC tables and by python3-dkim in the integration test); the crypto is OpenSSL's own.
struct VerifyResult {
  bool body_ok = false;
  bool sig_ok = false;
  std::string h;
};

VerifyResult verify_message(const std::string& msg, EVP_PKEY* pub) {
  VerifyResult r;
  size_t sep = msg.find("\r\n\r\n");
  std::string head = msg.substr(0, sep + 2);
  std::string body = msg.substr(sep + 4);
  struct Field {
    std::string name, raw;
  };
  std::vector<Field> fields;
  for (size_t pos = 0; pos < head.size();) {
    size_t end = pos;
    do {
      end = head.find("\r\n", end) + 2;
    } while (end < head.size() && (head[end] == ' ' || head[end] == '\t'));
    std::string raw = head.substr(pos, end - pos);
    std::string name = raw.substr(0, raw.find(':'));
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.pop_back();
    for (char& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
    fields.push_back({name, raw});
    pos = end;
  }
  const Field* sig = nullptr;
  for (const auto& f : fields) {
    if (f.name == "dkim-signature") sig = &f;
  }
  if (sig == nullptr) return r;
  std::string value = sig->raw.substr(sig->raw.find(':') + 1);
  std::map<std::string, std::string> tags;
  for (size_t p = 0; p < value.size();) {
    size_t e = value.find(';', p);
    if (e == std::string::npos) e = value.size();
    std::string spec = value.substr(p, e - p);
    size_t eq = spec.find('=');
    std::string k, v;
    for (char c : spec.substr(0, eq)) {
      if (!std::isspace(static_cast<unsigned char>(c))) k += c;
    }
    for (char c : spec.substr(eq + 1)) {
      if (!std::isspace(static_cast<unsigned char>(c))) v += c;
    }
    tags[k] = v;
    p = e + 1;
  }
  std::string c = tags["c"];
  DkimCanon hc = c.substr(0, c.find('/')) == "simple" ? DkimCanon::kSimple : DkimCanon::kRelaxed;
  DkimCanon bc = c.substr(c.find('/') + 1) == "simple" ? DkimCanon::kSimple : DkimCanon::kRelaxed;
  std::string canon_body = dkim_canonical_body(bc, body);
  unsigned char d[32];
  EVP_Digest(canon_body.data(), canon_body.size(), d, nullptr, EVP_sha256(), nullptr);
  r.body_ok = std::string(reinterpret_cast<char*>(d), 32) == b64decode(tags["bh"]);
  r.h = tags["h"];
  std::string data;
  std::vector<bool> used(fields.size(), false);
  for (size_t p = 0; p <= r.h.size();) {
    size_t e = r.h.find(':', p);
    if (e == std::string::npos) e = r.h.size();
    std::string name = r.h.substr(p, e - p);
    for (char& ch : name) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    for (size_t k = fields.size(); k-- > 0;) {
      if (!used[k] && fields[k].name == name && &fields[k] != sig) {
        used[k] = true;
        dkim_canonical_header(hc, fields[k].raw, true, data);
        break;
      }
    }
    p = e + 1;
  }
  // The signature field with the b= value removed, no final CRLF.
  std::string unsigned_sig = sig->raw;
  size_t b = unsigned_sig.rfind("b=");
  while (b != std::string::npos && b > 0 && unsigned_sig[b - 1] == 'b')
    b = unsigned_sig.rfind("b=", b - 1);
  size_t bend = unsigned_sig.find(';', b);
  unsigned_sig.erase(b + 2, (bend == std::string::npos ? unsigned_sig.size() : bend) - b - 2);
  dkim_canonical_header(hc, unsigned_sig, false, data);

  std::string sigbytes = b64decode(tags["b"]);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (tags["a"] == "rsa-sha256") {
    r.sig_ok = EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, pub) == 1 &&
               EVP_DigestVerify(
                   ctx, reinterpret_cast<const unsigned char*>(sigbytes.data()), sigbytes.size(),
                   reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
  } else {
    unsigned char hd[32];
    EVP_Digest(data.data(), data.size(), hd, nullptr, EVP_sha256(), nullptr);
    r.sig_ok = EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, pub) == 1 &&
               EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sigbytes.data()),
                                sigbytes.size(), hd, 32) == 1;
  }
  EVP_MD_CTX_free(ctx);
  return r;
}

EVP_PKEY* load_key(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  EVP_PKEY* k = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  return k;
}

const char kMessage[] =
    "From: News <news@example.com>\r\n"
    "To: jane@example.org\r\n"
    "Subject: Hello Jane,\r\n"
    " your March update\r\n"
    "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
    "Message-ID: <t1.42@example.com>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "X-Not-Signed: yes\r\n"
    "\r\n"
    "Dear Jane,  \r\n"
    ".a line that starts with a dot\r\n"
    "\r\n"
    "Bye\r\n"
    "\r\n"
    "\r\n";

// ---------------------------------------------------------------------------------------------
// Canonicalisation

TEST(DkimCanon, Rfc6376Section345Example) {
  // RFC 6376 §3.4.5.
  std::string h;
  dkim_canonical_header(DkimCanon::kRelaxed, "A: X\r\n", true, h);
  dkim_canonical_header(DkimCanon::kRelaxed, "B : Y\t\r\n\tZ  \r\n", true, h);
  EXPECT_EQ(h, "a:X\r\nb:Y Z\r\n");
  h.clear();
  dkim_canonical_header(DkimCanon::kSimple, "A: X\r\n", true, h);
  dkim_canonical_header(DkimCanon::kSimple, "B : Y\t\r\n\tZ  \r\n", true, h);
  EXPECT_EQ(h, "A: X\r\nB : Y\t\r\n\tZ  \r\n");
  const std::string body = " C \r\nD \t E\r\n\r\n\r\n";
  EXPECT_EQ(dkim_canonical_body(DkimCanon::kRelaxed, body), " C\r\nD E\r\n");
  EXPECT_EQ(dkim_canonical_body(DkimCanon::kSimple, body), " C \r\nD \t E\r\n");
}

struct BodyCase {
  const char* in;
  const char* simple;
  const char* relaxed;
};

TEST(DkimCanon, BodyTable) {
  const BodyCase cases[] = {
      {"", "\r\n", ""},              // empty body (§3.4.3 / §3.4.4)
      {"\r\n", "\r\n", ""},          // only an empty line
      {"\r\n\r\n\r\n", "\r\n", ""},  // only empty lines
      {"a\r\n", "a\r\n", "a\r\n"},
      {"a", "a\r\n", "a\r\n"},                                 // no final CRLF: one is added
      {"a\r\n\r\n", "a\r\n", "a\r\n"},                         // trailing empty lines go
      {"a\r\n\r\nb\r\n", "a\r\n\r\nb\r\n", "a\r\n\r\nb\r\n"},  // inner empty lines stay
      {"a  \t b\t\r\n", "a  \t b\t\r\n", "a b\r\n"},           // WSP runs; trailing WSP
      {"  \r\n", "  \r\n", ""},  // a WSP-only line is empty when relaxed
      {"a\r\n  \r\n\t\r\n", "a\r\n  \r\n\t\r\n", "a\r\n"},
      {"  lead\r\n", "  lead\r\n", " lead\r\n"},  // leading WSP becomes one SP
      {".dot\r\n..two\r\n", ".dot\r\n..two\r\n", ".dot\r\n..two\r\n"},  // no unstuffing
      {"a\rb\r\n", "a\rb\r\n", "a\rb\r\n"},                             // a bare CR is content
      {"a\r", "a\r\r\n", "a\r\r\n"},
      {"x \r\n \r\n", "x \r\n \r\n", "x\r\n"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(dkim_canonical_body(DkimCanon::kSimple, c.in), c.simple) << "simple: " << c.in;
    EXPECT_EQ(dkim_canonical_body(DkimCanon::kRelaxed, c.in), c.relaxed) << "relaxed: " << c.in;
  }
}

TEST(DkimCanon, StreamingEqualsWholeAtEverySplit) {
  const std::string body = " a  b \t\r\n\r\n.c\t\r\n \r\nd\r\r\n\r\n\r\n  \r\n";
  for (DkimCanon c : {DkimCanon::kSimple, DkimCanon::kRelaxed}) {
    const std::string whole = dkim_canonical_body(c, body);
    for (size_t i = 0; i <= body.size(); ++i) {
      for (size_t j = i; j <= body.size(); ++j) {
        DkimBodyCanonicalizer m(c);
        std::string out;
        m.update(std::string_view(body).substr(0, i), out);
        m.update(std::string_view(body).substr(i, j - i), out);
        m.update(std::string_view(body).substr(j), out);
        m.finish(out);
        ASSERT_EQ(out, whole) << "split at " << i << "," << j;
      }
    }
  }
}

TEST(DkimCanon, HeaderTable) {
  struct C {
    const char* in;
    const char* relaxed;
  } cases[] = {
      {"Subject: Hello\r\n", "subject:Hello\r\n"},
      {"SUBJECT:Hello\r\n", "subject:Hello\r\n"},
      {"Subject :  a \t b  \r\n\t c  \r\n", "subject:a b c\r\n"},
      {"To: a@x,\r\n b@y\r\n", "to:a@x, b@y\r\n"},
      {"X-Empty:\r\n", "x-empty:\r\n"},
      {"X-Empty:   \r\n", "x-empty:\r\n"},
      {"Subject: =?UTF-8?B?w6k=?=\r\n =?UTF-8?B?w6k=?=\r\n",
       "subject:=?UTF-8?B?w6k=?= =?UTF-8?B?w6k=?=\r\n"},
  };
  for (const auto& c : cases) {
    std::string out;
    dkim_canonical_header(DkimCanon::kRelaxed, c.in, true, out);
    EXPECT_EQ(out, c.relaxed) << c.in;
  }
}

// ---------------------------------------------------------------------------------------------
// Known answers

// RFC 6376 Appendix A / RFC 8463 Appendix A body; both publish this bh=.
TEST(DkimKnownAnswer, RfcBodyHash) {
  const char kBh[] = "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=";
  DkimBodyHasher simple(DkimCanon::kSimple);
  simple.update("Hi.\r\n\r\nWe lost the game. Are you hungry yet?\r\n\r\nJoe.\r\n");
  EXPECT_EQ(simple.finish(), kBh);
  DkimBodyHasher relaxed(DkimCanon::kRelaxed);  // RFC 8463's body has two spaces
  for (auto p :
       split_every("Hi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n\r\nJoe.\r\n", 7)) {
    relaxed.update(p);
  }
  EXPECT_EQ(relaxed.finish(), kBh);
  relaxed.reset();
  EXPECT_EQ(relaxed.finish(), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");  // sha256("")
  simple.reset();
  EXPECT_EQ(simple.finish(), "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=");  // sha256("\r\n")
}

// RFC 8463 Appendix A: its keys and its two published signatures, reproduced byte for byte.
// RSA PKCS#1 v1.5 and Ed25519 are deterministic, so this checks header canonicalisation, the
// selection order and the Ed25519-over-SHA-256 rule together.
const char kRfc8463Rsa[] =
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIICXQIBAAKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQi\n"
    "Y/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqM\n"
    "KrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB\n"
    "AoGAH0cxOhFZDgzXWhDhnAJDw5s4roOXN4OhjiXa8W7Y3rhX3FJqmJSPuC8N9vQm\n"
    "6SVbaLAE4SG5mLMueHlh4KXffEpuLEiNp9Ss3O4YfLiQpbRqE7Tm5SxKjvvQoZZe\n"
    "zHorimOaChRL2it47iuWxzxSiRMv4c+j70GiWdxXnxe4UoECQQDzJB/0U58W7RZy\n"
    "6enGVj2kWF732CoWFZWzi1FicudrBFoy63QwcowpoCazKtvZGMNlPWnC7x/6o8Gc\n"
    "uSe0ga2xAkEA8C7PipPm1/1fTRQvj1o/dDmZp243044ZNyxjg+/OPN0oWCbXIGxy\n"
    "WvmZbXriOWoSALJTjExEgraHEgnXssuk7QJBALl5ICsYMu6hMxO73gnfNayNgPxd\n"
    "WFV6Z7ULnKyV7HSVYF0hgYOHjeYe9gaMtiJYoo0zGN+L3AAtNP9huqkWlzECQE1a\n"
    "licIeVlo1e+qJ6Mgqr0Q7Aa7falZ448ccbSFYEPD6oFxiOl9Y9se9iYHZKKfIcst\n"
    "o7DUw1/hz2Ck4N5JrgUCQQCyKveNvjzkkd8HjYs0SwM0fPjK16//5qDZ2UiDGnOe\n"
    "uEzxBDAr518Z8VFbR41in3W4Y3yCDgQlLlcETrS+zYcL\n"
    "-----END RSA PRIVATE KEY-----\n";
const char kRfc8463EdSeed[] = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=";

const char kRfc8463Headers[] =
    "From: Joe SixPack <joe@football.example.com>\r\n"
    "To: Suzie Q <suzie@shopping.example.net>\r\n"
    "Subject: Is dinner ready?\r\n"
    "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
    "Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n";

std::string rfc8463_header_data(std::string_view sig_field_without_b) {
  // h=from : to : subject : date : message-id : from : subject : date -- the second from,
  // subject and date find no further instance and add nothing.
  std::string data;
  std::string_view h = kRfc8463Headers;
  size_t pos = 0;
  while (pos < h.size()) {
    size_t e = h.find("\r\n", pos) + 2;
    dkim_canonical_header(DkimCanon::kRelaxed, h.substr(pos, e - pos), true, data);
    pos = e;
  }
  dkim_canonical_header(DkimCanon::kRelaxed, sig_field_without_b, false, data);
  return data;
}

TEST(DkimKnownAnswer, Rfc8463Signatures) {
  std::string dir = temp_dir();
  write_file(dir + "/rsa.pem", kRfc8463Rsa);
  std::string seed = b64decode(kRfc8463EdSeed);
  ASSERT_EQ(seed.size(), 32u);
  EVP_PKEY* ed = EVP_PKEY_new_raw_private_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(seed.data()), 32);
  ASSERT_NE(ed, nullptr);
  write_file(dir + "/ed.pem", pem_of(ed));
  EVP_PKEY_free(ed);

  DkimKeyConfig cfg;
  cfg.domain = "football.example.com";
  cfg.selector = "test";
  cfg.key_file = dir + "/rsa.pem";
  auto rsa = DkimSigner::create(cfg);
  ASSERT_TRUE(rsa.ok()) << rsa.error().describe();
  ASSERT_EQ((*rsa)->warnings().size(), 1u);  // 1024 bits
  EXPECT_NE((*rsa)->warnings()[0].find("1024"), std::string::npos);
  auto b = (*rsa)->sign_header_data(
      rfc8463_header_data("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n"
                          " d=football.example.com; i=@football.example.com;\r\n"
                          " q=dns/txt; s=test; t=1528637909; h=from : to : subject :\r\n"
                          " date : message-id : from : subject : date;\r\n"
                          " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
                          " b="));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(
      *b,
      "F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1t"
      "FOeS9mPYQTnGdaSGsgeefOsk2JzdA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=");

  cfg.key_file = dir + "/ed.pem";
  cfg.algorithm = "ed25519-sha256";
  cfg.selector = "brisbane";
  auto eds = DkimSigner::create(cfg);
  ASSERT_TRUE(eds.ok()) << eds.error().describe();
  EXPECT_EQ((*eds)->dns_txt_record(),
            "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
  b = (*eds)->sign_header_data(
      rfc8463_header_data("DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
                          " d=football.example.com; i=@football.example.com;\r\n"
                          " q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n"
                          " subject : date : message-id : from : subject : date;\r\n"
                          " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
                          " b="));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(
      *b,
      "/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11BusFa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==");
  fs::remove_all(dir);
}

// ---------------------------------------------------------------------------------------------
// Signing

class DkimSign : public ::testing::TestWithParam<std::tuple<const char*, const char*>> {};

TEST_P(DkimSign, VerifiesWithOpenSslAndTamperingFails) {
  const std::string alg = std::get<0>(GetParam());
  const std::string canon = std::get<1>(GetParam());
  auto signer = make_signer(alg, canon);
  ASSERT_NE(signer, nullptr);
  EVP_PKEY* pub = load_key(key_file(alg));
  std::string hdr;
  auto pieces = split_every(kMessage, 13);  // pieces split mid-line and mid-CRLF
  ASSERT_TRUE(signer->sign(pieces, hdr).ok());
  const std::string msg = hdr + kMessage;

  VerifyResult v = verify_message(msg, pub);
  EXPECT_TRUE(v.body_ok);
  EXPECT_TRUE(v.sig_ok) << msg;
  EXPECT_EQ(v.h, "from:from:to:subject:date:message-id:mime-version:content-type");
  EXPECT_NE(hdr.find("t=1700000000;"), std::string::npos) << hdr;
  EXPECT_NE(hdr.find("c=" + canon + "/" + canon + ";"), std::string::npos);
  EXPECT_EQ(hdr.substr(hdr.size() - 2), "\r\n");
  for (size_t p = 0, e; p < hdr.size(); p = e + 2) {  // folded within 78 octets
    e = hdr.find("\r\n", p);
    EXPECT_LE(e - p, 78u) << hdr;
    if (p > 0) {
      EXPECT_EQ(hdr[p], '\t');
    }
  }

  // The same with a precomputed body hash, and with the message as one piece.
  std::string hdr2;
  std::string bh = signer->precompute_body_hash(pieces);
  ASSERT_TRUE(signer->sign({std::string_view(kMessage)}, hdr2, bh).ok());
  EXPECT_EQ(hdr2, hdr);  // deterministic signatures, same t=

  // One header byte changed after signing.
  std::string bad = msg;
  bad.replace(bad.find("Hello Jane"), 5, "Hallo");
  EXPECT_FALSE(verify_message(bad, pub).sig_ok);
  // A second From: added on top (over-signing).
  bad = msg;
  bad.insert(hdr.size(), "From: Mallory <m@evil.example>\r\n");
  EXPECT_FALSE(verify_message(bad, pub).sig_ok);
  // A body byte.
  bad = msg;
  bad.replace(bad.find("Bye"), 3, "bye");
  EXPECT_FALSE(verify_message(bad, pub).body_ok);
  // Unsigned headers may be added in transit.
  bad = "Received: from x by y; Tue, 14 Nov 2023 22:13:21 +0000\r\n" + msg;
  bad.insert(bad.find("X-Not-Signed"), "X-Spam: no\r\n");
  EXPECT_TRUE(verify_message(bad, pub).sig_ok);
  EVP_PKEY_free(pub);
}

INSTANTIATE_TEST_SUITE_P(AllAlgorithms, DkimSign,
                         ::testing::Combine(::testing::Values("rsa-sha256", "ed25519-sha256"),
                                            ::testing::Values("relaxed", "simple")));

TEST(DkimSignOnly, SignedHeaderSelection) {
  auto signer = make_signer("ed25519-sha256");
  ASSERT_NE(signer, nullptr);
  const std::string msg =
      "Received: x\r\nfrom: a@example.com\r\nTo: b@x\r\nTo: c@x\r\nCC: d@x\r\n"
      "List-Unsubscribe: <https://e/u>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
      "Feedback-ID: 1:2:3\r\nReply-To: r@x\r\nContent-Transfer-Encoding: 7bit\r\n\r\nb\r\n";
  std::string hdr;
  ASSERT_TRUE(signer->sign({msg}, hdr).ok());
  EVP_PKEY* pub = load_key(key_file("ed25519-sha256"));
  VerifyResult v = verify_message(hdr + msg, pub);
  EVP_PKEY_free(pub);
  EXPECT_TRUE(v.sig_ok);
  EXPECT_EQ(v.h,
            "from:from:to:to:content-transfer-encoding:list-unsubscribe:list-unsubscribe-post:"
            "reply-to:cc:feedback-id");
}

TEST(DkimSignOnly, NoFromIsAnError) {
  auto signer = make_signer("ed25519-sha256");
  ASSERT_NE(signer, nullptr);
  std::string hdr = "junk";
  Status s = signer->sign({"To: b@x\r\n\r\nbody\r\n"}, hdr);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().domain, ErrDomain::kInput);
  EXPECT_TRUE(hdr.empty());
}

TEST(DkimSignOnly, HeadersOnlyAndEmptyBody) {
  auto signer = make_signer("rsa-sha256", "simple");
  ASSERT_NE(signer, nullptr);
  EVP_PKEY* pub = load_key(key_file("rsa-sha256"));
  for (std::string msg : {"From: a@example.com\r\n\r\n", "From: a@example.com\r\n"}) {
    std::string hdr;
    ASSERT_TRUE(signer->sign({msg}, hdr).ok());
    EXPECT_NE(hdr.find("bh=frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY="), std::string::npos)
        << hdr;
    if (msg.find("\r\n\r\n") != std::string::npos) {
      EXPECT_TRUE(verify_message(hdr + msg, pub).sig_ok);
    }
  }
  EVP_PKEY_free(pub);
}

TEST(DkimSignOnly, ThreadsShareOneSigner) {
  auto signer = make_signer("ed25519-sha256");
  ASSERT_NE(signer, nullptr);
  std::string want;
  ASSERT_TRUE(signer->sign({kMessage}, want).ok());
  std::atomic<int> bad{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&] {
      std::string hdr;
      for (int i = 0; i < 200; ++i) {
        if (!signer->sign(split_every(kMessage, 50), hdr).ok() || hdr != want) ++bad;
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(bad.load(), 0);
}

// ---------------------------------------------------------------------------------------------
// Key loading

TEST(DkimKey, Errors) {
  std::string dir = temp_dir();
  DkimKeyConfig cfg;
  cfg.domain = "example.com";
  cfg.selector = "s";

  cfg.key_file = dir + "/missing.pem";
  auto r = DkimSigner::create(cfg);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().domain, ErrDomain::kConfig);
  EXPECT_NE(r.error().message.find(cfg.key_file), std::string::npos);

  write_file(dir + "/garbage.pem",
             "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
  cfg.key_file = dir + "/garbage.pem";
  r = DkimSigner::create(cfg);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().domain, ErrDomain::kConfig);
  EXPECT_NE(r.error().message.find("garbage.pem"), std::string::npos) << r.error().message;

  // Algorithm and key type must agree.
  cfg.key_file = key_file("ed25519-sha256");
  cfg.algorithm = "rsa-sha256";
  r = DkimSigner::create(cfg);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("Ed25519"), std::string::npos) << r.error().message;
  cfg.key_file = key_file("rsa-sha256");
  cfg.algorithm = "ed25519-sha256";
  r = DkimSigner::create(cfg);
  ASSERT_FALSE(r.ok());
  cfg.algorithm = "rsa-sha1";
  EXPECT_FALSE(DkimSigner::create(cfg).ok());

  // Too small an RSA key; an EC key.
  EVP_PKEY* small = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t(768));
  write_file(dir + "/small.pem", pem_of(small));
  EVP_PKEY_free(small);
  cfg.algorithm = "rsa-sha256";
  cfg.key_file = dir + "/small.pem";
  r = DkimSigner::create(cfg);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("768"), std::string::npos);
  EVP_PKEY* ec = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  write_file(dir + "/ec.pem", pem_of(ec));
  EVP_PKEY_free(ec);
  cfg.key_file = dir + "/ec.pem";
  EXPECT_FALSE(DkimSigner::create(cfg).ok());

  // Bad tag values.
  cfg.key_file = key_file("rsa-sha256");
  cfg.selector = "s; x=1";
  EXPECT_FALSE(DkimSigner::create(cfg).ok());
  cfg.selector = "s";
  cfg.domain = "exa mple.com";
  EXPECT_FALSE(DkimSigner::create(cfg).ok());
  cfg.domain = "example.com";
  cfg.body_canon = "loose";
  EXPECT_FALSE(DkimSigner::create(cfg).ok());
  fs::remove_all(dir);
}

TEST(DkimKey, WarnsWhenGroupOrOthersCanRead) {
  std::string dir = temp_dir();
  std::ifstream in(key_file("ed25519-sha256"));
  std::string pem((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write_file(dir + "/k.pem", pem, 0640);
  DkimKeyConfig cfg;
  cfg.domain = "example.com";
  cfg.selector = "s";
  cfg.algorithm = "ed25519-sha256";
  cfg.key_file = dir + "/k.pem";
  auto r = DkimSigner::create(cfg);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ((*r)->warnings().size(), 1u);
  EXPECT_NE((*r)->warnings()[0].find("640"), std::string::npos) << (*r)->warnings()[0];
  ::chmod(cfg.key_file.c_str(), 0600);
  r = DkimSigner::create(cfg);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE((*r)->warnings().empty());
  fs::remove_all(dir);
}

TEST(DkimAlignment, Table) {
  EXPECT_EQ(alignment_warning("news@example.com", "example.com"), "");
  EXPECT_EQ(alignment_warning("News@Mail.Example.COM", "example.com"), "");
  EXPECT_EQ(alignment_warning("mail.example.com", "example.com."), "");
  std::string w = alignment_warning("a@example.com", "mail.example.com");
  EXPECT_NE(w.find("DMARC"), std::string::npos);
  EXPECT_NE(alignment_warning("a@notexample.com", "example.com"), "");
  EXPECT_NE(alignment_warning("a@example.org", "example.com"), "");
}

// ---------------------------------------------------------------------------------------------
// Samples for the independent verifiers (tests/integration/test_dkim_verify.py). Runs only when
// SMTPBLAST_DKIM_SAMPLES names a directory; keys come from SMTPBLAST_DKIM_RSA_KEY and
// SMTPBLAST_DKIM_ED25519_KEY (made by the Python test with the openssl command), else are made
// here. Writes <case>.eml (the signed message) and <case>.txt (the DNS TXT record).

struct Sample {
  const char* name;
  const char* text;
};

const Sample kSamples[] = {
    {"basic", kMessage},
    {"trailing_blank_lines",
     "From: a@example.com\r\nTo: b@example.org\r\nSubject: blank lines\r\n\r\n"
     "text\r\n\r\n\r\n\r\n"},
    {"whitespace",
     "From: a@example.com\r\nTo: b@example.org\r\nSubject:   lots  \t of   space  \r\n\r\n"
     "  lead\tand  inner  \r\n\t\r\ntrail \t \r\n"},
    {"long_folded_headers",
     "From: \"A very long display name for the sender\" <a@example.com>\r\n"
     "To: first.recipient@example.org, second.recipient@example.org,\r\n"
     " third.recipient@example.org, fourth.recipient@example.org\r\n"
     "Subject: This is a long subject line that was folded by the renderer because it\r\n"
     "\tis longer than seventy-eight octets\r\n"
     "Message-ID: <abc.1@example.com>\r\n"
     "List-Unsubscribe: "
     "<https://example.com/u?t=AQAQamFuZUBleGFtcGxlLm9yZ3QxabcdefABCDEF0123456789>,"
     "\r\n <mailto:unsub@example.com>\r\n"
     "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\nbody\r\n"},
    {"utf8_subject",
     "From: =?UTF-8?B?SsO8cmdlbg==?= <j@example.com>\r\nTo: b@example.org\r\n"
     "Subject: =?UTF-8?B?R3LDvMOfZSBhdXMgTcO8bmNoZW4g4oCUIMOpdMOpIOKCrA==?=\r\n"
     " =?UTF-8?B?IDIwMjQ=?=\r\nMIME-Version: 1.0\r\n"
     "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
     "Gr\xc3\xbc\xc3\x9f"
     "e \xe2\x80\x94 caf\xc3\xa9\r\n"},
    {"dot_lines",
     "From: a@example.com\r\nTo: b@example.org\r\nSubject: dots\r\n\r\n"
     ".\r\n..\r\n.leading dot\r\nmiddle . dot\r\n.\r\n"},
    {"empty_body", "From: a@example.com\r\nTo: b@example.org\r\nSubject: empty\r\n\r\n"},
};

TEST(DkimSamples, Write) {
  const char* out = std::getenv("SMTPBLAST_DKIM_SAMPLES");
  if (out == nullptr || *out == '\0') GTEST_SKIP() << "SMTPBLAST_DKIM_SAMPLES not set";
  fs::create_directories(out);
  struct Alg {
    const char* alg;
    const char* env;
  } algs[] = {{"rsa-sha256", "SMTPBLAST_DKIM_RSA_KEY"},
              {"ed25519-sha256", "SMTPBLAST_DKIM_ED25519_KEY"}};
  int written = 0;
  for (const auto& a : algs) {
    const char* k = std::getenv(a.env);
    std::string key = (k != nullptr && *k != '\0') ? k : key_file(a.alg);
    for (const char* canon : {"relaxed", "simple"}) {
      auto signer = make_signer(a.alg, canon, key);
      ASSERT_NE(signer, nullptr);
      EVP_PKEY* pub = load_key(key);
      for (const auto& s : kSamples) {
        std::string hdr;
        ASSERT_TRUE(signer->sign(split_every(s.text, 29), hdr).ok()) << s.name;
        std::string msg = hdr + s.text;
        EXPECT_TRUE(verify_message(msg, pub).sig_ok) << s.name;
        std::string base = std::string(out) + "/" + a.alg + "." + canon + "." + s.name;
        write_file(base + ".eml", msg, 0644);
        write_file(base + ".txt", signer->dns_txt_record() + "\n", 0644);
        ++written;
      }
      EVP_PKEY_free(pub);
    }
  }
  EXPECT_EQ(written, 4 * int(std::size(kSamples)));
}

}  // namespace
}  // namespace sb
