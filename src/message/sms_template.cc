// The SMS text template: compiled with the e-mail template's placeholder syntax.
#include "message/sms_template.h"

#include <openssl/evp.h>

#include <algorithm>

#include "base/display_text.h"
#include "base/text.h"
#include "message/encode.h"
#include "message/template_syntax.h"

namespace sb {

namespace {

std::string sha256_of(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), md, &n, EVP_sha256(), nullptr);
  static constexpr char kLowerHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < n; ++i) {
    out += kLowerHex[md[i] >> 4];
    out += kLowerHex[md[i] & 15];
  }
  return out;
}

}  // namespace

Result<SmsTemplate> SmsTemplate::compile(std::string_view raw) {
  SmsTemplate t;
  t.hash_ = sha256_of(raw);
  if (raw.substr(0, 3) == "\xEF\xBB\xBF") raw.remove_prefix(3);  // an editor's BOM
  std::vector<tmpl::Line> lines = tmpl::split_lines(raw);
  std::vector<tmpl::Piece> pieces;
  for (size_t i = 0; i < lines.size(); ++i) {
    const tmpl::Line& ln = lines[i];
    if (ln.text.find('\0') != std::string_view::npos) {
      return tmpl::input_error(ln.number, "contains a NUL byte");
    }
    pieces.clear();
    if (Status st = tmpl::split_placeholders(ln, pieces); !st.ok()) return st.error();
    for (const tmpl::Piece& p : pieces) {
      Piece out;
      if (!p.placeholder) {
        out.literal.assign(p.text);
      } else {
        auto it = std::find(t.names_.begin(), t.names_.end(), p.text);
        if (it == t.names_.end()) it = t.names_.insert(t.names_.end(), std::string(p.text));
        out.name = static_cast<int>(it - t.names_.begin());
        out.url = p.filter == tmpl::Filter::kUrl;
      }
      t.pieces_.push_back(std::move(out));
    }
    if (i + 1 < lines.size()) t.pieces_.push_back(Piece{"\n", -1, false});
  }
  // Only blank lines: a mistake (an empty file, the wrong one), never a message to send.
  bool empty = std::all_of(t.pieces_.begin(), t.pieces_.end(), [](const Piece& p) {
    return p.name < 0 && trim_space(p.literal, " \t\n").empty();
  });
  if (empty) return make_error(ErrDomain::kInput, "the SMS text is empty");
  t.columns_.assign(t.names_.size(), kUnbound);
  return t;
}

Status SmsTemplate::bind(const std::vector<std::string>& field_names) {
  std::vector<std::string> unknown;
  for (size_t i = 0; i < names_.size(); ++i) {
    const std::string& p = names_[i];
    auto it = std::find(field_names.begin(), field_names.end(), p);
    if (it == field_names.end()) {
      it = std::find_if(field_names.begin(), field_names.end(),
                        [&](const std::string& f) { return iequals(f, p); });
    }
    if (it != field_names.end()) {
      columns_[i] = static_cast<int>(it - field_names.begin());
    } else if (iequals(p, "phone")) {
      columns_[i] = kPhone;
    } else {
      columns_[i] = kUnbound;
      unknown.push_back(p);
    }
  }
  if (unknown.empty()) return {};
  std::vector<std::string> known{"phone"};
  for (const std::string& f : field_names) known.push_back(f);
  return make_error(
      ErrDomain::kInput,
      std::string(unknown.size() == 1 ? "unknown merge field " : "unknown merge fields ") +
          capped_list(unknown, "'") + " in the template; known fields: " + capped_list(known));
}

void SmsTemplate::render(std::string_view phone, const std::vector<std::string>& values,
                         std::string& out) const {
  out.clear();
  for (const Piece& p : pieces_) {
    if (p.name < 0) {
      out += p.literal;
      continue;
    }
    const int col = columns_[static_cast<size_t>(p.name)];
    std::string_view v;
    if (col == kPhone) {
      v = phone;
    } else if (col >= 0 && static_cast<size_t>(col) < values.size()) {
      v = values[static_cast<size_t>(col)];
    }
    if (p.url) {
      append_percent_encoded(out, v);
    } else {
      out += v;
    }
  }
}

}  // namespace sb
