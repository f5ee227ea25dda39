// The compiled form of a message template, shared by its compiler and its renderer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "message/header_field.h"
#include "message/template.h"

namespace sb {

class DkimSigner;

// The template's private vocabulary (message/template_*.cc only).
namespace tmpl {

// Line limits and kCrlf: message/header_field.h. RFC 2045 §6.7: quoted-printable lines are at most
// 76 octets.
constexpr size_t kQpLineOctets = 76;
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

}  // namespace tmpl

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
    tmpl::OpKind kind;
    tmpl::Ctx ctx;
    uint32_t index;   // segment index (literal) or placeholder index (value)
    uint32_t header;  // header_names index, for error messages about header values
    tmpl::Filter filter = tmpl::Filter::kNone;
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
  // render() with every value empty, the empty address and no DKIM: the smallest message
  // (compile() measures it and hashes its body).
  Status render_probe(RenderedMessage& out) const;
  // Signs the unstuffed message in `out`, puts the signatures on top, and dot-stuffs for DATA.
  Status sign(const RenderInput& in, bool dot_stuff, RenderedMessage& out) const;
  size_t token_bound(size_t email_octets) const {
    size_t raw = 3 + std::min<size_t>(email_octets, 0xffff) + unsub_task_id.size() + 16;
    return (raw * 4 + 2) / 3;
  }
};

}  // namespace sb
