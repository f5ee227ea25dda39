// Header fields built per recipient: unstructured text and address lists, encoded and folded.
#include "message/header_field.h"

#include <algorithm>
#include <array>

#include "base/text.h"
#include "message/address.h"
#include "message/encode.h"

namespace sb {
namespace {

// A placeholder inside an address value while it is parsed: kMark and a slot character.
constexpr char kMark = '\x01';
constexpr std::string_view kSlots =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

// A token of unstructured text that must be an encoded-word: not ASCII, a control character,
// or "=?" (a decoder would take it for the start of one).
bool needs_encoding(std::string_view tok) {
  for (size_t i = 0; i < tok.size(); ++i) {
    auto u = uint8_t(tok[i]);
    if (u >= 0x80 || u == 0x7f || u < 0x20) return true;
    if (tok[i] == '=' && i + 1 < tok.size() && tok[i + 1] == '?') return true;
  }
  return false;
}

// Splits a parsed name or address back into literal text and the placeholders it holds.
std::vector<FieldPart> unmark(std::string_view s, const std::vector<FieldPart>& slots) {
  std::vector<FieldPart> parts;
  std::string text;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == kMark && i + 1 < s.size()) {
      if (!text.empty()) parts.push_back({FieldPart::Kind::kText, 0, std::move(text)});
      text.clear();
      parts.push_back(slots[kSlots.find(s[++i])]);
    } else {
      text.push_back(s[i]);
    }
  }
  if (!text.empty()) parts.push_back({FieldPart::Kind::kText, 0, std::move(text)});
  return parts;
}

// Renders with one header field; collects what an error must name.
class FieldWriter {
 public:
  FieldWriter(const HeaderField& f, const FieldValues& v) : f_(f), v_(v) {}

  // Appends the parts' merged text to `to`. A line break or NUL fails the recipient.
  Status merge(const std::vector<FieldPart>& parts, std::string& to) {
    for (const FieldPart& p : parts) {
      if (p.kind == FieldPart::Kind::kText) {
        to.append(p.text);
        continue;
      }
      std::string_view v = p.kind == FieldPart::Kind::kEmail ? v_.email() : v_.value(p.index);
      std::string_view name = field(p);
      // (A plain loop: find_first_of calls memchr once per octet of the value.)
      if (std::any_of(v.begin(), v.end(),
                      [](char c) { return c == '\r' || c == '\n' || c == '\0'; })) {
        bool nul = v.find_first_of("\r\n") == std::string_view::npos;
        return error(name, nul ? "contains a NUL byte" : "contains a line break");
      }
      note(name, v.size());
      to.append(v);
    }
    return {};
  }

  std::string_view field(const FieldPart& p) const {
    return p.kind == FieldPart::Kind::kEmail ? std::string_view("email") : v_.field_name(p.index);
  }

  // The merge field named by an error about an address made of `parts`.
  std::string_view field_of(const std::vector<FieldPart>& parts) const {
    for (const FieldPart& p : parts) {
      if (p.kind != FieldPart::Kind::kText) return field(p);
    }
    return {};
  }

  void note(std::string_view name, size_t octets) {
    if (octets > longest_ || longest_field_.empty()) {
      longest_field_ = name;
      longest_ = octets;
    }
  }

  Error error(std::string_view field, std::string_view what) const __attribute__((noinline, cold)) {
    return make_error(ErrDomain::kInput, "merge field '" + std::string(field) + "' for header '" +
                                             f_.name + "' " + std::string(what));
  }

  Status fold(std::string_view line, bool encoded, std::string& out) const {
    if (line.size() <= kEncodedWordLineOctets) {  // short enough as it is
      out.append(line);
      out.append(kCrlf);
      return {};
    }
    size_t start = out.size();
    size_t longest = fold_header(line, 0, encoded ? kEncodedWordLineOctets : kFoldOctets, out);
    if (longest > kMaxLineOctets) {
      out.resize(start);
      return make_error(ErrDomain::kInput, "merge field '" + std::string(longest_field_) +
                                               "' makes header '" + f_.name + "' line " +
                                               std::to_string(longest) +
                                               " octets long (RFC 5322 limit 998)");
    }
    out.append(kCrlf);
    return {};
  }

 private:
  const HeaderField& f_;
  const FieldValues& v_;
  std::string_view longest_field_;
  size_t longest_ = 0;
};

}  // namespace

// Folds one header line that merging produced (RFC 5322 §2.2.3): CRLF goes in before a space
// or tab, so every line is at most `limit` octets where white space allows and, where it does
// not, as short as it can be. `in` may already hold folds (CRLF + WSP, from the RFC 2047
// encoder); they stay. `col0` octets precede `in` on its first line. A fold point needs
// non-white-space before it on its line and after it, so no line is white space only.
// Appends the result to `out` and returns the longest line in it, CRLF not counted.
size_t fold_header(std::string_view in, size_t col0, size_t limit, std::string& out) {
  size_t longest = 0;
  size_t a = 0;  // start of the current input line
  size_t off = col0;
  while (true) {
    size_t b = in.find(kCrlf, a);
    bool last = b == std::string_view::npos;
    if (last) b = in.size();
    size_t text_end = b;  // one past the line's last non-white-space octet
    while (text_end > a && is_wsp(in[text_end - 1])) --text_end;
    size_t start = a;  // start of the current output line
    while (off + (b - start) > limit) {
      size_t best = std::string_view::npos;
      bool seen_text = off > 0;  // what precedes `in` is a field name, not white space
      for (size_t p = start; p < text_end; ++p) {
        if (!is_wsp(in[p])) {
          seen_text = true;
        } else if (seen_text && p > start) {
          if (off + (p - start) <= limit) {
            best = p;  // the last fold point that keeps this line within the limit…
          } else {
            if (best == std::string_view::npos) best = p;  // …else the first one after it
            break;
          }
        }
      }
      if (best == std::string_view::npos) break;
      out.append(in.substr(start, best - start));
      out.append(kCrlf);
      longest = std::max(longest, off + (best - start));
      start = best;
      off = 0;
    }
    out.append(in.substr(start, b - start));
    longest = std::max(longest, off + (b - start));
    if (last) break;
    out.append(kCrlf);
    a = b + 2;
    off = 0;
  }
  return longest;
}

bool is_address_header(std::string_view lname) {
  static constexpr std::array<std::string_view, 12> kAddress = {
      "from",      "sender",    "reply-to",    "to",
      "cc",        "bcc",       "resent-from", "resent-sender",
      "resent-to", "resent-cc", "resent-bcc",  "disposition-notification-to"};
  return std::find(kAddress.begin(), kAddress.end(), lname) != kAddress.end();
}

Result<HeaderField> compile_header_field(std::string_view name, bool address,
                                         const std::vector<FieldPart>& value) {
  HeaderField f;
  f.name = std::string(name);
  f.address = address;
  f.literal_octets = name.size() + 2;
  for (const FieldPart& p : value) f.literal_octets += p.text.size();
  if (!address) {
    f.text = value;
    // The white space after the colon stays as the template has it; trailing white space is
    // dropped.
    while (!f.text.empty() && f.text.front().kind == FieldPart::Kind::kText) {
      std::string& t = f.text.front().text;
      size_t n = 0;
      while (n < t.size() && is_wsp(t[n])) ++n;
      f.lead.append(t, 0, n);
      t.erase(0, n);
      if (!t.empty()) break;
      f.text.erase(f.text.begin());
    }
    while (!f.text.empty() && f.text.back().kind == FieldPart::Kind::kText) {
      std::string& t = f.text.back().text;
      while (!t.empty() && is_wsp(t.back())) t.pop_back();
      if (!t.empty()) break;
      f.text.pop_back();
    }
    return f;
  }
  std::string marked;
  std::vector<FieldPart> slots;
  for (const FieldPart& p : value) {
    if (p.kind == FieldPart::Kind::kText) {
      if (p.text.find(kMark) != std::string::npos) {
        return make_error(ErrDomain::kInput, "header '" + f.name + "' holds a control character");
      }
      marked.append(p.text);
      continue;
    }
    if (slots.size() >= kSlots.size()) {
      return make_error(ErrDomain::kInput, "header '" + f.name + "' has too many merge fields");
    }
    marked.push_back(kMark);
    marked.push_back(kSlots[slots.size()]);
    slots.push_back(p);
  }
  std::vector<ParsedMailbox> boxes;
  std::string why = parse_mailbox_list(marked, boxes);
  if (!why.empty()) {
    return make_error(ErrDomain::kInput, "header '" + f.name + "' is not an address list: " + why);
  }
  for (const ParsedMailbox& b : boxes) {
    MailboxTemplate m;
    m.angle = b.angle;
    m.name = unmark(b.name, slots);
    m.addr = unmark(b.addr, slots);
    m.whole = !b.angle && b.name.empty() && m.addr.size() == 1 &&
              m.addr[0].kind != FieldPart::Kind::kText;
    bool literal = std::all_of(m.addr.begin(), m.addr.end(),
                               [](const FieldPart& p) { return p.kind == FieldPart::Kind::kText; });
    if (literal) {
      AddrInfo info;
      std::string a = m.addr.empty() ? std::string() : m.addr[0].text;
      if (std::string r = check_addr_spec(a, info); !r.empty()) {
        return make_error(ErrDomain::kInput, "header '" + f.name + "': address '" + a + "' " + r);
      }
    }
    f.mailboxes.push_back(std::move(m));
  }
  return f;
}

Status render_header_field(const HeaderField& f, const FieldValues& values, FieldScratch& scratch,
                           std::string& out, bool& smtputf8) {
  FieldWriter w(f, values);
  std::string& line = scratch.line;
  line.clear();
  line.append(f.name);
  line.push_back(':');
  line.append(f.address ? std::string_view(" ") : std::string_view(f.lead));
  if (!f.address) {
    std::string& raw = scratch.raw;
    raw.clear();
    if (Status s = w.merge(f.text, raw); !s) return s;
    // The stretch from the first token that needs encoding to the last one becomes
    // encoded-words, white space included; the ASCII words around it stay as they are.
    size_t first = std::string::npos, last = 0;
    if (!needs_encoding(raw)) {
      line.append(raw);  // the common case: plain ASCII text
      return w.fold(line, false, out);
    }
    for (size_t i = 0; i < raw.size();) {
      while (i < raw.size() && is_wsp(raw[i])) ++i;
      size_t b = i;
      while (i < raw.size() && !is_wsp(raw[i])) ++i;
      if (i > b && needs_encoding(std::string_view(raw).substr(b, i - b))) {
        if (first == std::string::npos) first = b;
        last = i;
      }
    }
    if (first == std::string::npos) {
      line.append(raw);
      return w.fold(line, false, out);
    }
    line.append(raw, 0, first);
    size_t room = kEncodedWordLineOctets > line.size() ? kEncodedWordLineOctets - line.size() : 0;
    append_encoded_words(line, std::string_view(raw).substr(first, last - first),
                         room >= 24 ? room : 75);
    line.append(raw, last);
    return w.fold(line, true, out);
  }

  bool encoded = false;
  for (size_t k = 0; k < f.mailboxes.size(); ++k) {
    const MailboxTemplate& m = f.mailboxes[k];
    if (k > 0) line.append(", ");
    std::string& name = scratch.raw;
    std::string& addr = scratch.addr;
    name.clear();
    addr.clear();
    bool angle = m.angle;
    if (m.whole) {
      if (Status s = w.merge(m.addr, addr); !s) return s;
      // Most values are a bare address: no parsing (and no allocation) for them.
      if (std::any_of(addr.begin(), addr.end(), [](char c) {
            return c == '<' || c == '>' || c == '"' || c == '(' || c == ')' || c == ',' ||
                   c == ':' || c == ';' || c == ' ' || c == '\t';
          })) {
        std::vector<ParsedMailbox> boxes;
        std::string why = parse_mailbox_list(addr, boxes);
        if (why.empty() && boxes.size() > 1) {
          why = "holds " + std::to_string(boxes.size()) + " addresses where one is expected";
        }
        if (!why.empty()) return w.error(w.field_of(m.addr), "is not one address: " + why);
        name = boxes[0].name;
        addr = boxes[0].addr;
        angle = boxes[0].angle;
      }
    } else {
      if (Status s = w.merge(m.name, name); !s) return s;
      if (Status s = w.merge(m.addr, addr); !s) return s;
    }
    AddrInfo info;
    if (values.probe()) {
      // The size probe (empty values): nothing to check; literal addresses were checked when
      // the field was compiled.
    } else if (std::string why = check_addr_spec(addr, info); !why.empty()) {
      return w.error(w.field_of(m.addr), "is not an address: it " + why);
    }
    if (info.utf8_local) {
      smtputf8 = true;  // RFC 6532: the address can only be written in UTF-8
    } else if (info.utf8_domain) {
      // Without SMTPUTF8 the domain goes as A-labels, as the RCPT address does.
      size_t at = addr.rfind('@');
      std::string domain = addr.substr(at + 1);
      addr.resize(at + 1);
      if (!domain_to_alabel(domain, addr)) {
        return w.error(w.field_of(m.addr), "is not an address: its domain is not a valid IDN");
      }
    }
    std::string_view n = name;
    while (!n.empty() && is_wsp(n.front())) n.remove_prefix(1);
    while (!n.empty() && is_wsp(n.back())) n.remove_suffix(1);
    if (!n.empty()) {
      switch (phrase_form(n)) {
        case PhraseForm::kAtoms: line.append(n); break;
        case PhraseForm::kQuoted: append_quoted(line, n); break;
        case PhraseForm::kEncoded:
          append_encoded_words(line, n, 75);
          encoded = true;
          break;
      }
      line.push_back(' ');
      angle = true;
    }
    if (angle) line.push_back('<');
    line.append(addr);
    if (angle) line.push_back('>');
  }
  return w.fold(line, encoded, out);
}

}  // namespace sb
