// Unit tests for DKIM signing and List-Unsubscribe inside CompiledTemplate::render: DATA and
// BDAT carry the same signature, stuffing happens after signing, the precomputed body hash
// equals the streamed one, tokens round-trip, and bad unsubscribe settings are refused.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "message/dkim.h"
#include "message/template.h"
#include "message/unsubscribe.h"

namespace sb {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kNow = 1700000000;
const std::string kSecret = "0123456789abcdef0123456789abcdef";

// Keys are made once per process (RSA 2048 keygen is slow) in a temp dir removed at exit.
std::shared_ptr<const DkimSigner> signer(const std::string& alg, const std::string& canon = "relaxed",
                                         const std::string& domain = "example.com") {
  static struct Dir {
    std::string path;
    Dir() {
      const char* t = std::getenv("TMPDIR");
      path = std::string(t != nullptr && *t != '\0' ? t : "/tmp") + "/sb-tplsign-XXXXXX";
      if (::mkdtemp(path.data()) == nullptr) std::abort();
    }
    ~Dir() { fs::remove_all(path); }
  } dir;
  static std::map<std::string, std::string> files;
  std::string& file = files[alg];
  if (file.empty()) {
    EVP_PKEY* k = alg == "rsa-sha256" ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t(2048))
                                      : EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
    if (k == nullptr) std::abort();
    file = dir.path + "/" + alg + ".pem";
    FILE* f = std::fopen(file.c_str(), "wb");
    PEM_write_PrivateKey(f, k, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
    ::chmod(file.c_str(), 0600);
    EVP_PKEY_free(k);
  }
  DkimKeyConfig cfg;
  cfg.key_file = file;
  cfg.domain = domain;
  cfg.selector = alg == "rsa-sha256" ? "r2024" : "e2024";
  cfg.algorithm = alg;
  cfg.header_canon = canon;
  cfg.body_canon = canon;
  auto s = DkimSigner::create(cfg, [] { return int64_t(42); });
  if (!s.ok()) {
    ADD_FAILURE() << s.error().message;
    return nullptr;
  }
  return std::shared_ptr<const DkimSigner>(std::move(s).value());
}

CompiledTemplate compile(const std::string& raw, const TemplateOptions& o,
                         const std::vector<std::string>& fields = {"name"}) {
  auto t = CompiledTemplate::compile(raw, o);
  if (!t.ok()) {
    ADD_FAILURE() << t.error().message;
    std::abort();
  }
  EXPECT_TRUE(t->bind(fields).ok());
  return std::move(t).value();
}

std::string render(const CompiledTemplate& t, bool dot_stuff, std::string_view email = "a@b.example",
                   const std::vector<std::string>& values = {"Ann"}) {
  RenderInput in;
  in.email = email;
  in.values = &values;
  in.recipient_id = 7;
  in.now = kNow;
  RenderedMessage m;
  Status s = t.render(in, dot_stuff, m);
  EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
  std::string flat = m.flatten();
  EXPECT_EQ(flat.size(), m.size);
  return flat;
}

// The DKIM-Signature fields at the top of a message.
std::string signatures(const std::string& msg) {
  size_t end = 0;
  while (msg.compare(end, 15, "DKIM-Signature:") == 0) {
    end = msg.find("\r\n", end);
    while (end != std::string::npos && (msg[end + 2] == '\t' || msg[end + 2] == ' ')) {
      end = msg.find("\r\n", end + 2);
    }
    end += 2;
  }
  return msg.substr(0, end);
}

std::string undot(const std::string& stuffed) {
  std::string r;
  for (size_t i = 0; i < stuffed.size(); ++i) {
    if (stuffed[i] == '.' && (i == 0 || stuffed[i - 1] == '\n') && i + 1 < stuffed.size() &&
        stuffed[i + 1] == '.') {
      continue;
    }
    r.push_back(stuffed[i]);
  }
  return r;
}

const std::string kDotTemplate =
    "From: News <news@example.com>\n"
    "Subject: Hello {{name}}\n"
    "\n"
    ".starts with a dot\n"
    "..two dots\n"
    ".\n"
    "Dear {{name}},\n"
    ".{{name}} after a dot\n"
    "end\n\n\n";

TEST(TemplateSign, DataAndBdatCarryTheSameSignatures) {
  for (const std::string& body : {kDotTemplate, std::string("From: a@example.com\n\n.static\n")}) {
    TemplateOptions o;
    o.task_key = "k1";
    o.dkim = {signer("rsa-sha256"), signer("ed25519-sha256")};
    CompiledTemplate t = compile(body, o);
    std::string data = render(t, true), bdat = render(t, false);
    std::string sig = signatures(bdat);
    ASSERT_NE(sig.find("a=rsa-sha256"), std::string::npos);
    ASSERT_NE(sig.find("a=ed25519-sha256"), std::string::npos);
    EXPECT_LT(sig.find("a=rsa-sha256"), sig.find("a=ed25519-sha256"));  // the given order
    EXPECT_NE(sig.find("t=1700000000;"), std::string::npos);           // RenderInput::now
    EXPECT_EQ(signatures(data), sig);
    EXPECT_EQ(undot(data), bdat);
    EXPECT_NE(data, bdat);  // and DATA was stuffed
    // Same input, same bytes: a backup copy rendered later is the message that was sent.
    EXPECT_EQ(render(t, true), data);
  }
}

TEST(TemplateSign, LinesStartingWithADotAreStuffedAfterSigning) {
  TemplateOptions o;
  o.task_key = "k1";
  o.dkim = {signer("ed25519-sha256")};
  CompiledTemplate t = compile(kDotTemplate, o);
  std::string data = render(t, true, "a@b.example", {"Ann"});
  EXPECT_NE(data.find("\r\n\r\n..starts with a dot\r\n...two dots\r\n..\r\nDear Ann,\r\n..Ann "),
            std::string::npos)
      << data;
  // What is signed is the unstuffed message: the same signer over the unsigned render (no
  // signers, same options otherwise) gives exactly the field in the message.
  TemplateOptions plain = o;
  plain.dkim.clear();
  CompiledTemplate u = compile(kDotTemplate, plain);
  RenderedMessage m;
  std::vector<std::string> v = {"Ann"};
  RenderInput in{"a@b.example", &v, 7, kNow};
  ASSERT_TRUE(u.render(in, false, m).ok());
  std::string field;
  ASSERT_TRUE(o.dkim[0]->sign(m.pieces, field, {}, kNow).ok());
  EXPECT_EQ(signatures(data), field);
  EXPECT_EQ(undot(data), field + m.flatten());
}

TEST(TemplateSign, PrecomputedBodyHashEqualsStreaming) {
  // A body without merge values is hashed once at compile time; with them, per recipient.
  const std::string static_body =
      "From: News <news@example.com>\nSubject: {{name}}\n\nSame body\r\n  for  everyone \n\n\n";
  for (std::string canon : {"relaxed", "simple"}) {
    for (const std::string& raw : {static_body, kDotTemplate}) {
      for (std::string alg : {"rsa-sha256", "ed25519-sha256"}) {
        SCOPED_TRACE(canon + " " + alg + " " + raw.substr(0, 40));
        TemplateOptions o;
        o.task_key = "k2";
        o.dkim = {signer(alg, canon)};
        CompiledTemplate t = compile(raw, o);
        TemplateOptions plain = o;
        plain.dkim.clear();
        CompiledTemplate u = compile(raw, plain);
        for (std::string name : {"Ann", "Bob Lee-Smith"}) {
          std::vector<std::string> v = {name};
          RenderInput in{"x@y.example", &v, 7, kNow};  // as render() does
          RenderedMessage m;
          ASSERT_TRUE(u.render(in, false, m).ok());
          std::string streamed;
          ASSERT_TRUE(o.dkim[0]->sign(m.pieces, streamed, {}, kNow).ok());  // body streamed
          EXPECT_EQ(signatures(render(t, false, "x@y.example", v)), streamed);
          EXPECT_EQ(o.dkim[0]->precompute_body_hash(m.pieces).size(), 44u);
        }
      }
    }
  }
}

TEST(TemplateSign, NoSignersNoChange) {
  TemplateOptions o;
  o.task_key = "k3";
  CompiledTemplate t = compile(kDotTemplate, o);
  std::string m = render(t, false);
  EXPECT_EQ(m.find("DKIM-Signature"), std::string::npos);
  EXPECT_EQ(m.find("List-Unsubscribe"), std::string::npos);
  EXPECT_EQ(m.find("Precedence"), std::string::npos);
}

TEST(TemplateSign, AlignmentWarning) {
  TemplateOptions o;
  o.dkim = {signer("ed25519-sha256", "relaxed", "mail.example.com")};
  EXPECT_TRUE(compile("From: a@example.com\n\nx\n", o).warnings().size() == 1);
  EXPECT_NE(compile("From: a@example.com\n\nx\n", o).warnings()[0].find("DMARC"),
            std::string::npos);
  EXPECT_TRUE(compile("From: a@news.mail.example.com\n\nx\n", o).warnings().empty());
  EXPECT_TRUE(compile("From: A <a@mail.example.com>\n\nx\n", o).warnings().empty());
}

TEST(TemplateUnsubscribe, HeadersTokenAndPercentEncoding) {
  TemplateOptions o;
  o.task_key = "task9";
  o.unsubscribe.url = "https://example.com/u/{{token}}?n={{ name }}&e={{email}}";
  o.unsubscribe.mailto = "unsub@example.com?subject=stop";
  o.unsubscribe.secret = kSecret;
  o.dkim = {signer("ed25519-sha256")};
  CompiledTemplate t = compile("From: a@example.com\nFeedback-ID: 1:c:x\n\nbody\n", o);
  std::string m = render(t, false, "jo+x@b.example", {"Jo Ä/&"});
  size_t lu = m.find("\r\nList-Unsubscribe:");
  ASSERT_NE(lu, std::string::npos) << m;
  size_t p = m.find("https://example.com/u/", lu);
  ASSERT_NE(p, std::string::npos);
  p += 22;
  std::string token = m.substr(p, m.find('?', p) - p);
  auto v = verify_token(kSecret, token);
  ASSERT_TRUE(v.ok()) << token;
  EXPECT_EQ(v->recipient, "jo+x@b.example");
  EXPECT_EQ(v->task_id, "task9");
  EXPECT_NE(m.find("?n=Jo%20%C3%84%2F%26&e=jo%2Bx%40b.example>,\r\n <mailto:unsub@example.com"
                   "?subject=stop>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"),
            std::string::npos)
      << m;
  // Both signed, Feedback-ID too, and no Precedence: bulk.
  std::string sig = signatures(m);
  for (size_t f; (f = sig.find("\r\n\t")) != std::string::npos;) sig.erase(f, 3);  // unfold
  EXPECT_NE(sig.find("list-unsubscribe:list-unsubscribe-post"), std::string::npos) << sig;
  EXPECT_NE(sig.find("feedback-id"), std::string::npos) << sig;
  EXPECT_EQ(m.find("Precedence"), std::string::npos);
  // Every line of the header block within the limits.
  for (size_t a = 0, b; (b = m.find("\r\n", a)) != std::string::npos && b > a; a = b + 2) {
    EXPECT_LE(b - a, 998u);
  }
}

TEST(TemplateUnsubscribe, MailtoOnlyHasNoPost) {
  TemplateOptions o;
  o.unsubscribe.mailto = "mailto:u@example.com";
  std::string m = render(compile("From: a@example.com\n\nx\n", o), false);
  EXPECT_NE(m.find("List-Unsubscribe: <mailto:u@example.com>\r\n"), std::string::npos) << m;
  EXPECT_EQ(m.find("List-Unsubscribe-Post"), std::string::npos);
}

TEST(TemplateUnsubscribe, BadSettingsAreConfigErrors) {
  struct Case {
    std::string url, mailto, secret, tpl, want;
  } cases[] = {
      {"http://example.com/u", "", "", "", "https://"},
      {"mailto:u@example.com", "", "", "", "https://"},
      {"https:///u", "", "", "", "no host"},
      {"https://example.com/u?t={{token}}", "", "", "", "--unsubscribe-secret-file"},
      {"https://example.com/u?t={{token}}", "", "short", "", "--unsubscribe-secret-file"},
      {"https://example.com/u?t={{token", "", kSecret, "", "unterminated"},
      {"https://example.com/u t", "", "", "", "0x20"},
      {"https://example.com/<u>", "", "", "", "'<'"},
      {"https://{{name}}.example.com/", "", "", "", "host"},
      {"", "no-at-sign", "", "", "not an address"},
      {"", "a@b, c@d", "", "", "not an address"},
      {"https://example.com/u", "", "", "List-Unsubscribe: <https://x.example/>\n",
       "own List-Unsubscribe"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.url + " | " + c.mailto);
    TemplateOptions o;
    o.unsubscribe.url = c.url;
    o.unsubscribe.mailto = c.mailto;
    o.unsubscribe.secret = c.secret;
    auto t = CompiledTemplate::compile("From: a@example.com\n" + c.tpl + "\nbody\n", o);
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.error().domain, ErrDomain::kConfig);
    EXPECT_NE(t.error().message.find(c.want), std::string::npos) << t.error().message;
  }
  // A merge field in the URL is bound like any other: an unknown one is named.
  TemplateOptions o;
  o.unsubscribe.url = "https://example.com/u?x={{nope}}";
  auto t = CompiledTemplate::compile("From: a@example.com\n\nbody\n", o);
  ASSERT_TRUE(t.ok());
  Status b = t->bind({"name"});
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().message.find("'nope'"), std::string::npos);
}

}  // namespace
}  // namespace sb
