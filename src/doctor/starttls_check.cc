// A minimal blocking SMTP probe: greeting, EHLO, QUIT. Nothing is sent but those commands.
#include "doctor/starttls_check.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace sb::doctor {

namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// Reads one SMTP reply (all its lines); "" with `err` set on failure.
std::string read_reply(int fd, Clock::time_point deadline, std::string& buf, std::string* err) {
  for (;;) {
    // A complete reply ends with a line "NNN " (or "NNN" alone) after any "NNN-" lines.
    size_t start = 0;
    while (true) {
      size_t eol = buf.find("\r\n", start);
      if (eol == std::string::npos) break;
      std::string line = buf.substr(start, eol - start);
      if (line.size() < 3) {
        *err = "malformed reply line";
        return "";
      }
      if (line.size() == 3 || line[3] == ' ') {
        std::string reply = buf.substr(0, eol + 2);
        buf.erase(0, eol + 2);
        return reply;
      }
      start = eol + 2;
    }
    if (buf.size() > 65536) {
      *err = "reply too long";
      return "";
    }
    pollfd p{fd, POLLIN, 0};
    int ms = remaining_ms(deadline);
    if (ms == 0 || ::poll(&p, 1, ms) <= 0) {
      *err = "timed out waiting for a reply";
      return "";
    }
    char tmp[4096];
    ssize_t n = ::read(fd, tmp, sizeof tmp);
    if (n <= 0) {
      *err = n == 0 ? "connection closed" : std::string("read: ") + std::strerror(errno);
      return "";
    }
    buf.append(tmp, static_cast<size_t>(n));
  }
}

bool write_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

std::string printable(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\r') continue;
    if (c == '\n') {
      out += " | ";
    } else if (std::isprint(static_cast<unsigned char>(c))) {
      out.push_back(c);
    }
  }
  while (out.size() >= 3 && out.compare(out.size() - 3, 3, " | ") == 0) out.resize(out.size() - 3);
  return out.size() > 300 ? out.substr(0, 300) + "..." : out;
}

}  // namespace

std::vector<std::string> ehlo_keywords(const std::string& reply) {
  std::vector<std::string> out;
  size_t i = 0;
  bool first = true;
  while (i < reply.size()) {
    size_t eol = reply.find('\n', i);
    if (eol == std::string::npos) eol = reply.size();
    std::string line = reply.substr(i, eol - i);
    i = eol + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.size() < 4) continue;
    if (first) {  // the first line carries the server's name, not a keyword
      first = false;
      continue;
    }
    std::string kw = line.substr(
        4, line.find(' ', 4) == std::string::npos ? std::string::npos : line.find(' ', 4) - 4);
    for (char& c : kw) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    out.push_back(kw);
  }
  return out;
}

Result<std::string> probe_ehlo(const sockaddr_storage& addr, const std::string& helo,
                               int timeout_ms) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return make_error(ErrDomain::kUv, std::string("socket: ") + std::strerror(errno));
  auto fail = [&](const std::string& m) {
    ::close(fd);
    return make_error(ErrDomain::kSmtp, m);
  };
  socklen_t len = addr.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0 && errno != EINPROGRESS) {
    return fail(std::string("connect: ") + std::strerror(errno));
  }
  pollfd p{fd, POLLOUT, 0};
  int ms = remaining_ms(deadline);
  if (::poll(&p, 1, ms) <= 0) return fail("connect: timed out");
  int soerr = 0;
  socklen_t sl = sizeof soerr;
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
  if (soerr != 0) return fail(std::string("connect: ") + std::strerror(soerr));
  // Blocking writes are fine for two short commands; reads are bounded by poll().
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  std::string buf, err;
  std::string greeting = read_reply(fd, deadline, buf, &err);
  if (greeting.empty()) return fail("greeting: " + err);
  if (greeting[0] != '2') return fail("greeting: " + printable(greeting));
  if (!write_all(fd, "EHLO " + helo + "\r\n")) return fail("EHLO: write failed");
  std::string ehlo = read_reply(fd, deadline, buf, &err);
  if (ehlo.empty()) return fail("EHLO: " + err);
  write_all(fd, "QUIT\r\n");
  ::close(fd);
  if (ehlo[0] != '2') return make_error(ErrDomain::kSmtp, "EHLO: " + printable(ehlo));
  return ehlo;
}

Row starttls_row(const std::string& who, const Result<std::string>& ehlo) {
  Row row{"starttls", who, Verdict::kPass, "", "STARTTLS in the EHLO reply", ""};
  if (!ehlo.ok()) {
    row.verdict = Verdict::kFail;
    row.evidence = "could not ask: " + ehlo.error().message;
    row.fix = "check the address and that the server is up (smtpblast check)";
    return row;
  }
  const std::string& reply = ehlo.value();
  auto kws = ehlo_keywords(reply);
  bool tls = false;
  for (const std::string& k : kws) tls |= k == "STARTTLS";
  row.evidence = printable(reply);
  if (!tls) {
    row.verdict = Verdict::kFail;
    row.evidence = "no STARTTLS offered: " + row.evidence;
    row.fix =
        "enable STARTTLS on the server (Gmail marks mail received without TLS with a red "
        "padlock; Microsoft and Yahoo require TLS from bulk senders)";
  }
  return row;
}

std::vector<Row> check_mx_starttls(const std::vector<std::string>& domains, DnsSource& dns,
                                   const std::string& helo, uint16_t port, int timeout_ms,
                                   size_t sample) {
  std::vector<Row> rows;
  size_t n = 0;
  for (const std::string& d : domains) {
    if (n >= sample) break;
    auto mx = dns.lookup(d, dns::RecordType::kMx);
    if (!mx.ok() || mx->mx.empty() || mx->mx.front().is_null()) continue;
    auto best = std::min_element(mx->mx.begin(), mx->mx.end(), [](const auto& a, const auto& b) {
      return a.preference < b.preference;
    });
    auto a = dns.lookup(best->exchange, dns::RecordType::kA);
    if (!a.ok() || a->addresses.empty()) continue;
    ++n;
    sockaddr_storage ss{};
    a->addresses.front().to_sockaddr(port, ss);
    std::string who = d + " (MX " + best->exchange + " " + a->addresses.front().to_string() + ":" +
                      std::to_string(port) + ")";
    Row r = starttls_row(who, probe_ehlo(ss, helo, timeout_ms));
    // A recipient's server is not ours to fix: without TLS the message still goes, in clear.
    if (r.verdict == Verdict::kFail) {
      r.verdict = Verdict::kWarn;
      r.fix = "nothing to publish: messages to " + d + " will travel unencrypted or be deferred";
    }
    rows.push_back(r);
  }
  return rows;
}

}  // namespace sb::doctor
