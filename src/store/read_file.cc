// Reads a whole small input file (a template, a key) with an error that says why it failed.
#include "store/read_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace sb {
namespace {

Error cannot_read(const std::string& path, std::string why) {
  return make_error(ErrDomain::kInput, "cannot read " + path + ": " + why);
}

std::string reason(const std::string& path, int err) {
  if (err == ENOENT) return "no such file";
  if (err == EISDIR) return "it is a directory, not a file";
  if (err == EACCES) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) {
      char buf[96];
      std::snprintf(buf, sizeof buf,
                    "permission denied (owner uid %u, mode %04o; running as uid %u)",
                    static_cast<unsigned>(st.st_uid), static_cast<unsigned>(st.st_mode & 07777),
                    static_cast<unsigned>(::geteuid()));
      return buf;
    }
    return "permission denied (on the file or a directory above it)";
  }
  return std::strerror(err);
}

}  // namespace

Result<std::string> read_whole_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return cannot_read(path, reason(path, errno));
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd);
    return cannot_read(path, reason(path, EISDIR));
  }
  std::string out;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return cannot_read(path, reason(path, e));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace sb
