// Header fields built per recipient: unstructured text and address lists, encoded and folded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace sb {

// RFC 5322 §2.1.1: a line is at most 998 octets, not counting CRLF; lines SHOULD be at most 78
// octets, and merged header lines are folded to that where white space allows. RFC 2047 §2
// caps lines that hold encoded-words at 76.
constexpr size_t kMaxLineOctets = 998;
constexpr size_t kFoldOctets = 78;
constexpr size_t kEncodedWordLineOctets = 76;
constexpr std::string_view kCrlf = "\r\n";

// A stretch of a header field's value in the template: literal text, a merge value, or the
// recipient's address.
struct FieldPart {
  enum class Kind : uint8_t { kText, kValue, kEmail };
  Kind kind = Kind::kText;
  uint32_t index = 0;  // placeholder index (kValue)
  std::string text;    // kText
};

// A mailbox of an address header as the template writes it. Parts of `name` are the display
// name's text, decoded (a quoted string in the template is unquoted).
struct MailboxTemplate {
  std::vector<FieldPart> name;
  std::vector<FieldPart> addr;
  bool angle = false;  // "<addr>"
  // The mailbox is one lone placeholder: its value is a whole mailbox ("a@b", "Name <a@b>"),
  // parsed for each recipient; more than one address in it fails that recipient.
  bool whole = false;
};

// One header field whose value is known only per recipient, or that needs encoding.
struct HeaderField {
  std::string name;             // as the template writes it
  bool address = false;         // an address list (From, To, Cc, …), else unstructured text
  std::vector<FieldPart> text;  // unstructured: the unfolded value
  std::string lead;             // unstructured: the white space after the colon
  std::vector<MailboxTemplate> mailboxes;  // address list
  size_t literal_octets = 0;               // of the name and literal parts (storage bound)
};

// Where the values of a render come from.
class FieldValues {
 public:
  virtual std::string_view value(uint32_t index) const = 0;
  virtual std::string_view field_name(uint32_t index) const = 0;
  virtual std::string_view email() const = 0;
  // The size probe at compile time: empty values, no address to check.
  virtual bool probe() const { return false; }

 protected:
  ~FieldValues() = default;
};

// True for the fields RFC 5322 §3.6.2–3 and §3.6.6 define as address lists, and
// Disposition-Notification-To (RFC 8098). `lname` is lower case.
bool is_address_header(std::string_view lname);

// Compiles a field from its name and unfolded value parts (placeholders as kValue/kEmail).
// Errors say what is wrong with the template's value (the caller adds the line).
Result<HeaderField> compile_header_field(std::string_view name, bool address,
                                         const std::vector<FieldPart>& value);

// Scratch buffers kept from render to render (their capacity is reused).
struct FieldScratch {
  std::string raw;   // a merged value or display name
  std::string addr;  // a merged address
  std::string line;  // the unfolded field
};

// Appends "Name: value\r\n" to `out`, folded at 78 octets where white space allows (76 with
// encoded-words): non-ASCII text and display names as RFC 2047 encoded-words, display names
// quoted where needed, addresses checked (A-label domains unless the local part is UTF-8,
// which sets `smtputf8`). Fails with kInput naming the merge field when a value holds CR, LF
// or NUL, is not an address, holds more than one, or makes a line over 998 octets.
Status render_header_field(const HeaderField& f, const FieldValues& values, FieldScratch& scratch,
                           std::string& out, bool& smtputf8);

// Folds one header line (RFC 5322 §2.2.3) before spaces or tabs, to `limit` octets where white
// space allows, appending it to `out`; returns its longest line (see header_field.cc).
size_t fold_header(std::string_view in, size_t col0, size_t limit, std::string& out);

// Upper bound of what render_header_field appends, `value_octets` being the merged values'.
constexpr size_t header_field_bound(size_t literal_octets, size_t value_octets) {
  return 8 * (literal_octets + value_octets) + 64;
}

}  // namespace sb
