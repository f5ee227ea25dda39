// RemoteMailbox: curl multi + libuv as curl's docs describe (multi-uv.c): CURLMOPT_SOCKETFUNCTION
// -> one uv_poll_t per socket, CURLMOPT_TIMERFUNCTION -> one uv_timer_t; transfers run one at
// a time on a reused connection (curl's connection cache), so POP3 message numbers hold.
#include "returns/remote_mailbox.h"

#include <curl/curl.h>
#include <uv.h>

#include <cstring>
#include <mutex>

namespace sb {
struct RemoteMailbox::Impl {
  RemoteMailboxConfig cfg;
  uv_loop_t loop{};
  uv_timer_t timer{};
  CURLM* multi = nullptr;
  CURL* easy = nullptr;
  bool pop3 = false;
  std::string base;     // scheme://host[:port]/ (no user)
  std::string mailbox;  // IMAP mailbox, URL-escaped as given
  std::string uidvalidity;
  std::vector<RemoteItem> items;
  // The current transfer.
  std::string body;
  size_t max_body = 0;
  bool done = false;
  CURLcode result = CURLE_OK;
  char errbuf[CURL_ERROR_SIZE] = {0};

  ~Impl();
  Status setup();
  Result<std::string> perform(const std::string& url, const char* custom, bool nobody,
                              size_t max_bytes);
  void check_done();
};

namespace {

struct PollCtx {
  uv_poll_t poll;
  curl_socket_t fd;
  RemoteMailbox::Impl* impl;
};

void on_poll(uv_poll_t* h, int status, int events) {
  auto* c = static_cast<PollCtx*>(h->data);
  int flags = 0;
  if (status < 0) flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  int running = 0;
  RemoteMailbox::Impl* impl = c->impl;
  curl_multi_socket_action(impl->multi, c->fd, flags, &running);
  impl->check_done();
}

void on_timer(uv_timer_t* t) {
  auto* impl = static_cast<RemoteMailbox::Impl*>(t->data);
  int running = 0;
  curl_multi_socket_action(impl->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  impl->check_done();
}

int socket_cb(CURL*, curl_socket_t s, int what, void* userp, void* socketp) {
  auto* impl = static_cast<RemoteMailbox::Impl*>(userp);
  auto* c = static_cast<PollCtx*>(socketp);
  if (what == CURL_POLL_REMOVE) {
    if (c) {
      uv_poll_stop(&c->poll);
      // Freed only in the close callback (libuv ownership rule).
      uv_close(reinterpret_cast<uv_handle_t*>(&c->poll),
               [](uv_handle_t* h) { delete static_cast<PollCtx*>(h->data); });
      curl_multi_assign(impl->multi, s, nullptr);
    }
    return 0;
  }
  if (!c) {
    c = new PollCtx{};
    c->fd = s;
    c->impl = impl;
    if (uv_poll_init_socket(&impl->loop, &c->poll, s) != 0) {
      delete c;
      return -1;
    }
    c->poll.data = c;
    curl_multi_assign(impl->multi, s, c);
  }
  int ev = 0;
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) ev |= UV_READABLE;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) ev |= UV_WRITABLE;
  uv_poll_start(&c->poll, ev, on_poll);
  return 0;
}

int timer_cb(CURLM*, long timeout_ms, void* userp) {
  auto* impl = static_cast<RemoteMailbox::Impl*>(userp);
  if (timeout_ms < 0) {
    uv_timer_stop(&impl->timer);
  } else {
    uv_timer_start(&impl->timer, on_timer, static_cast<uint64_t>(timeout_ms), 0);
  }
  return 0;
}

size_t write_cb(char* p, size_t size, size_t n, void* userp) {
  auto* impl = static_cast<RemoteMailbox::Impl*>(userp);
  size_t len = size * n;
  size_t room = impl->max_body > impl->body.size() ? impl->max_body - impl->body.size() : 0;
  impl->body.append(p, std::min(len, room));
  return len;  // the rest of an oversized message is read and dropped
}

void curl_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// Splits scheme://[user@]host[:port][/path] -> base "scheme://host[:port]/", user, path.
bool split_url(const std::string& url, std::string* scheme, std::string* base, std::string* user,
               std::string* path) {
  size_t sep = url.find("://");
  if (sep == std::string::npos) return false;
  *scheme = url.substr(0, sep);
  std::string rest = url.substr(sep + 3);
  size_t slash = rest.find('/');
  std::string auth = rest.substr(0, slash);
  *path = slash == std::string::npos ? "" : rest.substr(slash + 1);
  size_t at = auth.rfind('@');
  if (at != std::string::npos) {
    *user = auth.substr(0, at);
    auth = auth.substr(at + 1);
  }
  if (auth.empty()) return false;
  *base = *scheme + "://" + auth + "/";
  return true;
}

std::string first_line(std::string_view s) {
  size_t nl = s.find_first_of("\r\n");
  return std::string(s.substr(0, nl));
}

}  // namespace

RemoteMailbox::Impl::~Impl() {
  if (easy) {
    curl_multi_remove_handle(multi, easy);
    curl_easy_cleanup(easy);
  }
  if (multi) curl_multi_cleanup(multi);  // closes the connection: POP3 QUIT commits DELE
  if (loop.data) {
    uv_close(reinterpret_cast<uv_handle_t*>(&timer), nullptr);
    uv_run(&loop, UV_RUN_DEFAULT);  // the close callbacks
    uv_loop_close(&loop);
  }
}

void RemoteMailbox::Impl::check_done() {
  CURLMsg* m;
  int left = 0;
  while ((m = curl_multi_info_read(multi, &left)) != nullptr) {
    if (m->msg == CURLMSG_DONE) {
      result = m->data.result;
      done = true;
    }
  }
  if (done) uv_stop(&loop);
}

Status RemoteMailbox::Impl::setup() {
  curl_init_once();
  std::string scheme, user, path;
  if (!split_url(cfg.url, &scheme, &base, &user, &path)) {
    return make_error(ErrDomain::kConfig, "--mailbox '" + cfg.url +
                                              "' is not imaps://user@host/MAILBOX or "
                                              "pop3s://user@host");
  }
  if (scheme == "pop3" || scheme == "pop3s") {
    pop3 = true;
  } else if (scheme != "imap" && scheme != "imaps") {
    return make_error(ErrDomain::kConfig,
                      "--mailbox: scheme '" + scheme + "' is not imaps, imap, pop3s or pop3");
  }
  if (cfg.user.empty()) cfg.user = user;
  if (cfg.user.empty()) {
    return make_error(ErrDomain::kConfig, "--mailbox: no user (imaps://USER@host/INBOX)");
  }
  mailbox = pop3 ? "" : (path.empty() ? "INBOX" : path);
  if (uv_loop_init(&loop) != 0) return make_error(ErrDomain::kUv, "cannot create a loop");
  loop.data = this;
  uv_timer_init(&loop, &timer);
  timer.data = this;
  multi = curl_multi_init();
  easy = curl_easy_init();
  if (!multi || !easy) return make_error(ErrDomain::kSys, "curl: out of memory");
  curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
  curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_cb);
  curl_multi_setopt(multi, CURLMOPT_TIMERDATA, this);
  return {};
}

Result<std::string> RemoteMailbox::Impl::perform(const std::string& url, const char* custom,
                                                 bool nobody, size_t max_bytes) {
  curl_easy_reset(easy);
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy, CURLOPT_USERNAME, cfg.user.c_str());
  curl_easy_setopt(easy, CURLOPT_PASSWORD, cfg.password.c_str());
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, this);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, cfg.timeout_ms);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, std::min(cfg.timeout_ms, 30000L));
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_USE_SSL, cfg.plain ? CURLUSESSL_NONE : CURLUSESSL_ALL);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!cfg.ca_file.empty()) curl_easy_setopt(easy, CURLOPT_CAINFO, cfg.ca_file.c_str());
  if (custom) curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, custom);
  if (nobody) curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
  body.clear();
  max_body = max_bytes;
  done = false;
  errbuf[0] = 0;
  if (curl_multi_add_handle(multi, easy) != CURLM_OK) {
    return make_error(ErrDomain::kSys, "curl: cannot start a transfer");
  }
  while (!done) {
    if (uv_run(&loop, UV_RUN_DEFAULT) == 0 && !done) {
      // Nothing left to wait for: let curl look once more (it may have finished inline).
      int running = 0;
      curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
      check_done();
      if (!done && running == 0) break;
    }
  }
  curl_multi_remove_handle(multi, easy);
  if (!done || result != CURLE_OK) {
    std::string why = errbuf[0] ? errbuf : curl_easy_strerror(result);
    std::string what = pop3 ? "POP3" : "IMAP";
    if (result == CURLE_LOGIN_DENIED) {
      return make_error(ErrDomain::kConfig,
                        what + " login denied for " + cfg.user + " at " + base + ": " + why);
    }
    ErrDomain d = result == CURLE_COULDNT_CONNECT || result == CURLE_OPERATION_TIMEDOUT ||
                          result == CURLE_RECV_ERROR || result == CURLE_SEND_ERROR ||
                          result == CURLE_GOT_NOTHING
                      ? ErrDomain::kUv
                  : result == CURLE_SSL_CONNECT_ERROR || result == CURLE_PEER_FAILED_VERIFICATION ||
                          result == CURLE_USE_SSL_FAILED
                      ? ErrDomain::kSsl
                      : ErrDomain::kInput;
    return make_error(d, what + " " + base + ": " + why);
  }
  return std::move(body);
}

RemoteMailbox::RemoteMailbox(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RemoteMailbox::~RemoteMailbox() = default;
const std::vector<RemoteItem>& RemoteMailbox::items() const { return impl_->items; }
bool RemoteMailbox::is_pop3() const { return impl_->pop3; }

Result<std::unique_ptr<RemoteMailbox>> RemoteMailbox::open(const RemoteMailboxConfig& cfg) {
  auto impl = std::make_unique<Impl>();
  impl->cfg = cfg;
  Impl& s = *impl;
  if (auto st = s.setup(); !st) return st.error();
  constexpr size_t kListCap = 64u << 20;
  if (s.pop3) {
    auto list = s.perform(s.base, "UIDL", false, kListCap);
    if (!list.ok()) return list.error();
    std::string_view v = *list;
    size_t pos = 0;
    while (pos < v.size()) {
      size_t nl = v.find('\n', pos);
      std::string_view line = v.substr(pos, nl == std::string_view::npos ? v.npos : nl - pos);
      pos = nl == std::string_view::npos ? v.size() : nl + 1;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      size_t sp = line.find(' ');
      if (sp == std::string_view::npos || sp == 0) continue;
      RemoteItem it;
      it.id = std::string(line.substr(0, sp));
      it.memory_key = "pop3:" + s.cfg.user + "@" + s.base + ":" + std::string(line.substr(sp + 1));
      s.items.push_back(std::move(it));
    }
  } else {
    auto st = s.perform(s.base, ("STATUS " + s.mailbox + " (UIDVALIDITY)").c_str(), false, 1 << 16);
    if (!st.ok()) return st.error();
    size_t p = st->find("UIDVALIDITY ");
    if (p != std::string::npos) {
      size_t e = st->find_first_not_of("0123456789", p + 12);
      s.uidvalidity = st->substr(p + 12, e == std::string::npos ? e : e - p - 12);
    }
    if (s.uidvalidity.empty()) {
      return make_error(ErrDomain::kInput, "IMAP " + s.base + ": no UIDVALIDITY for " + s.mailbox +
                                               " (" + first_line(*st) + ")");
    }
    auto list = s.perform(s.base + s.mailbox, "UID SEARCH ALL", false, kListCap);
    if (!list.ok()) return list.error();
    size_t at = list->find("* SEARCH");
    if (at != std::string::npos) {
      std::string_view v = std::string_view(*list).substr(at + 8);
      v = v.substr(0, v.find_first_of("\r\n"));
      size_t pos = 0;
      while (pos < v.size()) {
        while (pos < v.size() && v[pos] == ' ') ++pos;
        size_t e = pos;
        while (e < v.size() && v[e] >= '0' && v[e] <= '9') ++e;
        if (e == pos) break;
        RemoteItem it;
        it.id = std::string(v.substr(pos, e - pos));
        it.memory_key =
            "imap:" + s.cfg.user + "@" + s.base + s.mailbox + ":" + s.uidvalidity + ":" + it.id;
        s.items.push_back(std::move(it));
        pos = e;
      }
    }
  }
  return std::unique_ptr<RemoteMailbox>(new RemoteMailbox(std::move(impl)));
}

Result<std::string> RemoteMailbox::fetch(const RemoteItem& item, size_t max_bytes) {
  Impl& s = *impl_;
  if (s.pop3) return s.perform(s.base + item.id, nullptr, false, max_bytes);
  return s.perform(s.base + s.mailbox + ";UID=" + item.id, nullptr, false, max_bytes);
}

Status RemoteMailbox::remove(const RemoteItem& item) {
  Impl& s = *impl_;
  const std::string store = "UID STORE " + item.id + " +FLAGS (\\Deleted)";
  Result<std::string> r = s.pop3 ? s.perform(s.base + item.id, "DELE", true, 1 << 16)
                                 : s.perform(s.base + s.mailbox, store.c_str(), false, 1 << 16);
  if (!r.ok()) return r.error();
  return {};
}

Status RemoteMailbox::finish() {
  Impl& s = *impl_;
  if (!s.pop3) {
    auto r = s.perform(s.base + s.mailbox, "EXPUNGE", false, 1 << 16);
    if (!r.ok()) return r.error();
  }
  return {};
}

}  // namespace sb
