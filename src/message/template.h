// Message template: compiled once into literal segments and placeholders, rendered per recipient.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "message/header_field.h"

namespace sb {

class DkimSigner;

// RFC 8058 one-click unsubscribe, added to every message by the template.
struct UnsubscribeOptions {
  // "https://…" with optional placeholders: {{token}} (make_token of the recipient and
  // task_id under `secret`) and recipient merge fields such as {{email}}, percent-encoded.
  // Empty: no URL (then no List-Unsubscribe-Post either).
  std::string url;
  std::string mailto;   // address for a second, mailto: URI ("a@b" or "mailto:a@b?subject=…")
  std::string secret;   // HMAC key of {{token}}; required when the URL uses {{token}}
  std::string task_id;  // names the task in tokens; empty: TemplateOptions::task_key
};

struct TemplateOptions {
  // Used for the From: header when the template has none (and as envelope sender by the CLI).
  std::string default_from;
  // Right-hand side of generated Message-IDs; when empty, the From: domain is used.
  std::string message_id_domain;
  // Makes generated Message-IDs unique per task: <task_key>.<recipient id>@domain, so the
  // same recipient gets the same id on every retry.
  std::string task_key;
  // List-Unsubscribe (+ List-Unsubscribe-Post with a URL) when url or mailto is set.
  UnsubscribeOptions unsubscribe;
  // Every message is signed by each of these, in this order (one DKIM-Signature each, first
  // on top), over the unstuffed bytes, before dot-stuffing. Empty: no signing, and render()
  // costs what it did before.
  std::vector<std::shared_ptr<const DkimSigner>> dkim;
  // false: source_hash() stays empty unless a generated Message-ID needs it. For `load`, which
  // keeps no task to compare templates with: without TLS or DKIM this hash is a run's only
  // digest, and OpenSSL's first digest costs ~5 million instructions of set-up (issue 17).
  bool source_hash = true;
};

// What one recipient contributes to the render.
struct RenderInput {
  std::string_view email;
  // Values aligned with the field names passed to bind(); may be null when no fields.
  const std::vector<std::string>* values = nullptr;
  int64_t recipient_id = 0;
  // Seconds since the epoch, for a generated Date: header and DKIM's t= (when 0, t= is the
  // signer's clock). Render again with the same value to get the same bytes.
  int64_t now = 0;
};

// The wire form of one message, as a list of slices. Slices point into the compiled template
// (alive for the whole run) or into this object's own storage; keep it alive until sent.
// Output is CRLF-normalised and ends with CRLF. It does NOT include the DATA terminator
// ".\r\n"; the session adds it.
struct RenderedMessage {
  std::vector<std::string_view> pieces;
  std::string storage;     // merge values after encoding; pieces may point in here
  size_t size = 0;         // sum of pieces' lengths
  bool eight_bit = false;  // any octet >= 0x80 in the rendered message
  // A header holds a UTF-8 address (RFC 6532): send only with SMTPUTF8. Everything else
  // that is not ASCII in headers is encoded, and bodies are 7-bit, so this is the one case.
  bool smtputf8 = false;
  FieldScratch field_scratch;  // scratch space of merged header fields, kept between renders
  // DKIM: the DKIM-Signature fields (the first piece when signed) and scratch space; their
  // capacity is kept from message to message.
  std::string dkim;
  std::string dkim_field;
  std::vector<std::string_view> scratch_pieces;
  void clear() {
    pieces.clear();
    storage.clear();
    dkim.clear();
    size = 0;
    eight_bit = false;
    smtputf8 = false;
  }
  std::string flatten() const;  // for tests and .eml copies
};

class CompiledTemplate {
 public:
  // Parses raw template bytes (any of CRLF/LF/CR line ends). Errors name the problem:
  // no header/body separator is fine (all headers, empty body); an unterminated "{{" or an
  // empty/invalid placeholder name is an error; a header line that is neither a field nor a
  // continuation is an error.
  static Result<CompiledTemplate> compile(std::string_view raw, const TemplateOptions& opts);

  // Placeholder names the template uses, each once, in first-use order.
  const std::vector<std::string>& placeholders() const { return placeholders_; }

  // Binds placeholders to column positions of the recipient fields. "email" always exists
  // (from RenderInput::email) and need not be in field_names. An unknown placeholder is an
  // error that names it and lists the known fields.
  Status bind(const std::vector<std::string>& field_names);

  // Renders one message. dot_stuff=true for DATA (lines starting with "." get another "."),
  // false for BDAT. With DKIM signers the message is rendered unstuffed, signed, the
  // signatures put on top, and only then dot-stuffed for DATA, so DATA and BDAT carry the
  // same signature. Fails with kInput and a clear reason when a value that lands in a header
  // contains CR, LF or NUL (that recipient fails; the run goes on).
  //
  // Line length (RFC 5322 §2.1.1: at most 998 octets without the CRLF). Template lines are
  // checked by compile(); lines that merge values lengthen are checked here, counted in the
  // message content before dot-stuffing (a "." that DATA adds is not counted: the receiver
  // removes it), so DATA and BDAT accept the same recipients.
  // - A header line with merge values that is longer than 78 octets (76 when it holds RFC 2047
  //   encoded-words) is folded: CRLF before a space or tab, of the value or of the template
  //   text on that line, so lines are <= 78 octets where white space allows. Unfolding gives
  //   back the merged line. If a line is still over 998 octets (a long run without white
  //   space) it fails with kInput: "merge field 'f' makes header 'H' line N octets long
  //   (RFC 5322 limit 998)", N being the longest line after folding.
  // - Body parts with merge values or 8-bit text are sent quoted-printable (compile() rewrites
  //   their Content-Transfer-Encoding), so soft line breaks keep every merged body line at 76
  //   octets or less. (A raw body line over 998 octets would fail with kInput: "merge field
  //   'f' makes a body line N octets long (RFC 5322 limit 998)"; no template reaches it now.)
  //
  // Headers (RFC 2047, RFC 5322 §3.4): text and address fields that merge values are built
  // whole per recipient (header_field.h): non-ASCII as encoded-words, display names quoted or
  // encoded, addresses checked; a value that is not one address where one is expected fails
  // the recipient with kInput. A UTF-8 local part sets RenderedMessage::smtputf8. In a
  // text/html part {{f}} is HTML-escaped, {{{f}}} is not; {{f|url}} percent-encodes.
  Status render(const RenderInput& in, bool dot_stuff, RenderedMessage& out) const;

  // Envelope sender from the From: header (addr-spec only), or "" when none.
  const std::string& from_address() const { return from_address_; }
  // The Subject header's raw template value (for file names and logs), "" when none.
  const std::string& subject() const { return subject_; }
  // Start-up warnings about the compiled message (a DKIM d= not aligned with From:).
  const std::vector<std::string>& warnings() const { return warnings_; }
  // Octet size of the rendered message with empty merge values (a lower bound).
  size_t fixed_size() const { return fixed_size_; }
  // Stable hash of the template source, to detect a template changed between runs.
  const std::string& source_hash() const { return source_hash_; }

  struct Impl;  // defined in template_impl.h; the message module owns everything private here

 private:
  std::shared_ptr<const Impl> impl_;  // shared: copies across worker threads are cheap
  std::vector<std::string> placeholders_;
  std::string from_address_;
  std::string subject_;
  std::string source_hash_;
  std::vector<std::string> warnings_;
  size_t fixed_size_ = 0;
  // Per placeholder: the recipient field column, kEmailColumn, or kUnbound until bind().
  // Kept outside Impl because each copy may be bound to its own field list.
  std::vector<int> columns_;
  static constexpr int kEmailColumn = -1;
  static constexpr int kUnbound = -2;
};

}  // namespace sb
