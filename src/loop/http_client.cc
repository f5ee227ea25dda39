// HttpClient: curl multi + libuv as curl's multi-uv.c example does it (socket callback ->
// uv_poll_t per socket, timer callback -> one Timer), with completion callbacks per request.
#include "loop/http_client.h"

#include <curl/curl.h>
#include <uv.h>

#include <algorithm>
#include <mutex>
#include <set>

#include "loop/timer.h"

namespace sb {

namespace {

struct PollCtx {
  uv_poll_t poll;
  curl_socket_t fd;
  HttpClient::Impl* impl;
};

struct Transfer {
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  std::string body;  // the request body (curl reads it from here)
  HttpResponse resp;
  size_t max_response = 0;
  HttpClient::Callback cb;
};

void curl_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t write_cb(char* p, size_t size, size_t n, void* userp) {
  auto* t = static_cast<Transfer*>(userp);
  size_t len = size * n;
  size_t room = t->max_response > t->resp.body.size() ? t->max_response - t->resp.body.size() : 0;
  t->resp.body.append(p, std::min(len, room));
  return len;
}

}  // namespace

struct HttpClient::Impl {
  uv_loop_t* loop = nullptr;
  CURLM* multi = nullptr;
  std::unique_ptr<Timer> timer;
  std::set<Transfer*> live;
  std::vector<Transfer*> failed;  // could not start: reported from the timer
  std::set<PollCtx*> polls;
  bool in_check = false;

  ~Impl();
  void action(curl_socket_t fd, int flags);
  void check_done();
  void finish(Transfer* t);
  static int socket_cb(CURL*, curl_socket_t s, int what, void* userp, void* socketp);
  static int timer_cb(CURLM*, long timeout_ms, void* userp);
};

void HttpClient::Impl::action(curl_socket_t fd, int flags) {
  int running = 0;
  curl_multi_socket_action(multi, fd, flags, &running);
  check_done();
}

void HttpClient::Impl::finish(Transfer* t) {
  live.erase(t);
  if (t->easy != nullptr) {
    curl_multi_remove_handle(multi, t->easy);
    curl_easy_cleanup(t->easy);
  }
  curl_slist_free_all(t->headers);
  Callback cb = std::move(t->cb);
  HttpResponse resp = std::move(t->resp);
  delete t;
  if (cb) cb(resp);
}

void HttpClient::Impl::check_done() {
  std::vector<Transfer*> fail;
  fail.swap(failed);
  for (Transfer* t : fail) finish(t);
  CURLMsg* m;
  int left = 0;
  while ((m = curl_multi_info_read(multi, &left)) != nullptr) {
    if (m->msg != CURLMSG_DONE) continue;
    Transfer* t = nullptr;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, reinterpret_cast<char**>(&t));
    if (t == nullptr) continue;
    if (m->data.result == CURLE_OK) {
      long code = 0;
      curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
      t->resp.status = static_cast<int>(code);
    } else {
      t->resp.error = curl_easy_strerror(m->data.result);
    }
    finish(t);
  }
}

int HttpClient::Impl::socket_cb(CURL*, curl_socket_t s, int what, void* userp, void* socketp) {
  auto* impl = static_cast<Impl*>(userp);
  auto* c = static_cast<PollCtx*>(socketp);
  if (what == CURL_POLL_REMOVE) {
    if (c != nullptr) {
      impl->polls.erase(c);
      uv_poll_stop(&c->poll);
      // Freed only in the close callback (libuv ownership rule).
      uv_close(reinterpret_cast<uv_handle_t*>(&c->poll),
               [](uv_handle_t* h) { delete static_cast<PollCtx*>(h->data); });
      curl_multi_assign(impl->multi, s, nullptr);
    }
    return 0;
  }
  if (c == nullptr) {
    c = new PollCtx{};
    c->fd = s;
    c->impl = impl;
    if (uv_poll_init_socket(impl->loop, &c->poll, s) != 0) {
      delete c;
      return -1;
    }
    c->poll.data = c;
    impl->polls.insert(c);
    curl_multi_assign(impl->multi, s, c);
  }
  int ev = 0;
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) ev |= UV_READABLE;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) ev |= UV_WRITABLE;
  uv_poll_start(&c->poll, ev, [](uv_poll_t* h, int status, int events) {
    auto* pc = static_cast<PollCtx*>(h->data);
    int flags = 0;
    if (status < 0) flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    pc->impl->action(pc->fd, flags);
  });
  return 0;
}

int HttpClient::Impl::timer_cb(CURLM*, long timeout_ms, void* userp) {
  auto* impl = static_cast<Impl*>(userp);
  if (timeout_ms < 0) {
    if (impl->failed.empty()) impl->timer->stop();
  } else {
    impl->timer->again(static_cast<uint64_t>(timeout_ms));
  }
  return 0;
}

HttpClient::Impl::~Impl() {
  for (Transfer* t : std::vector<Transfer*>(live.begin(), live.end())) {
    t->resp.status = 0;
    t->resp.error = "cancelled";
    finish(t);
  }
  if (multi != nullptr) curl_multi_cleanup(multi);
  for (PollCtx* c : polls) {
    uv_poll_stop(&c->poll);
    uv_close(reinterpret_cast<uv_handle_t*>(&c->poll),
             [](uv_handle_t* h) { delete static_cast<PollCtx*>(h->data); });
  }
}

Result<std::unique_ptr<HttpClient>> HttpClient::create(uv_loop_s* loop) {
  curl_init_once();
  auto impl = std::make_unique<Impl>();
  impl->loop = loop;
  impl->multi = curl_multi_init();
  if (impl->multi == nullptr) return make_error(ErrDomain::kSys, "curl: cannot start (multi)");
  Impl* raw = impl.get();
  impl->timer = std::make_unique<Timer>(loop, [raw] { raw->action(CURL_SOCKET_TIMEOUT, 0); });
  curl_multi_setopt(impl->multi, CURLMOPT_SOCKETFUNCTION, &Impl::socket_cb);
  curl_multi_setopt(impl->multi, CURLMOPT_SOCKETDATA, raw);
  curl_multi_setopt(impl->multi, CURLMOPT_TIMERFUNCTION, &Impl::timer_cb);
  curl_multi_setopt(impl->multi, CURLMOPT_TIMERDATA, raw);
  return std::unique_ptr<HttpClient>(new HttpClient(std::move(impl)));
}

HttpClient::HttpClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpClient::~HttpClient() = default;

size_t HttpClient::in_flight() const { return impl_->live.size() + impl_->failed.size(); }

void HttpClient::start(const HttpRequest& req, Callback cb) {
  auto* t = new Transfer;
  t->cb = std::move(cb);
  t->max_response = req.max_response;
  t->body = req.body;
  impl_->live.insert(t);
  t->easy = curl_easy_init();
  if (t->easy == nullptr) {
    t->resp.error = "curl: cannot start a transfer";
    impl_->failed.push_back(t);
    impl_->timer->again(0);
    return;
  }
  CURL* e = t->easy;
  curl_easy_setopt(e, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(e, CURLOPT_PRIVATE, t);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(req.timeout_ms));
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  if (req.method == "GET") {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->body.c_str());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, static_cast<long>(t->body.size()));
    if (req.method != "POST") curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }
  if (!req.user.empty()) {
    curl_easy_setopt(e, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(e, CURLOPT_USERNAME, req.user.c_str());
    curl_easy_setopt(e, CURLOPT_PASSWORD, req.password.c_str());
  }
  for (const std::string& h : req.headers) t->headers = curl_slist_append(t->headers, h.c_str());
  if (!req.bearer.empty()) {
    t->headers = curl_slist_append(t->headers, ("Authorization: Bearer " + req.bearer).c_str());
  }
  // No "Expect: 100-continue" round trip for a small body.
  t->headers = curl_slist_append(t->headers, "Expect:");
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
  if (curl_multi_add_handle(impl_->multi, e) != CURLM_OK) {
    curl_easy_cleanup(e);
    t->easy = nullptr;
    t->resp.error = "curl: cannot add the transfer";
    impl_->failed.push_back(t);
    impl_->timer->again(0);
  }
}

}  // namespace sb
