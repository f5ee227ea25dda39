// One-click unsubscribe (RFC 8058): signed per-recipient tokens and the List-Unsubscribe headers.
#pragma once

#include <string>
#include <string_view>

#include "base/result.h"

namespace sb {

// Shortest secret accepted for token MACs.
constexpr size_t kMinUnsubscribeSecret = 16;

// Reads --unsubscribe-secret-file: the whole file is the secret (a final newline is dropped, so
// `openssl rand -hex 32 > f` works). kConfig error naming the file when it cannot be read or
// holds fewer than 16 bytes.
Result<std::string> load_unsubscribe_secret(const std::string& path);

// A token names a recipient and a task, and proves that whoever holds the secret made it, so
// the unsubscribe endpoint needs no database to check it. Layout before encoding:
//   0x01 | recipient length (2 bytes, big endian) | recipient | task id | HMAC-SHA256[0..16)
// the MAC covering everything before it (under a fixed context label), the whole written as
// unpadded URL-safe base64 (RFC 4648 §5), so it can go into a URL as it is. Not encrypted:
// anyone who has the token can decode the address, which is the recipient's own.
std::string make_token(std::string_view secret, std::string_view task_id,
                       std::string_view recipient);

struct UnsubToken {
  std::string recipient;
  std::string task_id;
};

// Checks a token (MAC compared in constant time) and returns what it names; kInput error for
// a token that is not base64url, has the wrong version or layout, or whose MAC does not match.
Result<UnsubToken> verify_token(std::string_view secret, std::string_view token);

// Replaces every "{{token}}" in `url_template` with `token`; the URL unchanged when it has none.
std::string expand_unsubscribe_url(std::string_view url_template, std::string_view token);

// Checks an --unsubscribe-url template: an https:// URL with a host, of printable ASCII without
// space, <, >, ", \\, ^, `, |, and with {{name}} placeholders only where braces stand.
// kConfig error that says what is wrong. RFC 8058 §3.1: one-click needs HTTPS, so http:// is
// refused rather than sent with a List-Unsubscribe-Post that receivers would ignore.
Status check_unsubscribe_url(std::string_view url);
// True when the URL holds the {{token}} placeholder (spaces inside the braces allowed).
bool unsubscribe_url_has_token(std::string_view url);
// Checks an --unsubscribe-mailto address ("a@b" or "mailto:a@b?subject=…").
Status check_unsubscribe_mailto(std::string_view mailto);

// "List-Unsubscribe: <https_url>\r\n", or with ",\r\n <mailto:...>" when `mailto` is given
// (with or without its "mailto:" prefix). RFC 8058 §3.1 wants an HTTPS URI for one-click.
std::string list_unsubscribe_header(std::string_view https_url, std::string_view mailto = {});

// "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" (RFC 8058 §3.1).
std::string list_unsubscribe_post_header();

// URL-safe base64 without padding, and its inverse (false on any non-alphabet byte or an
// impossible length). Exposed for tests.
std::string base64url_encode(std::string_view in);
bool base64url_decode(std::string_view in, std::string& out);

}  // namespace sb
