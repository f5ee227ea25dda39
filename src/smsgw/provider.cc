// Secrets of SMS providers: read when a run needs them, never kept in the config or logged.
#include "smsgw/provider.h"

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

namespace sb {

Result<std::string> read_secret(const SecretSource& s, const std::string& key) {
  if (!s.env.empty()) {
    const char* v = std::getenv(s.env.c_str());
    if (v == nullptr || *v == '\0') {
      return make_error(ErrDomain::kConfig,
                        key + ": the environment variable " + s.env + " is not set");
    }
    return std::string(v);
  }
  std::string out;
  if (!s.file.empty()) {
    std::ifstream f(s.file, std::ios::binary);
    if (!f) return make_error(ErrDomain::kConfig, key + ": cannot read " + s.file);
    std::getline(f, out);
  } else if (!s.cmd.empty()) {
    // The command's output stays in memory; the command itself is no secret.
    FILE* p = ::popen(s.cmd.c_str(), "r");
    if (p == nullptr) return make_error(ErrDomain::kConfig, key + ": cannot run the command");
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0 && out.size() < 65536) out.append(buf, n);
    int rc = ::pclose(p);
    if (rc != 0) {
      return make_error(ErrDomain::kConfig, key + ": the command exited with status " +
                                                std::to_string(WEXITSTATUS(rc)));
    }
    if (size_t nl = out.find_first_of("\r\n"); nl != std::string::npos) out.resize(nl);
  } else {
    return std::string();
  }
  while (!out.empty() && (out.back() == '\r' || out.back() == '\n')) out.pop_back();
  if (out.empty()) return make_error(ErrDomain::kConfig, key + ": the secret is empty");
  return out;
}

}  // namespace sb
