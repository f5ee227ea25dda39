// Exit codes, --from and --preset checks, unknown verbs, and JSON error objects for --json.
#include "cli/pipeline.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "cli/relay_options.h"
#include "store/address.h"
#include "throttle/presets.h"

namespace sb {

namespace {
std::atomic<bool> g_json_printed{false};
}  // namespace

void mark_json_printed() { g_json_printed.store(true); }
bool json_printed() { return g_json_printed.load(); }

std::string from_problem(const std::string& from) {
  size_t lt = from.find('<');
  size_t gt = from.rfind('>');
  if (lt != std::string::npos && gt != std::string::npos && gt > lt) {
    std::string inner = from.substr(lt + 1, gt - lt - 1);
    return "'" + printable(from, 120) + "' carries a display name: --from is the envelope " +
           "sender, an address alone (--from " + printable(inner, 100) +
           "); the display name goes in the template's From: header";
  }
  std::string why = address_problem(trim_ascii(from));
  // An envelope sender at a host name without a dot (postmaster@localhost) is a valid
  // mailbox for a local relay; import's rule is about recipients on the Internet.
  if (why.empty() || why == "domain has no dot") return "";
  return "'" + printable(from, 120) + "' is not an address (" + why + ")";
}

Status apply_relay_preset(const std::string& name, RelayOptions& ro) {
  auto p = find_preset(name);
  if (!p.ok()) return make_error(ErrDomain::kConfig, "--preset: " + p.error().message);
  if (ro.relay.empty()) ro.relay = p->host + ":" + std::to_string(p->port);
  if (ro.tls.empty()) ro.tls = p->tls;
  return {};
}

std::string unknown_verb(int argc, char** argv, CLI::App& app) {
  if (argc < 2 || argv[1][0] == '-') return "";
  std::string verb = argv[1];
  for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    if (sub->get_name() == verb) return "";
  }
  return verb;
}

bool argv_has(int argc, char** argv, const char* flag) {
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], flag) == 0) return true;
  }
  return false;
}

namespace {
int g_stderr_tty = -1;  // isatty(2) before a tee replaced fd 2; -1: no tee
}  // namespace

bool stderr_is_terminal() {
  return g_stderr_tty >= 0 ? g_stderr_tty == 1 : ::isatty(STDERR_FILENO) != 0;
}

void JsonErrorTee::start() {
  g_stderr_tty = ::isatty(STDERR_FILENO) != 0 ? 1 : 0;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return;  // no tee: errors stay text only
  std::fflush(stderr);
  saved_fd_ = ::fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
  if (saved_fd_ < 0 || ::dup2(fds[1], STDERR_FILENO) < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    if (saved_fd_ >= 0) ::close(saved_fd_);
    saved_fd_ = -1;
    return;
  }
  ::close(fds[1]);
  read_fd_ = fds[0];
  thread_ = std::thread([this] {
    // SIGINT/SIGTERM must reach send's signal thread, never this one (whose default action
    // would end the process).
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
    std::string line;
    char buf[4096];
    auto keep = [&](const std::string& l) {
      static constexpr char kPrefix[] = "smtpblast: ";
      if (l.rfind(kPrefix, 0) != 0 || l.rfind("smtpblast: warning", 0) == 0) return;
      last_error_ = l.substr(sizeof kPrefix - 1);
    };
    for (;;) {
      ssize_t n = ::read(read_fd_, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      for (ssize_t off = 0; off < n;) {
        ssize_t w = ::write(saved_fd_, buf + off, static_cast<size_t>(n - off));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        off += w;
      }
      for (ssize_t i = 0; i < n; ++i) {
        if (buf[i] == '\n' || buf[i] == '\r') {
          keep(line);
          line.clear();
        } else if (line.size() < 2048) {
          line.push_back(buf[i]);
        }
      }
    }
    keep(line);
  });
}

std::string JsonErrorTee::stop() {
  if (saved_fd_ < 0) return last_error_;
  std::fflush(stderr);
  // Restoring fd 2 closes the pipe's last write end: the thread reads to the end and exits.
  ::dup2(saved_fd_, STDERR_FILENO);
  if (thread_.joinable()) thread_.join();  // before closing the fd it copies to
  ::close(saved_fd_);
  saved_fd_ = -1;
  ::close(read_fd_);
  read_fd_ = -1;
  return last_error_;
}

}  // namespace sb
