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
  std::string name = words(60, "\"Name\"");
  std::string out = render(t, name, true, "x@example.org");
  expect_folded(out, "To", "To: " + name + " <x@example.org>", 78, "To");
  // The generated To: of a template without one carries the recipient address; an address
  // with no white space that is too long cannot be folded (beyond "To:").
  CompiledTemplate g = compile_ok("Subject: s\n\nbody\n");
  std::string addr = std::string(1000, 'a') + "@example.org";
  EXPECT_EQ(render(g, "", true, "", addr),
            "ERROR: merge field 'email' makes header 'To' line 1015 octets long (RFC 5322 limit "
            "998)");
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
  expect_folded(bdat, "X-Fold", "X-Fold: first\tsecond " + v, 78, "continuation");
  EXPECT_NE(bdat.find("X-Fold: first\r\n\tsecond word"), std::string::npos) << bdat;
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

TEST(LineLengthBody, LongValueFailsNamingFieldAndLength) {
  CompiledTemplate t = compile_ok("Subject: s\n\nValue: {{name}}\n");
  for (bool ds : {true, false}) {
    EXPECT_EQ(render(t, std::string(2000, 'x'), ds),
              "ERROR: merge field 'name' makes a body line 2007 octets long (RFC 5322 limit 998)");
  }
  // Body text is not rewrapped: white space in the value does not help.
  EXPECT_EQ(render(t, words(400), true),
            "ERROR: merge field 'name' makes a body line 2006 octets long (RFC 5322 limit 998)");
}

TEST(LineLengthBody, ExactlyTheLimitPasses) {
  CompiledTemplate t = compile_ok("Subject: s\n\nValue: {{name}}\n");
  std::string v(kLimit - 7, 'x');
  EXPECT_EQ(body_of(render(t, v, true)), "Value: " + v + "\r\n");
  EXPECT_EQ(render(t, v + "x", true),
            "ERROR: merge field 'name' makes a body line 999 octets long (RFC 5322 limit 998)");
  // The last line lacking its line end in the template is counted too.
  CompiledTemplate u = compile_ok("Subject: s\n\n{{name}}");
  EXPECT_EQ(body_of(render(u, std::string(kLimit, 'y'), false)), std::string(kLimit, 'y') + "\r\n");
  EXPECT_EQ(render(u, std::string(kLimit + 1, 'y'), false),
            "ERROR: merge field 'name' makes a body line 999 octets long (RFC 5322 limit 998)");
}

TEST(LineLengthBody, StuffedDotIsNotCounted) {
  // 998 octets of content; DATA sends 999 with the stuffed dot, the receiver removes it.
  CompiledTemplate t = compile_ok("Subject: s\n\n{{name}}\n");
  std::string v = "." + std::string(kLimit - 1, 'd');
  EXPECT_EQ(body_of(render(t, v, true)), "." + v + "\r\n");
  EXPECT_EQ(body_of(render(t, v, false)), v + "\r\n");
  for (bool ds : {true, false}) {
    EXPECT_EQ(render(t, v + "d", ds),
              "ERROR: merge field 'name' makes a body line 999 octets long (RFC 5322 limit 998)");
  }
}

TEST(LineLengthBody, LineBreaksInValues) {
  CompiledTemplate t = compile_ok("Subject: s\n\nValue: {{name}} tail\nnext\n");
  // Many short lines: long in total, fine.
  std::string v;
  for (int i = 0; i < 40; ++i) v += std::string(60, char('a' + i % 26)) + (i % 2 ? "\r\n" : "\n");
  v += "last";
  for (bool ds : {true, false}) {
    std::string body = body_of(render(t, v, ds));
    ASSERT_EQ(body.rfind("ERROR", 0), std::string::npos) << body;
    for (const auto& l : lines_of(body)) EXPECT_LE(l.size(), 80u);
    EXPECT_EQ(body.substr(body.size() - 17), "last tail\r\nnext\r\n");
  }
  // The first line of the value counts what precedes it on the template line…
  EXPECT_EQ(render(t, std::string(992, 'f') + "\nshort", true),
            "ERROR: merge field 'name' makes a body line 999 octets long (RFC 5322 limit 998)");
  EXPECT_NE(render(t, std::string(991, 'f') + "\nshort", true).find("short tail\r\n"),
            std::string::npos);
  // …its last line what follows it, and the lines between only themselves.
  EXPECT_EQ(render(t, "short\n" + std::string(994, 'l'), true),
            "ERROR: merge field 'name' makes a body line 999 octets long (RFC 5322 limit 998)");
  EXPECT_EQ(render(t, "a\n" + std::string(999, 'm') + "\nb", true),
            "ERROR: merge field 'name' makes a body line 999 octets long (RFC 5322 limit 998)");
  EXPECT_NE(render(t, "a\n" + std::string(998, 'm') + "\nb", true).find("b tail\r\n"),
            std::string::npos);
}

TEST(LineLengthBody, NamesTheFieldThatAddedMost) {
  CompiledTemplate t = compile_ok("Subject: s\n\n{{name}} and {{other}}\n");
  EXPECT_EQ(render(t, "n", true, std::string(1000, 'o')),
            "ERROR: merge field 'other' makes a body line 1006 octets long (RFC 5322 limit 998)");
  EXPECT_EQ(render(t, std::string(1000, 'n'), true, "o"),
            "ERROR: merge field 'name' makes a body line 1006 octets long (RFC 5322 limit 998)");
  // A line break in `name` leaves `other` as the one that made the line.
  EXPECT_EQ(render(t, std::string(600, 'n') + "\nn", true, std::string(995, 'o')),
            "ERROR: merge field 'other' makes a body line 1001 octets long (RFC 5322 limit 998)");
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

TEST(LineLengthBody, MultipartBodyIsRawToo) {
  CompiledTemplate t = compile_ok(
      "Subject: s\nContent-Type: multipart/alternative; boundary=\"b\"\n\n--b\n"
      "Content-Type: text/plain\n\nHi {{name}}\n--b--\n");
  EXPECT_EQ(render(t, std::string(996, 'x'), true),
            "ERROR: merge field 'name' makes a body line 999 octets long (RFC 5322 limit 998)");
}

}  // namespace
}  // namespace sb
