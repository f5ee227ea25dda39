// LoopDns: synchronous lookups over the asynchronous Resolver on a private worker loop.
#include "doctor/dns_source.h"

#include <arpa/inet.h>

#include <condition_variable>
#include <mutex>

#include "loop/worker.h"

namespace sb::doctor {

LoopDns::LoopDns() : worker_(std::make_unique<Worker>(0)) {}

LoopDns::~LoopDns() {
  // The resolver is destroyed on its loop (not inside one of its callbacks), then the
  // loop's thread ends.
  worker_->post([this] { resolver_.reset(); });
  worker_->stop_and_join();
}

Result<std::unique_ptr<LoopDns>> LoopDns::create(const dns::ResolverConfig& cfg) {
  std::unique_ptr<LoopDns> d(new LoopDns());
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::string error;
  LoopDns* self = d.get();
  self->worker_->post([&] {
    auto r = dns::Resolver::create(self->worker_->loop(), cfg);
    std::lock_guard<std::mutex> g(mu);
    if (r.ok()) {
      self->resolver_ = std::move(r).value();
    } else {
      error = r.error().message;
    }
    done = true;
    cv.notify_all();
  });
  self->worker_->start();
  std::unique_lock<std::mutex> lk(mu);
  cv.wait(lk, [&] { return done; });
  if (!error.empty()) return make_error(ErrDomain::kAres, "DNS resolver: " + error);
  return d;
}

Result<dns::Answer> LoopDns::lookup(const std::string& name, dns::RecordType type) {
  std::string key_name = dns::normalise_name(name);
  auto key = std::make_pair(key_name, static_cast<uint16_t>(type));
  if (auto it = cache_.find(key); it != cache_.end()) return it->second;
  if (!dead_.empty()) {
    return make_error(ErrDomain::kAres,
                      "not asked: an earlier lookup got no answer (" + dead_ + ")");
  }
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  Result<dns::Answer> result = make_error(ErrDomain::kAres, "no answer");
  worker_->post([&] {
    auto finish = [&](Result<dns::Answer> r) {
      std::lock_guard<std::mutex> g(mu);
      result = std::move(r);
      done = true;
      cv.notify_all();
    };
    if (resolver_->query(key_name, type, finish) == 0) {
      finish(make_error(ErrDomain::kAres, "resolver shut down"));
    }
  });
  {
    std::unique_lock<std::mutex> lk(mu);
    cv.wait(lk, [&] { return done; });
  }
  ++queries_;
  if (!result.ok()) {
    const std::string& m = result.error().message;
    if (m.find("timed out") != std::string::npos || m.find("unreachable") != std::string::npos) {
      dead_ = m;
    }
  }
  cache_.emplace(key, result);
  return result;
}

std::string reverse_name(const dns::IpAddress& ip) {
  std::string out;
  if (!ip.is_v6()) {
    for (int i = 3; i >= 0; --i) out += std::to_string(ip.bytes[i]) + ".";
    return out + "in-addr.arpa";
  }
  static const char kHex[] = "0123456789abcdef";
  for (int i = 15; i >= 0; --i) {
    out.push_back(kHex[ip.bytes[i] & 0xf]);
    out.push_back('.');
    out.push_back(kHex[ip.bytes[i] >> 4]);
    out.push_back('.');
  }
  return out + "ip6.arpa";
}

Result<dns::IpAddress> parse_ip(const std::string& text) {
  uint8_t buf[16];
  if (inet_pton(AF_INET, text.c_str(), buf) == 1) return dns::IpAddress::v4(buf);
  if (inet_pton(AF_INET6, text.c_str(), buf) == 1) return dns::IpAddress::v6(buf);
  return make_error(ErrDomain::kConfig, "'" + text + "' is not an IPv4 or IPv6 address");
}

}  // namespace sb::doctor
