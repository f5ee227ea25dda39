// Unit tests for one-click unsubscribe tokens and headers (src/message/unsubscribe.h).
#include "message/unsubscribe.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

namespace sb {
namespace {

constexpr std::string_view kSecret = "0123456789abcdef0123456789abcdef";

TEST(UnsubToken, RoundTrip) {
  for (std::string_view rcpt : {"jane@example.org", "a@b", "", "x+tag@sub.example.co.uk"}) {
    for (std::string_view task : {"t1", "", "campaign-2024-03"}) {
      std::string tok = make_token(kSecret, task, rcpt);
      for (char c : tok) {  // URL-safe as it is
        ASSERT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') << tok;
      }
      auto r = verify_token(kSecret, tok);
      ASSERT_TRUE(r.ok()) << r.error().describe();
      EXPECT_EQ(r->recipient, rcpt);
      EXPECT_EQ(r->task_id, task);
    }
  }
  // Deterministic: the same recipient gets the same URL on every retry.
  EXPECT_EQ(make_token(kSecret, "t", "a@b"), make_token(kSecret, "t", "a@b"));
  EXPECT_NE(make_token(kSecret, "t", "a@b"), make_token(kSecret, "u", "a@b"));
}

TEST(UnsubToken, TamperingFails) {
  const std::string tok = make_token(kSecret, "t1", "jane@example.org");
  // Every single-character change anywhere in the token is caught.
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (size_t i = 0; i < tok.size(); ++i) {
    std::string bad = tok;
    bad[i] = alphabet[(alphabet.find(tok[i]) + 1) % alphabet.size()];
    auto r = verify_token(kSecret, bad);
    EXPECT_FALSE(r.ok()) << "position " << i;
    if (!r.ok()) {
      EXPECT_EQ(r.error().domain, ErrDomain::kInput);
    }
  }
  // Another secret; truncation; extension; garbage.
  EXPECT_FALSE(verify_token("another secret of 16+ bytes", tok).ok());
  EXPECT_FALSE(verify_token(kSecret, tok.substr(0, tok.size() - 1)).ok());
  EXPECT_FALSE(verify_token(kSecret, tok + "A").ok());
  EXPECT_FALSE(verify_token(kSecret, tok + "AA").ok());
  for (std::string_view g :
       {"", "A", "AAAA", "not a token!", "%2F%2F", "////", "AQAQamFuZUBleGFtcGxl"}) {
    EXPECT_FALSE(verify_token(kSecret, g).ok()) << g;
  }
  // A forged token with the right layout but a wrong MAC.
  std::string raw = std::string("\x01\x00\x03", 3) + "a@bt1" + std::string(16, '\0');
  EXPECT_FALSE(verify_token(kSecret, base64url_encode(raw)).ok());
  // The recipient moved into the task (different length byte) does not verify either.
  std::string t2 = make_token(kSecret, "b", "a@");
  EXPECT_TRUE(verify_token(kSecret, t2).ok());
}

TEST(UnsubToken, Base64UrlTable) {
  struct C {
    const char* in;
    const char* out;
  } cases[] = {{"", ""},        {"f", "Zg"},        {"fo", "Zm8"},
               {"foo", "Zm9v"}, {"foob", "Zm9vYg"}, {"\xfb\xff", "-_8"}};
  for (const auto& c : cases) {
    EXPECT_EQ(base64url_encode(c.in), c.out);
    std::string back;
    ASSERT_TRUE(base64url_decode(c.out, back)) << c.out;
    EXPECT_EQ(back, c.in);
  }
  std::string out;
  EXPECT_FALSE(base64url_decode("Zh", out));  // non-zero leftover bits: not canonical
  EXPECT_FALSE(base64url_decode("Z", out));
  EXPECT_FALSE(base64url_decode("Zm+v", out));
}

TEST(UnsubSecret, LoadsAndRefusesShort) {
  char dir[] = "/tmp/sb-unsub-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  std::string good = std::string(dir) + "/good", bad = std::string(dir) + "/short";
  std::ofstream(good) << "0123456789abcdef0123\n";
  std::ofstream(bad) << "short-secret\n";
  auto r = load_unsubscribe_secret(good);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, "0123456789abcdef0123");
  r = load_unsubscribe_secret(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().domain, ErrDomain::kConfig);
  EXPECT_NE(r.error().message.find(bad), std::string::npos);
  EXPECT_NE(r.error().message.find("16"), std::string::npos);
  r = load_unsubscribe_secret(std::string(dir) + "/missing");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().domain, ErrDomain::kConfig);
  ::unlink(good.c_str());
  ::unlink(bad.c_str());
  ::rmdir(dir);
}

TEST(UnsubHeaders, Builders) {
  std::string tok = make_token(kSecret, "t1", "jane@example.org");
  std::string url = expand_unsubscribe_url("https://example.com/u?t={{token}}", tok);
  EXPECT_EQ(url, "https://example.com/u?t=" + tok);
  EXPECT_EQ(expand_unsubscribe_url("https://e/{{token}}/{{token}}", "x"), "https://e/x/x");
  EXPECT_EQ(expand_unsubscribe_url("https://e/static", "x"), "https://e/static");
  EXPECT_EQ(list_unsubscribe_header("https://e/u?t=1"), "List-Unsubscribe: <https://e/u?t=1>\r\n");
  EXPECT_EQ(list_unsubscribe_header("https://e/u", "unsub@example.com"),
            "List-Unsubscribe: <https://e/u>,\r\n <mailto:unsub@example.com>\r\n");
  EXPECT_EQ(list_unsubscribe_header("https://e/u", "mailto:u@e?subject=unsub"),
            "List-Unsubscribe: <https://e/u>,\r\n <mailto:u@e?subject=unsub>\r\n");
  EXPECT_EQ(list_unsubscribe_post_header(),
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n");
}

}  // namespace
}  // namespace sb
