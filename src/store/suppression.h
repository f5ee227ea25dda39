// The suppression list (--suppress FILE): addresses and @domains that must never be mailed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "store/task_store.h"

struct sqlite3;

namespace sb {

// File format, one entry a line (UTF-8; a BOM at the start is skipped; LF or CRLF):
//   user@example.com     suppresses that address
//   @example.com         suppresses every address whose domain is exactly example.com
//                        (NOT its subdomains: a@mail.example.com needs its own line)
//   # comment            a line whose first non-blank character is '#'
// Blank lines are ignored and spaces/tabs around an entry are trimmed. Comments must be on
// their own line ('#' is a legal local-part character, so "a#b@x.com" is an address).
// Entries compare like the task store's duplicate rule: the whole address with ASCII
// letters lower-cased (no Unicode case folding). Any other line — no '@', two '@', an empty
// side, a space or control character inside — fails the load naming the file and line:
//   "suppress.txt line 12: 'foo' is not an address or @domain"
//
// Memory: the normalised entries live in one arena (key + '\n') and the index is an
// open-addressing table of 8-octet slots (32-bit hash tag, 32-bit arena offset) at a load
// of at most 0.7: about 11.4 + (key length + 1) octets per entry and no allocation per entry
// (measured: 36.4 MB for 1M entries averaging 25 octets). Lookups verify a tag match against
// the arena, so there are no false positives.
//
// Thread safety: load_file() must not run concurrently with anything else on the object.
// After loading, the const members (suppressed, size) may be called from any number of
// threads at once: they read only.
class SuppressionList {
 public:
  SuppressionList() = default;
  SuppressionList(SuppressionList&&) = default;
  SuppressionList& operator=(SuppressionList&&) = default;
  SuppressionList(const SuppressionList&) = delete;
  SuppressionList& operator=(const SuppressionList&) = delete;

  // Adds the entries of one file (call once per --suppress; files accumulate). On error
  // (kInput: unreadable file, bad line) the list is left as it was before the call.
  Status load_file(const std::string& path);
  // The same from bytes in memory; `name` stands for the file in error messages.
  Status load_buffer(std::string data, std::string_view name);
  // Keys already in the task's form, one a line, not checked as addresses: an SMS task's
  // E.164 numbers (`sms send --suppress`, read and normalised by the caller). A key never
  // has a domain part, so only the whole key matches.
  Status load_keys(std::string data, std::string_view name);

  // True when the address, or "@" + its domain (the part after the last '@'), is listed.
  // `address` is taken as given (the task store holds trimmed addresses).
  bool suppressed(std::string_view address) const;

  // Distinct entries (addresses and @domains) loaded so far.
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  Status load(std::string data, std::string_view name, bool addresses);
  // True when key is present; else, if empty_slot is given, the empty slot it would take.
  bool find_slot(std::string_view key, uint64_t h, size_t* empty_slot) const;
  void rebuild(size_t capacity_for);
  void insert_new(uint32_t offset, uint64_t h);

  std::string arena_;            // normalised keys, each followed by '\n'
  std::vector<uint64_t> slots_;  // 0 = empty; else (hash tag << 32) | (offset + 1)
  size_t size_ = 0;
};

// The task's own suppression list (table task_suppressed in the task file, created on first
// use): numbers that opted out by replying STOP to an SMS (issue 19), or any key the task
// must never send to again. key is the recipient key as the task stores it (E.164 for SMS).
// (TaskSuppressionAdded is in store/task_store.h: TaskStore::add_suppression gives it too.)
// Adds `key` (with why it came, e.g. "STOP", and when: unix seconds, 0 = now) and suppresses
// the task's recipients with that key that were not sent yet, in one savepoint (inside or
// outside the caller's transaction). Recipients in flight or sent are left as they are.
Result<TaskSuppressionAdded> add_task_suppression(sqlite3* db, std::string_view key,
                                                  std::string_view reason, int64_t time = 0);
// The listed keys, oldest first (empty when the table does not exist).
Result<std::vector<std::string>> task_suppressions(sqlite3* db);

}  // namespace sb
