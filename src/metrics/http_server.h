// MetricsServer: a tiny HTTP/1.1 server answering GET /metrics, on a libuv loop thread of its
// own (one thread for the server's life, none per request), plus its pure request handling.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "base/result.h"

namespace sb::metrics {

// The head of one HTTP request, parsed from the bytes received so far.
struct RequestHead {
  enum class State { kIncomplete, kComplete, kBad, kTooLarge };
  State state = State::kIncomplete;
  std::string method;
  std::string target;
};

// The most a request head may take (Prometheus sends a few hundred bytes).
inline constexpr size_t kMaxHead = 8192;

// Pure: the request line of `received` once its head (up to the blank line) is complete.
RequestHead parse_request_head(std::string_view received);

// Pure: the full response (status line, headers, body) to a complete or bad head. `render`
// produces the exposition and runs only for GET /metrics.
std::string respond(const RequestHead& head, const std::function<std::string()>& render);

class MetricsServer {
 public:
  using Render = std::function<std::string()>;  // runs on the server's thread, per scrape

  // Binds `addr` and serves on a new thread. The error names the address.
  static Result<std::unique_ptr<MetricsServer>> start(const std::string& addr, Render render);
  // Closes the listener and every connection, then joins the thread.
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  uint16_t port() const;
  // Answers to GET /metrics so far.
  uint64_t scrapes() const { return scrapes_->load(); }

 private:
  MetricsServer() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::shared_ptr<std::atomic<uint64_t>> scrapes_;
};

}  // namespace sb::metrics
