// Rendering a compiled template per recipient: values encoded where they land, DKIM, dot-stuffing.
#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "base/text.h"
#include "message/dkim.h"
#include "message/encode.h"
#include "message/header_field.h"
#include "message/template.h"
#include "message/template_impl.h"
#include "message/template_syntax.h"
#include "message/unsubscribe.h"

// The renderer's helpers are lambdas: keep the rare ones (long lines) out of its hot loop.
#if defined(__GNUC__)
#define SB_NOINLINE __attribute__((noinline, cold))
#else
#define SB_NOINLINE
#endif

namespace sb {

using tmpl::Ctx;
using tmpl::Filter;
using tmpl::has_line_break_or_nul;
using tmpl::kDateOctets;
using tmpl::kQpLineOctets;
using tmpl::OpKind;

namespace {

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
      size_t filtered = op.filter == Filter::kHtml ? 6 * n : op.filter == Filter::kUrl ? 3 * n : n;
      size_t b = value_bound(filtered);
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
    bool refold = false;   // an RFC 2047 value made a line longer than 76 octets
    bool encoded = false;  // holds RFC 2047 encoded-words
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
      return make_error(ErrDomain::kInput, "merge field '" + std::string(hl.field) +
                                               "' makes header '" + header_names[hl.header] +
                                               "' line " + std::to_string(longest) +
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
      out.pieces.emplace_back(
          dot_stuff ? std::string_view(stuffed.data() + s.stuffed_off + from, s.stuffed_len - from)
                    : std::string_view(plain.data() + s.plain_off + from, s.plain_len - from));
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
      static constexpr char kHexUpper[] = "0123456789ABCDEF";
      for (char ch : v) {
        auto c = uint8_t(ch);
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
          st.push_back(ch);
        } else {
          st.push_back('%');
          st.push_back(kHexUpper[c >> 4]);
          st.push_back(kHexUpper[c & 15]);
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
            if (hl.refold || col + s.head > (hl.encoded ? kEncodedWordLineOctets : kFoldOctets)) {
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

Status CompiledTemplate::Impl::render_probe(RenderedMessage& out) const {
  // Empty values, empty address, one-digit id.
  struct Empty {
    bool probe() const { return true; }
    std::string_view operator()(uint32_t) const { return {}; }
    std::string_view name(uint32_t) const { return {}; }
  };
  return render(Empty{}, RenderInput{}, false, out);
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
