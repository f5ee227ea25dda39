// .eml files: the file name sanitiser, the name pattern, atomic no-clobber writes.
#include "store/eml_files.h"
#include "base/utf8.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <random>

#include "base/display_text.h"
#include "base/text.h"
#include "store/address.h"

namespace sb {
namespace {

constexpr size_t kMaxName = 180;  // octets, ".eml" included; well under NAME_MAX (255)
constexpr std::string_view kExt = ".eml";
constexpr int kMaxSuffix = 100000;
constexpr int kTempTries = 100;

bool is_space_cp(uint32_t cp) {
  return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == '\v' || cp == '\f';
}

// Code points that must not reach a file name as they are.
bool is_unsafe_cp(uint32_t cp) {
  if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F)) return true;  // controls
  switch (cp) {
    case '/':
    case '\\':
    case '<':
    case '>':
    case ':':
    case '"':
    case '|':
    case '?':
    case '*': return true;
    default: break;
  }
  // Zero-width and bidi format controls (a name that displays as "gpj.eml" but is not),
  // line/paragraph separators, the BOM / zero-width no-break space.
  return (cp >= 0x200B && cp <= 0x200F) || (cp >= 0x202A && cp <= 0x202E) ||
         (cp >= 0x2066 && cp <= 0x2069) || cp == 0x2028 || cp == 0x2029 || cp == 0xFEFF;
}

// CON, PRN, AUX, NUL, COM1-9, LPT1-9: reserved on Windows whatever the extension.
bool windows_device_stem(std::string_view base) {
  std::string_view stem = base.substr(0, base.find('.'));
  while (!stem.empty() && stem.back() == ' ') stem.remove_suffix(1);
  if (stem.size() == 3) {
    return iequals(stem, "con") || iequals(stem, "prn") || iequals(stem, "aux") ||
           iequals(stem, "nul");
  }
  if (stem.size() == 4 && stem[3] >= '1' && stem[3] <= '9') {
    return iequals(stem.substr(0, 3), "com") || iequals(stem.substr(0, 3), "lpt");
  }
  return false;
}

void strip_ends(std::string& s) {
  size_t b = s.find_first_not_of(".- ");
  if (b == std::string::npos) {
    s.clear();
    return;
  }
  size_t e = s.find_last_not_of(". ");
  s = s.substr(b, e + 1 - b);
}

bool valid_var_name(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
  });
}

std::string_view trim_spaces(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

Error sys_error(const std::string& dir, int err) {
  return make_error(ErrDomain::kSys,
                    "cannot write a message into " + dir + ": " + std::strerror(err));
}

// "a.eml" -> "a-2.eml"; a name without ".eml" gets the suffix at its end.
std::string with_suffix(std::string_view name, int k) {
  std::string sfx = "-" + std::to_string(k);
  if (iends_with(name, kExt)) {
    size_t cut = name.size() - kExt.size();
    return std::string(name.substr(0, cut)) + sfx + std::string(name.substr(cut));
  }
  return std::string(name) + sfx;
}

// Creates a new, empty temporary file in the directory; returns its fd and name.
int open_temp(int dfd, std::string& tmp_name, unsigned mode) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  for (int i = 0; i < kTempTries; ++i) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), ".tmp-%016llx", static_cast<unsigned long long>(rng()));
    tmp_name = buf;
    int fd = ::openat(dfd, buf, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, static_cast<mode_t>(mode));
    if (fd >= 0 || errno != EEXIST) return fd;
  }
  errno = EEXIST;
  return -1;
}

// Writes everything, in writev batches of up to 64 slices; false with errno on failure.
bool write_all(int fd, const std::vector<std::string_view>& pieces) {
  std::array<iovec, 64> iov;
  size_t next = 0;  // first piece not yet queued
  size_t skip = 0;  // octets of pieces[next] already written
  while (next < pieces.size()) {
    int cnt = 0;
    size_t first = next;
    for (size_t i = next; i < pieces.size() && cnt < static_cast<int>(iov.size()); ++i) {
      size_t off = (i == first) ? skip : 0;
      if (pieces[i].size() == off) continue;
      iov[cnt].iov_base = const_cast<char*>(pieces[i].data() + off);
      iov[cnt].iov_len = pieces[i].size() - off;
      ++cnt;
    }
    if (cnt == 0) return true;
    ssize_t n = ::writev(fd, iov.data(), cnt);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (n == 0) {
      errno = EIO;
      return false;
    }
    // Advance over what was written.
    auto left = static_cast<size_t>(n);
    while (next < pieces.size()) {
      size_t avail = pieces[next].size() - skip;
      if (left < avail) {
        skip += left;
        break;
      }
      left -= avail;
      ++next;
      skip = 0;
    }
  }
  return true;
}

enum class Placer { kNoReplace, kLink, kCheckRename };

// Moves tmp to `target` without replacing an existing file. 0 on success, EEXIST when the
// target exists, another errno on failure. Falls back (and remembers it in `how`) when the
// file system lacks RENAME_NOREPLACE or hard links.
int place(int dfd, const std::string& tmp, const std::string& target, Placer& how) {
  if (how == Placer::kNoReplace) {
    if (::renameat2(dfd, tmp.c_str(), dfd, target.c_str(), RENAME_NOREPLACE) == 0) return 0;
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) return errno;
    how = Placer::kLink;
  }
  if (how == Placer::kLink) {
    if (::linkat(dfd, tmp.c_str(), dfd, target.c_str(), 0) == 0) {
      ::unlinkat(dfd, tmp.c_str(), 0);
      return 0;
    }
    if (errno != EPERM && errno != ENOTSUP && errno != ENOSYS) return errno;
    how = Placer::kCheckRename;
  }
  struct stat st {};
  if (::fstatat(dfd, target.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) return EEXIST;
  if (errno != ENOENT) return errno;
  return ::renameat(dfd, tmp.c_str(), dfd, target.c_str()) == 0 ? 0 : errno;
}

std::string join_path(const std::string& dir, std::string_view name) {
  std::string p = dir;
  if (p.empty()) p = ".";
  if (p.back() != '/') p.push_back('/');
  p.append(name);
  return p;
}

}  // namespace

std::string safe_file_name(std::string_view in) {
  std::string base;
  base.reserve(std::min(in.size(), kMaxName));
  bool pending_space = false;
  for (size_t i = 0; i < in.size() && base.size() <= 4 * kMaxName;) {
    uint32_t cp = 0;
    size_t n = utf8_seq(in, i, &cp);
    std::string_view out;
    if (n == 0) {
      out = "_";
      n = 1;
    } else if (is_space_cp(cp)) {
      pending_space = true;
      i += n;
      continue;
    } else if (is_unsafe_cp(cp)) {
      out = "_";
    } else {
      out = in.substr(i, n);
    }
    if (pending_space && !base.empty()) base.push_back(' ');
    pending_space = false;
    base.append(out);
    i += n;
  }
  if (iends_with(base, kExt)) base.resize(base.size() - kExt.size());
  strip_ends(base);
  if (windows_device_stem(base)) base.insert(0, "_");
  constexpr size_t kMaxBase = kMaxName - kExt.size();
  if (base.size() > kMaxBase) {
    base.resize(cap_utf8(base, kMaxBase).size());
    strip_ends(base);
  }
  if (base.empty()) base = "message";
  base.append(kExt);
  return base;
}

Result<EmlNamer> EmlNamer::create(std::string_view pattern,
                                  const std::vector<std::string>& merge_fields) {
  auto known = [&] {  // capped: a list may have 100,000 columns
    std::vector<std::string> k{"task_title", "subject", "recipient", "email", "date", "id"};
    k.insert(k.end(), merge_fields.begin(), merge_fields.end());
    return capped_list(k, "", 16);
  };
  auto bad = [&](std::string why) {
    return make_error(ErrDomain::kConfig,
                      "file name pattern '" + printable(pattern, 200) + "': " + why);
  };
  EmlNamer namer;
  size_t pos = 0;
  while (pos < pattern.size()) {
    size_t open = pattern.find("{{", pos);
    if (open == std::string_view::npos) open = pattern.size();
    if (open > pos) {
      namer.segments_.push_back({Kind::kLiteral, std::string(pattern.substr(pos, open - pos))});
    }
    if (open == pattern.size()) break;
    size_t close = pattern.find("}}", open + 2);
    if (close == std::string_view::npos) return bad("unterminated '{{'");
    std::string_view name = trim_spaces(pattern.substr(open + 2, close - open - 2));
    if (!valid_var_name(name)) {
      return bad("'{{" + printable(name, 60) + "}}' is not a valid variable name");
    }
    Segment seg{Kind::kLiteral, {}};
    if (name == "task_title") {
      seg.kind = Kind::kTaskTitle;
    } else if (name == "subject") {
      seg.kind = Kind::kSubject;
    } else if (name == "recipient" || name == "email") {
      seg.kind = Kind::kRecipient;
    } else if (name == "date") {
      seg.kind = Kind::kDate;
    } else if (name == "id") {
      seg.kind = Kind::kId;
    } else {
      auto it = std::find(merge_fields.begin(), merge_fields.end(), name);
      if (it == merge_fields.end()) {
        it = std::find_if(merge_fields.begin(), merge_fields.end(),
                          [&](const std::string& f) { return iequals(f, name); });
      }
      if (it == merge_fields.end()) {
        return bad("unknown variable '" + std::string(name) + "'; known: " + known());
      }
      seg.kind = Kind::kField;
      seg.field = static_cast<size_t>(it - merge_fields.begin());
    }
    namer.segments_.push_back(std::move(seg));
    pos = close + 2;
  }
  return namer;
}

std::string EmlNamer::name(const EmlNameVars& v) const {
  std::string s;
  for (const Segment& seg : segments_) {
    switch (seg.kind) {
      case Kind::kLiteral: s += seg.literal; break;
      case Kind::kTaskTitle: s += v.task_title; break;
      case Kind::kSubject: s += v.subject; break;
      case Kind::kRecipient: s += v.recipient; break;
      case Kind::kDate: {
        time_t t = static_cast<time_t>(v.time);
        struct tm tm {};
        gmtime_r(&t, &tm);
        char buf[32];
        std::snprintf(buf, sizeof(buf), "%04d%02d%02d-%02d%02d%02d", tm.tm_year + 1900,
                      tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        s += buf;
        break;
      }
      case Kind::kId: s += std::to_string(v.id); break;
      case Kind::kField:
        if (v.values && seg.field < v.values->size()) s += (*v.values)[seg.field];
        break;
    }
  }
  return safe_file_name(s);
}

Status write_eml_atomically(const std::string& dir, const std::string& name,
                            const std::vector<std::string_view>& pieces, std::string* final_path,
                            bool sync, unsigned mode) {
  if (name.empty() || name == "." || name == ".." ||
      name.find_first_of(std::string_view("/\0", 2)) != std::string::npos) {
    return make_error(ErrDomain::kInput, "'" + printable(name, 200) +
                                             "' is not a plain file name (see safe_file_name)");
  }
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return sys_error(dir, errno);
  std::string tmp;
  int fd = open_temp(dfd, tmp, mode);
  if (fd < 0) {
    int e = errno;
    ::close(dfd);
    return sys_error(dir, e);
  }
  int err = 0;
  if (!write_all(fd, pieces)) err = errno;
  if (err == 0 && sync && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0 && errno != EINTR) err = errno;  // NFS reports here
  std::string target = name;
  if (err == 0) {
    Placer how = Placer::kNoReplace;
    for (int k = 2;; ++k) {
      err = place(dfd, tmp, target, how);
      if (err != EEXIST) break;
      if (k > kMaxSuffix) break;
      target = with_suffix(name, k);
    }
  }
  if (err != 0) {
    ::unlinkat(dfd, tmp.c_str(), 0);
    ::close(dfd);
    return sys_error(dir, err);
  }
  if (sync && ::fsync(dfd) != 0) err = errno;
  ::close(dfd);
  // The message is in place under its final name even if the directory sync failed, so the
  // path is reported either way.
  if (final_path) *final_path = join_path(dir, target);
  if (err != 0) return sys_error(dir, err);
  return {};
}

Status check_writable_dir(const std::string& dir, std::string_view option) {
  std::string prefix = option.empty() ? std::string() : std::string(option) + ": ";
  auto bad = [&](std::string why) { return make_error(ErrDomain::kConfig, prefix + why); };
  if (dir.empty()) return bad("no directory given");
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    int e = errno;
    if (e == ENOENT) return bad(dir + " does not exist");
    if (e == ENOTDIR) return bad(dir + " does not exist (part of the path is not a directory)");
    return bad("cannot use " + dir + ": " + std::strerror(e));
  }
  if (!S_ISDIR(st.st_mode)) return bad(dir + " is not a directory");
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return bad("cannot use " + dir + ": " + std::strerror(errno));
  std::string tmp;
  int fd = open_temp(dfd, tmp, kPrivateFile);
  if (fd < 0) {
    int e = errno;
    ::close(dfd);
    return bad(dir + " is not writable: " + std::strerror(e));
  }
  ::close(fd);
  ::unlinkat(dfd, tmp.c_str(), 0);
  ::close(dfd);
  return {};
}

}  // namespace sb
