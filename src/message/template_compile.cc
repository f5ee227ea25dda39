// Compiling a message template: its source parsed once into literal segments and value ops.
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

#include "base/display_text.h"
#include "base/text.h"
#include "message/address.h"
#include "message/dkim.h"
#include "message/encode.h"
#include "message/header_field.h"
#include "message/template.h"
#include "message/template_impl.h"
#include "message/template_mime.h"
#include "message/template_syntax.h"
#include "message/unsubscribe.h"

namespace sb {

using tmpl::addr_spec;
using tmpl::BodyMap;
using tmpl::Ctx;
using tmpl::field_value;
using tmpl::Filter;
using tmpl::has_line_break_or_nul;
using tmpl::header_name_length;
using tmpl::input_error;
using tmpl::is_continuation;
using tmpl::is_raw_header;
using tmpl::kDefaultIdDomain;
using tmpl::Line;
using tmpl::map_body;
using tmpl::MimePart;
using tmpl::OpKind;
using tmpl::Piece;
using tmpl::rfc2231_params;
using tmpl::Role;
using tmpl::split_lines;
using tmpl::split_placeholders;

namespace {

std::string sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1) return {};
  std::string hex;
  hex.reserve(len * 2);
  static constexpr char kHexLower[] = "0123456789abcdef";
  for (unsigned i = 0; i < len; ++i) {
    hex.push_back(kHexLower[md[i] >> 4]);
    hex.push_back(kHexLower[md[i] & 15]);
  }
  return hex;
}

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

Result<CompiledTemplate> CompiledTemplate::compile(std::string_view raw,
                                                   const TemplateOptions& opts) {
  CompiledTemplate t;
  auto impl = std::make_shared<Impl>();
  Builder b(*impl, t.placeholders_);
  if (opts.source_hash) t.source_hash_ = sha256_hex(raw);

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
    raw_fields.push_back({i, j, name, lower_ascii(name)});
    i = j;
  }
  // RFC 5322 §3.6: a message has at most one of each of these.
  static constexpr std::array<std::string_view, 11> kOnce = {
      "date", "from",       "sender",      "reply-to",   "to",     "cc",
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
    return make_error(ErrDomain::kInput, "template has " + std::to_string(at.size()) + " '" +
                                             std::string(written) + ":' headers (lines " + where +
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
      cte_value = lower_ascii(v);
    } else if (f.lname == "list-unsubscribe" || f.lname == "list-unsubscribe-post") {
      have_list_unsub = true;
    } else if (f.lname == "content-type") {
      have_ctype = true;
      ctype_raw = v;
      ctype_value = lower_ascii(v);
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
    bool merged = std::any_of(parts.begin(), parts.end(),
                              [](const FieldPart& p) { return p.kind != FieldPart::Kind::kText; });
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
          return input_error(lines[j].number,
                             "the |url filter is for bodies and URL headers, "
                             "not for header '" +
                                 std::string(f.name) + "'");
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
  if (!have_msgid && opts.task_key.empty() && t.source_hash_.empty()) {
    t.source_hash_ = sha256_hex(raw);
  }
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
        std::string_view name = trim_space(url.substr(open + 2, close - open - 2));
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
          return input_error(ln.number,
                             "a MIME part header holds non-ASCII text outside a "
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
  const bool body_static =
      std::none_of(impl->ops.begin(), impl->ops.end(), [&](const Impl::Op& op) {
        return op.kind == OpKind::kValue &&
               (op.ctx == Ctx::kBodyRaw || op.ctx == Ctx::kBodyQp || op.header == part_header);
      });
  t.impl_ = impl;

  // Empty values, empty address, one-digit id: the smallest message this template renders.
  RenderedMessage probe;
  Status s = t.impl_->render_probe(probe);
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
        t.warnings_.push_back(
            "the From: address is a merge field: check that its domain is " + signer->domain() +
            " or a subdomain of it, or DKIM d=" + signer->domain() + " does not align for DMARC");
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

}  // namespace sb
