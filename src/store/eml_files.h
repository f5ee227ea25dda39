// .eml files: safe names from a pattern, atomic no-clobber writes (--backup-dir, --pickup).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace sb {

// Turns a rendered name into one safe file name in a directory, ending in ".eml":
// - '/', '\\', the reserved characters < > : " | ? *, invalid UTF-8 octets and anything not
//   printable (C0/C1 controls, DEL, bidi and zero-width format controls, U+2028/9, U+FEFF)
//   become '_'; runs of white space (space, tab, CR, LF, VT, FF) become one space;
// - leading '.', '-' and spaces and trailing '.' and spaces are dropped (no hidden files, no
//   option look-alikes, no "..", nothing Windows would silently strip on a pickup share);
// - a Windows device name (con, nul, com1, lpt1, ... any case) as the stem gets a '_' first;
// - the name ends in ".eml" (an ending ".eml" in any case is replaced, not doubled); the whole
//   name is at most 180 octets, cut before the extension without splitting a UTF-8 sequence;
// - nothing left gives "message.eml".
// Valid UTF-8 letters are kept as they are (no normalisation). Pure; thread-safe.
std::string safe_file_name(std::string_view rendered);

// What one message contributes to its file name.
struct EmlNameVars {
  std::string_view task_title;
  std::string_view subject;
  std::string_view recipient;
  int64_t time = 0;  // seconds since the epoch, rendered as {{date}}: YYYYMMDD-HHMMSS (UTC)
  int64_t id = 0;    // the recipient's id in the task
  // Merge values aligned with the field names given to EmlNamer::create(); may be null when
  // the pattern uses no merge field (a missing value renders as "").
  const std::vector<std::string>* values = nullptr;
};

// Expands a file name pattern such as "{{task_title}}-{{date}}-{{recipient}}-{{id}}.eml".
// Variables: task_title, subject, recipient (alias: email), date, id, and the recipient list's
// merge fields (matched exactly, else case-insensitively, as in templates; a built-in name
// wins over a merge field of the same name). "{{ name }}" may have spaces inside the braces.
// The expansion is passed through safe_file_name(), so a '/' in the pattern or in a value
// never makes a sub-directory. Immutable after create(): name() may be called from any
// number of threads at once.
class EmlNamer {
 public:
  static constexpr std::string_view kDefaultPattern = "{{id}}-{{recipient}}.eml";

  // Parses and checks the pattern up front: an unterminated "{{", an empty or invalid name, or
  // an unknown variable is a kConfig error naming it and listing the known ones.
  static Result<EmlNamer> create(std::string_view pattern,
                                 const std::vector<std::string>& merge_fields);

  std::string name(const EmlNameVars& v) const;

 private:
  enum class Kind : uint8_t { kLiteral, kTaskTitle, kSubject, kRecipient, kDate, kId, kField };
  struct Segment {
    Kind kind;
    std::string literal;  // kLiteral
    size_t field = 0;     // kField: index into EmlNameVars::values
  };
  std::vector<Segment> segments_;
};

// Writes the concatenated pieces as a new file dir/name, atomically and without ever
// replacing an existing file:
//  1. a temporary file ".tmp-<random>" is created in dir with O_EXCL (hidden and without the
//     .eml extension, so a pickup service — Exchange takes only *.eml — never sees it half
//     written);
//  2. the pieces are written (and fsync'ed when `sync`);
//  3. it is renamed to `name` with renameat2(RENAME_NOREPLACE); where the file system does not
//     support that, link() + unlink(); where it has no hard links either, a check then rename
//     (racy only against other writers in the same directory).
// If `name` exists, "-2", "-3", ... go before the extension ("a.eml" -> "a-2.eml"); the path
// actually written goes to *final_path (may be null). With `sync` the directory is fsync'ed
// after the rename too. On failure the temporary file is removed and a kSys error names the
// directory and the reason (EACCES, ENOSPC, ENOENT, ...); a name with '/' or "."/".." is a
// kInput error (use safe_file_name()). For --pickup, the message counts as sent once this
// returns success. Blocking file I/O: call it off the event loop. Reentrant: any number of
// threads may write into the same directory at once.
// `mode` is the new file's mode before the umask: 0600 (kPrivateFile, the default: a backup
// copy holds a recipient's data and is nobody else's to read) or kSharedFile (0666 & ~umask)
// for --pickup, whose files are for another program, often running as another user.
constexpr unsigned kPrivateFile = 0600;
constexpr unsigned kSharedFile = 0666;
Status write_eml_atomically(const std::string& dir, const std::string& name,
                            const std::vector<std::string_view>& pieces, std::string* final_path,
                            bool sync = false, unsigned mode = kPrivateFile);

// Start-up check for --backup-dir / --pickup: dir exists, is a directory, and a file can be
// created and removed in it (which also catches read-only mounts). kConfig error otherwise,
// prefixed with `option` when given: "--pickup: /x/y does not exist".
Status check_writable_dir(const std::string& dir, std::string_view option = {});

}  // namespace sb
