// SmsTemplate: an SMS text with {{field}} placeholders, compiled once and rendered per recipient.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace sb {

// Plain text, not a message: no headers, no transfer encoding. It uses the e-mail template's
// placeholder syntax (template_syntax.h: {{name}}, {{{name}}} and {{name|url}}); line ends
// become "\n" and a final line end is dropped (an editor's last newline is no part of the SMS).
// The session encodes and splits the rendered text (GSM 03.38 or UCS-2, concatenated parts).
class SmsTemplate {
 public:
  static Result<SmsTemplate> compile(std::string_view raw);
  // Binds placeholders to the list's merge fields (exact name first, then case-insensitive);
  // {{phone}} is the recipient's number (E.164) whatever the list's column was called.
  Status bind(const std::vector<std::string>& field_names);
  // `values` aligned with the names given to bind().
  void render(std::string_view phone, const std::vector<std::string>& values,
              std::string& out) const;
  const std::string& source_hash() const { return hash_; }
  const std::vector<std::string>& placeholders() const { return names_; }

 private:
  static constexpr int kPhone = -1;
  static constexpr int kUnbound = -2;
  struct Piece {
    std::string literal;  // the text of a literal piece
    int name = -1;        // a placeholder's index into names_; -1: a literal piece
    bool url = false;     // {{name|url}}: percent-encoded
  };
  std::vector<Piece> pieces_;
  std::vector<std::string> names_;  // placeholders, in order of first use
  std::vector<int> columns_;        // per name: the field column, kPhone or kUnbound
  std::string hash_;
};

}  // namespace sb
