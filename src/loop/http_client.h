// HttpClient: HTTP(S) requests on a libuv loop through libcurl's multi interface (one uv_poll
// per socket, one Timer for curl's timeout); many requests in flight, none blocks the loop.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"

struct uv_loop_s;

namespace sb {

struct HttpRequest {
  std::string method = "POST";
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;
  std::string user;  // basic auth, with password (never logged)
  std::string password;
  std::string bearer;  // Authorization: Bearer
  uint32_t timeout_ms = 30000;
  size_t max_response = 1 << 20;
};

struct HttpResponse {
  int status = 0;     // 0: no HTTP answer (see error)
  std::string body;   // at most max_response octets
  std::string error;  // curl's reason when the transfer failed
};

class HttpClient {
 public:
  using Callback = std::function<void(HttpResponse&)>;
  // Fails when curl cannot start (no multi handle).
  static Result<std::unique_ptr<HttpClient>> create(uv_loop_s* loop);
  ~HttpClient();  // every pending callback runs first, with error "cancelled"
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Starts the request; `cb` runs exactly once, on the loop, never inside start().
  void start(const HttpRequest& req, Callback cb);
  size_t in_flight() const;

  struct Impl;

 private:
  explicit HttpClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sb
