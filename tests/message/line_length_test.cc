// RFC 5322 §2.1.1 line length of merged lines: header folding, body line errors
// (src/message/template.h, CompiledTemplate::render).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "message/template.h"

namespace sb {
namespace {

constexpr size_t kLimit = 998;

CompiledTemplate compile_ok(std::string_view raw) {
  TemplateOptions o;
  o.default_from = "Sender <sender@example.com>";
  o.task_key = "t1";
  auto r = CompiledTemplate::compile(raw, o);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().describe()) << "\n--- template:\n" << raw;
  CompiledTemplate t = r.ok() ? std::move(r).value() : CompiledTemplate::compile("", o).value();
  EXPECT_TRUE(t.bind({"name", "other"}).ok());
  return t;
}

// Renders with fields name and other; returns the flat message, or "ERROR: <message>".
std::string render(const CompiledTemplate& t, std::string_view name, bool dot_stuff,
                   std::string_view other = "", std::string_view email = "r@example.org") {
  std::vector<std::string> values{std::string(name), std::string(other)};
  RenderedMessage out;
  Status s = t.render({email, &values, 7, 1700000000}, dot_stuff, out);
  if (!s) {
    EXPECT_EQ(s.error().domain, ErrDomain::kInput);
    return "ERROR: " + s.error().message;
  }
  std::string flat = out.flatten();
  EXPECT_EQ(flat.size(), out.size);
  return flat;
}

std::vector<std::string> lines_of(std::string_view text) {
  std::vector<std::string> lines;
  size_t p = 0;
  while (p < text.size()) {
    size_t e = text.find("\r\n", p);
    EXPECT_NE(e, std::string::npos) << "text does not end in CRLF";
    if (e == std::string::npos) e = text.size();
    lines.emplace_back(text.substr(p, e - p));
    p = e + 2;
  }
  return lines;
}

// Undoes DATA dot-stuffing of one line.
std::string unstuff(std::string line, bool dot_stuff) {
  if (dot_stuff && !line.empty() && line[0] == '.') {
    EXPECT_TRUE(line.size() >= 2 && line[1] == '.') << "unstuffed dot line: " << line;
    line.erase(0, 1);
  }
  return line;
}

bool is_wsp(char c) { return c == ' ' || c == '\t'; }

// The physical lines of header field `name` (the first line and its continuations).
std::vector<std::string> header_lines(const std::string& msg, std::string_view name) {
  std::vector<std::string> out;
  std::string head = msg.substr(0, msg.find("\r\n\r\n") + 2);
  std::vector<std::string> lines = lines_of(head);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].compare(0, name.size() + 1, std::string(name) + ":") != 0) continue;
    out.push_back(lines[i]);
    for (size_t j = i + 1; j < lines.size() && !lines[j].empty() && is_wsp(lines[j][0]); ++j) {
      out.push_back(lines[j]);
    }
    break;
  }
  return out;
}

std::string unfold(const std::vector<std::string>& lines) {
  std::string r;
  for (const auto& l : lines) r += l;  // RFC 5322 §2.2.3: unfolding removes the CRLFs only
  return r;
}

std::string body_of(const std::string& msg) {
  size_t p = msg.find("\r\n\r\n");
  return p == std::string::npos ? std::string("<no separator>") : msg.substr(p + 4);
}

// Checks a folded header: first line is the field, the others are continuations, no line
// is white space only, every line is within `max`, and unfolding gives `want`.
void expect_folded(const std::string& msg, std::string_view name, const std::string& want,
                   size_t max, const std::string& label) {
  std::vector<std::string> lines = header_lines(msg, name);
  ASSERT_FALSE(lines.empty()) << label << "\n" << msg;
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_LE(lines[i].size(), max) << label << ": line " << i << ": " << lines[i];
    if (i > 0) {
      ASSERT_FALSE(lines[i].empty()) << label;
      EXPECT_TRUE(is_wsp(lines[i][0])) << label << ": line " << i << " does not start with WSP";
    }
    EXPECT_NE(lines[i].find_first_not_of(" \t"), std::string::npos)
        << label << ": line " << i << " is white space only";
  }
  EXPECT_EQ(unfold(lines), want) << label;
}

std::string words(size_t n, std::string_view word = "word", std::string_view sep = " ") {
  std::string r;
  for (size_t i = 0; i < n; ++i) {
    if (i) r += sep;
    r += word;
  }
  return r;
}

TEST(LineLengthHeader, LongWordsFoldWithinLimits) {
  CompiledTemplate t = compile_ok("Subject: Hello {{name}},\nFrom: a@example.com\n\nbody\n");
  std::string value = words(500);  // 2,499 octets
  ASSERT_EQ(value.size(), 2499u);
  for (bool ds : {true, false}) {
    std::string out = render(t, value, ds);
    ASSERT_EQ(out.rfind("ERROR", 0), std::string::npos) << out;
    expect_folded(out, "Subject", "Subject: Hello " + value + ",", 78, ds ? "DATA" : "BDAT");
    EXPECT_GT(header_lines(out, "Subject").size(), 30u);
    EXPECT_NE(out.find(",\r\nFrom: a@example.com\r\n"), std::string::npos);
    EXPECT_EQ(body_of(out), "body\r\n");
  }
}

TEST(LineLengthHeader, ShortLinesAreLeftAlone) {
  CompiledTemplate t = compile_ok("Subject: Hello {{name}}, your update\n\nbody\n");
  std::string v(78 - std::string("Subject: Hello , your update").size(), 'x');
  std::string out = render(t, v, true);
  EXPECT_NE(out.find("Subject: Hello " + v + ", your update\r\n"), std::string::npos) << out;
  // One octet more folds at the last white space that keeps the line within 78.
  out = render(t, v + "x", true);
  EXPECT_NE(out.find("Subject: Hello " + v + "x, your\r\n update\r\n"), std::string::npos) << out;
}

TEST(LineLengthHeader, FoldsAtTemplateWhiteSpaceAndTabs) {
  // The value has no white space; the template text around it does.
  CompiledTemplate t = compile_ok("Subject: Dear {{name}} and friends\n\nb\n");
  std::string v(900, 'x');
  std::string out = render(t, v, true);
  expect_folded(out, "Subject", "Subject: Dear " + v + " and friends", kLimit, "template WSP");
  EXPECT_EQ(header_lines(out, "Subject").front(), "Subject: Dear");
  // Tabs are fold points too, and are kept as the first octet of the continuation.
  std::string tabbed = words(40, "tabbed", "\t");
  out = render(t, tabbed, false);
  expect_folded(out, "Subject", "Subject: Dear " + tabbed + " and friends", 78, "tabs");
  EXPECT_EQ(header_lines(out, "Subject")[1][0], '\t');
}

TEST(LineLengthHeader, RunsOfWhiteSpaceNeverMakeBlankLines) {
  CompiledTemplate t = compile_ok("Subject: {{name}}\n\nb\n");
  const std::vector<std::string> values = {
      std::string(300, ' ') + "x" + std::string(300, ' '),
      "a" + std::string(200, ' ') + "b" + std::string(200, '\t') + "c",
      words(60, "ab", "  \t "),
      std::string(100, 'y') + " " + std::string(950, 'z') + " " + words(30),
      words(5, std::string(190, 'w')),
  };
  for (const auto& v : values) {
    for (bool ds : {true, false}) {
      std::string out = render(t, v, ds);
      ASSERT_EQ(out.rfind("ERROR", 0), std::string::npos) << out;
      expect_folded(out, "Subject", "Subject: " + v, kLimit, v.substr(0, 20));
      // Where a line is over 78 octets it has no fold point within the first 78.
      for (const auto& line : header_lines(out, "Subject")) {
        if (line.size() <= 78) continue;
        size_t first_text = line.find_first_not_of(" \t");
        for (size_t p = first_text; p < line.size() && p <= 78; ++p) {
          bool later_text = line.find_first_not_of(" \t", p) != std::string::npos;
          EXPECT_FALSE(is_wsp(line[p]) && p > first_text && later_text)
              << "could have folded at " << p << ": " << line;
        }
      }
    }
  }
}

TEST(LineLengthHeader, UnfoldableTokenFails) {
  CompiledTemplate t = compile_ok("Subject: Hello {{name}},\n\nbody\n");
  for (bool ds : {true, false}) {
    // Folded after "Hello", the rest is " " + 2,000 x + "," = 2,002 octets.
    EXPECT_EQ(render(t, std::string(2000, 'x'), ds),
              "ERROR: merge field 'name' makes header 'Subject' line 2002 octets long "
              "(RFC 5322 limit 998)");
  }
  // The run goes on: the same template renders the next recipient.
  EXPECT_NE(render(t, "Bob", true).find("Subject: Hello Bob,\r\n"), std::string::npos);
  // A long token among words is folded around, and still fails if it alone is too long.
  std::string v = words(20) + " " + std::string(1000, 'y') + " " + words(20);
  EXPECT_EQ(render(t, v, true),
            "ERROR: merge field 'name' makes header 'Subject' line 1001 octets long "
            "(RFC 5322 limit 998)");
}

TEST(LineLengthHeader, ExactlyTheLimitPasses) {
  // No white space at all: the line is as merged.
  CompiledTemplate t = compile_ok("X-Token:{{name}}\n\nbody\n");
  for (bool ds : {true, false}) {
    std::string out = render(t, std::string(kLimit - 8, 't'), ds);
    EXPECT_EQ(out.substr(0, kLimit + 2), "X-Token:" + std::string(kLimit - 8, 't') + "\r\n");
    EXPECT_EQ(render(t, std::string(kLimit - 7, 't'), ds),
              "ERROR: merge field 'name' makes header 'X-Token' line 999 octets long (RFC 5322 "
              "limit 998)");
  }
  // Folded after "Subject:", the continuation " " + value may be 998 octets.
  CompiledTemplate s = compile_ok("Subject: {{name}}\n\nbody\n");
  std::string v(kLimit - 1, 's');
  std::string out = render(s, v, true);
  expect_folded(out, "Subject", "Subject: " + v, kLimit, "limit");
  EXPECT_EQ(header_lines(out, "Subject").back().size(), kLimit);
  EXPECT_EQ(render(s, v + "s", true),
            "ERROR: merge field 'name' makes header 'Subject' line 999 octets long (RFC 5322 "
            "limit 998)");
}

TEST(LineLengthHeader, AddressesAndGeneratedTo) {
  CompiledTemplate t = compile_ok("To: {{name}} <{{other}}>\n\nbody\n");
  // A value is a display name, not header syntax: its quotes are escaped in one quoted
  // string, which is folded at its spaces.
  std::string name = words(60, "\"Name\"");
  std::string out = render(t, name, true, "x@example.org");
  expect_folded(out, "To", "To: \"" + words(60, "\\\"Name\\\"") + "\" <x@example.org>", 78, "To");
  // The generated To: of a template without one carries the recipient address, which is
  // checked as an address (RFC 5321 §4.5.3.1.3: at most 254 octets).
  CompiledTemplate g = compile_ok("Subject: s\n\nbody\n");
  std::string addr = std::string(1000, 'a') + "@example.org";
  EXPECT_EQ(render(g, "", true, "", addr),
            "ERROR: merge field 'email' for header 'To' is not an address: it is longer than 254 "
            "octets");
}

TEST(LineLengthHeader, NamesTheFieldThatAddedMost) {
  CompiledTemplate t = compile_ok("Subject: {{name}}{{other}}\n\nbody\n");
  EXPECT_EQ(render(t, "ab", true, std::string(1000, 'o')),
            "ERROR: merge field 'other' makes header 'Subject' line 1003 octets long (RFC 5322 "
            "limit 998)");
  EXPECT_EQ(render(t, std::string(1000, 'n'), true, "ab"),
            "ERROR: merge field 'name' makes header 'Subject' line 1003 octets long (RFC 5322 "
            "limit 998)");
}

TEST(LineLengthHeader, DottedHeaderAndContinuationLines) {
  CompiledTemplate t = compile_ok(".odd: {{name}} end\nX-Fold: first\n\tsecond {{name}}\n\nb\n");
  std::string v = words(40);
  std::string data = render(t, v, true);
  std::string bdat = render(t, v, false);
  EXPECT_EQ(data.substr(0, 6), "..odd:") << data;
  EXPECT_EQ(bdat.substr(0, 5), ".odd:") << bdat;
  EXPECT_EQ(data.substr(1), bdat) << "DATA and BDAT differ by more than the stuffed dot";
  expect_folded(bdat, ".odd", ".odd: " + v + " end", 78, "dotted");
  // A field with merge values is folded anew as a whole: the template's own fold goes (its
  // tab stays, as unfolding keeps it).
  expect_folded(bdat, "X-Fold", "X-Fold: first\tsecond " + v, 78, "continuation");
}

TEST(LineLengthHeader, NonAsciiLongValueStaysWithin76) {
  CompiledTemplate t = compile_ok("Subject: Hello {{name}} and more text after it\n\nb\n");
  std::string v = words(100, "J\xC3\xBCrgen");
  std::string out = render(t, v, true);
  std::vector<std::string> lines = header_lines(out, "Subject");
  ASSERT_GT(lines.size(), 5u);
  for (const auto& l : lines) EXPECT_LE(l.size(), 76u) << l;
  std::string u = unfold(lines);
  EXPECT_EQ(u.substr(0, 24), "Subject: Hello =?UTF-8?B") << u;
  EXPECT_EQ(u.substr(u.size() - 25), "?= and more text after it") << u;
}

// Quoted-printable decoding (RFC 2045 §6.7) of a body, DATA's stuffing undone.
std::string qp_decode(const std::string& body, bool dot_stuff) {
  std::string out;
  for (std::string line : lines_of(body)) {
    line = unstuff(line, dot_stuff);
    bool soft = !line.empty() && line.back() == '=';
    if (soft) line.pop_back();
    for (size_t i = 0; i < line.size(); ++i) {
      if (line[i] == '=' && i + 2 < line.size() + 1) {
        out.push_back(char(std::stoi(line.substr(i + 1, 2), nullptr, 16)));
        i += 2;
      } else {
        out.push_back(line[i]);
      }
    }
    if (!soft) out += "\r\n";
  }
  return out;
}

std::string crlf(std::string_view v) {
  std::string r;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '\r' || v[i] == '\n') {
      if (v[i] == '\r' && i + 1 < v.size() && v[i + 1] == '\n') ++i;
      r += "\r\n";
    } else {
      r.push_back(v[i]);
    }
  }
  return r;
}

// A body part with merge values goes as quoted-printable, so however long a value, its lines
// keep to 76 octets (RFC 2045 §6.7) and the decoded body is the merged text. (Before, such a
// body was sent as it was, and a value that made a line longer than 998 octets failed the
// recipient; the tests of that rule are replaced by this one.)
TEST(LineLengthBody, ValuesAreSoftBrokenAndDecodeBack) {
  CompiledTemplate t = compile_ok("Subject: s\n\nValue: {{name}} tail\nnext\n");
  const std::vector<std::string> values = {
      std::string(2000, 'x'),
      words(400),
      "." + std::string(kLimit - 1, 'd'),
      std::string(992, 'f') + "\nshort",
      "short\n" + std::string(994, 'l'),
      "a\r\n" + std::string(999, 'm') + "\rb",
      "J\xC3\xBCrgen = 100%\tend ",
      "",
      ".",
      "\n.\n",
  };
  for (const auto& v : values) {
    for (bool ds : {true, false}) {
      std::string msg = render(t, v, ds);
      ASSERT_EQ(msg.rfind("ERROR", 0), std::string::npos) << msg;
      EXPECT_NE(msg.find("Content-Transfer-Encoding: quoted-printable\r\n"), std::string::npos);
      std::string body = body_of(msg);
      for (const auto& l : lines_of(body)) EXPECT_LE(unstuff(l, ds).size(), 76u) << l;
      EXPECT_EQ(qp_decode(body, ds), "Value: " + crlf(v) + " tail\r\nnext\r\n") << v.size();
    }
  }
}

TEST(LineLengthBody, TemplateTextIsEncodedToo) {
  // A long 8-bit line of the template itself is encoded at compile time, with soft breaks.
  std::string line = words(60, "Gr\xC3\xBC\xC3\x9F" "e");
  CompiledTemplate t = compile_ok("Subject: s\n\n" + line + " {{name}}\n");
  std::string body = body_of(render(t, "Bob", true));
  for (const auto& l : lines_of(body)) EXPECT_LE(l.size(), 76u) << l;
  EXPECT_EQ(qp_decode(body, true), line + " Bob\r\n");
}

TEST(LineLengthBody, QuotedPrintableValuesAreSoftBroken) {
  CompiledTemplate t = compile_ok(
      "Subject: s\nContent-Type: text/plain; charset=utf-8\n"
      "Content-Transfer-Encoding: quoted-printable\n\nValue: {{name}} end\n");
  const std::vector<std::string> values = {
      std::string(2000, 'x'),
      words(500),
      words(300, "J\xC3\xBCrgen=") + "\n." + std::string(1500, '.'),
  };
  for (const auto& v : values) {
    for (bool ds : {true, false}) {
      std::string body = body_of(render(t, v, ds));
      ASSERT_EQ(body.rfind("ERROR", 0), std::string::npos) << body;
      std::vector<std::string> lines = lines_of(body);
      EXPECT_GT(lines.size(), 20u);
      // The template's " end" follows the value's last soft-broken line on its line.
      for (size_t i = 0; i + 1 < lines.size(); ++i) {
        EXPECT_LE(unstuff(lines[i], ds).size(), 76u) << lines[i];
      }
      EXPECT_LE(unstuff(lines.back(), ds).size(), 76u + 4) << lines.back();
    }
  }
}

TEST(LineLengthBody, MultipartTextPartIsQuotedPrintable) {
  CompiledTemplate t = compile_ok(
      "Subject: s\nContent-Type: multipart/alternative; boundary=\"b\"\n\n--b\n"
      "Content-Type: text/plain\nContent-Transfer-Encoding: 8bit\n\nHi {{name}}\n--b--\n");
  std::string v(996, 'x');
  std::string msg = render(t, v, true);
  ASSERT_EQ(msg.rfind("ERROR", 0), std::string::npos) << msg;
  EXPECT_EQ(msg.find("8bit"), std::string::npos) << "the part's old encoding is replaced";
  size_t part = msg.find("--b\r\n");
  size_t end = msg.find("\r\n--b--");
  ASSERT_NE(part, std::string::npos);
  std::string inner = msg.substr(part, end + 2 - part);
  EXPECT_NE(inner.find("Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable"
                       "\r\n\r\n"),
            std::string::npos)
      << inner;
  std::string body = inner.substr(inner.find("\r\n\r\n") + 4);
  EXPECT_EQ(qp_decode(body, true), "Hi " + v + "\r\n");
}

}  // namespace
}  // namespace sb
