// The suppression list: load and normalise the files in place, index them, answer lookups.
#include "store/suppression.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>

#include "base/text.h"
#include "store/address.h"

namespace sb {
namespace {

// Slots per entry: a load of at most 0.7 keeps linear probes short while an 8-octet slot
// keeps the table small (about 11.4 octets per entry).
constexpr size_t kLoadNum = 7;
constexpr size_t kLoadDen = 10;
constexpr size_t kMinSlots = 16;
// Arena offsets are 32-bit in a slot (offset + 1, 0 meaning empty).
constexpr size_t kMaxArena = 0xFFFFFFFEu;

constexpr uint64_t kTagMask = 0xFFFFFFFF00000000u;

uint64_t make_slot(uint64_t h, size_t offset) {
  return (h & kTagMask) | (static_cast<uint64_t>(offset) + 1);
}

Error input_error(std::string msg) { return make_error(ErrDomain::kInput, std::move(msg)); }

uint64_t hash_key(std::string_view key) { return std::hash<std::string_view>{}(key); }

// Position of hash h in a table of n slots: multiply-shift instead of a modulo, so the table
// size need not be a power of two (sized for exactly the entries at the load limit).
size_t home_slot(uint64_t h, size_t n) {
  return static_cast<size_t>((static_cast<uint64_t>(static_cast<uint32_t>(h)) * n) >> 32);
}

// A plausible entry: "local@domain" or "@domain" with exactly one '@', both sides (or the
// domain) non-empty, and no space or control character. Deliberately looser than the import's
// address_problem(): an entry that can never match a valid recipient is harmless, while a
// suppression file rejected for an oddity the import would also reject helps nobody.
bool plausible_entry(std::string_view e) {
  size_t at = std::string_view::npos;
  for (size_t i = 0; i < e.size(); ++i) {
    auto c = static_cast<unsigned char>(e[i]);
    if (c <= 0x20 || c == 0x7F) return false;
    if (c == '@') {
      if (at != std::string_view::npos) return false;
      at = i;
    }
  }
  if (at == std::string_view::npos) return false;
  return at + 1 < e.size();  // a domain; an empty local part means "@domain"
}

}  // namespace

Status SuppressionList::load_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return input_error("cannot open " + path + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd);
    return input_error("cannot read " + path + ": it is a directory");
  }
  std::string data;
  // One read buffer sized from the file (plus the '\n' load_buffer may add); it becomes the
  // arena, so a 1M-line file is read into memory exactly once.
  size_t cap = S_ISREG(st.st_mode) ? static_cast<size_t>(st.st_size) + 1 : 64 * 1024;
  data.resize(cap);
  size_t used = 0;
  for (;;) {
    if (used == data.size()) data.resize(data.size() * 2);
    ssize_t n = ::read(fd, data.data() + used, data.size() - used);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      return input_error("cannot read " + path + ": " + std::strerror(e));
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  ::close(fd);
  data.resize(used);
  return load_buffer(std::move(data), path);
}

Status SuppressionList::load_buffer(std::string data, std::string_view name) {
  return load(std::move(data), name, true);
}

Status SuppressionList::load_keys(std::string data, std::string_view name) {
  return load(std::move(data), name, false);
}

Status SuppressionList::load(std::string data, std::string_view name, bool addresses) {
  // Pass 1, in place: every entry is trimmed, validated, lower-cased and written as key + '\n'
  // at the front of the buffer. An entry never needs more room than its line did.
  if (!data.empty() && data.back() != '\n') data.push_back('\n');
  size_t r = 0;
  if (data.size() >= 3 && data.compare(0, 3, "\xEF\xBB\xBF") == 0) r = 3;
  size_t w = 0;
  size_t entries = 0;
  uint64_t line = 0;
  while (r < data.size()) {
    const char* nl = static_cast<const char*>(std::memchr(data.data() + r, '\n', data.size() - r));
    size_t e = static_cast<size_t>(nl - data.data());  // data ends with '\n'
    ++line;
    std::string_view entry = trim_ascii(std::string_view(data).substr(r, e - r));
    r = e + 1;
    if (entry.empty() || entry[0] == '#') continue;
    if (addresses && !plausible_entry(entry)) {
      return input_error(std::string(name) + " line " + std::to_string(line) + ": '" +
                         printable(entry, 80) + "' is not an address or @domain");
    }
    // entry lies at or after w, so copying forward never overwrites unread bytes.
    for (char c : entry) data[w++] = lower_ascii(c);
    data[w++] = '\n';
    ++entries;
  }
  data.resize(w);
  if (entries == 0) return {};
  if (arena_.size() + data.size() > kMaxArena) {
    return input_error(std::string(name) + ": the suppression lists are too large (over 4 GiB)");
  }

  // Pass 2: index the new entries, dropping repeats (within the file or already loaded) by
  // compacting the arena once more.
  size_t need = size_ + entries;
  if (need * kLoadDen > slots_.size() * kLoadNum) rebuild(need);
  size_t base = arena_.size();
  if (arena_.empty()) {
    arena_ = std::move(data);
  } else {
    arena_.append(data);
    data = std::string();
  }
  // Table slots are random accesses into a table of ~11 MB per million entries, so the
  // home slot of each entry is prefetched kAhead entries before it is probed.
  struct Pending {
    size_t offset;
    size_t length;
    uint64_t hash;
  };
  constexpr size_t kAhead = 16;
  Pending ring[kAhead];
  w = base;
  auto index_one = [&](const Pending& p) {
    std::string_view key(arena_.data() + p.offset, p.length);
    size_t slot;
    if (find_slot(key, p.hash, &slot)) return;  // a repeat
    // Later keys are verified against the arena only after this move, so the slot may
    // already name the compacted position.
    if (w != p.offset) std::memmove(arena_.data() + w, arena_.data() + p.offset, p.length + 1);
    slots_[slot] = make_slot(p.hash, w);
    ++size_;
    w += p.length + 1;
  };
  size_t k = 0;
  for (r = base; r < arena_.size(); ++k) {
    size_t e = arena_.find('\n', r);
    Pending p{r, e - r, hash_key(std::string_view(arena_.data() + r, e - r))};
    __builtin_prefetch(&slots_[home_slot(p.hash, slots_.size())]);
    if (k >= kAhead) index_one(ring[k % kAhead]);
    ring[k % kAhead] = p;
    r = e + 1;
  }
  for (size_t j = k > kAhead ? k - kAhead : 0; j < k; ++j) index_one(ring[j % kAhead]);
  arena_.resize(w);
  // Comments, blank lines, CRs and repeats leave capacity behind; give back a lot of it.
  if (arena_.capacity() > arena_.size() + arena_.size() / 4 + 4096) arena_.shrink_to_fit();
  return {};
}

void SuppressionList::rebuild(size_t capacity_for) {
  size_t n = std::max(kMinSlots, capacity_for * kLoadDen / kLoadNum + 1);
  slots_.assign(n, 0);
  for (size_t r = 0; r < arena_.size();) {
    size_t e = arena_.find('\n', r);
    insert_new(static_cast<uint32_t>(r), hash_key(std::string_view(arena_.data() + r, e - r)));
    r = e + 1;
  }
}

void SuppressionList::insert_new(uint32_t offset, uint64_t h) {
  const size_t n = slots_.size();
  size_t i = home_slot(h, n);
  while (slots_[i] != 0) {
    if (++i == n) i = 0;
  }
  slots_[i] = make_slot(h, offset);
}

bool SuppressionList::find_slot(std::string_view key, uint64_t h, size_t* empty_slot) const {
  const size_t n = slots_.size();
  if (n == 0) return false;
  const uint64_t tag = h & kTagMask;
  for (size_t i = home_slot(h, n);;) {
    uint64_t s = slots_[i];
    if (s == 0) {
      if (empty_slot) *empty_slot = i;
      return false;
    }
    if ((s & kTagMask) == tag) {
      size_t off = static_cast<size_t>(s & ~kTagMask) - 1;
      // Keys hold no '\n', so "same octets, then '\n'" is an exact match.
      if (arena_.size() - off > key.size() && arena_[off + key.size()] == '\n' &&
          std::memcmp(arena_.data() + off, key.data(), key.size()) == 0) {
        return true;
      }
    }
    if (++i == n) i = 0;
  }
}

bool SuppressionList::suppressed(std::string_view address) const {
  if (size_ == 0) return false;
  // One lower-casing buffer per thread, reused: no allocation per lookup once warm.
  thread_local std::string buf;
  buf.resize(address.size());
  for (size_t i = 0; i < address.size(); ++i) {
    if (address[i] == '\n') return false;  // the arena's separator; never in an entry
    buf[i] = lower_ascii(address[i]);
  }
  std::string_view key(buf);
  if (find_slot(key, hash_key(key), nullptr)) return true;
  size_t at = key.rfind('@');
  if (at == std::string_view::npos || at == 0) return false;
  std::string_view domain = key.substr(at);  // "@domain"
  return find_slot(domain, hash_key(domain), nullptr);
}

}  // namespace sb
