// Unit tests for merged header fields and their encoders (src/message/header_field.h,
// src/message/encode.h): encoded-words, folding, addresses, HTML and URL filters.
#include "message/header_field.h"

#include <gtest/gtest.h>

#include <cctype>
#include <string>
#include <vector>

#include "message/encode.h"
#include "message/template.h"

namespace sb {
namespace {

std::string b64_decode(std::string_view s) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    int v = val(c);
    if (v < 0) break;
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(char((acc >> bits) & 0xFF));
    }
  }
  return out;
}

// Decodes a run of encoded-words separated by white space (which RFC 2047 §6.2 drops).
// Checks each word: at most 75 octets, whole UTF-8 characters, no padding but in the last.
std::string decode_words(std::string_view v, bool* ok) {
  std::string out;
  size_t words = 0;
  std::vector<std::string> raw;
  size_t i = 0;
  while (i < v.size()) {
    while (i < v.size() && (v[i] == ' ' || v[i] == '\r' || v[i] == '\n' || v[i] == '\t')) ++i;
    if (i >= v.size()) break;
    size_t e = v.find("?=", i + 10);
    if (e == std::string_view::npos) {
      *ok = false;
      return out;
    }
    raw.emplace_back(v.substr(i, e + 2 - i));
    i = e + 2;
  }
  for (const std::string& w : raw) {
    ++words;
    if (w.size() > 75) *ok = false;
    std::string dec;
    if (w.compare(0, 10, "=?UTF-8?B?") == 0) {
      std::string payload = w.substr(10, w.size() - 12);
      if (words < raw.size() && payload.find('=') != std::string::npos) *ok = false;
      dec = b64_decode(payload);
    } else if (w.compare(0, 10, "=?UTF-8?Q?") == 0) {
      std::string payload = w.substr(10, w.size() - 12);
      for (size_t k = 0; k < payload.size(); ++k) {
        if (payload[k] == '_') {
          dec.push_back(' ');
        } else if (payload[k] == '=') {
          dec.push_back(char(std::stoi(payload.substr(k + 1, 2), nullptr, 16)));
          k += 2;
        } else {
          dec.push_back(payload[k]);
        }
      }
    } else {
      *ok = false;
    }
    if (!dec.empty() && (uint8_t(dec[0]) & 0xC0) == 0x80) *ok = false;  // split character
    out += dec;
  }
  return out;
}

TEST(EncodedWords, RoundTripAndLimits) {
  const std::vector<std::string> inputs = {
      "J\xC3\xBCrgen",
      std::string(200, 'a'),
      "a\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E"
      "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E"
      "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E",  // misaligned CJK
      std::string(30, '\xF0') + "x",  // invalid UTF-8
      "\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80"
      "\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80"
      "\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80",  // emoji
      "e\xCC\x81 \"quoted\" _under_ =?x?= tab\t",
  };
  for (const auto& in : inputs) {
    for (size_t first_room : {75u, 40u, 20u, 0u}) {
      std::string out;
      append_encoded_words(out, in, first_room);
      bool ok = true;
      std::string dec = decode_words(out, &ok);
      if (in.find('\xF0') == std::string::npos || in.find('x') == std::string::npos) {
        EXPECT_TRUE(ok) << out;
      }
      EXPECT_EQ(dec, in) << out;
      for (unsigned char c : out) EXPECT_LT(c, 0x80);
    }
  }
}

TEST(BodyFilters, HtmlAndUrl) {
  struct Case {
    std::string in, html, url;
  };
  const std::vector<Case> cases = {
      {"plain", "plain", "plain"},
      {"Team <b>&</b>", "Team &lt;b&gt;&amp;&lt;/b&gt;", "Team%20%3Cb%3E%26%3C%2Fb%3E"},
      {"O\"Neil's", "O&quot;Neil&#39;s", "O%22Neil%27s"},
      {"J\xC3\xBCrgen", "J\xC3\xBCrgen", "J%C3%BCrgen"},
      {"a-b.c_d~e", "a-b.c_d~e", "a-b.c_d~e"},
  };
  for (const auto& c : cases) {
    std::string h, u;
    append_html_escaped(h, c.in);
    append_percent_encoded(u, c.in);
    EXPECT_EQ(h, c.html) << c.in;
    EXPECT_EQ(u, c.url) << c.in;
  }
}

// Renders a one-field template for each value and returns the field's unfolded text.
struct FieldCase {
  std::string tpl;    // the header line, with {{name}}
  std::string value;  // for {{name}}
  std::string want;   // the field as rendered, unfolded; or "ERROR: part of the message"
};

std::string render_field(const std::string& tpl, const std::string& value, bool* smtputf8) {
  TemplateOptions o;
  o.default_from = "s@example.com";
  o.task_key = "t";
  auto r = CompiledTemplate::compile(tpl + "\nX-End: s\n\nbody\n", o);
  if (!r.ok()) return "COMPILE: " + r.error().message;
  CompiledTemplate t = std::move(r).value();
  if (!t.bind({"name"}).ok()) return "BIND";
  std::vector<std::string> v{value};
  RenderedMessage m;
  Status s = t.render({"r@example.org", &v, 1, 0}, false, m);
  if (!s) return "ERROR: " + s.error().message;
  *smtputf8 = m.smtputf8;
  std::string flat = m.flatten();
  std::string field = flat.substr(0, flat.find("\r\nX-End: s"));
  for (size_t p; (p = field.find("\r\n")) != std::string::npos;) field.erase(p, 2);
  for (size_t p = 0, e; p < flat.size(); p = e + 2) {
    e = flat.find("\r\n", p);
    EXPECT_LE(e - p, 998u);
  }
  return field;
}

TEST(HeaderFieldRender, AddressTable) {
  const std::vector<FieldCase> cases = {
      {"To: {{name}} <x@example.org>", "Jane Doe", "To: Jane Doe <x@example.org>"},
      {"To: {{name}} <x@example.org>", "Smith, Jr.", "To: \"Smith, Jr.\" <x@example.org>"},
      {"To: {{name}} <x@example.org>", "O\"Neil", "To: \"O\\\"Neil\" <x@example.org>"},
      {"To: {{name}} <x@example.org>", "Team <b>&</b>", "To: \"Team <b>&</b>\" <x@example.org>"},
      {"To: {{name}} <x@example.org>", "a\\b", "To: \"a\\\\b\" <x@example.org>"},
      {"To: {{name}} <x@example.org>", "J\xC3\xBCrgen", "To: =?UTF-8?B?SsO8cmdlbg==?= <x@example.org>"},
      {"To: {{name}} <x@example.org>", "=?UTF-8?B?SGk=?=",
       "To: =?UTF-8?B?PT9VVEYtOD9CP1NHaz0/PQ==?= <x@example.org>"},
      {"To: {{name}} <x@example.org>", "", "To: <x@example.org>"},
      {"To: \"{{name}}, Team\" <x@example.org>", "Ops", "To: \"Ops, Team\" <x@example.org>"},
      {"To: {{name}}", "a@b.c", "To: a@b.c"},
      {"To: {{name}}", "Jane <a@b.c>", "To: Jane <a@b.c>"},
      {"To: {{name}}", "\"Doe, Jane\" <a@b.c>", "To: \"Doe, Jane\" <a@b.c>"},
      {"To: {{name}}", "a@b.c, evil@x.y", "ERROR: merge field 'name' for header 'To' is not one "
                                          "address: holds 2 addresses where one is expected"},
      {"To: {{name}}", "Smith, Jr. <a@b.c>", "ERROR: merge field 'name' for header 'To' is not one"},
      {"To: {{name}}", "not an address", "ERROR: merge field 'name' for header 'To' is not"},
      {"To: {{name}}@example.com", "user", "To: user@example.com"},
      {"To: {{name}}@example.com", "us er", "ERROR: merge field 'name' for header 'To' is not an "
                                            "address: it has ' ' before '@'"},
      {"To: <{{name}}>", "a@b.c>, <evil@x.y", "ERROR: merge field 'name' for header 'To' is not"},
      {"To: {{name}} <x@example.org>", "a\r\nBcc: e@x", "ERROR: merge field 'name' for header 'To' "
                                                        "contains a line break"},
      {"Cc: {{name}} <x@example.org>, Other <o@example.org>", "A, B",
       "Cc: \"A, B\" <x@example.org>, Other <o@example.org>"},
      {"Reply-To: {{name}}", "j\xC3\xB6rg@example.org", "Reply-To: j\xC3\xB6rg@example.org"},
      {"Reply-To: {{name}}", "jorg@b\xC3\xBC" "cher.example", "Reply-To: jorg@xn--bcher-kva.example"},
  };
  for (const auto& c : cases) {
    bool utf8 = false;
    std::string got = render_field(c.tpl, c.value, &utf8);
    if (c.want.rfind("ERROR", 0) == 0) {
      EXPECT_EQ(got.substr(0, c.want.size()), c.want) << c.tpl << " / " << c.value;
    } else {
      EXPECT_EQ(got, c.want) << c.tpl << " / " << c.value;
      EXPECT_EQ(utf8, c.value.find("\xC3\xB6") != std::string::npos) << c.value;
    }
  }
}

TEST(HeaderFieldRender, UnstructuredTable) {
  const std::vector<FieldCase> cases = {
      {"Subject: Hi {{name}}", "Bob", "Subject: Hi Bob"},
      {"Subject: Hi {{name}}!", "J\xC3\xBCrgen", "Subject: Hi =?UTF-8?B?SsO8cmdlbiE=?="},
      // The template's own non-ASCII text and the value are one encoded stretch.
      {"Subject: Gr\xC3\xBC\xC3\x9F" "e {{name}} und mehr", "Bob",
       "Subject: =?UTF-8?B?R3LDvMOfZQ==?= Bob und mehr"},
      {"Subject: Gr\xC3\xBC\xC3\x9F" "e {{name}} f\xC3\xBCr", "Bob",
       "Subject: =?UTF-8?B?R3LDvMOfZSBCb2IgZsO8cg==?="},
      {"Subject: {{name}}", "=?UTF-8?B?SGk=?=", "Subject: =?UTF-8?B?PT9VVEYtOD9CP1NHaz0/PQ==?="},
      {"Subject: {{name}}", std::string("a\x01" "b"), "Subject: =?UTF-8?B?YQFi?="},
      {"Subject: {{name}}", "x\ny", "ERROR: merge field 'name' for header 'Subject' contains a "
                                    "line break"},
      {"Subject: {{name}}", std::string(1000, 'n'), "ERROR: merge field 'name' makes header "
                                                    "'Subject' line 1001 octets long"},
      {"Subject: {{name|url}}", "x", "COMPILE: template line 1: the |url filter is for bodies"},
  };
  for (const auto& c : cases) {
    bool utf8 = false;
    std::string got = render_field(c.tpl, c.value, &utf8);
    if (c.want.rfind("ERROR", 0) == 0 || c.want.rfind("COMPILE", 0) == 0) {
      EXPECT_EQ(got.substr(0, c.want.size()), c.want) << c.tpl << " / " << c.value;
    } else {
      EXPECT_EQ(got, c.want) << c.tpl << " / " << c.value;
    }
  }
}

TEST(HeaderFieldCompile, LiteralNonAsciiAndDuplicates) {
  TemplateOptions o;
  o.default_from = "s@example.com";
  // Literal non-ASCII in the template's own headers is encoded once, at compile time.
  auto r = CompiledTemplate::compile(
      "From: \"Zo\xC3\xAB's Caf\xC3\xA9\" <news@example.com>\nSubject: M\xC3\xA4rz\n\nb\n", o);
  ASSERT_TRUE(r.ok()) << r.error().message;
  RenderedMessage m;
  ASSERT_TRUE(r.value().render({"r@example.org", nullptr, 1, 0}, true, m).ok());
  std::string flat = m.flatten();
  EXPECT_NE(flat.find("From: =?UTF-8?B?Wm/DqydzIENhZsOp?= <news@example.com>\r\n"),
            std::string::npos)
      << flat;
  EXPECT_NE(flat.find("Subject: =?UTF-8?B?TcOkcno=?=\r\n"), std::string::npos) << flat;
  EXPECT_EQ(r.value().from_address(), "news@example.com");
  EXPECT_FALSE(m.eight_bit);
  // RFC 5322 §3.6: one of each.
  for (const char* h : {"From", "Subject", "To", "Date", "Message-ID", "Reply-To"}) {
    std::string tpl = std::string(h) + ": a@example.com\nX-Other: 1\n" + h + ": b@example.com\n\nb\n";
    auto e = CompiledTemplate::compile(tpl, o);
    ASSERT_FALSE(e.ok()) << h;
    EXPECT_EQ(e.error().message, std::string("template has 2 '") + h +
                                     ":' headers (lines 1 and 3); a message may have only one "
                                     "(RFC 5322 §3.6)");
  }
  // Other fields may repeat.
  EXPECT_TRUE(CompiledTemplate::compile("Comments: a\nComments: b\n\nb\n", o).ok());
  // Non-ASCII where it cannot be encoded, a bad address in a field that must be encoded (an
  // ASCII field without merge values is left as the author wrote it), a group with merge
  // values.
  EXPECT_NE(CompiledTemplate::compile("Message-ID: <\xC3\xA4@x>\n\nb\n", o).error().message.find(
                "non-ASCII"),
            std::string::npos);
  auto bad = CompiledTemplate::compile("Reply-To: J\xC3\xBCrgen <not an address>\n\nb\n", o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("line 1"), std::string::npos) << bad.error().message;
  EXPECT_NE(CompiledTemplate::compile("To: list: {{x}};\n\nb\n", o).error().message.find("group"),
            std::string::npos);
}

// Decodes quoted-printable (soft breaks removed).
std::string qp(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '=' && i + 2 < s.size() && s[i + 1] == '\r') {
      i += 2;
    } else if (s[i] == '=' && i + 2 < s.size() && std::isxdigit(uint8_t(s[i + 1])) &&
               std::isxdigit(uint8_t(s[i + 2]))) {
      out.push_back(char(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

TEST(BodyParts, HtmlEscapingRawAndUrlPerPart) {
  TemplateOptions o;
  o.default_from = "s@example.com";
  auto r = CompiledTemplate::compile(
      "Subject: s\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"b\"\n\n"
      "preamble\n--b\nContent-Type: text/plain; charset=utf-8\n\nT {{name}} {{{name}}}\n"
      "--b\nContent-Type: text/html; charset=utf-8\n\n"
      "<p>{{name}} {{{name}}}</p><a href=\"x?n={{name|url}}\">l</a>\n--b--\nepilogue\n",
      o);
  ASSERT_TRUE(r.ok()) << r.error().message;
  CompiledTemplate t = std::move(r).value();
  ASSERT_TRUE(t.bind({"name"}).ok());
  std::vector<std::string> v{"Team <b>&</b> \"O'Neil\" J\xC3\xBCrgen"};
  RenderedMessage m;
  ASSERT_TRUE(t.render({"r@example.org", &v, 1, 0}, true, m).ok());
  std::string flat = m.flatten();
  EXPECT_FALSE(m.eight_bit);
  std::string d = qp(flat);
  EXPECT_NE(d.find("T " + v[0] + " " + v[0] + "\r\n"), std::string::npos) << d;
  EXPECT_NE(d.find("<p>Team &lt;b&gt;&amp;&lt;/b&gt; &quot;O&#39;Neil&quot; J\xC3\xBCrgen " + v[0] +
                   "</p><a href=\"x?n=Team%20%3Cb%3E%26%3C%2Fb%3E%20%22O%27Neil%22%20J%C3%BCrgen\">"),
            std::string::npos)
      << d;
  EXPECT_EQ(flat.find("8bit"), std::string::npos);
  // Placeholders where they cannot be encoded for the part are errors at compile time.
  EXPECT_NE(CompiledTemplate::compile("Content-Type: multipart/mixed; boundary=b\n\n{{x}}\n--b\n"
                                      "\nx\n--b--\n",
                                      o)
                .error()
                .message.find("outside every MIME part"),
            std::string::npos);
  EXPECT_NE(CompiledTemplate::compile("Content-Type: multipart/mixed; boundary=b\n\nGr\xC3\xBC\n"
                                      "--b\n\nx\n--b--\n",
                                      o)
                .error()
                .message.find("non-ASCII text outside every MIME part"),
            std::string::npos);
  EXPECT_NE(CompiledTemplate::compile("Content-Type: multipart/mixed; boundary=b\n\n--b\n"
                                      "Content-Transfer-Encoding: base64\n\n{{x}}\n--b--\n",
                                      o)
                .error()
                .message.find("base64"),
            std::string::npos);
  EXPECT_NE(CompiledTemplate::compile("Subject: {{x|upper}}\n\nb\n", o).error().message.find(
                "unknown filter"),
            std::string::npos);
}

TEST(BodyParts, NonAsciiFileNamesBecomeRfc2231Parameters) {
  TemplateOptions o;
  o.default_from = "s@example.com";
  auto r = CompiledTemplate::compile(
      "Subject: s\nContent-Type: multipart/mixed; boundary=b\n\n--b\n"
      "Content-Type: application/pdf; name=\"Bericht M\xC3\xA4rz.pdf\"\n"
      "Content-Disposition: attachment; filename=\"Bericht M\xC3\xA4rz.pdf\"; size=3\n"
      "Content-Transfer-Encoding: base64\n\nJVBE\n--b--\n",
      o);
  ASSERT_TRUE(r.ok()) << r.error().message;
  RenderedMessage m;
  ASSERT_TRUE(r.value().render({"r@example.org", nullptr, 1, 0}, true, m).ok());
  std::string flat = m.flatten();
  EXPECT_FALSE(m.eight_bit) << flat;
  EXPECT_NE(flat.find("Content-Type: application/pdf; name*=utf-8''Bericht%20M%C3%A4rz.pdf\r\n"),
            std::string::npos)
      << flat;
  EXPECT_NE(flat.find("Content-Disposition: attachment; filename*=utf-8''Bericht%20M%C3%A4rz.pdf;"
                      " size=3\r\n"),
            std::string::npos)
      << flat;
  // Non-ASCII outside a parameter value cannot be encoded in a structured field.
  auto bad = CompiledTemplate::compile(
      "Subject: s\nContent-Type: multipart/mixed; boundary=b\n\n--b\n"
      "Content-Descr\xC3\xA4ption: x\n\nhi\n--b--\n",
      o);
  EXPECT_FALSE(bad.ok());
}

}  // namespace
}  // namespace sb
