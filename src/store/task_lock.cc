// The task lock file (flock), with the holder's PID in it.
#include "store/task_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sb {

Result<int> acquire_task_lock(const std::string& task_path) {
  // A PostgreSQL task (issue 13) is shared by several senders on purpose: no lock file.
  if (task_path == ":memory:" || task_path.rfind("postgresql://", 0) == 0 ||
      task_path.rfind("postgres://", 0) == 0) {
    return ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  std::string path = task_path + ".lock";
  // 0600 like the task: it names the task and the sender's PID, nobody else's business.
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return make_error(ErrDomain::kSys,
                      "cannot open lock file " + path + ": " + std::strerror(errno));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    char buf[32] = {0};
    ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    ::close(fd);
    if (err == EWOULDBLOCK) {
      std::string pid = n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string("?");
      while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
      return make_error(ErrDomain::kSys, "task " + task_path + " is being sent by process " + pid);
    }
    return make_error(ErrDomain::kSys, "cannot lock " + path + ": " + std::strerror(err));
  }
  // The file stays (removing it would race with a starting sender); the lock dies with us.
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    // The lock holds without the PID in it; the message just says "?".
  }
  return fd;
}

}  // namespace sb
