// SmppLink: the SMPP session's driver, as smtp/pool.cc drives an SMTP session.
#include "smsgw/smpp_link.h"

#include <utility>

namespace sb {

SmppLink::SmppLink(uv_loop_s* loop, const SmppConfig& cfg, SmppHost& host,
                   std::function<void()> on_end)
    : loop_(loop), session_(cfg, host, out_), on_end_(std::move(on_end)) {}

// The owner destroys a link only after on_end (its connection is gone by then).
SmppLink::~SmppLink() = default;

void SmppLink::connect(const sockaddr_storage& addr) {
  conn_ = TcpConn::create(loop_, this);
  conn_->set_deadline(conn_->now_ms() + 30000);
  conn_->connect(reinterpret_cast<const sockaddr*>(&addr));
}

void SmppLink::flush() {
  if (conn_ == nullptr || closing_) return;
  if (!out_.empty()) conn_->write(out_);
  if (session_.wants_close()) {
    closing_ = true;
    conn_->close(true);
    return;
  }
  conn_->set_deadline(session_.deadline_ms());
}

void SmppLink::poke() {
  if (conn_ == nullptr || !connected_ || closing_) return;
  session_.poke(conn_->now_ms());
  flush();
}

void SmppLink::abort(const std::string& why) {
  if (conn_ == nullptr || closing_) return;
  session_.force_close(why, false, conn_->now_ms());
  closing_ = true;
  conn_->close(false);
}

void SmppLink::on_connected() {
  connected_ = true;
  session_.on_connected(conn_->now_ms());
  flush();
}

void SmppLink::on_read(std::string_view data) {
  session_.on_data(data, conn_->now_ms());
  flush();
}

void SmppLink::on_broken(std::string_view why) {
  if (connected_) {
    session_.on_closed(why, conn_->now_ms());
  } else {
    session_.force_close("cannot connect: " + std::string(why), false, conn_->now_ms());
  }
  closing_ = true;
}

void SmppLink::on_timer() {
  if (!connected_) {
    session_.force_close("connect timed out", false, conn_->now_ms());
    closing_ = true;
    conn_->close(false);
    return;
  }
  session_.on_timer(conn_->now_ms());
  flush();
}

void SmppLink::on_closed() {
  conn_ = nullptr;
  if (!session_.wants_close()) session_.on_closed("connection closed", 0);
  if (on_end_) on_end_();
}

}  // namespace sb
