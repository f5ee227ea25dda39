// Stored or server text made safe for a terminal line, and long lists cut short in messages.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace sb {

// Escapes what could forge or hide a line when untrusted text (a recipient address from a
// CSV, a server's reply, a task edited by hand) is printed for a person: CR, LF and tab as
// \r \n \t; other C0 controls, DEL and octets that are not valid UTF-8 as \xNN; C1 controls
// and the bidi, zero-width and line-separator format characters as \u{NNNN}; a backslash as
// \\ so an escape in the input cannot pass for one of ours. Everything else (printable
// ASCII, valid UTF-8 letters) is kept as it is. Machine-readable output (CSV, JSON) has its
// own quoting and does not use this.
std::string display_escape(std::string_view s);
void append_display_escaped(std::string& out, std::string_view s);

// A list for an error message that stays one short line whatever the input: the items
// escaped, each wrapped in `quote`, joined with ", ", and after `max_items` items (or once
// about `max_octets` are used) "… and 99,990 more". A CSV with 100,000 columns must not
// turn one error into a 789 KB line.
std::string capped_list(const std::vector<std::string>& items, std::string_view quote = "",
                        size_t max_items = 10, size_t max_octets = 300);

// 99990 -> "99,990".
std::string group_thousands(unsigned long long n);

}  // namespace sb
