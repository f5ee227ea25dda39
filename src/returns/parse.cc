// parse_return: GMime walks the MIME tree; the report parts' field groups are read by fields.h.
// GMime is confined to this file.
#include <gmime/gmime.h>

#include <algorithm>
#include <cctype>
#include <mutex>

#include "base/text.h"
#include "base/utf8.h"
#include "returns/fields.h"
#include "returns/report.h"

namespace sb {
namespace {

// Text parts looked at for a plain-text bounce or an auto-reply; more is never needed.
constexpr size_t kMaxTextPart = 64 * 1024;
constexpr size_t kMaxReportPart = 256 * 1024;

void gmime_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { g_mime_init(); });
}

template <class T>
struct GUnref {
  T* p = nullptr;
  explicit GUnref(T* q) : p(q) {}
  ~GUnref() {
    if (p) g_object_unref(p);
  }
  GUnref(const GUnref&) = delete;
  GUnref& operator=(const GUnref&) = delete;
};

// The decoded content of a leaf part (transfer encoding undone), at most `cap` octets.
std::string part_text(GMimePart* part, size_t cap) {
  GMimeDataWrapper* w = g_mime_part_get_content(part);
  if (!w) return {};
  GUnref<GMimeStream> mem(g_mime_stream_mem_new());
  g_mime_data_wrapper_write_to_stream(w, mem.p);
  GByteArray* a = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem.p));
  if (!a) return {};
  return std::string(reinterpret_cast<const char*>(a->data), std::min<size_t>(a->len, cap));
}

std::string header(GMimeObject* o, const char* name) {
  const char* v = g_mime_object_get_header(o, name);
  return v ? std::string(v) : std::string();
}

void add_delivered_to(ReturnReport& r, std::string_view value) {
  // Header values here may be lists ("a@b, c@d") or carry display names.
  size_t pos = 0;
  while (pos < value.size()) {
    size_t comma = value.find(',', pos);
    std::string_view one =
        value.substr(pos, comma == std::string_view::npos ? value.npos : comma - pos);
    pos = comma == std::string_view::npos ? value.size() : comma + 1;
    size_t lt = one.find('<');
    if (lt != std::string_view::npos) one = one.substr(lt);
    std::string a = lower_ascii(clean_text(strip_angles(one), 254));
    if (a.find('@') == std::string::npos || a.find(' ') != std::string::npos) continue;
    if (std::find(r.delivered_to.begin(), r.delivered_to.end(), a) == r.delivered_to.end() &&
        r.delivered_to.size() < 16) {
      r.delivered_to.push_back(std::move(a));
    }
  }
}

// Message-ID and X- headers of the returned original, from a field block.
void take_original(ReturnReport& r, const FieldGroup& g) {
  for (const auto& [name, value] : g) {
    if (name == "message-id" && r.original_message_id.empty()) {
      r.original_message_id = clean_text(strip_angles(value), 255);
    } else if (name.size() > 2 && name[0] == 'x' && name[1] == '-' &&
               r.original_x_headers.size() < kMaxXHeaders) {
      r.original_x_headers.emplace_back(clean_text(name, 76), clean_text(value));
    }
  }
}

void take_original_headers_text(ReturnReport& r, std::string_view text) {
  // Headers end at the first blank line; a cut-off block simply ends earlier.
  auto groups = split_field_groups(text, 1);
  if (!groups.empty()) take_original(r, groups[0]);
}

void take_original_message(ReturnReport& r, GMimeMessage* m) {
  if (!m) return;
  FieldGroup g;
  GMimeHeaderList* hl = g_mime_object_get_header_list(GMIME_OBJECT(m));
  int n = hl ? g_mime_header_list_get_count(hl) : 0;
  for (int i = 0; i < n; ++i) {
    GMimeHeader* h = g_mime_header_list_get_header_at(hl, i);
    const char* name = g_mime_header_get_name(h);
    const char* value = g_mime_header_get_value(h);
    if (name && value) g.emplace_back(lower_ascii(name), value);
  }
  take_original(r, g);
}

RecipientReport recipient_from_group(const FieldGroup& g) {
  RecipientReport rr;
  rr.final_recipient = lower_ascii(clean_text(strip_type(field(g, "final-recipient")), 254));
  rr.original_recipient = lower_ascii(clean_text(strip_type(field(g, "original-recipient")), 254));
  rr.action = lower_ascii(clean_text(field(g, "action"), 32));
  if (size_t sp = rr.action.find(' '); sp != std::string::npos) rr.action.resize(sp);
  rr.status = std::string(leading_status(field(g, "status")));
  std::string_view diag = field(g, "diagnostic-code");
  size_t semi = diag.find(';');
  if (semi != std::string_view::npos && semi < 16) diag.remove_prefix(semi + 1);
  rr.diagnostic = clean_text(diag);
  rr.remote_mta = clean_text(strip_type(field(g, "remote-mta")), 255);
  if (rr.status.empty()) rr.status = find_status(rr.diagnostic);
  return rr;
}

void parse_delivery_status(ReturnReport& r, std::string_view text) {
  bool more = false;
  auto groups = split_field_groups(text, kMaxRecipients + 1, &more);
  if (groups.empty()) return;
  // The first group is per-message unless it already names a recipient (some servers omit it).
  size_t first = 0;
  if (field(groups[0], "final-recipient").empty()) {
    first = 1;
    std::string_view envid = field(groups[0], "original-envelope-id");
    if (!envid.empty()) r.envelope_id = clean_text(envid, 255);
  }
  for (size_t i = first; i < groups.size(); ++i) {
    if (field(groups[i], "final-recipient").empty() && field(groups[i], "action").empty()) {
      continue;
    }
    r.recipients.push_back(recipient_from_group(groups[i]));
  }
  if (more) r.truncated = true;
  r.kind = ReturnKind::kDsn;
  r.format = "rfc3464";
}

void parse_feedback_report(ReturnReport& r, std::string_view text) {
  auto groups = split_field_groups(text, 4);
  r.kind = ReturnKind::kArf;
  r.format = "arf";
  if (groups.empty()) return;
  const FieldGroup& g = groups[0];
  r.feedback_type = lower_ascii(clean_text(field(g, "feedback-type"), 32));
  RecipientReport rr;
  rr.action = "complained";
  for (const auto& [name, value] : g) {
    if (name == "original-rcpt-to" && rr.final_recipient.empty()) {
      rr.final_recipient = lower_ascii(clean_text(strip_angles(value), 254));
    }
  }
  std::string_view envid = field(g, "original-envelope-id");
  if (!envid.empty()) r.envelope_id = clean_text(envid, 255);
  r.recipients.push_back(std::move(rr));
}

// A plain-text bounce in the qmail layout (also Yahoo's and many older MTAs'):
//   <user@example.net>:
//   192.0.2.1 does not like recipient.
//   Remote host said: 550 5.1.1 User unknown
//
//   --- Below this line is a copy of the message.
// Returns true when at least one "<address>:" paragraph was found.
bool parse_text_bounce(ReturnReport& r, std::string_view text) {
  bool permanent = icontains(text, "permanent error") || !icontains(text, "temporary");
  std::string_view body = text;
  size_t copy = std::string_view::npos;
  for (std::string_view marker : {std::string_view("--- Below this line is a copy of the message"),
                                  std::string_view("--- Below this line is the original")}) {
    copy = body.find(marker);
    if (copy != std::string_view::npos) break;
  }
  std::string_view tail;
  if (copy != std::string_view::npos) {
    tail = body.substr(copy);
    body = body.substr(0, copy);
    size_t nl = tail.find('\n');
    tail = nl == std::string_view::npos ? std::string_view() : tail.substr(nl + 1);
    while (!tail.empty() && (tail.front() == '\n' || tail.front() == '\r')) tail.remove_prefix(1);
  }
  std::vector<RecipientReport> found;
  size_t pos = 0;
  RecipientReport* cur = nullptr;
  while (pos < body.size() && found.size() < kMaxRecipients) {
    size_t nl = body.find('\n', pos);
    std::string_view line =
        body.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? body.size() : nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > 4 && line.front() == '<' && line.back() == ':' &&
        line[line.size() - 2] == '>' && line.find('@') != std::string_view::npos) {
      RecipientReport rr;
      rr.final_recipient = lower_ascii(clean_text(line.substr(1, line.size() - 3), 254));
      rr.action = permanent ? "failed" : "delayed";
      found.push_back(std::move(rr));
      cur = &found.back();
      continue;
    }
    if (line.empty()) {
      cur = nullptr;
      continue;
    }
    if (cur && cur->diagnostic.size() < kMaxFieldText) {
      if (!cur->diagnostic.empty()) cur->diagnostic += ' ';
      cur->diagnostic += line;
    }
  }
  if (found.empty()) return false;
  for (auto& rr : found) {
    rr.diagnostic = clean_text(rr.diagnostic);
    rr.status = find_status(rr.diagnostic);
    if (rr.status.empty()) rr.status = permanent ? "5.0.0" : "4.0.0";
  }
  r.recipients = std::move(found);
  r.kind = ReturnKind::kDsn;
  r.format = "qmail";
  if (!tail.empty() && r.original_message_id.empty()) take_original_headers_text(r, tail);
  return true;
}

struct Walk {
  ReturnReport& r;
  std::string first_text;  // the first text/plain part: for text bounces and auto-replies
  bool have_status = false;
  bool have_feedback = false;
  bool have_original = false;
  bool too_deep = false;
};

void visit(Walk& w, GMimeObject* o, size_t depth) {
  if (!o) return;
  if (depth > kMaxMimeDepth) {
    w.too_deep = true;
    return;
  }
  if (GMIME_IS_MULTIPART(o)) {
    GMimeMultipart* mp = GMIME_MULTIPART(o);
    int n = g_mime_multipart_get_count(mp);
    for (int i = 0; i < n && i < 256; ++i) visit(w, g_mime_multipart_get_part(mp, i), depth + 1);
    return;
  }
  GMimeContentType* ct = g_mime_object_get_content_type(o);
  if (GMIME_IS_MESSAGE_PART(o)) {
    // The returned original (or, in an ARF, the complained-of message): headers only. Its own
    // parts are never walked, so a bounce quoted inside a bounce is not read as ours.
    if (!w.have_original) {
      w.have_original = true;
      take_original_message(w.r, g_mime_message_part_get_message(GMIME_MESSAGE_PART(o)));
    }
    return;
  }
  if (!GMIME_IS_PART(o) || !ct) return;
  GMimePart* part = GMIME_PART(o);
  if (g_mime_content_type_is_type(ct, "message", "delivery-status") ||
      g_mime_content_type_is_type(ct, "message", "global-delivery-status")) {
    if (!w.have_status) {
      w.have_status = true;
      parse_delivery_status(w.r, part_text(part, kMaxReportPart));
    }
  } else if (g_mime_content_type_is_type(ct, "message", "feedback-report")) {
    if (!w.have_feedback) {
      w.have_feedback = true;
      parse_feedback_report(w.r, part_text(part, kMaxReportPart));
    }
  } else if (g_mime_content_type_is_type(ct, "text", "rfc822-headers") ||
             g_mime_content_type_is_type(ct, "message", "rfc822-headers") ||
             g_mime_content_type_is_type(ct, "message", "global-headers")) {
    if (!w.have_original) {
      w.have_original = true;
      std::string text = part_text(part, kMaxReportPart);
      // Truncated when the block does not end in a blank line or newline (a cut mid-field).
      if (!text.empty() && text.back() != '\n') w.r.truncated = true;
      take_original_headers_text(w.r, text);
    }
  } else if (g_mime_content_type_is_type(ct, "text", "plain") && w.first_text.empty()) {
    w.first_text = part_text(part, kMaxTextPart);
  } else if (g_mime_content_type_is_type(ct, "message", "rfc822") && !w.have_original) {
    // A message/rfc822 that GMime kept as a leaf: read its header block as text.
    w.have_original = true;
    take_original_headers_text(w.r, part_text(part, kMaxReportPart));
  }
}

bool looks_like_challenge(std::string_view subject, std::string_view text, GMimeObject* top) {
  if (!header(top, "X-Challenge").empty() || !header(top, "X-Boxbe-Challenge").empty()) {
    return true;
  }
  for (std::string_view s :
       {"confirm your message", "verify your email", "sender verification", "confirm that you are",
        "awaiting your confirmation", "please verify", "challenge"}) {
    if (icontains(subject, s)) return true;
  }
  for (std::string_view s :
       {"i use a spam filter", "confirm that you are a real person", "sender verification",
        "whitelist", "allowlist", "click the link below to confirm", "approved senders"}) {
    if (icontains(text, s)) return true;
  }
  return false;
}

// RFC 3834 and the headers vacation programs set, then subject wording.
std::string auto_reply_format(GMimeObject* top, std::string_view subject) {
  std::string as = lower_ascii(header(top, "Auto-Submitted"));
  if (!as.empty() && as.rfind("no", 0) != 0) return "auto-submitted";
  if (!header(top, "X-Autoreply").empty() || !header(top, "X-Autorespond").empty()) {
    return "vacation";
  }
  std::string prec = lower_ascii(header(top, "Precedence"));
  if (prec.find("auto_reply") != std::string::npos) return "vacation";
  for (std::string_view s :
       {"out of office", "out of the office", "automatic reply", "auto-reply", "autoreply",
        "auto reply", "vacation", "abwesenheitsnotiz", "réponse automatique"}) {
    if (icontains(subject, s)) return "vacation";
  }
  return {};
}

bool from_mailer_daemon(GMimeObject* top, std::string_view subject) {
  std::string from = lower_ascii(header(top, "From"));
  if (from.find("mailer-daemon") != std::string::npos ||
      from.find("postmaster") != std::string::npos) {
    return true;
  }
  for (std::string_view s :
       {"failure notice", "undeliver", "delivery status notification", "returned mail",
        "delivery failure", "mail delivery failed", "delivery has failed"}) {
    if (icontains(subject, s)) return true;
  }
  return false;
}

}  // namespace

const char* return_kind_name(ReturnKind k) {
  switch (k) {
    case ReturnKind::kDsn:
      return "dsn";
    case ReturnKind::kArf:
      return "arf";
    case ReturnKind::kAutoReply:
      return "autoreply";
    case ReturnKind::kUnknown:
      return "unknown";
  }
  return "unknown";
}

std::string clean_text(std::string_view s, size_t max) {
  std::string out;
  out.reserve(std::min(s.size(), max));
  bool space = false;
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    size_t n = utf8_seq(s, i, &cp);
    std::string_view piece;
    if (n == 0) {
      piece = "\xEF\xBF\xBD";  // U+FFFD for an invalid octet
      n = 1;
    } else if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0)) {
      piece = " ";
    } else {
      piece = s.substr(i, n);
    }
    i += n;
    if (piece == " ") {
      if (!out.empty()) space = true;
      continue;
    }
    size_t need = piece.size() + (space ? 1 : 0);
    if (out.size() + need > max) break;
    if (space) out += ' ';
    space = false;
    out += piece;
  }
  return out;
}

ReturnReport parse_return(std::string_view message) {
  gmime_init_once();
  ReturnReport r;
  if (message.size() > kMaxParseBytes) {
    message = message.substr(0, kMaxParseBytes);
    r.truncated = true;
  }
  // The GMime stream copies the bytes; the parser reads them from memory.
  GUnref<GMimeStream> stream(g_mime_stream_mem_new_with_buffer(message.data(), message.size()));
  GUnref<GMimeParser> parser(g_mime_parser_new_with_stream(stream.p));
  g_mime_parser_set_format(parser.p, GMIME_FORMAT_MESSAGE);
  GUnref<GMimeMessage> msg(g_mime_parser_construct_message(parser.p, nullptr));
  if (!msg.p) {
    r.problem = "not an RFC 5322 message (no header block)";
    return r;
  }
  GMimeObject* top = GMIME_OBJECT(msg.p);
  const char* subj = g_mime_message_get_subject(msg.p);
  r.subject = clean_text(subj ? subj : "", 255);
  for (const char* h : {"Delivered-To", "X-Original-To", "Envelope-To", "To"}) {
    GMimeHeaderList* hl = g_mime_object_get_header_list(top);
    int n = hl ? g_mime_header_list_get_count(hl) : 0;
    for (int i = 0; i < n; ++i) {
      GMimeHeader* hh = g_mime_header_list_get_header_at(hl, i);
      const char* name = g_mime_header_get_name(hh);
      const char* value = g_mime_header_get_value(hh);
      if (name && value && g_ascii_strcasecmp(name, h) == 0) add_delivered_to(r, value);
    }
  }

  Walk w{r};
  visit(w, g_mime_message_get_mime_part(msg.p), 0);
  if (w.too_deep) {
    r.problem = "MIME nesting deeper than " + std::to_string(kMaxMimeDepth) +
                " levels; inner parts not read";
  }
  if (r.kind == ReturnKind::kDsn || r.kind == ReturnKind::kArf) return r;

  // No report part: a plain-text bounce, an auto-reply, or something else.
  const bool daemon = from_mailer_daemon(top, r.subject);
  if (daemon && parse_text_bounce(r, w.first_text)) return r;
  if (looks_like_challenge(r.subject, w.first_text, top)) {
    r.kind = ReturnKind::kAutoReply;
    r.format = "challenge";
    return r;
  }
  if (std::string f = auto_reply_format(top, r.subject); !f.empty()) {
    r.kind = ReturnKind::kAutoReply;
    r.format = std::move(f);
    return r;
  }
  if (r.problem.empty()) {
    r.problem = daemon ? "a bounce without a delivery-status part or a recognisable recipient"
                       : "neither a bounce, a feedback report nor an auto-reply";
  }
  return r;
}

}  // namespace sb
