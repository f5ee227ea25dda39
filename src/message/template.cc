// Message template: compiled once into literal segments and placeholders, rendered per recipient.
#include "message/template.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <utility>

#include "base/display_text.h"
#include "message/dkim.h"
#include "message/address.h"
#include "message/encode.h"
#include "message/header_field.h"
#include "message/unsubscribe.h"

// The renderer's helpers are lambdas: keep the rare ones (long lines) out of its hot loop.
#if defined(__GNUC__)
#define SB_NOINLINE __attribute__((noinline, cold))
#else
#define SB_NOINLINE
#endif

namespace sb {
namespace {

// RFC 5322 §2.1.1: a line is at most 998 octets, not counting CRLF.
constexpr size_t kMaxLineOctets = 998;
// RFC 5322 §2.1.1: lines SHOULD be at most 78 octets; merged header lines are folded to that
// where white space allows. RFC 2047 §2 caps lines that hold encoded-words at 76.
constexpr size_t kFoldOctets = 78;
constexpr size_t kEncodedWordLineOctets = 76;
// RFC 2045 §6.7: quoted-printable lines are at most 76 octets.
constexpr size_t kQpLineOctets = 76;
constexpr std::string_view kCrlf = "\r\n";
constexpr std::string_view kDefaultIdDomain = "smtpblast.invalid";
// Length of "Thu, 01 Jan 1970 00:00:00 +0000".
constexpr size_t kDateOctets = 31;

// Where a value lands decides how it is encoded.
enum class Ctx : uint8_t {
  kHeaderText,  // unstructured header (Subject, X-…): non-ASCII becomes RFC 2047 words
  kHeaderRaw,   // address or structured header: value as is (SMTPUTF8 when non-ASCII)
  kHeaderUrl,   // inside a List-Unsubscribe URL: percent-encoded (RFC 3986 §2.1)
  kBodyRaw,     // 7bit/8bit/binary or multipart body: line ends normalised only
  kBodyQp,      // quoted-printable body: value QP-encoded
};

// kToken: the recipient's unsubscribe token (UnsubscribeOptions).
// kField: a whole header field built per recipient (HeaderField).
enum class OpKind : uint8_t { kLiteral, kValue, kEmail, kDate, kRecipientId, kToken, kField };

// What a body value goes through before the part's transfer encoding: {{f}} in a text/html
// part is HTML-escaped, {{{f}}} is not, {{f|url}} is percent-encoded.
enum class Filter : uint8_t { kNone, kHtml, kUrl };

// One stretch of a template line: literal text, or a placeholder's name and filter.
struct Piece {
  bool placeholder = false;
  bool triple = false;  // {{{name}}}: inserted as it is, never HTML-escaped
  Filter filter = Filter::kNone;
  std::string_view text;  // the literal text, or the placeholder's name
};

struct Line {
  std::string_view text;  // without its line end
  bool terminated;        // had CR, LF or CRLF after it
  int number;             // 1-based, for error messages
};

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) {
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  }
  return r;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && lower(a) == lower(b);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool has_line_break_or_nul(std::string_view v) {
  // (A plain loop: find_first_of calls memchr once per octet of the value.)
  return std::any_of(v.begin(), v.end(), [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
}

// Splits raw bytes on CRLF, bare LF and bare CR. A final line without a line end is kept
// (and marked) so a body lacking its last newline still renders ending in CRLF.
std::vector<Line> split_lines(std::string_view raw) {
  std::vector<Line> lines;
  size_t start = 0;
  int number = 1;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '\r' && raw[i] != '\n') continue;
    lines.push_back({raw.substr(start, i - start), true, number++});
    if (raw[i] == '\r' && i + 1 < raw.size() && raw[i + 1] == '\n') ++i;
    start = i + 1;
  }
  if (start < raw.size()) lines.push_back({raw.substr(start), false, number});
  return lines;
}

// Length of the field name when `line` is "name WSP* : …", else 0 (RFC 5322 §3.6.8 ftext,
// with the obsolete white space before the colon tolerated).
size_t header_name_length(std::string_view line) {
  size_t n = 0;
  while (n < line.size() && uint8_t(line[n]) >= 33 && uint8_t(line[n]) <= 126 && line[n] != ':') {
    ++n;
  }
  if (n == 0) return 0;
  size_t k = n;
  while (k < line.size() && (line[k] == ' ' || line[k] == '\t')) ++k;
  return k < line.size() && line[k] == ':' ? n : 0;
}

bool is_continuation(std::string_view line) {
  return !line.empty() && (line[0] == ' ' || line[0] == '\t');
}

bool valid_placeholder_name(std::string_view name) {
  if (name.empty()) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
  });
}

// Headers whose syntax forbids RFC 2047 words (addresses, ids, MIME parameters): a non-ASCII
// value goes in raw, which needs SMTPUTF8 (RFC 6532) and shows up as eight_bit.
bool is_raw_header(std::string_view lname) {
  static constexpr std::array<std::string_view, 22> kRaw = {"from",
                                                            "to",
                                                            "cc",
                                                            "bcc",
                                                            "reply-to",
                                                            "sender",
                                                            "resent-from",
                                                            "resent-to",
                                                            "resent-cc",
                                                            "resent-bcc",
                                                            "resent-sender",
                                                            "return-path",
                                                            "message-id",
                                                            "in-reply-to",
                                                            "references",
                                                            "resent-message-id",
                                                            "date",
                                                            "mime-version",
                                                            "content-type",
                                                            "content-transfer-encoding",
                                                            "content-id",
                                                            "disposition-notification-to"};
  if (lname.starts_with("list-") || lname.starts_with("content-")) return true;
  return std::find(kRaw.begin(), kRaw.end(), lname) != kRaw.end();
}

// addr-spec of a From: value: "Name <a@b>" → a@b, "a@b (comment)" → a@b.
std::string addr_spec(std::string_view v) {
  size_t lt = v.rfind('<');
  if (lt != std::string_view::npos) {
    size_t gt = v.find('>', lt);
    if (gt != std::string_view::npos) return std::string(trim(v.substr(lt + 1, gt - lt - 1)));
  }
  size_t pos = 0;
  while (pos < v.size()) {
    while (pos < v.size() && (v[pos] == ' ' || v[pos] == '\t' || v[pos] == ',')) ++pos;
    size_t end = pos;
    while (end < v.size() && v[end] != ' ' && v[end] != '\t' && v[end] != ',') ++end;
    std::string_view tok = v.substr(pos, end - pos);
    if (tok.find('@') != std::string_view::npos) return std::string(tok);
    pos = end;
  }
  return std::string(trim(v));
}

std::string sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1) return {};
  std::string hex;
  hex.reserve(len * 2);
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned i = 0; i < len; ++i) {
    hex.push_back(kHex[md[i] >> 4]);
    hex.push_back(kHex[md[i] & 15]);
  }
  return hex;
}

bool is_wsp(char c) { return c == ' ' || c == '\t'; }

// Upper bound of what render_header_field appends for `f` with these values.
template <class GetValue>
size_t field_bound(const HeaderField& f, GetValue& get, std::string_view email) {
  size_t n = 0;
  auto add = [&](const std::vector<FieldPart>& parts) {
    for (const FieldPart& p : parts) {
      if (p.kind == FieldPart::Kind::kValue) n += get(p.index).size();
      if (p.kind == FieldPart::Kind::kEmail) n += email.size();
    }
  };
  add(f.text);
  for (const MailboxTemplate& m : f.mailboxes) {
    add(m.name);
    add(m.addr);
    n += 8;  // ", ", " <", ">", quotes
  }
  return header_field_bound(f.literal_octets, n) + 1;  // + a stuffed "."
}

Error input_error(int line, std::string msg) {
  return make_error(ErrDomain::kInput, "template line " + std::to_string(line) + ": " + msg);
}

// Splits a line into literal text and placeholders: {{name}}, {{{name}}} (raw, as in
// Mustache) and {{name|url}} (percent-encoded).
Status split_placeholders(const Line& ln, std::vector<Piece>& out) {
  std::string_view t = ln.text;
  while (true) {
    size_t open = t.find("{{");
    if (open == std::string_view::npos) break;
    if (open > 0) out.push_back({false, false, Filter::kNone, t.substr(0, open)});
    bool triple = open + 2 < t.size() && t[open + 2] == '{';
    std::string_view closer = triple ? "}}}" : "}}";
    size_t inner = open + (triple ? 3 : 2);
    size_t close = t.find(closer, inner);
    if (close == std::string_view::npos) {
      return input_error(ln.number, triple ? "unterminated \"{{{\" placeholder (missing \"}}}\")"
                                           : "unterminated \"{{\" placeholder (missing \"}}\")");
    }
    std::string_view whole = t.substr(open, close + closer.size() - open);
    std::string_view name = trim(t.substr(inner, close - inner));
    Filter filter = Filter::kNone;
    if (size_t bar = name.find('|'); bar != std::string_view::npos && !triple) {
      std::string_view f = trim(name.substr(bar + 1));
      name = trim(name.substr(0, bar));
      if (f != "url") {
        return input_error(ln.number, "unknown filter \"" + std::string(f) + "\" in \"" +
                                          std::string(whole) + "\": the one filter is |url");
      }
      filter = Filter::kUrl;
    }
    if (!valid_placeholder_name(name)) {
      return input_error(ln.number, "invalid placeholder \"" + std::string(whole) +
                                        "\": names use letters, digits, '_', '-' and '.'");
    }
    out.push_back({true, triple, filter, name});
    t.remove_prefix(close + closer.size());
  }
  if (!t.empty()) out.push_back({false, false, Filter::kNone, t});
  return {};
}

// A MIME parameter value that is not ASCII (name="März.pdf", filename=…) rewritten as an
// RFC 2231 extended parameter: filename*=utf-8''M%C3%A4rz.pdf. Returns false when 8-bit text
// is left elsewhere on the line (it cannot be encoded there).
bool rfc2231_params(std::string_view line, std::string& out) {
  out.clear();
  size_t i = 0;
  while (i < line.size()) {
    // A parameter starts after ';' (or the line's white space, on a continuation line).
    size_t eq = line.find('=', i);
    if (eq == std::string_view::npos) break;
    size_t name_end = eq;
    while (name_end > i && is_wsp(line[name_end - 1])) --name_end;
    size_t name_start = name_end;
    while (name_start > i && line[name_start - 1] != ';' && !is_wsp(line[name_start - 1]) &&
           line[name_start - 1] != ':') {
      --name_start;
    }
    size_t v = eq + 1;
    while (v < line.size() && is_wsp(line[v])) ++v;
    size_t v_end;
    std::string_view value;
    if (v < line.size() && line[v] == '"') {
      v_end = line.find('"', v + 1);
      if (v_end == std::string_view::npos) break;
      value = line.substr(v + 1, v_end - v - 1);
      ++v_end;
    } else {
      v_end = v;
      while (v_end < line.size() && line[v_end] != ';' && !is_wsp(line[v_end])) ++v_end;
      value = line.substr(v, v_end - v);
    }
    std::string_view name = line.substr(name_start, name_end - name_start);
    out.append(line.substr(i, name_start - i));
    if (has_eight_bit(value) && !name.empty() && name.back() != '*' &&
        !has_eight_bit(name)) {
      out.append(name);
      out.append("*=utf-8''");
      append_percent_encoded(out, value);
    } else {
      out.append(line.substr(name_start, v_end - name_start));
    }
    i = v_end;
  }
  out.append(line.substr(std::min(i, line.size())));
  return !has_eight_bit(out);
}

// A MIME entity of the template: the message itself (parts[0]) or a body part.
struct MimePart {
  size_t hdr_begin = 0, hdr_end = 0;       // its header lines (none for the message itself)
  size_t cte_begin = 0, cte_end = 0;       // its Content-Transfer-Encoding field's lines
  bool has_ctype = false;
  bool has_cte = false;
  std::string ctype;  // lower case
  std::string cte;    // lower case, trimmed
  bool leaf = true;
  bool placeholders = false;
  bool eight_bit = false;
  int first_placeholder_line = 0;
  // Sent as quoted-printable though the template's text is not: 8-bit text or merge values
  // (which may be 8-bit) never go out as an 8-bit body, whatever the server offers.
  bool convert = false;
  bool html = false;
};

// What each body line is: a delimiter, a part's header line (or the blank line after them),
// a line of a leaf part's content, or text outside every part (preamble, epilogue).
enum class Role : uint8_t { kDelimiter, kPartHeader, kContent, kOutside };

struct BodyMap {
  std::vector<MimePart> parts;
  std::vector<Role> role;  // per line index (only body lines are set)
  std::vector<int> owner;  // per line index: the part of a header or content line
};

// The boundary parameter of a Content-Type value (RFC 2046 §5.1.1), case kept.
std::string boundary_of(std::string_view ctype) {
  std::string low = lower(ctype);
  size_t p = 0;
  while ((p = low.find("boundary", p)) != std::string::npos) {
    size_t q = p + 8;
    bool starts = p == 0 || low[p - 1] == ';' || is_wsp(low[p - 1]);
    while (q < low.size() && is_wsp(low[q])) ++q;
    if (!starts || q >= low.size() || low[q] != '=') {
      p = q;
      continue;
    }
    ++q;
    while (q < low.size() && is_wsp(low[q])) ++q;
    if (q < ctype.size() && ctype[q] == '"') {
      size_t e = ctype.find('"', q + 1);
      return e == std::string::npos ? std::string() : std::string(ctype.substr(q + 1, e - q - 1));
    }
    size_t e = q;
    while (e < ctype.size() && ctype[e] != ';' && !is_wsp(ctype[e])) ++e;
    return std::string(ctype.substr(q, e - q));
  }
  return {};
}

// The unfolded value of the field on lines [begin, end).
std::string field_value(const std::vector<Line>& lines, size_t begin, size_t end) {
  std::string v(lines[begin].text.substr(lines[begin].text.find(':') + 1));
  for (size_t j = begin + 1; j < end; ++j) v.append(lines[j].text);
  return std::string(trim(v));
}

// Walks the body's MIME structure (nested multiparts by their boundaries) and decides, per
// leaf part, how its text and merge values are encoded.
Status map_body(const std::vector<Line>& lines, size_t begin, MimePart top,
                std::string_view top_ctype_raw, BodyMap& m) {
  m.role.assign(lines.size(), Role::kOutside);
  m.owner.assign(lines.size(), -1);
  std::vector<std::pair<std::string, int>> stack;  // open multiparts: boundary, part
  int cur = 0;
  top.leaf = !top.ctype.starts_with("multipart/");
  m.parts.push_back(top);
  if (!top.leaf) {
    std::string b = boundary_of(top_ctype_raw);
    if (b.empty()) {
      return make_error(ErrDomain::kInput,
                        "template: the multipart Content-Type has no boundary parameter");
    }
    stack.emplace_back(std::move(b), 0);
    cur = -1;
  }
  for (size_t i = begin; i < lines.size(); ++i) {
    std::string_view text = lines[i].text;
    int level = -1;
    bool close = false;
    if (!stack.empty() && text.starts_with("--")) {
      for (int k = int(stack.size()) - 1; k >= 0 && level < 0; --k) {
        const std::string& b = stack[size_t(k)].first;
        if (!text.substr(2).starts_with(b)) continue;
        std::string_view after = trim(text.substr(2 + b.size()));
        if (after.empty() || after == "--") {
          level = k;
          close = !after.empty();
        }
      }
    }
    if (level >= 0) {
      m.role[i] = Role::kDelimiter;
      stack.resize(size_t(level) + 1);
      if (close) {
        stack.pop_back();
        cur = -1;
        continue;
      }
      MimePart p;
      p.hdr_begin = i + 1;
      size_t j = i + 1;
      while (j < lines.size() && !lines[j].text.empty()) ++j;
      p.hdr_end = j;
      int idx = int(m.parts.size());
      std::string ctype_raw;
      for (size_t k = p.hdr_begin; k < p.hdr_end;) {
        size_t e = k + 1;
        while (e < p.hdr_end && is_continuation(lines[e].text)) ++e;
        size_t n = header_name_length(lines[k].text);
        std::string lname = lower(lines[k].text.substr(0, n));
        if (lname == "content-type") {
          p.has_ctype = true;
          ctype_raw = field_value(lines, k, e);
          p.ctype = lower(ctype_raw);
        } else if (lname == "content-transfer-encoding") {
          p.has_cte = true;
          p.cte = lower(field_value(lines, k, e));
          p.cte_begin = k;
          p.cte_end = e;
        }
        k = e;
      }
      for (size_t k = i + 1; k <= j && k < lines.size(); ++k) {
        m.role[k] = Role::kPartHeader;
        m.owner[k] = idx;
      }
      p.leaf = !p.ctype.starts_with("multipart/");
      if (!p.leaf) {
        std::string b = boundary_of(ctype_raw);
        if (b.empty()) {
          return input_error(lines[i].number + 1,
                             "a multipart part's Content-Type has no boundary parameter");
        }
        stack.emplace_back(std::move(b), idx);
        cur = -1;
      } else {
        cur = idx;
      }
      m.parts.push_back(std::move(p));
      i = j;
      continue;
    }
    bool ph = text.find("{{") != std::string_view::npos;
    if (cur < 0) {
      if (ph) {
        return input_error(lines[i].number,
                           "a placeholder outside every MIME part (in a multipart preamble or "
                           "epilogue)");
      }
      if (has_eight_bit(text)) {
        // Readers never show it, and it would make the body 8-bit (issue 18).
        return input_error(lines[i].number,
                           "non-ASCII text outside every MIME part (in a multipart preamble or "
                           "epilogue): write it in ASCII");
      }
      continue;
    }
    m.role[i] = Role::kContent;
    m.owner[i] = cur;
    MimePart& p = m.parts[size_t(cur)];
    if (ph && !p.placeholders) p.first_placeholder_line = lines[i].number;
    p.placeholders = p.placeholders || ph;
    p.eight_bit = p.eight_bit || has_eight_bit(text);
  }
  for (MimePart& p : m.parts) {
    if (!p.leaf) continue;
    p.html = p.ctype.starts_with("text/html");
    bool qp = p.cte == "quoted-printable";
    bool b64 = p.cte == "base64";
    if (b64 && p.placeholders) {
      return input_error(p.first_placeholder_line,
                         "placeholder in a base64 part (Content-Transfer-Encoding: base64); "
                         "merge fields cannot go into base64 — use quoted-printable or 8bit");
    }
    p.convert = !qp && !b64 && (p.placeholders || p.eight_bit);
  }
  return {};
}

}  // namespace

struct CompiledTemplate::Impl {
  // A literal stretch of the message in both wire forms. Columns are of the unstuffed form.
  struct Segment {
    size_t plain_off, plain_len;
    size_t stuffed_off, stuffed_len;
    size_t head;          // octets before the first CRLF (whole length when there is none)
    size_t tail;          // octets after the last CRLF (whole length when there is none)
    size_t stuffed_tail;  // the tail's length in the stuffed form
    bool has_nl;          // contains a CRLF
    bool starts_dot;      // first octet is "." (stuffed at render time when it starts a line)
    // Quoted-printable text that follows a value on its line, encoded as if it began the
    // line: a soft line break goes before it when the line would pass 76 octets.
    bool qp_resume;
  };
  struct Op {
    OpKind kind;
    Ctx ctx;
    uint32_t index;   // segment index (literal) or placeholder index (value)
    uint32_t header;  // header_names index, for error messages about header values
    Filter filter = Filter::kNone;
  };

  std::string plain;    // literal text, CRLF line ends
  std::string stuffed;  // the same, dot-stuffed for DATA
  std::vector<Segment> segments;
  std::vector<Op> ops;
  std::vector<std::string> header_names;
  bool literal_eight_bit = false;
  std::vector<HeaderField> fields;  // OpKind::kField
  bool literal_smtputf8 = false;    // a literal address of the template is UTF-8 (RFC 6532)
  // One-click unsubscribe tokens (OpKind::kToken).
  std::string unsub_secret;
  std::string unsub_task_id;
  // DKIM: the signers, and per signer the body hash when the body is the same for everyone.
  std::vector<std::shared_ptr<const DkimSigner>> signers;
  std::vector<std::string> body_hashes;
  size_t header_octets = 0;  // literal octets of the header section (for the storage bound)

  template <class GetValue>
  Status render(GetValue&& get, const RenderInput& in, bool dot_stuff, RenderedMessage& out) const;
  // Signs the unstuffed message in `out`, puts the signatures on top, and dot-stuffs for DATA.
  Status sign(const RenderInput& in, bool dot_stuff, RenderedMessage& out) const;
  size_t token_bound(size_t email_octets) const {
    size_t raw = 3 + std::min<size_t>(email_octets, 0xffff) + unsub_task_id.size() + 16;
    return (raw * 4 + 2) / 3;
  }
};

namespace {

// Accumulates literal text and placeholders into an Impl while the template is parsed.
class Builder {
 public:
  explicit Builder(CompiledTemplate::Impl& impl, std::vector<std::string>& placeholders)
      : impl_(impl), placeholders_(placeholders) {}

  void text(std::string_view t) { pending_.append(t); }

  void op(OpKind kind, Ctx ctx, uint32_t index = 0, uint32_t header = 0) {
    flush();
    impl_.ops.push_back({kind, ctx, index, header});
  }

  size_t literal_size() const { return impl_.plain.size() + pending_.size(); }

  // A placeholder for a value (bound later by bind()).
  void value(std::string_view name, Ctx ctx, uint32_t header) {
    op(OpKind::kValue, ctx, placeholder_index(name), header);
  }

  uint32_t header(std::string_view name) {
    impl_.header_names.emplace_back(name);
    return uint32_t(impl_.header_names.size() - 1);
  }

  // Copies one line's text, turning each placeholder into a value op. Does not add the line
  // end. `qp_literal`: the line's literal text is quoted-printable encoded here (a part
  // converted to quoted-printable); `html`: {{f}} values are HTML-escaped.
  Status line(const Line& ln, Ctx ctx, uint32_t header, int* placeholder_count,
              bool qp_literal = false, bool html = false) {
    std::vector<Piece> pieces;
    if (Status s = split_placeholders(ln, pieces); !s) return s;
    size_t col = 0;
    for (const Piece& p : pieces) {
      if (!p.placeholder) {
        if (qp_literal) {
          std::string enc;
          append_literal_qp(enc, p.text, col, &p == &pieces.back());
          text(enc);
        } else {
          text(p.text);
        }
        continue;
      }
      Filter f = p.filter;
      if (f == Filter::kNone && html && !p.triple) f = Filter::kHtml;
      Ctx c = ctx;
      if (f == Filter::kUrl && (ctx == Ctx::kHeaderRaw || ctx == Ctx::kHeaderText)) {
        c = Ctx::kHeaderUrl;
        f = Filter::kNone;
      }
      flush();
      impl_.ops.push_back({OpKind::kValue, c, placeholder_index(p.text), header, f});
      if (ctx == Ctx::kBodyQp) qp_resume_ = true;
      col = 0;
      if (placeholder_count) ++*placeholder_count;
    }
    return {};
  }

  uint32_t placeholder_index(std::string_view name) {
    auto it = std::find(placeholders_.begin(), placeholders_.end(), name);
    if (it != placeholders_.end()) return uint32_t(it - placeholders_.begin());
    placeholders_.emplace_back(name);
    return uint32_t(placeholders_.size() - 1);
  }

  void flush() {
    if (pending_.empty()) return;
    CompiledTemplate::Impl::Segment s{};
    s.plain_off = impl_.plain.size();
    s.plain_len = pending_.size();
    s.stuffed_off = impl_.stuffed.size();
    impl_.plain.append(pending_);
    dot_stuff_inner(pending_, impl_.stuffed);
    s.stuffed_len = impl_.stuffed.size() - s.stuffed_off;
    size_t nl = pending_.rfind('\n');
    s.has_nl = nl != std::string::npos;
    s.tail = s.has_nl ? pending_.size() - nl - 1 : pending_.size();
    s.head = s.has_nl ? pending_.find('\n') - 1 : pending_.size();  // CRLF: '\r' before '\n'
    s.stuffed_tail = !s.has_nl ? s.stuffed_len : s.tail + (s.tail > 0 && pending_[nl + 1] == '.');
    s.starts_dot = pending_[0] == '.';
    s.qp_resume = qp_resume_;
    qp_resume_ = false;
    if (has_eight_bit(pending_)) impl_.literal_eight_bit = true;
    impl_.segments.push_back(s);
    impl_.ops.push_back({OpKind::kLiteral, Ctx::kBodyRaw, uint32_t(impl_.segments.size() - 1), 0});
    pending_.clear();
  }

 private:
  CompiledTemplate::Impl& impl_;
  std::vector<std::string>& placeholders_;
  std::string pending_;
  bool qp_resume_ = false;
};

}  // namespace

template <class GetValue>
Status CompiledTemplate::Impl::render(GetValue&& get, const RenderInput& in, bool dot_stuff,
                                      RenderedMessage& out) const {
  out.clear();
  // Pieces point into `storage`, so it must not reallocate while we append: reserve an upper
  // bound first. After the first large recipient the capacity stays and nothing allocates.
  // A header line that merging makes long is copied once more and folded (fold_line): its
  // values and literal text need up to 4x again.
  size_t bound = segments.size() + kDateOctets + 32 + 4 * header_octets;
  for (const Op& op : ops) {
    if (op.kind == OpKind::kValue) {
      size_t n = get(op.index).size();
      size_t b = value_bound(op.filter == Filter::kHtml ? 6 * n : op.filter == Filter::kUrl ? 3 * n : n);
      bound += op.ctx == Ctx::kHeaderText || op.ctx == Ctx::kHeaderRaw || op.ctx == Ctx::kHeaderUrl
                   ? 3 * b
                   : b;
    }
    if (op.kind == OpKind::kEmail) bound += 3 * value_bound(in.email.size());
    if (op.kind == OpKind::kToken) bound += 3 * value_bound(token_bound(in.email.size()));
    if (op.kind == OpKind::kField) bound += field_bound(fields[op.index], get, in.email);
  }
  std::string& st = out.storage;
  st.reserve(bound);
  out.pieces.reserve(2 * ops.size() + 1);
  const char* const base = st.data();

  // `col`: octets on the current line so far, counted unstuffed (see render() in template.h).
  size_t col = 0;
  bool eight_bit = literal_eight_bit;
  bool smtputf8 = literal_smtputf8;
  bool last_stored = false;  // the last piece is the tail of `storage` and can grow
  const Segment* last_literal = nullptr;

  // The header line that merge values are on, if any: where it starts in the pieces, and what
  // decides whether it is folded and what an error names.
  struct HeaderLine {
    bool open = false;
    bool refold = false;     // an RFC 2047 value made a line longer than 76 octets
    bool encoded = false;    // holds RFC 2047 encoded-words
    // Where its first value went: right after literal `lit` (whose piece is pieces[piece - 1])
    // or, if not (not reached with compiled templates), into pieces[piece - 1] from octet `off`
    // on or into a new pieces[piece]; `col` was the column before it.
    bool after_literal = false;
    bool merged = false;
    const Segment* lit = nullptr;
    size_t piece = 0;
    size_t off = 0;
    size_t col = 0;
    uint32_t header = 0;
    std::string_view field;  // the merge field that put the most octets on it
    size_t field_octets = 0;
  } hl;
  // The body line being written: the merge field that put the most octets on it, if any.
  std::string_view line_field;
  size_t line_field_octets = 0;

  auto add_stored = [&](size_t start) {
    size_t len = st.size() - start;
    if (len == 0) return;
    if (last_stored) {
      std::string_view& b = out.pieces.back();
      b = std::string_view(b.data(), b.size() + len);
    } else {
      out.pieces.emplace_back(st.data() + start, len);
      last_stored = true;
    }
  };
  auto body_line_error = [&](std::string_view field, size_t octets) SB_NOINLINE {
    return make_error(ErrDomain::kInput, "merge field '" + std::string(field) +
                                             "' makes a body line " + std::to_string(octets) +
                                             " octets long (RFC 5322 limit 998)");
  };
  // The first value on a header line: note where the line starts (worked out if it is folded).
  auto open_header_line = [&](uint32_t header) {
    hl.open = true;
    hl.refold = hl.encoded = false;
    hl.header = header;
    hl.field = {};
    hl.field_octets = 0;
    hl.after_literal = !last_stored && last_literal != nullptr && !out.pieces.empty();
    hl.lit = last_literal;
    hl.piece = out.pieces.size();
    hl.col = col;
    if (!hl.after_literal) {
      hl.merged = last_stored;
      hl.off = last_stored ? out.pieces.back().size() : 0;
    }
  };
  // The header line ends in literal `s` and is too long: gathers it from its pieces (and the
  // head of `s`) into storage, folds it there, and makes that one piece, followed by the rest
  // of `s`. Rare: only long merged header lines come here.
  auto fold_line = [&](const Segment& s) SB_NOINLINE -> Status {
    size_t limit = hl.encoded ? kEncodedWordLineOctets : kFoldOctets;
    // Where the line starts: pieces[first], `off` octets in, with `col0` octets before that.
    size_t first = hl.piece, off = 0, col0 = 0;
    if (hl.after_literal) {
      const Segment* lit = hl.lit;
      first = hl.piece - 1;
      if (lit->has_nl) {
        off = out.pieces[first].size() - (dot_stuff ? lit->stuffed_tail : lit->tail);
      } else if (hl.col > lit->plain_len) {
        col0 = hl.col - lit->plain_len;  // the literal began mid-line (not reached)
      } else if (dot_stuff && lit->starts_dot && first > 0) {  // the stuffed "." piece before
        --first;
        off = out.pieces[first].size() - 1;
      }
    } else {
      col0 = hl.col;
      first = hl.merged ? hl.piece - 1 : hl.piece;
      off = hl.off;
    }
    size_t gather = st.size();
    for (size_t k = first; k < out.pieces.size(); ++k) {
      std::string_view p = out.pieces[k];
      if (k == first) p.remove_prefix(off);
      st.append(p.data(), p.size());  // may point into `st`: no reallocation (bound)
    }
    st.append(plain.data() + s.plain_off, s.head);
    // A stuffed "." (DATA) is not part of the line; it goes back in front of the result.
    bool dot = dot_stuff && col0 == 0 && st.size() > gather && st[gather] == '.';
    std::string_view line(st.data() + gather + dot, st.size() - gather - dot);
    size_t wsp = size_t(std::count_if(line.begin(), line.end(), is_wsp));
    if (st.capacity() - st.size() < line.size() + 2 * wsp + 3) std::abort();  // bug in bound
    size_t folded = st.size();
    if (dot) st.push_back('.');
    size_t longest = fold_header(line, col0, limit, st);
    if (longest > kMaxLineOctets) {
      return make_error(ErrDomain::kInput,
                        "merge field '" + std::string(hl.field) + "' makes header '" +
                            header_names[hl.header] + "' line " + std::to_string(longest) +
                            " octets long (RFC 5322 limit 998)");
    }
    st.append(kCrlf);
    if (first < out.pieces.size()) {
      out.pieces[first] = out.pieces[first].substr(0, off);
      out.pieces.resize(off > 0 ? first + 1 : first);
    }
    out.pieces.emplace_back(st.data() + folded, st.size() - folded);
    size_t from = s.head + 2;  // the stuffed form is the same up to here
    if (from < s.plain_len) {
      out.pieces.emplace_back(dot_stuff ? std::string_view(stuffed.data() + s.stuffed_off + from,
                                                           s.stuffed_len - from)
                                        : std::string_view(plain.data() + s.plain_off + from,
                                                           s.plain_len - from));
      last_stored = false;
    } else {
      last_stored = true;
    }
    return {};
  };
  auto header_value = [&](std::string_view v, Ctx ctx, std::string_view field,
                          uint32_t header) -> Status {
    if (ctx != Ctx::kHeaderUrl && has_line_break_or_nul(v)) {
      bool nul = v.find('\0') != std::string_view::npos &&
                 v.find_first_of("\r\n") == std::string_view::npos;
      return make_error(ErrDomain::kInput,
                        "merge field '" + std::string(field) + "' for header '" +
                            header_names[header] +
                            (nul ? "' contains a NUL byte" : "' contains a line break"));
    }
    if (!hl.open) open_header_line(header);
    size_t start = st.size();
    if (ctx == Ctx::kHeaderUrl) {
      static constexpr char kHex[] = "0123456789ABCDEF";
      for (char ch : v) {
        auto c = uint8_t(ch);
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
          st.push_back(ch);
        } else {
          st.push_back('%');
          st.push_back(kHex[c >> 4]);
          st.push_back(kHex[c & 15]);
        }
      }
      col += st.size() - start;
    } else if (ctx == Ctx::kHeaderText && has_eight_bit(v)) {
      size_t col_before = col;
      append_rfc2047(st, v, col);
      hl.encoded = true;
      // Its first line may be long (what precedes + a 75-octet word): fold it at the end.
      size_t first = std::string_view(st.data() + start, st.size() - start).find(kCrlf);
      if (first != std::string_view::npos && col_before + first > kEncodedWordLineOctets) {
        hl.refold = true;
      }
    } else {
      if (has_eight_bit(v)) {
        // A structured field (Message-ID, Content-Type, List-…) has no encoded-words, and
        // raw UTF-8 would need SMTPUTF8 from every server: the recipient fails instead.
        return make_error(ErrDomain::kInput,
                          "merge field '" + std::string(field) + "' for header '" +
                              header_names[header] +
                              "' is not ASCII, and this header cannot carry it encoded");
      }
      if (dot_stuff && col == 0 && !v.empty() && v[0] == '.') st.push_back('.');
      st.append(v);
      col += v.size();
    }
    size_t octets = st.size() - start;
    if (octets > hl.field_octets || hl.field.empty()) {
      hl.field = field;
      hl.field_octets = octets;
      hl.header = header;
    }
    add_stored(start);
    return {};
  };

  for (const Op& op : ops) {
    switch (op.kind) {
      case OpKind::kLiteral: {
        const Segment& s = segments[op.index];
        if (s.qp_resume && col > 0 && col + s.head > kQpLineOctets) {
          static constexpr std::string_view kSoftBreak = "=\r\n";
          out.pieces.push_back(kSoftBreak);
          last_stored = false;
          col = 0;
        }
        if (s.has_nl) {
          if (hl.open) {
            hl.open = false;
            if (hl.refold ||
                col + s.head > (hl.encoded ? kEncodedWordLineOctets : kFoldOctets)) {
              Status r = fold_line(s);
              if (!r) return r;
              col = s.tail;
              last_literal = &s;
              break;
            }
          } else if (!line_field.empty()) {
            if (col + s.head > kMaxLineOctets) return body_line_error(line_field, col + s.head);
            line_field = {};
            line_field_octets = 0;
          }
        }
        if (dot_stuff && col == 0 && s.starts_dot) {
          size_t start = st.size();
          st.push_back('.');
          add_stored(start);
        }
        out.pieces.emplace_back(dot_stuff
                                    ? std::string_view(stuffed).substr(s.stuffed_off, s.stuffed_len)
                                    : std::string_view(plain).substr(s.plain_off, s.plain_len));
        last_stored = false;
        last_literal = &s;
        col = s.has_nl ? s.tail : col + s.plain_len;
        break;
      }
      case OpKind::kValue: {
        std::string_view v = get(op.index);
        if (op.ctx == Ctx::kHeaderText || op.ctx == Ctx::kHeaderRaw || op.ctx == Ctx::kHeaderUrl) {
          Status s = header_value(v, op.ctx, get.name(op.index), op.header);
          if (!s) return s;
          break;
        }
        if (op.filter != Filter::kNone) {
          std::string& f = out.field_scratch.raw;
          f.clear();
          if (op.filter == Filter::kHtml) {
            append_html_escaped(f, v);
          } else {
            append_percent_encoded(f, v);
          }
          v = f;
        }
        size_t start = st.size();
        size_t before = col;
        // The longest line the value ended (its first includes the text before it).
        size_t longest = op.ctx == Ctx::kBodyQp ? append_body_qp(st, v, dot_stuff, col)
                                                : append_body_raw(st, v, dot_stuff, col, eight_bit);
        add_stored(start);
        if (longest > kMaxLineOctets) return body_line_error(get.name(op.index), longest);
        // Octets it put on the line now open: all of that line's octets when it broke a line
        // (longest > 0, or a break at column 0, which leaves before == 0).
        size_t octets = longest > 0 ? col : col - before;
        if (longest > 0 || octets > line_field_octets) {
          line_field = get.name(op.index);
          line_field_octets = octets;
        }
        break;
      }
      case OpKind::kEmail: {
        Status s = header_value(in.email, Ctx::kHeaderRaw, "email", op.header);
        if (!s) return s;
        break;
      }
      case OpKind::kField: {
        const HeaderField& f = fields[op.index];
        size_t start = st.size();
        if (dot_stuff && col == 0 && f.name[0] == '.') st.push_back('.');
        struct Adapter final : FieldValues {
          GetValue& g;
          std::string_view mail;
          Adapter(GetValue& gv, std::string_view m) : g(gv), mail(m) {}
          std::string_view value(uint32_t i) const override { return g(i); }
          std::string_view field_name(uint32_t i) const override { return g.name(i); }
          std::string_view email() const override { return mail; }
          bool probe() const override { return g.probe(); }
        } values(get, in.email);
        Status s = render_header_field(f, values, out.field_scratch, st, smtputf8);
        if (!s) return s;
        add_stored(start);
        col = 0;
        break;
      }
      case OpKind::kDate: {
        size_t start = st.size();
        append_rfc5322_date(st, in.now);
        col += st.size() - start;
        add_stored(start);
        break;
      }
      case OpKind::kToken: {
        std::string token = make_token(unsub_secret, unsub_task_id, in.email);
        Status s = header_value(token, Ctx::kHeaderRaw, "token", op.header);
        if (!s) return s;
        break;
      }
      case OpKind::kRecipientId: {
        char buf[24];
        auto res = std::to_chars(buf, buf + sizeof buf, in.recipient_id);
        size_t start = st.size();
        st.append(buf, size_t(res.ptr - buf));
        col += st.size() - start;
        add_stored(start);
        break;
      }
    }
  }
  if (col != 0) {
    if (!line_field.empty() && col > kMaxLineOctets) return body_line_error(line_field, col);
    out.pieces.push_back(kCrlf);  // the body lacked a final line end
  }
  // A reallocation would have left earlier pieces dangling: that is a bug in `bound`.
  if (st.data() != base && !st.empty()) std::abort();
  size_t size = 0;
  for (std::string_view p : out.pieces) size += p.size();
  out.size = size;
  // The only 8-bit octets a header field may hold are a UTF-8 address's (RFC 6532).
  out.eight_bit = eight_bit || smtputf8;
  out.smtputf8 = smtputf8;
  return {};
}

std::string RenderedMessage::flatten() const {
  std::string r;
  r.reserve(size);
  for (std::string_view p : pieces) r.append(p);
  return r;
}

Result<CompiledTemplate> CompiledTemplate::compile(std::string_view raw,
                                                   const TemplateOptions& opts) {
  CompiledTemplate t;
  auto impl = std::make_shared<Impl>();
  Builder b(*impl, t.placeholders_);
  t.source_hash_ = sha256_hex(raw);

  std::vector<Line> lines = split_lines(raw);
  for (const Line& ln : lines) {
    if (ln.text.find('\0') != std::string_view::npos) {
      return input_error(ln.number, "contains a NUL byte");
    }
    if (ln.text.size() > kMaxLineOctets) {
      return input_error(ln.number, "is " + std::to_string(ln.text.size()) +
                                        " octets long; RFC 5322 allows at most 998 per line");
    }
  }

  size_t first = 0;
  // An mbox "From " envelope line (from a saved message) is not part of the message.
  if (!lines.empty() && lines[0].text.starts_with("From ") &&
      header_name_length(lines[0].text) == 0) {
    first = 1;
  }
  size_t sep = lines.size();
  for (size_t i = first; i < lines.size(); ++i) {
    if (lines[i].text.empty()) {
      sep = i;
      break;
    }
  }
  // Header lines are [first, header_end); the body starts at body_begin.
  size_t header_end = sep;
  size_t body_begin = sep < lines.size() ? sep + 1 : lines.size();
  for (size_t i = first; i < header_end; ++i) {
    const Line& ln = lines[i];
    bool ok = header_name_length(ln.text) > 0 || (i > first && is_continuation(ln.text));
    if (ok) continue;
    if (sep == lines.size()) {
      return input_error(ln.number,
                         "is not a header field, and the template has no blank line: a blank "
                         "line must separate the headers from the body");
    }
    return input_error(ln.number, i == first && is_continuation(ln.text)
                                      ? "a continuation line with no header field before it"
                                      : "is neither a header field (\"Name: value\") nor a "
                                        "continuation line");
  }

  // The template's header fields, each with its lines [begin, end).
  struct RawField {
    size_t begin, end;
    std::string_view name;
    std::string lname;
  };
  std::vector<RawField> raw_fields;
  for (size_t i = first; i < header_end;) {
    size_t name_len = header_name_length(lines[i].text);
    std::string_view name = lines[i].text.substr(0, name_len);
    if (name.find("{{") != std::string_view::npos) {
      return input_error(lines[i].number, "a placeholder cannot stand in a header name");
    }
    size_t j = i + 1;
    while (j < header_end && is_continuation(lines[j].text)) ++j;
    raw_fields.push_back({i, j, name, lower(name)});
    i = j;
  }
  // RFC 5322 §3.6: a message has at most one of each of these.
  static constexpr std::array<std::string_view, 11> kOnce = {
      "date", "from",        "sender",     "reply-to", "to",     "cc",
      "bcc",  "message-id", "in-reply-to", "references", "subject"};
  for (std::string_view once : kOnce) {
    std::vector<int> at;
    std::string_view written;
    for (const RawField& f : raw_fields) {
      if (f.lname != once) continue;
      if (at.empty()) written = f.name;
      at.push_back(lines[f.begin].number);
    }
    if (at.size() < 2) continue;
    std::string where;
    for (size_t k = 0; k < at.size(); ++k) {
      where += (k == 0 ? "" : k + 1 == at.size() ? " and " : ", ") + std::to_string(at[k]);
    }
    return make_error(ErrDomain::kInput,
                      "template has " + std::to_string(at.size()) + " '" + std::string(written) +
                          ":' headers (lines " + where +
                          "); a message may have only one (RFC 5322 §3.6)");
  }

  bool have_from = false, have_to = false, have_date = false, have_msgid = false;
  bool have_list_unsub = false, have_mime_version = false, have_ctype = false;
  std::string from_value, cte_value, ctype_value, ctype_raw;
  for (const RawField& f : raw_fields) {
    std::string v = field_value(lines, f.begin, f.end);
    if (f.lname == "from") {
      have_from = true;
      from_value = v;
    } else if (f.lname == "to") {
      have_to = true;
    } else if (f.lname == "date") {
      have_date = true;
    } else if (f.lname == "message-id") {
      have_msgid = true;
    } else if (f.lname == "subject" && t.subject_.empty()) {
      t.subject_ = v;
    } else if (f.lname == "content-transfer-encoding") {
      cte_value = lower(v);
    } else if (f.lname == "list-unsubscribe" || f.lname == "list-unsubscribe-post") {
      have_list_unsub = true;
    } else if (f.lname == "content-type") {
      have_ctype = true;
      ctype_raw = v;
      ctype_value = lower(v);
    } else if (f.lname == "mime-version") {
      have_mime_version = true;
    }
  }

  // The body's MIME structure decides how each part's text and values are encoded.
  BodyMap body;
  {
    MimePart top;
    top.has_ctype = have_ctype;
    top.ctype = have_ctype ? ctype_value : "text/plain";
    top.cte = cte_value;
    if (Status s = map_body(lines, body_begin, top, ctype_raw, body); !s) return s.error();
  }
  const bool convert_top = body.parts[0].convert;

  // Header fields: text and addresses that merge values or are not ASCII are built as a whole
  // (HeaderField); the rest is copied as it is (folding kept), with its placeholders.
  struct NoValues final : FieldValues {
    std::string_view value(uint32_t) const override { return {}; }
    std::string_view field_name(uint32_t) const override { return {}; }
    std::string_view email() const override { return {}; }
  };
  // Compiles a field from its value parts; one without merge values is rendered here, once.
  auto add_field = [&](std::string_view name, bool address, const std::vector<FieldPart>& parts,
                       int line) -> Status {
    auto hf = compile_header_field(name, address, parts);
    if (!hf) return input_error(line, hf.error().message);
    bool merged = std::any_of(parts.begin(), parts.end(), [](const FieldPart& p) {
      return p.kind != FieldPart::Kind::kText;
    });
    if (merged) {
      impl->fields.push_back(std::move(hf).value());
      b.op(OpKind::kField, Ctx::kHeaderRaw, uint32_t(impl->fields.size() - 1), b.header(name));
      return {};
    }
    FieldScratch scratch;
    std::string once;
    bool utf8 = false;
    if (Status s = render_header_field(*hf, NoValues{}, scratch, once, utf8); !s) {
      return input_error(line, s.error().message);
    }
    impl->literal_smtputf8 = impl->literal_smtputf8 || utf8;
    b.text(once);
    return {};
  };
  for (const RawField& f : raw_fields) {
    if (convert_top && f.lname == "content-transfer-encoding") continue;  // replaced below
    bool address = is_address_header(f.lname);
    bool text = !address && !is_raw_header(f.lname);
    bool merged = false, eight = false;
    std::vector<FieldPart> parts;
    for (size_t j = f.begin; j < f.end; ++j) {
      std::string_view ln = lines[j].text;
      if (j == f.begin) ln.remove_prefix(ln.find(':') + 1);
      eight = eight || has_eight_bit(ln);
      std::vector<Piece> pieces;
      if (Status s = split_placeholders({ln, true, lines[j].number}, pieces); !s) {
        return s.error();
      }
      for (const Piece& p : pieces) {
        if (!p.placeholder) {
          if (parts.empty() || parts.back().kind != FieldPart::Kind::kText) parts.emplace_back();
          parts.back().text.append(p.text);
          continue;
        }
        if (p.filter == Filter::kUrl && (address || text)) {
          return input_error(lines[j].number, "the |url filter is for bodies and URL headers, "
                                              "not for header '" + std::string(f.name) + "'");
        }
        merged = true;
        parts.push_back({FieldPart::Kind::kValue, b.placeholder_index(p.text), {}});
      }
    }
    if ((address || text) && (merged || eight)) {
      if (Status s = add_field(f.name, address, parts, lines[f.begin].number); !s) return s.error();
      continue;
    }
    std::vector<std::string> rewritten;  // lines whose MIME parameters became RFC 2231
    if (eight) {
      for (size_t j = f.begin; j < f.end; ++j) {
        std::string r;
        if (!rfc2231_params(lines[j].text, r)) {
          return input_error(lines[j].number,
                             "header '" + std::string(f.name) +
                                 "' holds non-ASCII text, which this header cannot carry "
                                 "encoded; write it in ASCII");
        }
        rewritten.push_back(std::move(r));
      }
    }
    uint32_t hidx = b.header(f.name);
    for (size_t j = f.begin; j < f.end; ++j) {
      Line ln = lines[j];
      if (eight) ln.text = rewritten[j - f.begin];
      Status s = b.line(ln, text ? Ctx::kHeaderText : Ctx::kHeaderRaw, hidx, nullptr);
      if (!s) return s.error();
      b.text(kCrlf);
    }
  }

  // Envelope sender: the From: header's address unless a merge field decides it per recipient.
  if (has_line_break_or_nul(opts.default_from)) {
    return make_error(ErrDomain::kConfig, "--from contains a line break");
  }
  if (have_from) {
    // A merged or domain-less address cannot be the one envelope sender of the whole run.
    std::string a = addr_spec(from_value);
    if (a.find("{{") == std::string::npos && a.find('@') != std::string::npos) {
      t.from_address_ = a;
    }
  }
  if (t.from_address_.empty() && !opts.default_from.empty()) {
    t.from_address_ = addr_spec(opts.default_from);
  }

  // Generated headers go after the template's own, before the blank line.
  if (!have_from) {
    if (opts.default_from.empty()) {
      return make_error(ErrDomain::kInput, "template has no From: header and no --from was given");
    }
    if (has_eight_bit(opts.default_from)) {
      std::vector<FieldPart> parts{{FieldPart::Kind::kText, 0, opts.default_from}};
      if (Status s = add_field("From", true, parts, 0); !s) {
        return make_error(ErrDomain::kConfig, "--from: " + s.error().message);
      }
    } else {
      b.text("From: ");
      b.text(opts.default_from);
      b.text(kCrlf);
    }
  }
  if (!have_to) {
    std::vector<FieldPart> parts{{FieldPart::Kind::kText, 0, "<"},
                                 {FieldPart::Kind::kEmail, 0, {}},
                                 {FieldPart::Kind::kText, 0, ">"}};
    if (Status s = add_field("To", true, parts, 0); !s) return s.error();
  }
  if (!have_date) {
    b.text("Date: ");
    b.op(OpKind::kDate, Ctx::kHeaderRaw);
    b.text(kCrlf);
  }
  // Without a task key the template hash keeps ids stable across retries of the same run.
  const std::string key = opts.task_key.empty() ? t.source_hash_.substr(0, 16) : opts.task_key;
  if (!have_msgid) {
    std::string domain = opts.message_id_domain;
    if (domain.empty()) {
      size_t at = t.from_address_.rfind('@');
      if (at != std::string::npos) domain = t.from_address_.substr(at + 1);
    }
    auto bad_id_part = [](std::string_view s) {
      return s.empty() || std::any_of(s.begin(), s.end(), [](char c) {
               return uint8_t(c) <= 32 || uint8_t(c) >= 127 || c == '<' || c == '>' || c == '@' ||
                      c == '(' || c == ')' || c == ',' || c == ';' || c == '"' || c == '\\' ||
                      c == '[' || c == ']' || c == ':';
             });
    };
    if (bad_id_part(domain)) {
      if (!opts.message_id_domain.empty()) {
        return make_error(ErrDomain::kConfig,
                          "message id domain '" + opts.message_id_domain + "' is not a domain");
      }
      domain = kDefaultIdDomain;
    }
    if (bad_id_part(key)) {
      return make_error(ErrDomain::kConfig,
                        "task key '" + opts.task_key + "' cannot be used in a Message-ID");
    }
    b.text("Message-ID: <");
    b.text(key);
    b.text(".");
    b.op(OpKind::kRecipientId, Ctx::kHeaderRaw);
    b.text("@");
    b.text(domain);
    b.text(">\r\n");
  }
  const UnsubscribeOptions& u = opts.unsubscribe;
  if (!u.url.empty() || !u.mailto.empty()) {
    if (have_list_unsub) {
      return make_error(ErrDomain::kConfig,
                        "the template has its own List-Unsubscribe header; remove it, or do not "
                        "give --unsubscribe-url/--unsubscribe-mailto");
    }
    if (!u.url.empty()) {
      if (Status c = check_unsubscribe_url(u.url); !c) return c.error();
      if (unsubscribe_url_has_token(u.url) && u.secret.size() < kMinUnsubscribeSecret) {
        return make_error(ErrDomain::kConfig,
                          "--unsubscribe-url uses {{token}}: give --unsubscribe-secret-file");
      }
    }
    if (!u.mailto.empty()) {
      if (Status c = check_unsubscribe_mailto(u.mailto); !c) return c.error();
    }
    impl->unsub_secret = u.secret;
    impl->unsub_task_id = u.task_id.empty() ? key : u.task_id;
    uint32_t hidx = b.header("List-Unsubscribe");
    b.text("List-Unsubscribe: ");
    if (!u.url.empty()) {
      b.text("<");
      std::string_view url = u.url;
      for (size_t open; (open = url.find("{{")) != std::string_view::npos;) {
        size_t close = url.find("}}", open + 2);  // checked above
        b.text(url.substr(0, open));
        std::string_view name = trim(url.substr(open + 2, close - open - 2));
        if (name == "token") {
          b.op(OpKind::kToken, Ctx::kHeaderRaw, 0, hidx);
        } else {
          b.value(name, Ctx::kHeaderUrl, hidx);
        }
        url.remove_prefix(close + 2);
      }
      b.text(url);
      b.text(">");
    }
    if (!u.mailto.empty()) {
      // Between the two URIs the field is folded, so no URI is ever split.
      if (!u.url.empty()) b.text(",\r\n ");
      b.text(u.mailto.starts_with("mailto:") ? "<" : "<mailto:");
      b.text(u.mailto);
      b.text(">");
    }
    b.text(kCrlf);
    // RFC 8058 §3.1: the POST form goes with an HTTPS URI only.
    if (!u.url.empty()) b.text("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n");
  }
  if (convert_top) {
    // (After the generated fields, so a template without headers still starts with From:.)
    // The body goes as quoted-printable, labelled as UTF-8 text when the template did not say.
    if (!have_mime_version) b.text("MIME-Version: 1.0\r\n");
    if (!have_ctype) b.text("Content-Type: text/plain; charset=utf-8\r\n");
    b.text("Content-Transfer-Encoding: quoted-printable\r\n");
  }
  b.text(kCrlf);  // header/body separator, also for an empty body
  impl->header_octets = b.literal_size();

  // The body, part by part: a part converted to quoted-printable gets its text encoded here
  // and a Content-Transfer-Encoding field of its own; values go in encoded for their part.
  const uint32_t part_header = b.header("MIME part header");
  for (size_t i = body_begin; i < lines.size(); ++i) {
    const Line& ln = lines[i];
    Role role = body.role[i];
    int owner = body.owner[i];
    Status s;
    if (role == Role::kPartHeader) {
      const MimePart& p = body.parts[size_t(owner)];
      if (p.convert && p.has_cte && i >= p.cte_begin && i < p.cte_end) continue;
      if (p.convert && i == p.hdr_end) {  // the blank line: the new fields go before it
        if (!p.has_ctype) b.text("Content-Type: text/plain; charset=utf-8\r\n");
        b.text("Content-Transfer-Encoding: quoted-printable\r\n");
      }
      if (has_eight_bit(ln.text)) {
        // A file name that is not ASCII: an RFC 2231 parameter keeps the body 7-bit.
        std::string r;
        if (!rfc2231_params(ln.text, r)) {
          return input_error(ln.number, "a MIME part header holds non-ASCII text outside a "
                                        "parameter value; write it in ASCII");
        }
        s = b.line({r, ln.terminated, ln.number}, Ctx::kHeaderRaw, part_header, nullptr);
      } else {
        s = b.line(ln, Ctx::kHeaderRaw, part_header, nullptr);
      }
    } else if (role == Role::kContent) {
      const MimePart& p = body.parts[size_t(owner)];
      Ctx ctx = p.convert || p.cte == "quoted-printable" ? Ctx::kBodyQp : Ctx::kBodyRaw;
      s = b.line(ln, ctx, 0, nullptr, p.convert, p.html);
    } else {
      s = b.line(ln, Ctx::kBodyRaw, 0, nullptr);
    }
    if (!s) return s.error();
    if (ln.terminated) b.text(kCrlf);
  }
  b.flush();
  t.columns_.assign(t.placeholders_.size(), kUnbound);
  for (size_t i = 0; i < t.placeholders_.size(); ++i) {
    if (t.placeholders_[i] == "email") t.columns_[i] = kEmailColumn;
  }
  // A body with no merge values is the same for every recipient: DKIM hashes it once.
  // (A value in a MIME part's header is in the body too.)
  const bool body_static = std::none_of(impl->ops.begin(), impl->ops.end(), [&](const Impl::Op& op) {
    return op.kind == OpKind::kValue && (op.ctx == Ctx::kBodyRaw || op.ctx == Ctx::kBodyQp ||
                                         op.header == part_header);
  });
  t.impl_ = impl;

  // Empty values, empty address, one-digit id: the smallest message this template renders.
  RenderedMessage probe;
  struct Empty {
    bool probe() const { return true; }
    std::string_view operator()(uint32_t) const { return {}; }
    std::string_view name(uint32_t) const { return {}; }
  };
  Status s = t.impl_->render(Empty{}, RenderInput{}, false, probe);
  if (!s) return s.error();
  for (const auto& signer : opts.dkim) {
    if (signer) impl->signers.push_back(signer);
  }
  if (!impl->signers.empty()) {
    if (body_static) {
      for (const auto& signer : impl->signers) {
        impl->body_hashes.push_back(signer->precompute_body_hash(probe.pieces));
      }
    }
    // Signing once now proves the message can be signed before any recipient is tried.
    if (Status sg = impl->sign(RenderInput{}, false, probe); !sg) return sg.error();
    // DMARC alignment (RFC 7489 §3.1.1) is judged on the From: header's domain.
    std::string header_from = have_from ? addr_spec(from_value) : addr_spec(opts.default_from);
    for (const auto& signer : impl->signers) {
      if (header_from.find("{{") != std::string::npos) {
        t.warnings_.push_back("the From: address is a merge field: check that its domain is " +
                              signer->domain() + " or a subdomain of it, or DKIM d=" +
                              signer->domain() + " does not align for DMARC");
      } else if (std::string w = alignment_warning(header_from, signer->domain()); !w.empty()) {
        t.warnings_.push_back(std::move(w));
      }
    }
  }
  t.fixed_size_ = probe.size;
  return t;
}

Status CompiledTemplate::bind(const std::vector<std::string>& field_names) {
  std::vector<std::string> unknown;
  for (size_t i = 0; i < placeholders_.size(); ++i) {
    const std::string& p = placeholders_[i];
    if (p == "email") {
      columns_[i] = kEmailColumn;
      continue;
    }
    // Exact match first; then case-insensitive, since CSV headers are often capitalised.
    auto it = std::find(field_names.begin(), field_names.end(), p);
    if (it == field_names.end()) {
      it = std::find_if(field_names.begin(), field_names.end(),
                        [&](const std::string& f) { return iequals(f, p); });
    }
    if (it == field_names.end()) {
      unknown.push_back(p);
      columns_[i] = kUnbound;
    } else {
      columns_[i] = int(it - field_names.begin());
    }
  }
  if (unknown.empty()) return {};
  std::string msg = unknown.size() == 1 ? "unknown merge field " : "unknown merge fields ";
  msg += capped_list(unknown, "'");
  // Capped: a CSV with 100,000 columns must not make this one 789 KB line.
  std::vector<std::string> known{"email"};
  for (const std::string& f : field_names) {
    if (f != "email") known.push_back(f);
  }
  msg += " in the template; known fields: " + capped_list(known);
  return make_error(ErrDomain::kInput, msg);
}

Status CompiledTemplate::render(const RenderInput& in, bool dot_stuff, RenderedMessage& out) const {
  if (!impl_) return make_error(ErrDomain::kInput, "template was not compiled");
  size_t have = in.values ? in.values->size() : 0;
  for (size_t i = 0; i < columns_.size(); ++i) {
    if (columns_[i] == kUnbound) {
      return make_error(ErrDomain::kInput,
                        "merge field '" + placeholders_[i] + "' is not bound to a field");
    }
    if (columns_[i] >= 0 && size_t(columns_[i]) >= have) {
      return make_error(ErrDomain::kInput,
                        "recipient has no value for merge field '" + placeholders_[i] + "'");
    }
  }
  struct Values {
    bool probe() const { return false; }
    const CompiledTemplate& t;
    const RenderInput& in;
    std::string_view operator()(uint32_t i) const {
      int c = t.columns_[i];
      return c == kEmailColumn ? in.email : std::string_view((*in.values)[size_t(c)]);
    }
    std::string_view name(uint32_t i) const { return t.placeholders_[i]; }
  };
  if (impl_->signers.empty()) return impl_->render(Values{*this, in}, in, dot_stuff, out);
  Status s = impl_->render(Values{*this, in}, in, false, out);
  if (!s) return s;
  return impl_->sign(in, dot_stuff, out);
}

Status CompiledTemplate::Impl::sign(const RenderInput& in, bool dot_stuff,
                                    RenderedMessage& out) const {
  out.dkim.clear();
  for (size_t i = 0; i < signers.size(); ++i) {
    std::string_view bh = i < body_hashes.size() ? std::string_view(body_hashes[i]) : "";
    Status s = signers[i]->sign(out.pieces, out.dkim_field, bh, in.now > 0 ? in.now : -1);
    if (!s) return s;
    out.dkim += out.dkim_field;
  }
  // The signatures go on top (RFC 6376 §5.6); `dkim` is complete, so the piece stays valid.
  std::vector<std::string_view>& np = out.scratch_pieces;
  np.clear();
  np.push_back(out.dkim);
  size_t size = out.dkim.size();
  if (!dot_stuff) {
    np.insert(np.end(), out.pieces.begin(), out.pieces.end());
    size += out.size;
  } else {
    // DATA: a "." that starts a line gets another "." (RFC 5321 §4.5.2), as its own piece;
    // the rest of the piece follows, so nothing is copied. The signatures end with CRLF.
    static constexpr std::string_view kDot = ".";
    bool bol = true;
    for (std::string_view p : out.pieces) {
      size_t start = 0;
      size_t i = 0;
      while (i < p.size()) {
        if (bol && p[i] == '.') {
          if (i > start) np.push_back(p.substr(start, i - start));
          np.push_back(kDot);
          ++size;
          start = i;
        }
        const void* nl = std::memchr(p.data() + i, '\n', p.size() - i);
        if (nl == nullptr) {
          bol = false;
          break;
        }
        i = size_t(static_cast<const char*>(nl) - p.data()) + 1;
        bol = true;
      }
      if (start < p.size()) np.push_back(p.substr(start));
      size += p.size();
    }
  }
  out.pieces.swap(np);
  out.size = size;
  return {};
}

}  // namespace sb
