// Unit tests for the template compiler and merge renderer (src/message/template.h).
#include "message/template.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sb {
namespace {

// Headers that stop the compiler from generating any, so expectations can be exact.
constexpr std::string_view kFullHeaders =
    "From: a@example.com\nTo: b@example.org\nDate: x\nMessage-ID: <m@x>\n";

TemplateOptions default_opts() {
  TemplateOptions o;
  o.default_from = "Sender <sender@example.com>";
  o.task_key = "t1";
  return o;
}

CompiledTemplate compile_ok(std::string_view raw, const TemplateOptions& o = default_opts()) {
  auto r = CompiledTemplate::compile(raw, o);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().describe()) << "\n--- template:\n" << raw;
  if (!r.ok()) return CompiledTemplate::compile("", o).value();
  return std::move(r).value();
}

std::string compile_error(std::string_view raw, const TemplateOptions& o = default_opts()) {
  auto r = CompiledTemplate::compile(raw, o);
  EXPECT_FALSE(r.ok()) << "compiled, but should not have:\n" << raw;
  return r.ok() ? std::string() : r.error().message;
}

struct Rendered {
  std::string text;
  RenderedMessage msg;
};

// Renders with one field "name" (plus email) and checks the RenderedMessage invariants.
std::string render(const CompiledTemplate& t, std::string_view name_value, bool dot_stuff = true,
                   std::string_view email = "r@example.org", int64_t id = 42) {
  CompiledTemplate b = t;
  Status s = b.bind({"name"});
  EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
  std::vector<std::string> values{std::string(name_value)};
  RenderedMessage out;
  Status r = b.render({email, &values, id, 1700000000}, dot_stuff, out);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  std::string flat = out.flatten();
  EXPECT_EQ(flat.size(), out.size);
  return flat;
}

std::string body_of(const std::string& msg) {
  size_t p = msg.find("\r\n\r\n");
  return p == std::string::npos ? std::string("<no separator>") : msg.substr(p + 4);
}

// Header section (up to and including the last header's CRLF).
std::string headers_of(const std::string& msg) {
  size_t p = msg.find("\r\n\r\n");
  return p == std::string::npos ? msg : msg.substr(0, p + 2);
}

TEST(TemplateLineEnds, NormalisedToCrlf) {
  struct Case {
    const char* name;
    std::string body;
    std::string want;
  };
  const std::vector<Case> cases = {
      {"lf", "one\ntwo\n", "one\r\ntwo\r\n"},
      {"crlf", "one\r\ntwo\r\n", "one\r\ntwo\r\n"},
      {"bare cr", "one\rtwo\r", "one\r\ntwo\r\n"},
      {"mixed", "a\r\nb\nc\rd\n", "a\r\nb\r\nc\r\nd\r\n"},
      {"lf cr is two line ends", "a\n\rb\n", "a\r\n\r\nb\r\n"},
      {"no final newline", "last line", "last line\r\n"},
      {"empty body", "", ""},
      {"blank lines kept", "a\n\n\nb\n", "a\r\n\r\n\r\nb\r\n"},
  };
  for (const auto& c : cases) {
    for (const char* eol : {"\n", "\r\n", "\r"}) {
      std::string raw(kFullHeaders);
      for (size_t p = 0; (p = raw.find('\n', p)) != std::string::npos; p += strlen(eol)) {
        raw.replace(p, 1, eol);
      }
      raw += eol + c.body;
      std::string out = render(compile_ok(raw), "");
      EXPECT_EQ(out,
                "From: a@example.com\r\nTo: b@example.org\r\nDate: x\r\nMessage-ID: <m@x>\r\n"
                "\r\n" +
                    c.want)
          << c.name << " with header line end " << (eol[0] == '\r' ? "CR..." : "LF");
    }
  }
}

TEST(TemplateDotStuffing, Table) {
  struct Case {
    const char* name;
    std::string body;
    std::string value;
    std::string want_data;  // dot_stuff = true
    std::string want_bdat;  // dot_stuff = false
  };
  const std::vector<Case> cases = {
      {"line starts with dot", ".hidden\n", "", "..hidden\r\n", ".hidden\r\n"},
      {"line of only a dot", "a\n.\nb\n", "", "a\r\n..\r\nb\r\n", "a\r\n.\r\nb\r\n"},
      {"body starts blank then dot", "\n.\n", "", "\r\n..\r\n", "\r\n.\r\n"},
      {"dot not at line start", "a.b\n", "", "a.b\r\n", "a.b\r\n"},
      {"value starts with dot at line start", "{{name}}\n", ".x", "..x\r\n", ".x\r\n"},
      {"value starts with dot mid line", "a {{name}}\n", ".x", "a .x\r\n", "a .x\r\n"},
      {"value containing newline dot", "{{name}}\n", "a\n.b", "a\r\n..b\r\n", "a\r\n.b\r\n"},
      {"value is a lone dot line", "x\n{{name}}\ny\n", ".", "x\r\n..\r\ny\r\n", "x\r\n.\r\ny\r\n"},
      {"empty value then literal dot", "{{name}}.tail\n", "", "..tail\r\n", ".tail\r\n"},
      {"value ends with newline then literal dot", "{{name}}.y\n", "x\n", "x\r\n..y\r\n",
       "x\r\n.y\r\n"},
      {"value crlf and cr normalised", "{{name}}\n", "a\r\n.b\r.c", "a\r\n..b\r\n..c\r\n",
       "a\r\n.b\r\n.c\r\n"},
      {"value dot at end, no final newline", "{{name}}", "x\n.", "x\r\n..\r\n", "x\r\n.\r\n"},
  };
  for (const auto& c : cases) {
    CompiledTemplate t = compile_ok(std::string(kFullHeaders) + "\n" + c.body);
    EXPECT_EQ(body_of(render(t, c.value, true)), c.want_data) << c.name;
    EXPECT_EQ(body_of(render(t, c.value, false)), c.want_bdat) << c.name;
  }
}

TEST(TemplateDotStuffing, DottedHeaderNameIsStuffedToo) {
  CompiledTemplate t = compile_ok(std::string(kFullHeaders) + ".odd: yes\n\nbody\n");
  EXPECT_NE(render(t, "", true).find("\r\n..odd: yes\r\n"), std::string::npos);
  EXPECT_NE(render(t, "", false).find("\r\n.odd: yes\r\n"), std::string::npos);
}

TEST(TemplateFinalNewline, AddedOnlyWhenMissing) {
  struct Case {
    std::string body;
    std::string value;
    std::string want;
  };
  const std::vector<Case> cases = {
      {"Hi {{name}}", "Bob", "Hi Bob\r\n"},
      {"Hi {{name}}", "Bob\n", "Hi Bob\r\n"},
      {"Hi {{name}}", "Bob\r", "Hi Bob\r\n"},
      {"Hi {{name}}\n", "Bob", "Hi Bob\r\n"},
      {"Hi", "", "Hi\r\n"},
  };
  for (const auto& c : cases) {
    CompiledTemplate t = compile_ok(std::string(kFullHeaders) + "\n" + c.body);
    EXPECT_EQ(body_of(render(t, c.value)), c.want) << c.body << " / " << c.value;
  }
}

TEST(TemplateHeaderInjection, HeaderValuesWithBreaksFailBodyIsFine) {
  CompiledTemplate subj = compile_ok("Subject: Hello {{name}}\n\nbody\n");
  CompiledTemplate to = compile_ok("To: {{name}} <x@example.org>\n\nbody\n");
  CompiledTemplate body = compile_ok("Subject: s\n\nHello {{name}}\n");
  const std::vector<std::pair<std::string, std::string>> values = {
      {"CR", "a\rBcc: evil@example.com"},
      {"LF", "a\nBcc: evil@example.com"},
      {"CRLF", "a\r\nBcc: evil@example.com"},
      {"NUL", std::string("a\0b", 3)},
  };
  for (const auto& [label, v] : values) {
    for (auto* t : {&subj, &to}) {
      CompiledTemplate b = *t;
      ASSERT_TRUE(b.bind({"name"}).ok());
      std::vector<std::string> vals{v};
      RenderedMessage out;
      Status s = b.render({"r@example.org", &vals, 1, 0}, true, out);
      ASSERT_FALSE(s.ok()) << label;
      EXPECT_EQ(s.error().domain, ErrDomain::kInput);
      std::string header = t == &subj ? "Subject" : "To";
      std::string want = label == "NUL" ? "contains a NUL byte" : "contains a line break";
      EXPECT_EQ(s.error().message, "merge field 'name' for header '" + header + "' " + want)
          << label;
    }
    std::string out = render(body, v);
    EXPECT_EQ(headers_of(out).find("Bcc:"), std::string::npos) << label;
    EXPECT_NE(out.find("Hello a"), std::string::npos) << label;
  }
}

TEST(TemplateHeaderInjection, RecipientAddressWithBreakFails) {
  CompiledTemplate t = compile_ok("Subject: s\n\nbody\n");  // To: is generated from the email
  RenderedMessage out;
  Status s = t.render({"a@b\r\nBcc: c@d", nullptr, 1, 0}, true, out);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("line break"), std::string::npos) << s.error().message;
}

// Minimal RFC 2047 "B" decoder for checking the encoder's output.
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

// Unfolds a header value and decodes encoded-words; white space between two words is dropped.
std::string decode_2047(std::string_view v, std::vector<size_t>* word_lengths) {
  std::string unfolded;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v.substr(i, 2) == "\r\n") {
      ++i;
      continue;
    }
    unfolded.push_back(v[i]);
  }
  std::string out;
  std::string pending_ws;
  bool last_was_word = false;
  size_t i = 0;
  while (i < unfolded.size()) {
    if (unfolded.compare(i, 10, "=?UTF-8?B?") == 0) {
      size_t end = unfolded.find("?=", i + 10);
      if (end == std::string::npos) break;
      if (!last_was_word) out += pending_ws;
      pending_ws.clear();
      out += b64_decode(std::string_view(unfolded).substr(i + 10, end - i - 10));
      if (word_lengths) word_lengths->push_back(end + 2 - i);
      i = end + 2;
      last_was_word = true;
    } else if (unfolded[i] == ' ' || unfolded[i] == '\t') {
      pending_ws.push_back(unfolded[i++]);
    } else {
      out += pending_ws;
      pending_ws.clear();
      out.push_back(unfolded[i++]);
      last_was_word = false;
    }
  }
  return out + pending_ws;
}

TEST(TemplateRfc2047, NonAsciiSubjectValueRoundTrips) {
  const std::vector<std::string> values = {
      "J\xC3\xBCrgen",  // Jürgen
      "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xE3\x83\x86\xE3\x82\xB9\xE3\x83\x88 "
      "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xE3\x83\x86\xE3\x82\xB9\xE3\x83\x88 "
      "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xE3\x83\x86\xE3\x82\xB9\xE3\x83\x88",  // long CJK
      std::string(100, 'a') + "\xF0\x9F\x98\x80" + std::string(50, 'b'),  // emoji at a split
  };
  CompiledTemplate t = compile_ok("Subject: Hello {{name}}!\nFrom: a@example.com\n\nbody\n");
  for (const auto& v : values) {
    std::string out = render(t, v);
    std::string hdrs = headers_of(out);
    size_t s = hdrs.find("Subject: ");
    ASSERT_NE(s, std::string::npos);
    size_t e = hdrs.find("\r\nFrom:", s);
    std::string raw_value = hdrs.substr(s + 9, e - s - 9);
    for (unsigned char c : raw_value) EXPECT_LT(c, 0x80) << "raw 8-bit octet in Subject";
    std::vector<size_t> lens;
    EXPECT_EQ(decode_2047(raw_value, &lens), "Hello " + v + "!");
    EXPECT_GE(lens.size(), 1u);
    for (size_t n : lens) EXPECT_LE(n, 75u);
    // RFC 2047 §2: a line holding encoded-words is at most 76 octets; the literal "Hello" may
    // be folded away from the first word to get there.
    std::string subject_field = "Subject: " + raw_value;
    for (size_t p = 0, eol; p < subject_field.size(); p = eol + 2) {
      eol = subject_field.find("\r\n", p);
      if (eol == std::string::npos) eol = subject_field.size();
      EXPECT_LE(eol - p, 76u) << subject_field;
    }
    std::string unfolded;
    for (size_t p = 0; p < raw_value.size(); ++p) {
      if (raw_value.compare(p, 2, "\r\n") == 0) ++p;
      else unfolded.push_back(raw_value[p]);
    }
    EXPECT_EQ(unfolded.substr(0, 6), "Hello ") << "only the value is encoded";
    // Each encoded-word must decode to valid whole characters.
    for (size_t p = 0; (p = raw_value.find("=?UTF-8?B?", p)) != std::string::npos; p += 10) {
      std::string dec = b64_decode(raw_value.substr(p + 10, raw_value.find("?=", p + 10) - p - 10));
      ASSERT_FALSE(dec.empty());
      EXPECT_NE(uint8_t(dec[0]) & 0xC0, 0x80) << "word starts inside a character";
    }
  }
}

// A display name that is not ASCII is encoded (it was raw UTF-8 before, on transactions
// without SMTPUTF8: issue 12).
TEST(TemplateRfc2047, AsciiValueStaysPlainAndNamesAreEncoded) {
  CompiledTemplate t = compile_ok("Subject: Hello {{name}}\nTo: {{name}} <x@example.org>\n\nb\n");
  std::string out = render(t, "Bob");
  EXPECT_NE(out.find("Subject: Hello Bob\r\n"), std::string::npos);
  CompiledTemplate b = t;
  ASSERT_TRUE(b.bind({"name"}).ok());
  std::vector<std::string> v{"J\xC3\xBCrgen"};
  RenderedMessage m;
  ASSERT_TRUE(b.render({"r@example.org", &v, 1, 0}, true, m).ok());
  std::string flat = m.flatten();
  EXPECT_NE(flat.find("To: =?UTF-8?B?SsO8cmdlbg==?= <x@example.org>\r\n"), std::string::npos)
      << flat;
  EXPECT_FALSE(m.eight_bit);
  EXPECT_FALSE(m.smtputf8);
}

TEST(TemplateEightBit, Flag) {
  CompiledTemplate t = compile_ok("Subject: s\n\nHello {{name}}\n");
  RenderedMessage m;
  CompiledTemplate b = t;
  ASSERT_TRUE(b.bind({"name"}).ok());
  std::vector<std::string> ascii{"Bob"}, utf8{"J\xC3\xBCrgen"};
  ASSERT_TRUE(b.render({"r@example.org", &ascii, 1, 0}, true, m).ok());
  EXPECT_FALSE(m.eight_bit);
  // Bodies are sent quoted-printable when values or text are 8-bit: never an 8-bit body.
  ASSERT_TRUE(b.render({"r@example.org", &utf8, 1, 0}, true, m).ok());
  EXPECT_FALSE(m.eight_bit);
  EXPECT_NE(m.flatten().find("Hello J=C3=BCrgen\r\n"), std::string::npos) << m.flatten();
  CompiledTemplate lit = compile_ok(
      "Subject: s\n\nGr\xC3\xBC\xC3\x9F"
      "e\n");
  ASSERT_TRUE(lit.render({"r@example.org", nullptr, 1, 0}, true, m).ok());
  EXPECT_FALSE(m.eight_bit);
  EXPECT_NE(m.flatten().find("\r\n\r\nGr=C3=BC=C3=9Fe\r\n"), std::string::npos) << m.flatten();
  // The one 8-bit header: a UTF-8 local part (RFC 6532), which needs SMTPUTF8.
  ASSERT_TRUE(b.render({"j\xC3\xB6rg@example.org", &ascii, 1, 0}, true, m).ok());
  EXPECT_TRUE(m.eight_bit);
  EXPECT_TRUE(m.smtputf8);
  EXPECT_NE(m.flatten().find("To: <j\xC3\xB6rg@example.org>\r\n"), std::string::npos);
  // A UTF-8 domain with an ASCII local part goes as A-labels, without SMTPUTF8.
  ASSERT_TRUE(b.render({"jorg@b\xC3\xBC" "cher.example", &ascii, 1, 0}, true, m).ok());
  EXPECT_FALSE(m.eight_bit);
  EXPECT_FALSE(m.smtputf8);
  EXPECT_NE(m.flatten().find("To: <jorg@xn--bcher-kva.example>\r\n"), std::string::npos);
}

TEST(TemplateGeneratedHeaders, AddedWhenMissing) {
  CompiledTemplate t = compile_ok("Subject: hi\n\nbody\n");
  std::string h = headers_of(render(t, "", true, "r@example.org", 42));
  EXPECT_EQ(h,
            "Subject: hi\r\n"
            "From: Sender <sender@example.com>\r\n"
            "To: <r@example.org>\r\n"
            "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
            "Message-ID: <t1.42@example.com>\r\n");
}

TEST(TemplateGeneratedHeaders, PresentOnesKeptCaseInsensitively) {
  CompiledTemplate t = compile_ok(
      "fRoM: Me <me@example.net>\nto: you@example.org\nDATE: Mon, 1 Jan 2024 00:00:00 +0000\n"
      "message-id: <fixed@example.net>\n\nbody\n");
  std::string h = headers_of(render(t, ""));
  EXPECT_EQ(h,
            "fRoM: Me <me@example.net>\r\nto: you@example.org\r\n"
            "DATE: Mon, 1 Jan 2024 00:00:00 +0000\r\nmessage-id: <fixed@example.net>\r\n");
}

TEST(TemplateGeneratedHeaders, MessageIdDomainChoice) {
  struct Case {
    std::string raw;
    std::string id_domain;
    std::string default_from;
    std::string want;
  };
  const std::vector<Case> cases = {
      {"From: a@from.example\n\nb\n", "", "", "<t1.7@from.example>"},
      {"From: a@from.example\n\nb\n", "ids.example", "", "<t1.7@ids.example>"},
      {"Subject: s\n\nb\n", "", "X <x@default.example>", "<t1.7@default.example>"},
      {"From: {{name}}\n\nb\n", "", "", "<t1.7@smtpblast.invalid>"},
      {"From: nobody\n\nb\n", "", "", "<t1.7@smtpblast.invalid>"},
  };
  for (const auto& c : cases) {
    TemplateOptions o;
    o.task_key = "t1";
    o.message_id_domain = c.id_domain;
    o.default_from = c.default_from;
    CompiledTemplate t = compile_ok(c.raw, o);
    std::string out = render(t, "n@example.org", true, "r@example.org", 7);
    EXPECT_NE(out.find("Message-ID: " + c.want + "\r\n"), std::string::npos) << c.raw << out;
  }
}

TEST(TemplateGeneratedHeaders, MessageIdStablePerRecipient) {
  CompiledTemplate t = compile_ok("Subject: s\n\nb\n");
  auto id = [&](int64_t rid) {
    std::string h = headers_of(render(t, "", true, "r@example.org", rid));
    size_t p = h.find("Message-ID: ");
    return h.substr(p, h.find("\r\n", p) - p);
  };
  EXPECT_EQ(id(1), id(1));
  EXPECT_NE(id(1), id(2));
  EXPECT_NE(id(12), id(1));
}

TEST(TemplateFrom, MissingFromAndNoDefaultIsAnError) {
  TemplateOptions o;
  EXPECT_EQ(compile_error("Subject: s\n\nbody\n", o),
            "template has no From: header and no --from was given");
}

TEST(TemplateFrom, FromAddress) {
  struct Case {
    std::string raw;
    std::string default_from;
    std::string want;
  };
  const std::vector<Case> cases = {
      {"From: Name <a@b.example>\n\nx\n", "", "a@b.example"},
      {"From: \"Last, First\" <a@b.example>\n\nx\n", "", "a@b.example"},
      {"From: a@b.example\n\nx\n", "", "a@b.example"},
      {"From: a@b.example (Name)\n\nx\n", "", "a@b.example"},
      {"From: Name\n <folded@b.example>\n\nx\n", "", "folded@b.example"},
      {"Subject: s\n\nx\n", "D <d@e.example>", "d@e.example"},
      {"Subject: s\n\nx\n", "d@e.example", "d@e.example"},
      {"From: {{name}} <{{email}}>\n\nx\n", "d@e.example", "d@e.example"},
      {"From: {{name}} <fixed@b.example>\n\nx\n", "d@e.example", "fixed@b.example"},
      {"From: nobody\n\nx\n", "d@e.example", "d@e.example"},
      {"From: nobody\n\nx\n", "", ""},
  };
  for (const auto& c : cases) {
    TemplateOptions o;
    o.default_from = c.default_from;
    EXPECT_EQ(compile_ok(c.raw, o).from_address(), c.want) << c.raw;
  }
}

TEST(TemplateFields, UnknownFieldIsNamedWithKnownFields) {
  CompiledTemplate t = compile_ok("Subject: {{ first_name }}\n\n{{ shoe_size }} {{city}}\n");
  Status s = t.bind({"first_name", "city"});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().domain, ErrDomain::kInput);
  EXPECT_EQ(s.error().message,
            "unknown merge field 'shoe_size' in the template; known fields: email, first_name, "
            "city");
}

TEST(TemplateFields, PlaceholderNamesAndBinding) {
  CompiledTemplate t =
      compile_ok("Subject: {{ first_name }} {{last.name}}\n\n{{first_name}} {{x-y}} {{email}}\n");
  EXPECT_EQ(t.placeholders(),
            (std::vector<std::string>{"first_name", "last.name", "x-y", "email"}));
  ASSERT_TRUE(t.bind({"X-Y", "last.name", "First_Name"}).ok());  // case-insensitive fallback
  std::vector<std::string> v{"XY", "Doe", "Jane"};
  RenderedMessage m;
  ASSERT_TRUE(t.render({"j@example.org", &v, 3, 0}, true, m).ok());
  std::string out = m.flatten();
  EXPECT_NE(out.find("Subject: Jane Doe\r\n"), std::string::npos) << out;
  EXPECT_EQ(body_of(out), "Jane XY j@example.org\r\n");
}

TEST(TemplateFields, EmailWorksWithoutBind) {
  CompiledTemplate t = compile_ok("Subject: for {{email}}\n\nHi {{ email }}\n");
  RenderedMessage m;
  ASSERT_TRUE(t.render({"r@example.org", nullptr, 1, 0}, true, m).ok());
  std::string out = m.flatten();
  EXPECT_NE(out.find("Subject: for r@example.org\r\n"), std::string::npos);
  EXPECT_EQ(body_of(out), "Hi r@example.org\r\n");
}

TEST(TemplateFields, MissingValueOrUnboundIsAnError) {
  CompiledTemplate t = compile_ok("Subject: s\n\n{{a}} {{b}}\n");
  RenderedMessage m;
  EXPECT_FALSE(t.render({"r@example.org", nullptr, 1, 0}, true, m).ok());  // not bound
  ASSERT_TRUE(t.bind({"a", "b"}).ok());
  std::vector<std::string> one{"only"};
  Status s = t.render({"r@example.org", &one, 1, 0}, true, m);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("'b'"), std::string::npos);
}

TEST(TemplateErrors, CompileErrors) {
  struct Case {
    const char* name;
    std::string raw;
    std::string want_substr;
  };
  const std::vector<Case> cases = {
      {"unterminated", "Subject: s\n\nline two\nHi {{name\n", "line 4: unterminated"},
      {"unterminated in header", "Subject: {{name }\n\nb\n", "line 1: unterminated"},
      {"empty name", "Subject: s\n\n{{ }}\n", "line 3: invalid placeholder \"{{ }}\""},
      {"bad name", "Subject: s\n\n{{a b}}\n", "invalid placeholder"},
      {"no separator with body text", "Subject: s\nHello there\n", "line 2"},
      {"not a header", "Subject: s\nHello there\n\nbody\n", "neither a header field"},
      {"continuation first", " folded\n\nbody\n", "continuation line"},
      {"placeholder in header name", "X-{{a}}: b\n\nc\n", "header name"},
      {"long line", "Subject: s\n\n" + std::string(999, 'x') + "\n", "line 3: is 999 octets"},
      {"nul", std::string("Subject: s\n\na\0b\n", 15), "line 3: contains a NUL"},
      {"base64 body with placeholder", "Content-Transfer-Encoding: base64\n\nSGVsbG8=\n{{name}}\n",
       "base64"},
  };
  for (const auto& c : cases) {
    std::string e = compile_error(c.raw);
    EXPECT_NE(e.find(c.want_substr), std::string::npos) << c.name << ": " << e;
  }
  EXPECT_NE(compile_error("Subject: s\nHello there\n").find("blank line"), std::string::npos);
}

TEST(TemplateStructure, LongestAllowedLineCompiles) {
  compile_ok("Subject: s\n\n" + std::string(998, 'x') + "\n");
}

TEST(TemplateStructure, WithoutHeadersOrSeparator) {
  // Blank first line: no headers at all, everything generated.
  std::string out = render(compile_ok("\nJust a body {{name}}\n"), "Bob");
  EXPECT_EQ(body_of(out), "Just a body Bob\r\n");
  EXPECT_EQ(out.substr(0, 6), "From: ");
  // No blank line, all headers: empty body.
  out = render(compile_ok("Subject: only headers\nX-A: 1\n  folded"), "");
  EXPECT_EQ(body_of(out), "");
  EXPECT_NE(out.find("X-A: 1\r\n  folded\r\n"), std::string::npos);
  // Empty template.
  out = render(compile_ok(""), "");
  EXPECT_EQ(body_of(out), "");
  EXPECT_EQ(out.substr(out.size() - 4), "\r\n\r\n");
}

TEST(TemplateStructure, FoldingAndMboxLine) {
  CompiledTemplate t = compile_ok(
      "From sender@example.com Mon Jan  1 00:00:00 2024\nSubject: a long\n\tsubject {{name}}\n"
      "\nbody\n");
  std::string out = render(t, "X");
  // A field with merge values is folded anew, as a whole (its tab stays).
  EXPECT_EQ(out.substr(0, 27), "Subject: a long\tsubject X\r\n");
  EXPECT_EQ(t.subject(), "a long\tsubject {{name}}");
}

// Decodes quoted-printable text (soft breaks removed).
std::string qp_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '=' && s.substr(i + 1, 2) == "\r\n") {
      i += 2;
    } else if (s[i] == '=' && i + 2 < s.size()) {
      out.push_back(char(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

TEST(TemplateQp, ValuesAreQpEncoded) {
  CompiledTemplate t = compile_ok(
      "Subject: s\nContent-Type: text/plain; charset=utf-8\n"
      "Content-Transfer-Encoding: quoted-printable\n\nDear {{name}}, caf=C3=A9\n");
  const std::vector<std::string> values = {
      "Bob",           "a=b",
      "J\xC3\xBCrgen", std::string(200, 'x') + " = \xC3\xA9" + std::string(100, 'y'),
      "two\nlines ",   ".dot\n.start",
  };
  for (const auto& v : values) {
    for (bool ds : {true, false}) {
      std::string out = render(t, v, ds);
      std::string body = body_of(out);
      for (unsigned char c : body) EXPECT_LT(c, 0x80);
      size_t start = 0;
      std::string unstuffed;
      while (start < body.size()) {
        size_t e = body.find("\r\n", start);
        std::string line = body.substr(start, e - start);
        if (ds && !line.empty() && line[0] == '.') {
          ASSERT_GE(line.size(), 2u);
          EXPECT_EQ(line[1], '.') << "unstuffed dot line: " << line;
          line.erase(0, 1);
        }
        EXPECT_LE(line.size(), 76u) << line;
        EXPECT_NE(line.back(), ' ');
        unstuffed += line + "\r\n";
        start = e + 2;
      }
      std::string want = v;
      for (size_t p = 0; (p = want.find('\n', p)) != std::string::npos; p += 2) {
        want.replace(p, 1, "\r\n");
      }
      EXPECT_EQ(qp_decode(unstuffed), "Dear " + want + ", caf\xC3\xA9\r\n") << v;
    }
  }
}

// A text part with merge values is sent quoted-printable (it was raw before: issue 18).
TEST(TemplateQp, MultipartValuesAreQuotedPrintableAndBase64WithoutPlaceholderCompiles) {
  CompiledTemplate t = compile_ok(
      "Subject: s\nContent-Type: multipart/alternative; boundary=\"b\"\n\n--b\n"
      "Content-Type: text/plain\n\nHi {{name}}\n--b--\n");
  std::string out = render(t, "a=b");
  EXPECT_NE(out.find("Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n"
                     "\r\nHi a=3Db\r\n"),
            std::string::npos)
      << out;
  compile_ok("Subject: s\nContent-Transfer-Encoding: base64\n\nSGVsbG8=\n");
}

TEST(TemplateRender, ReusesCapacityAndPiecesStayValid) {
  CompiledTemplate t =
      compile_ok("Subject: Hi {{name}}\n\nStart {{name}} middle\n{{name}}\nend {{email}}\n");
  ASSERT_TRUE(t.bind({"name"}).ok());
  RenderedMessage m;
  auto go = [&](const std::string& v) {
    std::vector<std::string> vals{v};
    EXPECT_TRUE(t.render({"r@example.org", &vals, 9, 0}, true, m).ok());
    return m.flatten();
  };
  std::string small = go("s");
  // As long as a line may get: the Subject folds after "Hi"; the body line is 993 octets.
  std::string big_value(980, 'B');
  std::string big = go(big_value);
  EXPECT_EQ(qp_decode(body_of(big)),
            "Start " + big_value + " middle\r\n" + big_value + "\r\nend r@example.org\r\n");
  size_t storage_cap = m.storage.capacity();
  size_t pieces_cap = m.pieces.capacity();
  const char* storage_data = m.storage.data();
  EXPECT_EQ(go("s"), small);
  EXPECT_EQ(m.storage.capacity(), storage_cap);
  EXPECT_EQ(m.pieces.capacity(), pieces_cap);
  EXPECT_EQ(m.storage.data(), storage_data) << "storage was reallocated";
  // Many placeholders, growing values: every piece must still point at live bytes (ASan).
  for (int n : {1, 10, 100, 985, 3}) {
    std::string v(size_t(n), 'v');
    EXPECT_EQ(qp_decode(body_of(go(v))),
              "Start " + v + " middle\r\n" + v + "\r\nend r@example.org\r\n");
  }
}

TEST(TemplateRender, SharedCopiesRenderIndependently) {
  CompiledTemplate a = compile_ok("Subject: s\n\n{{x}}\n");
  CompiledTemplate b = a;
  ASSERT_TRUE(a.bind({"x"}).ok());
  ASSERT_TRUE(b.bind({"other", "x"}).ok());
  std::vector<std::string> va{"A"}, vb{"no", "B"};
  RenderedMessage m;
  ASSERT_TRUE(a.render({"r@x", &va, 1, 0}, true, m).ok());
  EXPECT_EQ(body_of(m.flatten()), "A\r\n");
  ASSERT_TRUE(b.render({"r@x", &vb, 1, 0}, true, m).ok());
  EXPECT_EQ(body_of(m.flatten()), "B\r\n");
}

TEST(TemplateMeta, HashSubjectAndFixedSize) {
  CompiledTemplate t = compile_ok("Subject: Hello {{name}}\n\nBody {{name}}\n");
  CompiledTemplate u = compile_ok("Subject: Hello {{name}}\n\nBody {{name}}!\n");
  EXPECT_EQ(t.source_hash().size(), 64u);
  EXPECT_EQ(t.source_hash(),
            compile_ok("Subject: Hello {{name}}\n\nBody {{name}}\n").source_hash());
  EXPECT_NE(t.source_hash(), u.source_hash());
  EXPECT_EQ(t.subject(), "Hello {{name}}");
  // SHA-256("") is well known.
  EXPECT_EQ(compile_ok("").source_hash(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  // The smallest message: empty values and (here) a 3-octet address.
  std::string out = render(t, "", false, "a@b", 0);
  EXPECT_EQ(t.fixed_size() + 3, out.size());
  EXPECT_GT(t.fixed_size(), 0u);
  EXPECT_LE(t.fixed_size(), render(t, "long value", true).size());
}

}  // namespace
}  // namespace sb
